//! TaintToleration: a node's NoSchedule and NoExecute taints keep out pods that do not tolerate
//! them (the pod's tolerations, which admission extended by its RuntimeClass's); untolerated
//! PreferNoSchedule taints lower the node's score.

use k8s_openapi::api::core::v1::Toleration;

use crate::placement::tolerates;
use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{CycleState, FilterPlugin, ScorePlugin, Unfit, default_normalize};

/// Those that tolerate PreferNoSchedule taints.
struct SoftTolerations(Vec<Toleration>);

fn tolerations(state: &CycleState) -> &[Toleration] {
    state.pod.spec().and_then(|s| s.tolerations.as_deref()).unwrap_or_default()
}

pub struct TaintToleration;

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Result<(), Unfit> {
        let tolerations = tolerations(state);
        let untolerated = node.taints.iter().find(|taint| {
            matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
                && !tolerations.iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            None => Ok(()),
            Some(taint) => Err(Unfit::new(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            ))),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn pre_score(&self, state: &mut CycleState, _cache: &Cache, _nodes: &[&NodeInfo]) {
        let soft = tolerations(state)
            .iter()
            .filter(|t| t.effect.as_deref().is_none_or(|e| e.is_empty() || e == "PreferNoSchedule"))
            .cloned()
            .collect();
        state.write(SoftTolerations(soft));
    }

    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        if node.taints.is_empty() {
            return 0;
        }
        let tolerations = state.read::<SoftTolerations>().map(|t| t.0.as_slice()).unwrap_or_default();
        node.taints
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule" && !tolerations.iter().any(|t| tolerates(t, taint)))
            .count() as i64
    }

    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::framework::RuntimeRequirements;
    use serde_json::json;

    #[test]
    fn untolerated_hard_taints_reject_the_node() {
        let tainted = NodeInfo::from_node(node(
            "a",
            json!({"spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]}}),
        ));
        let state = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        assert_eq!(
            TaintToleration.filter(&state, &tainted),
            Err(Unfit::new("node(s) had untolerated taint {node.kubernetes.io/unreachable: }"))
        );
        let soft =
            NodeInfo::from_node(node("b", json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}})));
        assert!(TaintToleration.filter(&state, &soft).is_ok());
    }

    #[test]
    fn prefer_no_schedule_taints_lower_the_score() {
        let mut state = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        TaintToleration.pre_score(&mut state, &Cache::default(), &[]);
        let clean = NodeInfo::from_node(node("a", json!({})));
        let soft =
            NodeInfo::from_node(node("b", json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}})));
        let mut scores = vec![TaintToleration.score(&state, &clean), TaintToleration.score(&state, &soft)];
        TaintToleration.normalize(&state, &mut scores);
        assert_eq!(scores, vec![100, 0]);
    }
}
