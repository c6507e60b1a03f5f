//! The rules that say whether a pod may be on a node, shared by the scheduler, the DaemonSet
//! controller and taint eviction: tolerations against taints, and node selector terms against a
//! node's labels and name.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration};

/// Whether `toleration` tolerates `taint` (Kubernetes' `Toleration.ToleratesTaint`): the effect
/// (if set) and key (if set) must match, then `Exists` tolerates any value and `Equal` the same.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
        _ => false,
    }
}

/// Whether a node selector requirement holds for `value` (a label's, or the node's name for
/// `matchFields`); `Gt` and `Lt` compare integers.
pub fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => match (value.and_then(number), values.first().and_then(|v| number(v))) {
            (Some(have), Some(bound)) if req.operator == "Gt" => have > bound,
            (Some(have), Some(bound)) => have < bound,
            _ => false,
        },
        _ => false,
    }
}

/// Whether the node named `name` with `labels` matches a term: every expression on its labels
/// and every field (only `metadata.name` exists) holds; an empty term matches nothing.
pub fn node_term_matches(term: &NodeSelectorTerm, name: &str, labels: &BTreeMap<String, String>) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions.iter().all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| r.key == "metadata.name" && requirement_matches(r, Some(name)))
}

/// Whether the node named `name` with `labels` carries every `selector` label and, when there
/// are required terms, matches one of them (NodeSelector and required NodeAffinity).
pub fn selector_and_terms_match<'a>(
    mut selector: impl Iterator<Item = (&'a String, &'a String)>,
    terms: Option<&[NodeSelectorTerm]>,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.all(|(k, v)| labels.get(k) == Some(v))
        && terms.is_none_or(|terms| terms.iter().any(|t| node_term_matches(t, name, labels)))
}

/// Whether the node named `name` with `labels` matches the pod's `nodeSelector` and the terms of
/// its required node affinity (`requiredDuringSchedulingIgnoredDuringExecution`).
pub fn required_affinity_matches(spec: &PodSpec, name: &str, labels: &BTreeMap<String, String>) -> bool {
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
        .map(|r| r.node_selector_terms.as_slice());
    selector_and_terms_match(spec.node_selector.iter().flatten(), terms, name, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn toleration(value: serde_json::Value) -> Toleration {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn tolerations_match_as_kubernetes_does() {
        let t = Taint { key: "k".into(), value: Some("v".into()), effect: "NoSchedule".into(), time_added: None };
        assert!(tolerates(&toleration(json!({"key": "k", "value": "v"})), &t));
        assert!(tolerates(
            &toleration(json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"})),
            &t
        ));
        assert!(tolerates(&toleration(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})), &t));
        assert!(tolerates(&toleration(json!({"operator": "Exists"})), &t), "an empty key with Exists tolerates all");
        assert!(!tolerates(&toleration(json!({"key": "k", "value": "w"})), &t));
        assert!(!tolerates(&toleration(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})), &t));
        assert!(!tolerates(&toleration(json!({"key": "other", "operator": "Exists"})), &t));
    }

    #[test]
    fn terms_match_labels_and_the_node_name() {
        let term = |value: serde_json::Value| -> NodeSelectorTerm { serde_json::from_value(value).unwrap() };
        let labels: BTreeMap<String, String> =
            [("disk", "ssd"), ("cores", "8")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let matches = |t: serde_json::Value| node_term_matches(&term(t), "n1", &labels);
        assert!(matches(json!({"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}]})));
        assert!(matches(json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]})));
        assert!(!matches(json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]})));
        assert!(matches(json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]})));
        assert!(!matches(json!({"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]})));
        assert!(matches(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})));
        assert!(!matches(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]})));
        assert!(!matches(json!({})), "an empty term matches nothing");
    }

    #[test]
    fn required_affinity_needs_the_selector_and_one_term() {
        let labels: BTreeMap<String, String> = [("disk".to_string(), "ssd".to_string())].into();
        let spec = |value: serde_json::Value| -> PodSpec { serde_json::from_value(value).unwrap() };
        let terms = |values: serde_json::Value| {
            json!({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": values}]}]}})
        };
        assert!(required_affinity_matches(&spec(json!({"containers": []})), "n1", &labels));
        let both = spec(
            json!({"containers": [], "nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": terms(json!(["n1"]))}}),
        );
        assert!(required_affinity_matches(&both, "n1", &labels));
        assert!(!required_affinity_matches(&both, "n2", &labels), "no term matches");
        assert!(!required_affinity_matches(&both, "n1", &BTreeMap::new()), "the selector label is missing");
    }
}
