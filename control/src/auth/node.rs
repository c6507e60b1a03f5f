//! The node authorizer, as kube-apiserver's (`plugin/pkg/auth/authorizer/node`): a node
//! (`system:node:NAME` in `system:nodes`) reads only what the pods bound to it need and writes
//! only its own Node, Lease, its pods' status and events. Other users get no opinion.
//!
//! What a node may reach is a graph kept from the store's pods: each pod bound to a node
//! (`spec.nodeName`) links that node to the pod and to the Secrets, ConfigMaps,
//! PersistentVolumeClaims and ServiceAccount the pod names (volumes, projected sources, env and
//! envFrom, imagePullSecrets, serviceAccountName). The graph follows the store's event stream and
//! is brought up to date on each node request, so a pod bound before a request is seen by it; no
//! request scans the store.
//!
//! Writes the rules allow on Nodes, Leases and pods are narrowed to the node's own by the
//! NodeRestriction admission plugin (`api/admission/node_restriction.rs`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::authz::Decision;
use super::{Attributes, ResourceAttributes};
use crate::store::{Event, EventType, Store, WatchSource, WatchStart};

/// The label the Function controller puts on a Linux function's pods; a node's gateway follows
/// those pods wherever they run to forward requests to them.
const FUNCTION_LABEL: &str = "wharf.dev/function";

/// The namespace of nodes' Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The kinds of objects a pod links its node to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Pod,
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    ServiceAccount,
}

impl Kind {
    fn of(resource: &str) -> Option<Kind> {
        Some(match resource {
            "pods" => Kind::Pod,
            "secrets" => Kind::Secret,
            "configmaps" => Kind::ConfigMap,
            "persistentvolumeclaims" => Kind::PersistentVolumeClaim,
            "serviceaccounts" => Kind::ServiceAccount,
            _ => return None,
        })
    }
}

/// An edge of the graph: node → object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Edge {
    node: String,
    kind: Kind,
    namespace: String,
    name: String,
}

/// The objects a pod links to, and to which node.
#[derive(Debug, Default, PartialEq, Eq)]
struct PodLinks {
    node: String,
    edges: Vec<Edge>,
}

/// Who may reach what: the edges with how many pods make each.
#[derive(Default)]
struct Graph {
    /// (namespace, name) of each bound pod → its edges.
    pods: HashMap<(String, String), PodLinks>,
    edges: HashMap<Edge, usize>,
}

impl Graph {
    fn build(store: &Store) -> Self {
        let mut graph = Graph::default();
        for pod in store.list("pods", None, None, 0, |_| true).items {
            graph.set(&pod.key.namespace, &pod.key.name, Some(&pod.object));
        }
        graph
    }

    /// Records the pod's current state (`None` when deleted).
    fn set(&mut self, namespace: &str, name: &str, pod: Option<&Value>) {
        let key = (namespace.to_string(), name.to_string());
        let links = pod.map(|p| links(namespace, name, p)).filter(|l| !l.node.is_empty());
        if self.pods.get(&key) == links.as_ref() {
            return;
        }
        if let Some(old) = self.pods.remove(&key) {
            for edge in old.edges {
                if let Some(count) = self.edges.get_mut(&edge) {
                    *count -= 1;
                    if *count == 0 {
                        self.edges.remove(&edge);
                    }
                }
            }
        }
        if let Some(links) = links {
            for edge in &links.edges {
                *self.edges.entry(edge.clone()).or_default() += 1;
            }
            self.pods.insert(key, links);
        }
    }

    fn apply(&mut self, event: &Event) {
        let key = &event.object.key;
        if key.resource != "pods" {
            return;
        }
        let pod = (event.kind != EventType::Deleted).then_some(&event.object.object);
        self.set(&key.namespace, &key.name, pod);
    }

    fn linked(&self, node: &str, kind: Kind, namespace: &str, name: &str) -> bool {
        let edge = Edge { node: node.into(), kind, namespace: namespace.into(), name: name.into() };
        self.edges.contains_key(&edge)
    }
}

