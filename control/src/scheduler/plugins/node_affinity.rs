//! NodeSelector and NodeAffinity: a node must carry the pod's `nodeSelector` labels (admission
//! merged its RuntimeClass's `scheduling.nodeSelector` into them) and match one of the required
//! `nodeSelectorTerms` (matchExpressions on labels, matchFields on `metadata.name`); matching
//! preferred terms adds their weights to the score.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{NodeSelectorTerm, PreferredSchedulingTerm};

use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{CycleState, FilterPlugin, ScorePlugin, Unfit, default_normalize};

pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// Whether the node matches a term (see [`crate::placement::node_term_matches`]).
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    crate::placement::node_term_matches(term, &node.name, &node.labels)
}

/// What a node must match: the selector labels and, if any, one of the required terms.
#[derive(Debug, Clone, Default)]
pub struct RequiredNodeAffinity {
    pub selector: BTreeMap<String, String>,
    pub terms: Option<Vec<NodeSelectorTerm>>,
}

impl RequiredNodeAffinity {
    pub fn of(state: &CycleState) -> Self {
        let spec = state.pod.spec();
        let selector = spec.and_then(|s| s.node_selector.clone()).unwrap_or_default();
        let terms = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
            .map(|r| r.node_selector_terms.clone());
        RequiredNodeAffinity { selector, terms }
    }

    pub fn matches(&self, node: &NodeInfo) -> bool {
        crate::placement::selector_and_terms_match(
            self.selector.iter(),
            self.terms.as_deref(),
            &node.name,
            &node.labels,
        )
    }

    /// The only node names that can match, when every term pins `metadata.name` with In (as
    /// the DaemonSet controller does).
    fn node_names(&self) -> Option<BTreeSet<String>> {
        let terms = self.terms.as_ref()?;
        let mut names = BTreeSet::new();
        for term in terms {
            let pinned = term.match_fields.iter().flatten().find(|r| r.key == "metadata.name" && r.operator == "In")?;
            names.extend(pinned.values.iter().flatten().cloned());
        }
        Some(names)
    }
}

pub struct NodeAffinity;

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn pre_filter(&self, state: &mut CycleState, _cache: &Cache) -> Result<(), Unfit> {
        let required = RequiredNodeAffinity::of(state);
        if let Some(names) = required.node_names() {
            state.restrict_nodes(names, REASON);
        }
        state.write(required);
        Ok(())
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Result<(), Unfit> {
        let matches = match state.read::<RequiredNodeAffinity>() {
            Some(required) => required.matches(node),
            None => RequiredNodeAffinity::of(state).matches(node),
        };
        if matches { Ok(()) } else { Err(Unfit::new(REASON)) }
    }
}

fn preferred(state: &CycleState) -> &[PreferredSchedulingTerm] {
    state
        .pod
        .spec()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        preferred(state)
            .iter()
            .filter(|p| p.weight != 0 && term_matches(&p.preference, node))
            .map(|p| p.weight as i64)
            .sum()
    }

    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::framework::RuntimeRequirements;
    use serde_json::json;

    fn labelled(name: &str, labels: serde_json::Value) -> NodeInfo {
        NodeInfo::from_node(node(name, json!({"metadata": {"labels": labels}})))
    }

    fn state_with(spec: serde_json::Value) -> CycleState {
        let mut state = CycleState::new(pod("p", json!({"spec": spec})), RuntimeRequirements::default());
        NodeAffinity.pre_filter(&mut state, &Cache::default()).unwrap();
        state
    }

    fn required(terms: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn node_selector_labels_must_all_match() {
        let state = state_with(json!({"nodeSelector": {"disk": "ssd", "zone": "a"}}));
        assert!(NodeAffinity.filter(&state, &labelled("a", json!({"disk": "ssd", "zone": "a"}))).is_ok());
        assert_eq!(NodeAffinity.filter(&state, &labelled("b", json!({"disk": "ssd"}))), Err(Unfit::new(REASON)));
    }

    #[test]
    fn operators() {
        let node = labelled("a", json!({"disk": "ssd", "cores": "8"}));
        let check = |expr: serde_json::Value| {
            NodeAffinity.filter(&state_with(required(json!([{"matchExpressions": [expr]}]))), &node).is_ok()
        };
        assert!(check(json!({"key": "disk", "operator": "In", "values": ["hdd", "ssd"]})));
        assert!(!check(json!({"key": "disk", "operator": "NotIn", "values": ["ssd"]})));
        assert!(check(json!({"key": "gpu", "operator": "NotIn", "values": ["x"]})));
        assert!(check(json!({"key": "disk", "operator": "Exists"})));
        assert!(check(json!({"key": "gpu", "operator": "DoesNotExist"})));
        assert!(check(json!({"key": "cores", "operator": "Gt", "values": ["4"]})));
        assert!(!check(json!({"key": "cores", "operator": "Lt", "values": ["4"]})));
        assert!(!check(json!({"key": "disk", "operator": "Gt", "values": ["4"]})));
    }

    #[test]
    fn terms_are_ored_and_fields_match_the_node_name() {
        let state = state_with(required(json!([
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
        ])));
        assert!(NodeAffinity.filter(&state, &labelled("b", json!({}))).is_ok());
        assert!(NodeAffinity.filter(&state, &labelled("c", json!({"disk": "ssd"}))).is_ok());
        assert!(NodeAffinity.filter(&state, &labelled("d", json!({}))).is_err());
        let empty = state_with(required(json!([{}])));
        assert!(NodeAffinity.filter(&empty, &labelled("a", json!({}))).is_err());
    }

    #[test]
    fn daemonset_pins_narrow_the_candidates() {
        let state = state_with(required(json!([
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]},
        ])));
        assert_eq!(
            state.candidates().map(|(names, _)| names.iter().cloned().collect::<Vec<_>>()),
            Some(vec!["n7".to_string()])
        );
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let state = state_with(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
                {"weight": 30, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            ]}}}),
        );
        let nodes = [
            labelled("a", json!({"disk": "ssd"})),
            labelled("b", json!({"disk": "ssd", "zone": "a"})),
            labelled("c", json!({})),
        ];
        let mut scores: Vec<i64> = nodes.iter().map(|n| NodeAffinity.score(&state, n)).collect();
        assert_eq!(scores, vec![10, 40, 0]);
        NodeAffinity.normalize(&state, &mut scores);
        assert_eq!(scores, vec![25, 100, 0]);
    }
}
