//! What the server itself sets on objects as they are created and updated, per kind: uid,
//! timestamps, generation, the status a new object starts with, and which parts a write to the
//! main resource or to its status subresource may change.

use serde_json::{Map, Value, json};

use super::kinds::{ResourceInfo, Subresource};

/// The current time in Kubernetes' format (RFC 3339, seconds).
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whether the kind counts spec changes in `metadata.generation`.
pub fn tracks_generation(resource: &ResourceInfo) -> bool {
    resource.has(Subresource::Status) && !matches!(resource.kind, "Namespace" | "Node" | "Pod" | "Service")
}

fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

/// The fields whose change counts as a spec change (everything but metadata and status).
fn spec_of(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Secrets' write-only `stringData` is folded into `data` (base64), as kube-apiserver does.
fn fold_string_data(resource: &ResourceInfo, obj: &mut Value) {
    use base64::Engine;
    if resource.kind != "Secret" || !resource.group.is_empty() {
        return;
    }
    let Some(string_data) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else { return };
    let Some(entries) = string_data.as_object() else { return };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (key, value) in entries {
        let text = value.as_str().unwrap_or_default();
        obj["data"][key] = base64::engine::general_purpose::STANDARD.encode(text).into();
    }
}

/// Sets the server-owned fields of an object being created.
pub fn prepare_create(resource: &ResourceInfo, obj: &mut Value) {
    fold_string_data(resource, obj);
    let m = meta(obj);
    m.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
    m.insert("creationTimestamp".into(), now().into());
    for field in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
        m.remove(field);
    }
    if tracks_generation(resource) {
        m.insert("generation".into(), 1.into());
    } else {
        m.remove("generation");
    }
    if resource.has(Subresource::Status) {
        match resource.kind {
            // Agents register their Node with its status.
            "Node" => {}
            "Namespace" => {
                obj["status"] = json!({"phase": "Active"});
                // The namespace controller empties a deleted namespace, then drops this.
                obj["spec"] = json!({"finalizers": [crate::controllers::namespace::FINALIZER]});
            }
            "Pod" => obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(obj)}),
            _ => obj["status"] = json!({}),
        }
    }
}

/// Carries the server-owned fields from `old` into `new` for an update of the main resource
/// (`subresource` None) or of its status, and bumps the generation on spec changes.
pub fn prepare_update(resource: &ResourceInfo, new: &mut Value, old: &Value, subresource: Option<Subresource>) {
    if subresource == Some(Subresource::Status) {
        let status = new.get("status").cloned();
        *new = old.clone();
        match status {
            Some(status) => new["status"] = status,
            None => {
                new.as_object_mut().map(|o| o.remove("status"));
            }
        }
        return;
    }
    fold_string_data(resource, new);
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let m = meta(new);
    for field in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
        match old_meta.get(field) {
            Some(v) => m.insert(field.into(), v.clone()),
            None => m.remove(field),
        };
    }
    if resource.has(Subresource::Status) && resource.kind != "Node" {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                new.as_object_mut().map(|o| o.remove("status"));
            }
        }
    }
    if tracks_generation(resource) && spec_of(new) != spec_of(old) {
        let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        meta(new).insert("generation".into(), generation.into());
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> =
        ["containers", "initContainers"].iter().filter_map(|f| pod["spec"][f].as_array()).flatten().collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c["resources"]["requests"].as_object();
        let limits = c["resources"]["limits"].as_object();
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            let request = requests.and_then(|r| r.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::kinds::lookup;

    #[test]
    fn create_sets_identity_and_resets_status() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"name": "d", "resourceVersion": "9"}, "spec": {}, "status": {"replicas": 3}});
        prepare_create(deploy, &mut obj);
        assert_eq!(obj["metadata"]["generation"], 1);
        assert!(obj["metadata"]["uid"].as_str().unwrap().len() == 36);
        assert!(obj["metadata"].get("resourceVersion").is_none());
        assert_eq!(obj["status"], json!({}));
    }

    #[test]
    fn generation_moves_with_spec_only() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "uid": "u", "generation": 2}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut relabelled = json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}});
        prepare_update(deploy, &mut relabelled, &old, None);
        assert_eq!(relabelled["metadata"]["generation"], 2);
        assert_eq!(relabelled["metadata"]["uid"], "u");
        assert_eq!(relabelled["status"], json!({"replicas": 1}));

        let mut scaled = json!({"metadata": {"name": "d"}, "spec": {"replicas": 4}, "status": {"replicas": 9}});
        prepare_update(deploy, &mut scaled, &old, None);
        assert_eq!(scaled["metadata"]["generation"], 3);
        assert_eq!(scaled["status"], json!({"replicas": 1}), "status is the status subresource's");
    }

    #[test]
    fn status_updates_change_only_status() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "generation": 2}, "spec": {"replicas": 1}, "status": {}});
        let mut new = json!({"metadata": {"name": "d", "labels": {"x": "y"}}, "spec": {"replicas": 5}, "status": {"replicas": 1}});
        prepare_update(deploy, &mut new, &old, Some(Subresource::Status));
        assert_eq!(new["spec"]["replicas"], 1);
        assert!(new["metadata"].get("labels").is_none());
        assert_eq!(new["status"]["replicas"], 1);
    }

    #[test]
    fn secret_string_data_becomes_data() {
        let secret = lookup("", "v1", "secrets").unwrap();
        let mut obj = json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "hello"}});
        prepare_create(secret, &mut obj);
        assert_eq!(obj["data"], json!({"a": "eA==", "b": "aGVsbG8="}));
        assert!(obj.get("stringData").is_none());
    }

    #[test]
    fn qos_classes() {
        let pod = |res: Value| json!({"spec": {"containers": [{"name": "a", "resources": res}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))), "Guaranteed");
        assert_eq!(qos_class(&pod(json!({"requests": {"cpu": "1"}}))), "Burstable");
    }
}