/// The edges pod `namespace/name` makes from the node it is bound to.
fn links(namespace: &str, name: &str, pod: &Value) -> PodLinks {
    let spec = &pod["spec"];
    let node = spec["nodeName"].as_str().unwrap_or_default().to_string();
    let mut edges = Vec::new();
    let mut add = |kind: Kind, target: &Value| {
        if let Some(target) = target.as_str().filter(|t| !t.is_empty()) {
            let edge = Edge { node: node.clone(), kind, namespace: namespace.into(), name: target.into() };
            if !edges.contains(&edge) {
                edges.push(edge);
            }
        }
    };
    add(Kind::Pod, &Value::from(name));
    let account =
        if spec["serviceAccountName"].is_string() { &spec["serviceAccountName"] } else { &spec["serviceAccount"] };
    add(Kind::ServiceAccount, account);
    for secret in items(&spec["imagePullSecrets"]) {
        add(Kind::Secret, &secret["name"]);
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in items(&spec[list]) {
            for env in items(&container["env"]) {
                add(Kind::Secret, &env["valueFrom"]["secretKeyRef"]["name"]);
                add(Kind::ConfigMap, &env["valueFrom"]["configMapKeyRef"]["name"]);
            }
            for from in items(&container["envFrom"]) {
                add(Kind::Secret, &from["secretRef"]["name"]);
                add(Kind::ConfigMap, &from["configMapRef"]["name"]);
            }
        }
    }
    for volume in items(&spec["volumes"]) {
        add(Kind::Secret, &volume["secret"]["secretName"]);
        add(Kind::ConfigMap, &volume["configMap"]["name"]);
        add(Kind::PersistentVolumeClaim, &volume["persistentVolumeClaim"]["claimName"]);
        if volume["ephemeral"].is_object() {
            // An ephemeral volume's claim is named after the pod and the volume.
            let claim = format!("{name}-{}", volume["name"].as_str().unwrap_or_default());
            add(Kind::PersistentVolumeClaim, &Value::from(claim));
        }
        for source in items(&volume["projected"]["sources"]) {
            add(Kind::Secret, &source["secret"]["name"]);
            add(Kind::ConfigMap, &source["configMap"]["name"]);
        }
        for secret_ref in ["nodePublishSecretRef", "secretRef"] {
            for plugin in ["csi", "cephfs", "rbd", "iscsi", "flexVolume", "scaleIO", "storageos"] {
                add(Kind::Secret, &volume[plugin][secret_ref]["name"]);
            }
        }
        add(Kind::Secret, &volume["azureFile"]["secretName"]);
    }
    PodLinks { node, edges }
}

fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

/// Whether a selector (`key=value,...` as sent) requires `key` to equal `value`.
fn selector_requires(selector: &str, key: &str, value: &str) -> bool {
    selector.split(',').any(|term| {
        let term = term.trim();
        let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) else { return false };
        !k.ends_with('!') && k.trim() == key && v.trim() == value
    })
}

/// Whether a label selector requires one value of `key` (any value).
fn selector_pins(selector: &str, key: &str) -> bool {
    selector.split(',').any(|term| {
        let term = term.trim();
        let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) else { return false };
        !k.ends_with('!') && k.trim() == key && !v.trim().is_empty()
    })
}

/// The graph and the event stream it follows.
struct Cache {
    events: Option<WatchSource>,
    graph: Graph,
}

pub struct NodeAuthorizer {
    store: Store,
    cache: Mutex<Cache>,
}

impl NodeAuthorizer {
    pub fn new(store: Store) -> Self {
        let events = store.watch(WatchStart::Now).ok();
        let graph = Graph::build(&store);
        Self { store, cache: Mutex::new(Cache { events, graph }) }
    }

    /// Whether node `node` reaches `kind` `namespace/name` through a pod bound to it, with the
    /// graph brought up to date first.
    fn linked(&self, node: &str, kind: Kind, namespace: &str, name: &str) -> bool {
        let mut cache = self.cache.lock().expect("node graph lock");
        let mut rebuild = false;
        loop {
            let Some(events) = cache.events.as_mut() else {
                rebuild = true;
                break;
            };
            match events.try_next() {
                Some(Ok(event)) => cache.graph.apply(&event),
                Some(Err(_)) => {
                    // Fell behind the store's window: follow from now with a fresh graph.
                    cache.events = None;
                }
                None => break,
            }
        }
        if rebuild {
            cache.events = self.store.watch(WatchStart::Now).ok();
            cache.graph = Graph::build(&self.store);
        }
        cache.graph.linked(node, kind, namespace, name)
    }

    /// Whether the node may read or write pod `namespace/name`: it is bound to the node, or it
    /// is not there at all (the request then answers NotFound, as Kubernetes does).
    fn pod_reachable(&self, node: &str, namespace: &str, name: &str) -> bool {
        self.linked(node, Kind::Pod, namespace, name)
            || self.store.get(&crate::store::ObjectKey::new("pods", namespace, name)).is_none()
    }

    pub fn authorize(&self, attributes: &Attributes) -> Decision {
        let Some(node) = attributes.user.node_name() else {
            return Decision::NoOpinion(String::new());
        };
        // Discovery, version, the registry's pulls: RBAC's default policy decides.
        let Some(r) = &attributes.resource else { return Decision::NoOpinion(String::new()) };
        self.decide(node, &attributes.verb, r)
    }

