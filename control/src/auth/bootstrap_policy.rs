//! The default RBAC policy, as kube-apiserver's bootstrap policy: cluster-admin for
//! `system:masters`; the user-facing admin, edit and view roles, aggregated from the
//! `system:aggregate-to-*` roles (and from any ClusterRole a user labels the same way);
//! discovery and self-review for every authenticated user; and Wharf's own: the node
//! bootstrapper, registry pull for everyone, registry push for whom it is granted to.
//!
//! [`reconcile`] runs at server start, as Kubernetes' `reconcile` of the bootstrap roles: missing
//! objects are created; an existing one annotated `rbac.authorization.kubernetes.io/autoupdate:
//! "true"` gets what it lacks (rules, labels, annotations, selectors, subjects) and keeps the rest;
//! one annotated `"false"` is left as the user made it.

use serde_json::{Map, Value, json};

use super::rbac::GROUP;
use crate::error::{Error, Result};
use crate::registry::selector::LabelSelector;
use crate::registry::{defaults, kinds, strategy};
use crate::store::{ObjectKey, Store, Write, WriteError};

pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
pub const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn meta(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut all = Map::new();
    all.insert("kubernetes.io/bootstrapping".into(), "rbac-defaults".into());
    for (k, v) in labels {
        all.insert(k.to_string(), Value::from(*v));
    }
    json!({"name": name, "labels": all, "annotations": {AUTOUPDATE: "true"}})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRole", "metadata": meta(name, labels), "rules": rules})
}

