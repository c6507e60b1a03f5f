//! The NodeRestriction plugin, as Kubernetes' (`plugin/pkg/admission/noderestriction`): a node
//! (`system:node:NAME`) may change only its own Node — never its taints, nor labels under
//! `node-restriction.kubernetes.io/` or Kubernetes label namespaces a kubelet does not set —
//! its own Lease, and only the pods bound to it (their status; deleting them). The node
//! authorizer lets these requests through by kind; this plugin checks them against the objects.

use serde_json::Value;

use super::{Operation, Request};
use crate::api::ApiState;
use crate::error::{Error, Result};
use crate::registry::kinds::Subresource;

/// The label namespace only administrators may set on nodes.
const NODE_RESTRICTION_LABELS: &str = "node-restriction.kubernetes.io";

/// The namespace of nodes' Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

pub fn validate(_state: &ApiState, request: &Request<'_>, object: &Value, old: Option<&Value>) -> Result<()> {
    let Some(node) = request.user.node_name() else { return Ok(()) };
    check(node, request, object, old).map_err(|reason| forbidden(request, object, &reason))
}

/// A node's TokenRequest (`serviceaccounts/NAME/token`) must be bound to a pod, by name and uid,
/// that is bound to the node, as Kubernetes' NodeRestriction has it. Other users pass.
pub(crate) fn admit_token_request(
    store: &crate::store::Store,
    user: &crate::auth::User,
    namespace: &str,
    account: &str,
    request: &Value,
) -> Result<()> {
    let Some(node) = user.node_name() else { return Ok(()) };
    let refuse = |reason: &str| Error::Forbidden(format!("serviceaccounts {account:?} is forbidden: {reason}"));
    let bound = &request["spec"]["boundObjectRef"];
    let name = bound["name"].as_str().unwrap_or_default();
    if bound["apiVersion"] != "v1" || bound["kind"] != "Pod" || name.is_empty() {
        return Err(refuse("node requested token not bound to a pod"));
    }
    let uid = bound["uid"].as_str().unwrap_or_default();
    if uid.is_empty() {
        return Err(refuse("node requested token with a pod binding without a uid"));
    }
    let pod = store.get(&crate::store::ObjectKey::new("pods", namespace, name)).ok_or_else(|| Error::NotFound {
        group: String::new(),
        kind: "pods".into(),
        name: name.into(),
    })?;
    if pod.object["metadata"]["uid"].as_str() != Some(uid) {
        return Err(refuse(&format!(
            "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
        )));
    }
    if bound_to(&pod.object) != node {
        return Err(refuse("node requested token bound to a pod scheduled on a different node"));
    }
    Ok(())
}

/// Kubernetes' admission Forbidden: `pods "web" is forbidden: node "a" can only ...`.
fn forbidden(request: &Request<'_>, object: &Value, reason: &str) -> Error {
    let resource = if request.resource.group.is_empty() {
        request.resource.plural.to_string()
    } else {
        format!("{}.{}", request.resource.plural, request.resource.group)
    };
    let name =
        if request.name.is_empty() { object["metadata"]["name"].as_str().unwrap_or_default() } else { request.name };
    Error::Forbidden(format!("{resource} {name:?} is forbidden: {reason}"))
}

