//! NodeResourcesFit: the node's allocatable cpu, memory, ephemeral-storage and pod count must
//! hold the pod's requests beside those of the pods already there (assumed ones included).
//! Scores: LeastAllocated (more room left is better) and BalancedAllocation (cpu and memory
//! used in like proportion is better), on cpu and memory, as kube-scheduler's defaults.

use crate::scheduler::cache::NodeInfo;
use crate::scheduler::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, Resources, ScorePlugin, Unfit};

pub struct NodeResourcesFit;

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Result<(), Unfit> {
        let wanted = &state.pod.requests;
        let free = |allocatable: i64, requested: i64| allocatable - requested;
        let mut reasons = Vec::new();
        if node.pods.len() as i64 + 1 > node.allowed_pods {
            reasons.push("Too many pods".into());
        }
        let checks = [
            (wanted.milli_cpu, free(node.allocatable.milli_cpu, node.requested.milli_cpu), "Insufficient cpu"),
            (wanted.memory, free(node.allocatable.memory, node.requested.memory), "Insufficient memory"),
            (
                wanted.ephemeral_storage,
                free(node.allocatable.ephemeral_storage, node.requested.ephemeral_storage),
                "Insufficient ephemeral-storage",
            ),
        ];
        for (wanted, free, reason) in checks {
            if wanted > 0 && wanted > free {
                reasons.push(reason.into());
            }
        }
        if reasons.is_empty() { Ok(()) } else { Err(Unfit(reasons)) }
    }
}

/// cpu and memory requested on the node with the pod, against allocatable.
fn with_pod(node: &NodeInfo, pod: &Resources, on_node: &Resources) -> [(i64, i64); 2] {
    [
        (on_node.milli_cpu + pod.milli_cpu, node.allocatable.milli_cpu),
        (on_node.memory + pod.memory, node.allocatable.memory),
    ]
}

/// LeastAllocated: the mean over cpu and memory of the share left free, 0..100.
pub struct LeastAllocated;

impl ScorePlugin for LeastAllocated {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let resources = with_pod(node, &state.pod.non_zero_requests, &node.non_zero_requested);
        let total: i64 = resources
            .iter()
            .map(|&(requested, allocatable)| {
                if allocatable <= 0 || requested > allocatable {
                    0
                } else {
                    ((allocatable - requested) as i128 * MAX_NODE_SCORE as i128 / allocatable as i128) as i64
                }
            })
            .sum();
        total / resources.len() as i64
    }
}

/// BalancedAllocation: 100 less the spread of the cpu and memory fractions in use.
pub struct BalancedAllocation;

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let [cpu, memory] = with_pod(node, &state.pod.requests, &node.requested).map(|(requested, allocatable)| {
            if allocatable <= 0 { 1.0 } else { (requested as f64 / allocatable as f64).min(1.0) }
        });
        // The standard deviation of two values is half their difference.
        let std = (cpu - memory).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::Cache;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::framework::RuntimeRequirements;
    use serde_json::json;

    fn requests(cpu: &str, memory: &str) -> serde_json::Value {
        json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}})
    }

    fn small(name: &str, pods: &str) -> std::sync::Arc<k8s_openapi::api::core::v1::Node> {
        node(name, json!({"status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": pods}}}))
    }

    #[test]
    fn requests_must_fit_beside_the_pods_there() {
        let mut cache = Cache::default();
        cache.upsert_node(small("a", "10"));
        cache.assume(pod("old", requests("600m", "512Mi")), "a");
        let node = cache.node("a").unwrap();
        let fits = CycleState::new(pod("p", requests("400m", "512Mi")), RuntimeRequirements::default());
        assert!(NodeResourcesFit.filter(&fits, node).is_ok());
        let too_big = CycleState::new(pod("p", requests("500m", "600Mi")), RuntimeRequirements::default());
        assert_eq!(
            NodeResourcesFit.filter(&too_big, node),
            Err(Unfit(vec!["Insufficient cpu".into(), "Insufficient memory".into()]))
        );
    }

    #[test]
    fn the_pod_count_is_limited() {
        let mut cache = Cache::default();
        cache.upsert_node(small("a", "1"));
        let state = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        assert!(NodeResourcesFit.filter(&state, cache.node("a").unwrap()).is_ok());
        cache.assume(pod("old", json!({})), "a");
        assert_eq!(NodeResourcesFit.filter(&state, cache.node("a").unwrap()), Err(Unfit::new("Too many pods")));
    }

    #[test]
    fn pods_without_requests_still_spread() {
        let mut cache = Cache::default();
        cache.upsert_node(small("a", "10"));
        cache.upsert_node(small("b", "10"));
        cache.assume(pod("old", json!({})), "a");
        let state = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        let a = LeastAllocated.score(&state, cache.node("a").unwrap());
        let b = LeastAllocated.score(&state, cache.node("b").unwrap());
        assert!(b > a, "{a} {b}");
        // 100m of 1 cpu and 200Mi of 1Gi in use with the new pod: (90 + 80) / 2.
        assert_eq!(b, (90 + 80) / 2);
    }

    #[test]
    fn balanced_use_scores_higher() {
        let mut cache = Cache::default();
        cache.upsert_node(small("a", "10"));
        let node = cache.node("a").unwrap();
        let balanced = CycleState::new(pod("p", requests("500m", "512Mi")), RuntimeRequirements::default());
        let lopsided = CycleState::new(pod("p", requests("1", "0")), RuntimeRequirements::default());
        assert_eq!(BalancedAllocation.score(&balanced, node), 100);
        assert_eq!(BalancedAllocation.score(&lopsided, node), 50);
    }
}
