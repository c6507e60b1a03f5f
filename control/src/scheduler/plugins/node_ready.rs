//! NodeReady: a node whose Ready condition is not True takes no pods. (kube-scheduler relies on
//! the not-ready/unreachable taints alone; Wharf also checks the condition, so a node that has
//! not been tainted yet, or a pod that tolerates the NoExecute taints for a while, is not sent
//! to a node that cannot run it.)

use crate::scheduler::cache::NodeInfo;
use crate::scheduler::framework::{CycleState, FilterPlugin, Unfit};

pub const REASON: &str = "node(s) were not ready";

pub struct NodeReady;

impl FilterPlugin for NodeReady {
    fn name(&self) -> &'static str {
        "NodeReady"
    }

    fn filter(&self, _state: &CycleState, node: &NodeInfo) -> Result<(), Unfit> {
        if node.ready { Ok(()) } else { Err(Unfit::new(REASON)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::framework::RuntimeRequirements;
    use serde_json::json;

    #[test]
    fn not_ready_nodes_are_rejected() {
        let state = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        let down = node("a", json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}));
        assert_eq!(NodeReady.filter(&state, &NodeInfo::from_node(down)), Err(Unfit::new(REASON)));
        assert!(NodeReady.filter(&state, &NodeInfo::from_node(node("b", json!({})))).is_ok());
    }
}