/// Why node `node` may not make this write, if it may not.
fn check(node: &str, request: &Request<'_>, object: &Value, old: Option<&Value>) -> std::result::Result<(), String> {
    let resource = request.resource;
    match (resource.group, resource.kind, request.subresource) {
        ("", "Node", None | Some(Subresource::Status)) => admit_node(node, request, object, old),
        ("", "Pod", None) => admit_pod(node, request, object),
        ("", "Pod", Some(Subresource::Status)) => match (request.operation, old) {
            (Operation::Update, Some(old)) => {
                if bound_to(old) != node {
                    Err(format!("node {node:?} can only update pod status for pods with spec.nodeName set to itself"))
                } else if old["metadata"]["labels"] != object["metadata"]["labels"] {
                    Err(format!("node {node:?} cannot update labels through pod status"))
                } else {
                    Ok(())
                }
            }
            (operation, _) => Err(format!("unexpected operation {:?}", operation_name(operation))),
        },
        // The gateway reports its load on a Function in its own annotation; nothing else.
        ("wharf.dev", "Function", None) => {
            let own = format!("{}{node}", crate::controllers::function::LOAD_PREFIX);
            let rest = |function: &Value| {
                let mut function = function.clone();
                if let Some(meta) = function["metadata"].as_object_mut() {
                    meta.remove("resourceVersion");
                    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                        annotations.remove(&own);
                    }
                    if meta.get("annotations").and_then(Value::as_object).is_some_and(|a| a.is_empty()) {
                        meta.remove("annotations");
                    }
                }
                function
            };
            match (request.operation, old) {
                (Operation::Update, Some(old)) if rest(old) == rest(object) => Ok(()),
                _ => Err(format!("node {node:?} may only change the annotation {own:?} of functions")),
            }
        }
        ("coordination.k8s.io", "Lease", None) => {
            let name = if request.name.is_empty() {
                object["metadata"]["name"].as_str().unwrap_or_default()
            } else {
                request.name
            };
            if request.namespace != NODE_LEASE_NAMESPACE || name != node {
                Err("can only access node lease with the same name as the requesting node".to_string())
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
    }
}

fn bound_to(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

fn admit_pod(node: &str, request: &Request<'_>, object: &Value) -> std::result::Result<(), String> {
    match request.operation {
        // For a delete `object` is the stored pod.
        Operation::Delete if bound_to(object) == node => Ok(()),
        Operation::Delete => Err(format!("node {node:?} can only delete pods with spec.nodeName set to itself")),
        // Wharf has no static pods, so a node never has a mirror pod to create.
        Operation::Create => Err(format!(
            "pod does not have \"kubernetes.io/config.mirror\" annotation, node {node:?} can only create mirror pods"
        )),
        Operation::Update => {
            Err(format!("unexpected operation \"UPDATE\", node {node:?} can only create and delete mirror pods"))
        }
    }
}

fn admit_node(
    node: &str,
    request: &Request<'_>,
    object: &Value,
    old: Option<&Value>,
) -> std::result::Result<(), String> {
    let requested =
        if request.name.is_empty() { object["metadata"]["name"].as_str().unwrap_or_default() } else { request.name };
    if requested != node {
        return Err(format!("node {node:?} is not allowed to modify node {requested:?}"));
    }
    let labels = |o: &Value| -> Vec<(String, String)> {
        o["metadata"]["labels"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default()
    };
    match (request.operation, old) {
        (Operation::Create, _) => {
            let forbidden = forbidden_labels(&labels(object), &[]);
            if !forbidden.is_empty() {
                return Err(format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    forbidden.join(", ")
                ));
            }
        }
        (Operation::Update, Some(old)) => {
            if object["spec"]["taints"] != old["spec"]["taints"] {
                return Err(format!("node {node:?} is not allowed to modify taints"));
            }
            let forbidden = forbidden_labels(&labels(object), &labels(old));
            if !forbidden.is_empty() {
                return Err(format!("is not allowed to modify labels: {}", forbidden.join(", ")));
            }
        }
        (Operation::Delete, _) => return Err(format!("node {node:?} is not allowed to delete node {requested:?}")),
        (Operation::Update, None) => {}
    }
    Ok(())
}

/// The labels changed between `new` and `old` that a node may not set, sorted.
fn forbidden_labels(new: &[(String, String)], old: &[(String, String)]) -> Vec<String> {
    let value = |labels: &[(String, String)], key: &str| labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let mut changed: Vec<String> = new
        .iter()
        .chain(old)
        .map(|(k, _)| k.clone())
        .filter(|k| value(new, k) != value(old, k))
        .filter(|k| {
            let namespace = k.split_once('/').map(|(ns, _)| ns).unwrap_or_default();
            let restricted =
                namespace == NODE_RESTRICTION_LABELS || namespace.ends_with(&format!(".{NODE_RESTRICTION_LABELS}"));
            restricted || (is_kubernetes_label(namespace) && !is_kubelet_label(k))
        })
        .collect();
    changed.sort();
    changed.dedup();
    changed
}

fn is_kubernetes_label(namespace: &str) -> bool {
    ["kubernetes.io", "k8s.io"].iter().any(|ns| namespace == *ns || namespace.ends_with(&format!(".{ns}")))
}

/// The labels a kubelet sets on its Node (Kubernetes' `kubeletapis.IsKubeletLabel`).
fn is_kubelet_label(key: &str) -> bool {
    const LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    const NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];
    if LABELS.contains(&key) {
        return true;
    }
    let namespace = key.split_once('/').map(|(ns, _)| ns).unwrap_or_default();
    NAMESPACES.iter().any(|ns| namespace == *ns || namespace.ends_with(&format!(".{ns}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::{NODES, User};
    use crate::registry::kinds::{RESOURCES, ResourceInfo};
    use crate::store::{ObjectKey, Store, StoreOptions, Write};

    fn info(group: &str, kind: &str) -> &'static ResourceInfo {
        RESOURCES.iter().find(|r| r.group == group && r.kind == kind).unwrap()
    }

    fn request<'a>(
        user: &'a User,
        operation: Operation,
        kind: (&str, &str),
        subresource: Option<Subresource>,
        namespace: &'a str,
        name: &'a str,
    ) -> Request<'a> {
        Request { user, operation, resource: info(kind.0, kind.1), subresource, namespace, name, dry_run: false }
    }

    fn reason(request: &Request<'_>, object: &Value, old: Option<&Value>) -> String {
        let node = request.user.node_name().unwrap();
        check(node, request, object, old).err().unwrap_or_default()
    }

    #[test]
    fn a_node_writes_only_its_own_node_and_pods() {
        let a = User::new("system:node:a", [NODES]);
        let node = |name: &str, labels: Value, taints: Value| json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}});
        let plain = node("a", json!({"kubernetes.io/hostname": "a"}), Value::Null);
        let create = request(&a, Operation::Create, ("", "Node"), None, "", "");
        assert_eq!(reason(&create, &plain, None), "");
        let other = node("b", json!({}), Value::Null);
        assert_eq!(reason(&create, &other, None), "node \"a\" is not allowed to modify node \"b\"");
        let patch_b = request(&a, Operation::Update, ("", "Node"), None, "", "b");
        assert_eq!(reason(&patch_b, &other, Some(&other)), "node \"a\" is not allowed to modify node \"b\"");
        let labelled =
            node("a", json!({"node-restriction.kubernetes.io/role": "db", "kubernetes.io/os": "linux"}), Value::Null);
        assert_eq!(
            reason(&create, &labelled, None),
            "node \"a\" is not allowed to set the following labels: node-restriction.kubernetes.io/role"
        );
        let update = request(&a, Operation::Update, ("", "Node"), None, "", "a");
        let relabelled = node("a", json!({"kubernetes.io/hostname": "a", "example.com/x": "1"}), Value::Null);
        assert_eq!(reason(&update, &relabelled, Some(&plain)), "");
        let untainted = node("a", json!({"kubernetes.io/hostname": "a"}), json!([]));
        let tainted = node("a", json!({"kubernetes.io/hostname": "a"}), json!([{"key": "k", "effect": "NoSchedule"}]));
        assert_eq!(reason(&update, &untainted, Some(&tainted)), "node \"a\" is not allowed to modify taints");
        let k8s = node("a", json!({"kubernetes.io/hostname": "a", "kubernetes.io/role": "x"}), Value::Null);
        assert_eq!(reason(&update, &k8s, Some(&plain)), "is not allowed to modify labels: kubernetes.io/role");

        let pod = |node: &str| json!({"metadata": {"name": "p", "labels": {"app": "x"}}, "spec": {"nodeName": node}});
        let status = request(&a, Operation::Update, ("", "Pod"), Some(Subresource::Status), "default", "p");
        assert_eq!(reason(&status, &pod("a"), Some(&pod("a"))), "");
        assert_eq!(
            reason(&status, &pod("b"), Some(&pod("b"))),
            "node \"a\" can only update pod status for pods with spec.nodeName set to itself"
        );
        let mut relabel = pod("a");
        relabel["metadata"]["labels"] = json!({"app": "y"});
        assert_eq!(reason(&status, &relabel, Some(&pod("a"))), "node \"a\" cannot update labels through pod status");
        let delete = request(&a, Operation::Delete, ("", "Pod"), None, "default", "p");
        assert_eq!(reason(&delete, &pod("a"), None), "");
        assert_eq!(
            reason(&delete, &pod("b"), None),
            "node \"a\" can only delete pods with spec.nodeName set to itself"
        );
        let create_pod = request(&a, Operation::Create, ("", "Pod"), None, "default", "p");
        assert!(reason(&create_pod, &pod("a"), None).contains("can only create mirror pods"));

        let lease = |name: &'static str| {
            request(&a, Operation::Update, ("coordination.k8s.io", "Lease"), None, "kube-node-lease", name)
        };
        assert_eq!(reason(&lease("a"), &json!({}), None), "");
        assert_eq!(
            reason(&lease("b"), &json!({}), None),
            "can only access node lease with the same name as the requesting node"
        );
        let function = |annotations: Value, image: &str| json!({"metadata": {"name": "f", "annotations": annotations, "resourceVersion": "7"}, "spec": {"image": image}});
        let report = request(&a, Operation::Update, ("wharf.dev", "Function"), None, "default", "f");
        let before = function(json!({"load.wharf.dev/b": "{}"}), "fn:v1");
        let reported = function(json!({"load.wharf.dev/a": "{\"inFlight\":1}", "load.wharf.dev/b": "{}"}), "fn:v1");
        assert_eq!(reason(&report, &reported, Some(&before)), "");
        let others = function(json!({"load.wharf.dev/b": "{\"inFlight\":9}"}), "fn:v1");
        let respecced = function(json!({"load.wharf.dev/b": "{}"}), "evil:v1");
        for changed in [others, respecced] {
            assert_eq!(
                reason(&report, &changed, Some(&before)),
                "node \"a\" may only change the annotation \"load.wharf.dev/a\" of functions"
            );
        }
        assert_eq!(
            forbidden(&patch_b, &other, "node \"a\" is not allowed to modify node \"b\"").to_string(),
            Error::Forbidden("nodes \"b\" is forbidden: node \"a\" is not allowed to modify node \"b\"".into())
                .to_string()
        );
    }

    #[tokio::test]
    async fn a_node_gets_tokens_only_for_its_own_pods() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
        for (name, node) in [("mine", "a"), ("theirs", "b")] {
            let pod = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
                "spec": {"nodeName": node}});
            store.write(Write::Create { key: ObjectKey::new("pods", "default", name), object: pod }).await.unwrap();
        }
        let a = User::new("system:node:a", [NODES]);
        let token = |name: &str, uid: &str| json!({"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}}});
        let admit = |request: &Value| admit_token_request(&store, &a, "default", "default", request);
        assert!(admit(&token("mine", "uid-mine")).is_ok());
        let message = |request: &Value| admit(request).unwrap_err().to_string();
        assert!(message(&token("theirs", "uid-theirs")).contains("bound to a pod scheduled on a different node"));
        assert!(message(&token("mine", "")).contains("with a pod binding without a uid"));
        assert!(message(&token("mine", "old")).contains("does not match the UID in record"));
        assert!(message(&json!({"spec": {}})).contains("node requested token not bound to a pod"));
        assert!(matches!(admit(&token("gone", "x")), Err(Error::NotFound { .. })));
        let alice = User::new("alice", Vec::<String>::new());
        assert!(admit_token_request(&store, &alice, "default", "default", &json!({})).is_ok());
    }
}
