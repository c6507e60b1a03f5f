//! Mutating admission of created pods, as kube-apiserver's RuntimeClass plugin: a pod naming a
//! RuntimeClass gets the class's `overhead.podFixed` as its `spec.overhead`, the class's
//! `scheduling.nodeSelector` merged into its `spec.nodeSelector` and the class's
//! `scheduling.tolerations` appended to its own. The scheduler, the taint eviction and the
//! agent then all read the same pod spec. A pod naming a RuntimeClass that does not exist, a
//! selector that conflicts with the class's, or an overhead other than the class's is refused
//! (403 Forbidden, with kube-apiserver's messages).

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::registry::validation::Quantity;
use crate::store::{ObjectKey, Store};

/// The storage key of RuntimeClasses (`runtimeclasses.node.k8s.io`).
const RUNTIME_CLASSES: &str = "runtimeclasses.node.k8s.io";

/// Applies the pod's RuntimeClass to the pod being created (`pod` is its JSON).
pub fn admit_pod(store: &Store, pod: &mut Value) -> Result<()> {
    let Some(name) = pod["spec"]["runtimeClassName"].as_str().filter(|n| !n.is_empty()).map(str::to_string) else {
        return Ok(());
    };
    let class = store
        .get(&ObjectKey::new(RUNTIME_CLASSES, "", name.as_str()))
        .filter(|stored| stored.object["metadata"].get("deletionTimestamp").is_none());
    apply(pod, &name, class.as_ref().map(|stored| &stored.object))
}

/// `pods "name" is forbidden: <reason>`, as admission.NewForbidden words it.
fn forbidden(pod: &Value, reason: String) -> Error {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    Error::Forbidden(format!("pods {name:?} is forbidden: {reason}"))
}

/// Whether two resource lists hold the same amounts (`100m` equals `0.1`).
fn same_resources(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let amount = |v: &Value| {
        let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        Quantity::parse(&text).map(|q| q.milli_value()).map_err(|_| text)
    };
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| amount(v) == amount(w)))
}

