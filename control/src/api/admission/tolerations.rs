//! kube-apiserver's DefaultTolerationSeconds plugin:
//! a pod that does not tolerate the `not-ready` and `unreachable` NoExecute taints gets
//! tolerations of them for a bounded time, so its pods leave a failed node after that time.

use serde_json::{Value, json};

use crate::registry::well_known::{NOT_READY_TAINT, UNREACHABLE_TAINT};
use crate::server::AdmissionOptions;

/// Whether one of `tolerations` already covers the NoExecute taint `key` (a toleration of that
/// key or of every key, for NoExecute or every effect, as the plugin checks).
fn covers(tolerations: &[Value], key: &str) -> bool {
    tolerations.iter().any(|t| {
        let t_key = t["key"].as_str().unwrap_or_default();
        let effect = t["effect"].as_str().unwrap_or_default();
        (t_key == key || t_key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
    })
}

/// Adds the default `not-ready` and `unreachable` tolerations a new pod lacks.
pub fn default_tolerations(pod: &mut Value, options: &AdmissionOptions) {
    if !pod["spec"].is_object() {
        return;
    }
    let existing: Vec<Value> = pod["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    let mut added = Vec::new();
    for (key, seconds) in [
        (NOT_READY_TAINT, options.default_not_ready_toleration_seconds),
        (UNREACHABLE_TAINT, options.default_unreachable_toleration_seconds),
    ] {
        if !covers(&existing, key) {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
        }
    }
    if added.is_empty() {
        return;
    }
    let mut tolerations = existing;
    tolerations.extend(added);
    pod["spec"]["tolerations"] = Value::Array(tolerations);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> AdmissionOptions {
        AdmissionOptions {
            default_not_ready_toleration_seconds: 3,
            default_unreachable_toleration_seconds: 7,
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            service_node_port_range: 30000..=32767,
        }
    }

    #[test]
    fn a_pod_without_tolerations_gets_both_with_the_configured_seconds() {
        let mut pod = json!({"spec": {"containers": []}});
        default_tolerations(&mut pod, &options());
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3},
                {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 7},
            ])
        );
    }

    #[test]
    fn tolerations_the_pod_has_are_kept_and_not_duplicated() {
        let own = json!({"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"});
        let mut pod = json!({"spec": {"tolerations": [own.clone()]}});
        default_tolerations(&mut pod, &options());
        let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0], own, "the pod's own toleration (forever) stays");
        assert_eq!(tolerations[1]["key"], NOT_READY_TAINT);
    }

    #[test]
    fn a_toleration_of_everything_covers_both() {
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_tolerations(&mut pod, &options());
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 1);
        // Another effect does not cover NoExecute.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists", "effect": "NoSchedule"}]}});
        default_tolerations(&mut pod, &options());
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 3);
    }
}