    fn decide(&self, node: &str, verb: &str, r: &ResourceAttributes) -> Decision {
        let no_relationship = || Decision::Deny(format!("no relationship found between node '{node}' and this object"));
        let allow_if = |allowed: bool| if allowed { Decision::Allow } else { no_relationship() };
        let reads = matches!(verb, "get" | "list" | "watch");
        match (r.group.as_str(), r.resource.as_str(), r.subresource.as_str()) {
            // Its Node: registration, heartbeats, the gateway's annotation; every Node is read
            // for the pod network's routes. NodeRestriction keeps writes to its own.
            ("", "nodes", "") => allow_if(reads || matches!(verb, "create" | "update" | "patch")),
            ("", "nodes", "status") => allow_if(matches!(verb, "get" | "update" | "patch")),
            ("coordination.k8s.io", "leases", "") => allow_if(
                r.namespace == NODE_LEASE_NAMESPACE
                    && match verb {
                        "create" => true,
                        "get" | "update" | "patch" | "delete" => r.name == node,
                        _ => false,
                    },
            ),
            ("", "pods", "") => match verb {
                "list" | "watch" => {
                    if selector_requires(&r.field_selector, "spec.nodeName", node)
                        || selector_pins(&r.label_selector, FUNCTION_LABEL)
                    {
                        Decision::Allow
                    } else {
                        Decision::Deny(format!(
                            "can only list/watch pods with spec.nodeName field selector, as node '{node}'"
                        ))
                    }
                }
                "get" => allow_if(self.pod_reachable(node, &r.namespace, &r.name)),
                // NodeRestriction lets it delete only pods bound to it (and answers NotFound for
                // a pod already gone, as the agent's last delete may find).
                "delete" => Decision::Allow,
                _ => no_relationship(),
            },
            ("", "pods", "status") => {
                allow_if(matches!(verb, "get" | "update" | "patch") && self.pod_reachable(node, &r.namespace, &r.name))
            }
            ("", "events", "") | ("events.k8s.io", "events", "") => {
                allow_if(matches!(verb, "create" | "update" | "patch"))
            }
            ("", resource @ ("secrets" | "configmaps" | "persistentvolumeclaims" | "serviceaccounts"), "") => {
                let kind = Kind::of(resource).expect("a graph kind");
                allow_if(verb == "get" && self.linked(node, kind, &r.namespace, &r.name))
            }
            ("", "serviceaccounts", "token") => {
                allow_if(verb == "create" && self.linked(node, Kind::ServiceAccount, &r.namespace, &r.name))
            }
            // The Service proxy, the cluster DNS and the gateway follow every Service and slice;
            // containers' runtime handlers come from RuntimeClasses.
            ("", "services" | "endpoints", "") | ("discovery.k8s.io", "endpointslices", "") => allow_if(reads),
            ("node.k8s.io", "runtimeclasses", "") => allow_if(reads),
            // The gateway routes every Function and reports its load on them.
            ("wharf.dev", "functions", "") => allow_if(reads || verb == "patch"),
            // Who am I and what may I do: RBAC's basic-user decides.
            ("authentication.k8s.io", "selfsubjectreviews", "")
            | ("authorization.k8s.io", "selfsubjectaccessreviews" | "selfsubjectrulesreviews", "") => {
                Decision::NoOpinion(String::new())
            }
            _ => no_relationship(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::User;
    use crate::store::{ObjectKey, StoreOptions, Write};

    fn node_user(name: &str) -> User {
        User::new(format!("system:node:{name}"), [super::super::NODES])
    }

    fn attributes(user: &User, verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            user: user.clone(),
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                version: "v1".into(),
                resource: resource.into(),
                subresource: sub.into(),
                namespace: ns.into(),
                name: name.into(),
                ..Default::default()
            }),
            path: String::new(),
        }
    }