/// Applies `class` (the RuntimeClass named `name`, `None` when it does not exist) to `pod`.
pub fn apply(pod: &mut Value, name: &str, class: Option<&Value>) -> Result<()> {
    let Some(class) = class else {
        return Err(forbidden(pod, format!("pod rejected: RuntimeClass {name:?} not found")));
    };
    if !pod["spec"].is_object() {
        return Ok(());
    }
    let own_overhead = pod["spec"]["overhead"].as_object().filter(|o| !o.is_empty());
    match (class["overhead"]["podFixed"].as_object(), own_overhead) {
        (Some(fixed), Some(own)) if !same_resources(fixed, own) => {
            return Err(forbidden(
                pod,
                "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead".into(),
            ));
        }
        (Some(fixed), _) => pod["spec"]["overhead"] = Value::Object(fixed.clone()),
        (None, Some(_)) => {
            return Err(forbidden(
                pod,
                "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead".into(),
            ));
        }
        (None, None) => {}
    }
    let scheduling = &class["scheduling"];
    if let Some(selector) = scheduling["nodeSelector"].as_object().filter(|s| !s.is_empty()) {
        let mut merged = pod["spec"]["nodeSelector"].as_object().cloned().unwrap_or_default();
        for (key, value) in selector {
            match merged.get(key) {
                Some(own) if own != value => {
                    let (class_value, own_value) =
                        (value.as_str().unwrap_or_default(), own.as_str().unwrap_or_default());
                    return Err(forbidden(
                        pod,
                        format!(
                            "conflict: runtimeClass.scheduling.nodeSelector[{key}] = {class_value}; \
                             pod.spec.nodeSelector[{key}] = {own_value}"
                        ),
                    ));
                }
                _ => {
                    merged.insert(key.clone(), value.clone());
                }
            }
        }
        pod["spec"]["nodeSelector"] = Value::Object(merged);
    }
    if let Some(extra) = scheduling["tolerations"].as_array().filter(|t| !t.is_empty()) {
        let mut tolerations = pod["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
        for toleration in extra {
            if !tolerations.contains(toleration) {
                tolerations.push(toleration.clone());
            }
        }
        pod["spec"]["tolerations"] = Value::Array(tolerations);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        let mut spec = spec;
        spec["runtimeClassName"] = json!("wasm");
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    fn class() -> Value {
        json!({
            "metadata": {"name": "wasm"}, "handler": "wasmtime",
            "overhead": {"podFixed": {"cpu": "100m", "memory": "16Mi"}},
            "scheduling": {
                "nodeSelector": {"runtime.wharf.dev/wasmtime": "true"},
                "tolerations": [{"key": "wasm-only", "operator": "Exists", "effect": "NoSchedule"}],
            },
        })
    }

    fn refusal(result: Result<()>) -> String {
        match result {
            Err(Error::Forbidden(message)) => message,
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    #[test]
    fn the_class_fills_in_overhead_selector_and_tolerations() {
        let own = json!({"key": "mine", "operator": "Exists"});
        let mut p = pod(json!({"containers": [], "nodeSelector": {"disk": "ssd"}, "tolerations": [own.clone()]}));
        apply(&mut p, "wasm", Some(&class())).unwrap();
        assert_eq!(p["spec"]["overhead"], json!({"cpu": "100m", "memory": "16Mi"}));
        assert_eq!(p["spec"]["nodeSelector"], json!({"disk": "ssd", "runtime.wharf.dev/wasmtime": "true"}));
        assert_eq!(
            p["spec"]["tolerations"],
            json!([own, {"key": "wasm-only", "operator": "Exists", "effect": "NoSchedule"}])
        );
        // Applying twice changes nothing (a toleration the pod has is not added again).
        let once = p.clone();
        apply(&mut p, "wasm", Some(&class())).unwrap();
        assert_eq!(p, once);
    }

    #[test]
    fn a_missing_class_is_refused() {
        let mut p = pod(json!({"containers": []}));
        assert_eq!(
            refusal(apply(&mut p, "wasm", None)),
            "pods \"p\" is forbidden: pod rejected: RuntimeClass \"wasm\" not found"
        );
    }

    #[test]
    fn a_conflicting_selector_is_refused() {
        let mut p = pod(json!({"containers": [], "nodeSelector": {"runtime.wharf.dev/wasmtime": "false"}}));
        let message = refusal(apply(&mut p, "wasm", Some(&class())));
        assert!(message.contains("pod.spec.nodeSelector[runtime.wharf.dev/wasmtime] = false"), "{message}");
        // The same value is no conflict.
        let mut p = pod(json!({"containers": [], "nodeSelector": {"runtime.wharf.dev/wasmtime": "true"}}));
        apply(&mut p, "wasm", Some(&class())).unwrap();
    }

    #[test]
    fn an_overhead_other_than_the_class_is_refused() {
        let mut same = pod(json!({"containers": [], "overhead": {"cpu": "0.1", "memory": "16Mi"}}));
        apply(&mut same, "wasm", Some(&class())).unwrap();
        let mut other = pod(json!({"containers": [], "overhead": {"cpu": "1"}}));
        assert!(refusal(apply(&mut other, "wasm", Some(&class()))).contains("Pod's Overhead doesn't match"));
        let plain = json!({"metadata": {"name": "plain"}, "handler": "youki"});
        let mut without = pod(json!({"containers": [], "overhead": {"cpu": "1"}}));
        assert!(refusal(apply(&mut without, "wasm", Some(&plain))).contains("without corresponding RuntimeClass"));
        let mut untouched = pod(json!({"containers": []}));
        apply(&mut untouched, "plain", Some(&plain)).unwrap();
        assert_eq!(untouched, pod(json!({"containers": []})));
    }
}
