//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods that tolerate
//! the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use crate::placement::tolerates;
use crate::scheduler::cache::NodeInfo;
use crate::scheduler::framework::{CycleState, FilterPlugin, Unfit};

pub const REASON: &str = "node(s) were unschedulable";

pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Result<(), Unfit> {
        if !node.unschedulable {
            return Ok(());
        }
        let taint =
            Taint { key: "node.kubernetes.io/unschedulable".into(), effect: "NoSchedule".into(), ..Default::default() };
        let tolerations = state.pod.spec().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
        if tolerations.iter().any(|t| tolerates(t, &taint)) { Ok(()) } else { Err(Unfit::new(REASON)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::{
        NodeInfo,
        tests::{node, pod},
    };
    use crate::scheduler::framework::RuntimeRequirements;
    use serde_json::json;

    #[test]
    fn cordoned_nodes_take_only_pods_that_tolerate_it() {
        let cordoned = NodeInfo::from_node(node("a", json!({"spec": {"unschedulable": true}})));
        let plain = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        assert_eq!(NodeUnschedulable.filter(&plain, &cordoned), Err(Unfit::new(REASON)));
        assert!(NodeUnschedulable.filter(&plain, &NodeInfo::from_node(node("b", json!({})))).is_ok());
        let tolerant = CycleState::new(
            pod(
                "p",
                json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}),
            ),
            RuntimeRequirements::default(),
        );
        assert!(NodeUnschedulable.filter(&tolerant, &cordoned).is_ok());
    }
}