/// A ClusterRole whose rules the aggregation controller fills from those labelled
/// `rbac.authorization.k8s.io/aggregate-to-<to>: "true"`.
fn aggregated(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut role = cluster_role(name, labels, Vec::new());
    role["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {format!("{AGGREGATE_TO}{name}"): "true"}}]});
    role
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups.iter().map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g})).collect();
    json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": "ClusterRoleBinding",
        "metadata": meta(name, &[]),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let to = |role: &str| format!("{AGGREGATE_TO}{role}");
    let (to_admin, to_edit, to_view) = (to("admin"), to("edit"), to("view"));
    vec![
        cluster_role("cluster-admin", &[], vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]),
        aggregated("admin", &[]),
        aggregated("edit", &[(&to_admin, "true")]),
        aggregated("view", &[(&to_edit, "true")]),
        cluster_role(
            "system:aggregate-to-admin",
            &[(&to_admin, "true")],
            vec![
                rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
                rule(&[GROUP], &["roles", "rolebindings"], READ_WRITE),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(&to_edit, "true")],
            vec![
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(&[""], &["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"], WRITE),
                rule(&[""], &["pods/attach", "pods/proxy", "pods/exec", "pods/portforward"], READ),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(
                    &[""],
                    &["serviceaccounts", "services", "services/proxy", "configmaps", "secrets", "events"],
                    WRITE,
                ),
                rule(&[""], &["secrets"], READ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(
                    &["apps"],
                    &[
                        "statefulsets",
                        "statefulsets/scale",
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "replicasets",
                        "replicasets/scale",
                    ],
                    WRITE,
                ),
                rule(&["batch"], &["jobs", "cronjobs"], WRITE),
                rule(&["coordination.k8s.io"], &["leases"], READ_WRITE),
                rule(&["discovery.k8s.io"], &["endpointslices"], WRITE),
                rule(&["wharf.dev"], &["functions"], WRITE),
                rule(&["wharf.dev"], &["functions/proxy"], READ_WRITE),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(&to_view, "true")],
            vec![
                rule(
                    &[""],
                    &["pods", "serviceaccounts", "services", "services/status", "endpoints", "configmaps"],
                    READ,
                ),
                rule(
                    &[""],
                    &[
                        "limitranges",
                        "resourcequotas",
                        "bindings",
                        "events",
                        "pods/status",
                        "resourcequotas/status",
                        "namespaces/status",
                        "pods/log",
                    ],
                    READ,
                ),
                rule(&[""], &["namespaces"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "statefulsets",
                        "statefulsets/status",
                        "statefulsets/scale",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/status",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/status",
                        "replicasets/scale",
                    ],
                    READ,
                ),
                rule(&["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
                rule(&["events.k8s.io"], &["events"], READ),
                rule(&["wharf.dev"], &["functions", "functions/status", "functions/log"], READ),
            ],
        ),
        // What metrics-server adds, so `kubectl top` works for viewers too.
        cluster_role(
            "system:aggregated-metrics-reader",
            &[(&to_view, "true"), (&to_edit, "true"), (&to_admin, "true")],
            vec![rule(&["metrics.k8s.io"], &["pods", "nodes"], READ)],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(&["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"], &["create"]),
                rule(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(&["/healthz", "/livez", "/readyz", "/version", "/version/"], &["get"])],
        ),
        cluster_role("wharf:node-bootstrapper", &[], vec![urls(&["/wharf/v1/node-credentials"], &["post"])]),
        cluster_role("wharf:registry-puller", &[], vec![urls(&["/v2", "/v2/*"], &["get"])]),
        cluster_role(
            "wharf:registry-pusher",
            &[],
            vec![urls(&["/v2", "/v2/*"], &["get", "post", "put", "patch", "delete"])],
        ),
    ]
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    let authenticated = super::AUTHENTICATED;
    vec![
        binding("cluster-admin", "cluster-admin", &[super::MASTERS]),
        binding("system:basic-user", "system:basic-user", &[authenticated]),
        binding("system:discovery", "system:discovery", &[authenticated]),
        binding("system:public-info-viewer", "system:public-info-viewer", &[authenticated, "system:unauthenticated"]),
        binding("wharf:node-bootstrapper", "wharf:node-bootstrapper", &["system:bootstrappers"]),
        binding("wharf:registry-puller", "wharf:registry-puller", &[authenticated]),
    ]
}

/// The rules an aggregated ClusterRole gets: every rule of the ClusterRoles (other than itself)
/// its `aggregationRule.clusterRoleSelectors` match, each once, in name order of the roles.
pub fn aggregate<'a>(name: &str, aggregation_rule: &Value, roles: impl IntoIterator<Item = &'a Value>) -> Vec<Value> {
    let selectors: Vec<LabelSelector> = aggregation_rule["clusterRoleSelectors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| LabelSelector::from_json(s).ok())
        .collect();
    let mut matched: Vec<&Value> = roles
        .into_iter()
        .filter(|r| r["metadata"]["name"].as_str() != Some(name))
        .filter(|r| selectors.iter().any(|s| s.matches(r["metadata"].get("labels"))))
        .collect();
    matched.sort_by_key(|r| r["metadata"]["name"].as_str().unwrap_or_default().to_string());
    let mut rules: Vec<Value> = Vec::new();
    for role in matched {
        for rule in role["rules"].as_array().into_iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    rules
}

/// Adds to `current[field]` (an object) the keys of `wanted[field]` it lacks.
fn merge_map(current: &mut Value, wanted: &Value) -> bool {
    let Some(wanted) = wanted.as_object() else { return false };
    if !current.is_object() {
        *current = json!({});
    }
    let current = current.as_object_mut().expect("an object");
    let mut changed = false;
    for (k, v) in wanted {
        if !current.contains_key(k) {
            current.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    changed
}

/// Adds to the array `current` the items of `wanted` it lacks.
fn merge_list(current: &mut Value, wanted: &Value) -> bool {
    let Some(wanted) = wanted.as_array() else { return false };
    if !current.is_array() {
        *current = json!([]);
    }
    let current = current.as_array_mut().expect("an array");
    let mut changed = false;
    for item in wanted {
        if !current.contains(item) {
            current.push(item.clone());
            changed = true;
        }
    }
    changed
}

/// The stored object with what the default lacks added, or None when nothing needs doing (it
/// has everything, or its autoupdate annotation is "false").
pub fn reconciled(current: &Value, wanted: &Value) -> Option<Value> {
    if current["metadata"]["annotations"][AUTOUPDATE].as_str() == Some("false") {
        return None;
    }
    let mut next = current.clone();
    let mut changed = merge_map(&mut next["metadata"]["labels"], &wanted["metadata"]["labels"]);
    changed |= merge_map(&mut next["metadata"]["annotations"], &wanted["metadata"]["annotations"]);
    match wanted["kind"].as_str() {
        Some("ClusterRole") => {
            if wanted.get("aggregationRule").is_some() {
                changed |= merge_list(
                    &mut next["aggregationRule"]["clusterRoleSelectors"],
                    &wanted["aggregationRule"]["clusterRoleSelectors"],
                );
            } else {
                changed |= merge_list(&mut next["rules"], &wanted["rules"]);
            }
        }
        _ => {
            if next["roleRef"] != wanted["roleRef"] {
                next["roleRef"] = wanted["roleRef"].clone();
                changed = true;
            }
            changed |= merge_list(&mut next["subjects"], &wanted["subjects"]);
        }
    }
    changed.then_some(next)
}

/// How many times a default is decided again after another server wrote it first.
const RACE_ATTEMPTS: usize = 20;

/// How long to let this store see another server's write before deciding again.
const RACE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether a write lost to another server's (servers starting together on one new database
/// write the same defaults).
fn lost_race(e: &WriteError) -> bool {
    matches!(e, WriteError::AlreadyExists | WriteError::Conflict)
}

/// Creates or updates the default policy in the store (at server start, before serving). An
/// object another server wrote first is read again and decided anew; any other error fails.
pub async fn reconcile(store: &Store) -> Result<()> {
    let roles = kinds::lookup(GROUP, "v1", "clusterroles").expect("clusterroles are served");
    let bindings = kinds::lookup(GROUP, "v1", "clusterrolebindings").expect("clusterrolebindings are served");
    let mut defaults: Vec<(&kinds::ResourceInfo, Value)> = cluster_roles().into_iter().map(|r| (roles, r)).collect();
    defaults.extend(cluster_role_bindings().into_iter().map(|b| (bindings, b)));
    for (resource, wanted) in defaults {
        reconcile_one(store, resource, &wanted).await?;
    }
    aggregate_stored(store).await
}

/// Creates `wanted`, or updates the stored one with what it lacks.
async fn reconcile_one(store: &Store, resource: &kinds::ResourceInfo, wanted: &Value) -> Result<()> {
    let name = wanted["metadata"]["name"].as_str().unwrap_or_default();
    let key = ObjectKey::new(resource.storage_key(), "", name);
    let mut attempts = 0;
    loop {
        let write = match store.get(&key) {
            None => {
                let mut object = wanted.clone();
                strategy::prepare_create(resource, &mut object);
                defaults::apply(resource, &mut object);
                Write::Create { key: key.clone(), object }
            }
            Some(stored) => match reconciled(&stored.object, wanted) {
                None => return Ok(()),
                Some(object) => Write::Update { key: key.clone(), object, expected_rev: Some(stored.rev) },
            },
        };
        match store.write(write).await {
            Ok(_) => return Ok(()),
            Err(e) if lost_race(&e) && attempts < RACE_ATTEMPTS => {
                attempts += 1;
                tracing::debug!(name, error = ?e, "another server wrote an RBAC default first; deciding again");
                tokio::time::sleep(RACE_WAIT).await;
            }
            Err(e) => return Err(Error::Internal(format!("cannot reconcile the RBAC default {name}: {e:?}"))),
        }
    }
}

/// Fills the aggregated defaults right away (the aggregation controller keeps them current).
/// Aggregation chains (view into edit into admin), so passes repeat until nothing changes; a
/// pass in which another server updated a role first is repeated once this store sees it.
async fn aggregate_stored(store: &Store) -> Result<()> {
    let key = format!("clusterroles.{GROUP}");
    let (mut passes, mut races) = (0, 0);
    while passes < 4 {
        let all = store.list(&key, None, None, 0, |_| true).items;
        let (mut changed, mut raced) = (false, false);
        for stored in all.iter().filter(|s| s.object.get("aggregationRule").is_some_and(Value::is_object)) {
            let current = store.get(&stored.key).unwrap_or_else(|| stored.clone());
            let objects: Vec<Value> = all
                .iter()
                .map(|s| store.get(&s.key).map(|c| c.object.clone()).unwrap_or_else(|| s.object.clone()))
                .collect();
            let rules = aggregate(&current.key.name, &current.object["aggregationRule"], &objects);
            if current.object["rules"].as_array().is_some_and(|r| *r == rules) {
                continue;
            }
            let mut object = current.object.clone();
            object["rules"] = Value::Array(rules);
            let write = Write::Update { key: current.key.clone(), object, expected_rev: Some(current.rev) };
            match store.write(write).await {
                Ok(_) => changed = true,
                Err(e) if lost_race(&e) && races < RACE_ATTEMPTS => {
                    races += 1;
                    raced = true;
                }
                Err(e) => return Err(Error::Internal(format!("cannot aggregate {}: {e:?}", current.key.name))),
            }
        }
        if raced {
            tokio::time::sleep(RACE_WAIT).await;
            continue;
        }
        if !changed {
            break;
        }
        passes += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregation_takes_the_rules_of_matching_roles_once() {
        let roles = cluster_roles();
        let view = roles.iter().find(|r| r["metadata"]["name"] == "view").unwrap();
        let rules = aggregate("view", &view["aggregationRule"], &roles);
        // The rules of every role labelled aggregate-to-view, in order, each once.
        let base: Vec<Value> = ["system:aggregate-to-view", "system:aggregated-metrics-reader"]
            .iter()
            .flat_map(|name| {
                roles.iter().find(|r| r["metadata"]["name"] == *name).unwrap()["rules"].as_array().unwrap().clone()
            })
            .collect();
        assert_eq!(rules, base);
        let edit = roles.iter().find(|r| r["metadata"]["name"] == "edit").unwrap();
        // view is labelled aggregate-to-edit: edit gets view's (still empty here) and edit's own.
        let rules = aggregate("edit", &edit["aggregationRule"], &roles);
        assert!(rules.contains(&rule(&["wharf.dev"], &["functions"], WRITE)));
    }

    #[test]
    fn reconciling_adds_what_is_missing_and_respects_autoupdate_false() {
        let wanted = cluster_roles().into_iter().find(|r| r["metadata"]["name"] == "system:basic-user").unwrap();
        let mut current = wanted.clone();
        current["rules"] = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]);
        let next = reconciled(&current, &wanted).unwrap();
        assert_eq!(next["rules"].as_array().unwrap().len(), 3, "the user's rule stays, the defaults come back");
        assert_eq!(reconciled(&next, &wanted), None);
        current["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        assert_eq!(reconciled(&current, &wanted), None);
    }
}
