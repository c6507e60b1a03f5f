//! NodeName: a pod that names its node (`spec.nodeName`) fits only there.

use crate::scheduler::cache::NodeInfo;
use crate::scheduler::framework::{CycleState, FilterPlugin, Unfit};

pub const REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Result<(), Unfit> {
        match state.pod.spec().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()) {
            Some(wanted) if wanted != node.name => Err(Unfit::new(REASON)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::framework::RuntimeRequirements;
    use serde_json::json;

    #[test]
    fn only_the_named_node_fits() {
        let state = CycleState::new(pod("p", json!({"spec": {"nodeName": "b"}})), RuntimeRequirements::default());
        assert_eq!(NodeName.filter(&state, &NodeInfo::from_node(node("a", json!({})))), Err(Unfit::new(REASON)));
        assert!(NodeName.filter(&state, &NodeInfo::from_node(node("b", json!({})))).is_ok());
        let free = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        assert!(NodeName.filter(&free, &NodeInfo::from_node(node("a", json!({})))).is_ok());
    }
}