    fn pod(name: &str, node: &str, secret: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "nodeName": node,
                "serviceAccountName": "builder",
                "containers": [{"name": "c", "image": "x",
                    "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}}],
                    "envFrom": [{"secretRef": {"name": "from-env"}}]}],
                "volumes": [
                    {"name": "s", "secret": {"secretName": secret}},
                    {"name": "p", "projected": {"sources": [{"configMap": {"name": "projected"}}]}},
                    {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}
                ]
            }
        })
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
        (dir, store)
    }

    async fn put(store: &Store, object: Value) {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let key = ObjectKey::new("pods", "default", name);
        let write = match store.get(&key) {
            Some(_) => Write::Update { key, object, expected_rev: None },
            None => Write::Create { key, object },
        };
        store.write(write).await.unwrap();
    }

    #[tokio::test]
    async fn a_node_reaches_what_its_pods_use_and_nothing_else() {
        let (_dir, store) = store().await;
        put(&store, pod("before", "a", "old-secret")).await;
        let authz = NodeAuthorizer::new(store.clone());
        // Pods written after the authorizer started are followed.
        put(&store, pod("web", "a", "web-secret")).await;
        put(&store, pod("db", "b", "db-secret")).await;
        let a = node_user("a");
        let decide =
            |verb, resource, sub, name| authz.authorize(&attributes(&a, verb, "", resource, sub, "default", name));
        for (resource, name) in [
            ("secrets", "web-secret"),
            ("secrets", "old-secret"),
            ("secrets", "from-env"),
            ("configmaps", "settings"),
            ("configmaps", "projected"),
            ("persistentvolumeclaims", "data"),
            ("pods", "web"),
            ("serviceaccounts", "builder"),
        ] {
            assert_eq!(decide("get", resource, "", name), Decision::Allow, "{resource}/{name}");
        }
        assert_eq!(decide("create", "serviceaccounts", "token", "builder"), Decision::Allow);
        assert_eq!(decide("patch", "pods", "status", "web"), Decision::Allow);
        assert_eq!(decide("delete", "pods", "", "web"), Decision::Allow);
        let denied = Decision::Deny("no relationship found between node 'a' and this object".into());
        assert_eq!(decide("get", "secrets", "db-secret", ""), denied);
        assert_eq!(decide("get", "secrets", "", "db-secret"), denied);
        assert_eq!(decide("list", "secrets", "", ""), denied);
        assert_eq!(decide("get", "pods", "", "db"), denied);
        assert_eq!(decide("patch", "pods", "status", "db"), denied);
        assert_eq!(decide("get", "pods", "", "gone"), Decision::Allow, "a missing pod is NotFound");
        assert_eq!(decide("create", "pods", "eviction", "web"), denied);
        assert_eq!(decide("update", "secrets", "", "web-secret"), denied);

        // Moving or deleting a pod takes its links away.
        put(&store, pod("web", "b", "web-secret")).await;
        assert_eq!(decide("get", "secrets", "", "web-secret"), denied);
        store
            .write(Write::Delete { key: ObjectKey::new("pods", "default", "before"), expected_rev: None })
            .await
            .unwrap();
        assert_eq!(decide("get", "secrets", "", "old-secret"), denied);
        // Another user: no opinion.
        let alice = User::new("alice", Vec::<String>::new());
        assert!(matches!(
            authz.authorize(&attributes(&alice, "get", "", "secrets", "", "default", "db-secret")),
            Decision::NoOpinion(_)
        ));
    }

    #[tokio::test]
    async fn pods_are_listed_only_by_node_name_and_leases_only_its_own() {
        let (_dir, store) = store().await;
        let authz = NodeAuthorizer::new(store);
        let a = node_user("a");
        let mut list = attributes(&a, "watch", "", "pods", "", "", "");
        assert!(matches!(authz.authorize(&list), Decision::Deny(m) if m.contains("spec.nodeName")));
        list.resource.as_mut().unwrap().field_selector = "spec.nodeName=b".into();
        assert!(matches!(authz.authorize(&list), Decision::Deny(_)));
        list.resource.as_mut().unwrap().field_selector = "metadata.namespace=x,spec.nodeName=a".into();
        assert_eq!(authz.authorize(&list), Decision::Allow);
        list.resource.as_mut().unwrap().field_selector = "spec.nodeName!=a".into();
        assert!(matches!(authz.authorize(&list), Decision::Deny(_)));
        list.resource.as_mut().unwrap().field_selector = String::new();
        list.resource.as_mut().unwrap().label_selector = "wharf.dev/function=hello".into();
        assert_eq!(authz.authorize(&list), Decision::Allow);

        let lease = |verb, name| attributes(&a, verb, "coordination.k8s.io", "leases", "", "kube-node-lease", name);
        assert_eq!(authz.authorize(&lease("update", "a")), Decision::Allow);
        assert_eq!(authz.authorize(&lease("create", "")), Decision::Allow);
        assert!(matches!(authz.authorize(&lease("update", "b")), Decision::Deny(_)));
        assert_eq!(authz.authorize(&attributes(&a, "patch", "", "nodes", "status", "", "a")), Decision::Allow);
        assert_eq!(authz.authorize(&attributes(&a, "watch", "", "nodes", "", "", "")), Decision::Allow);
        assert!(matches!(authz.authorize(&attributes(&a, "delete", "", "nodes", "", "", "b")), Decision::Deny(_)));
        assert!(matches!(authz.authorize(&attributes(&a, "list", "", "namespaces", "", "", "")), Decision::Deny(_)));
        assert!(matches!(
            authz.authorize(&attributes(&a, "create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", "")),
            Decision::Deny(_)
        ));
        assert_eq!(
            authz.authorize(&attributes(&a, "watch", "discovery.k8s.io", "endpointslices", "", "", "")),
            Decision::Allow
        );
        // Non-resource requests are RBAC's.
        let discovery = Attributes::non_resource(a.clone(), &axum::http::Method::GET, "/api");
        assert!(matches!(authz.authorize(&discovery), Decision::NoOpinion(_)));
    }
}
