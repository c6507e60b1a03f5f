//! The scheduler's plugins, one module each, and the default configuration with
//! kube-scheduler's default score weights.

pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ready;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod runtime_support;
pub mod taint_toleration;

use std::sync::Arc;

use super::framework::{FilterPlugin, Framework, ScorePlugin};

/// Filters in kube-scheduler's order (NodeReady after the taints, so a node tainted
/// unreachable reports the taint; RuntimeSupport after the node selector), and scores with
/// kube-scheduler's default weights.
pub fn default_framework() -> Framework {
    let taints = Arc::new(taint_toleration::TaintToleration);
    let affinity = Arc::new(node_affinity::NodeAffinity);
    let spread = Arc::new(pod_topology_spread::PodTopologySpread);
    let pod_affinity = Arc::new(inter_pod_affinity::InterPodAffinity);
    let filters: Vec<Arc<dyn FilterPlugin>> = vec![
        Arc::new(node_unschedulable::NodeUnschedulable),
        Arc::new(node_name::NodeName),
        taints.clone(),
        Arc::new(node_ready::NodeReady),
        affinity.clone(),
        Arc::new(runtime_support::RuntimeSupport),
        Arc::new(node_resources::NodeResourcesFit),
        spread.clone(),
        pod_affinity.clone(),
    ];
    let scorers: Vec<(Arc<dyn ScorePlugin>, i64)> = vec![
        (taints, 3),
        (affinity, 2),
        (spread, 2),
        (pod_affinity, 2),
        (Arc::new(node_resources::LeastAllocated), 1),
        (Arc::new(node_resources::BalancedAllocation), 1),
        (Arc::new(image_locality::ImageLocality), 1),
    ];
    Framework::new(filters, scorers)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::scheduler::cache::Cache;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::framework::{CycleState, PodInfo, RuntimeRequirements};
    use serde_json::json;

    fn wasm_node(name: &str, memory: &str) -> Arc<k8s_openapi::api::core::v1::Node> {
        node(
            name,
            json!({"metadata": {"labels": {"runtime.wharf.dev/wasmtime": "true"}},
                "status": {"allocatable": {"cpu": "4", "memory": memory, "pods": "110"}}}),
        )
    }

    fn wasm() -> RuntimeRequirements {
        RuntimeRequirements { image_runtimes: BTreeSet::from(["wasmtime".to_string()]), ..Default::default() }
    }

    fn schedule(framework: &mut Framework, cache: &mut Cache, pod: Arc<PodInfo>) -> Result<String, String> {
        let mut state = CycleState::new(pod.clone(), wasm());
        let node = framework.schedule(&mut state, cache).map_err(|e| e.to_string())?;
        cache.assume(pod, &node);
        Ok(node)
    }

    fn replica(name: &str) -> Arc<PodInfo> {
        pod(
            name,
            json!({"metadata": {"ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs1", "controller": true}]}}),
        )
    }

    #[test]
    fn the_message_says_why_no_node_fits() {
        let mut cache = Cache::default();
        cache.upsert_node(wasm_node("a", "1Gi"));
        cache.upsert_node(wasm_node("b", "1Gi"));
        cache.upsert_node(node("c", json!({"status": {"allocatable": {"memory": "8Gi"}}})));
        let big =
            pod("p", json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": "2Gi"}}}]}}));
        assert_eq!(
            schedule(&mut default_framework(), &mut cache, big).unwrap_err(),
            "0/3 nodes are available: 2 Insufficient memory, 1 node(s) didn't offer runtime wasmtime."
        );
    }

    #[test]
    fn unreachable_and_not_ready_nodes_are_named() {
        let mut cache = Cache::default();
        let down = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        cache.upsert_node(node("a", down.clone()));
        let mut tainted = down;
        tainted["spec"] = json!({"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]});
        cache.upsert_node(node("b", tainted));
        let mut state = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        assert_eq!(
            default_framework().schedule(&mut state, &cache).unwrap_err().to_string(),
            "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 1 node(s) were not ready."
        );
    }

    #[test]
    fn replicas_spread_evenly_and_a_full_cluster_says_so() {
        let mut cache = Cache::default();
        for name in ["a", "b", "c"] {
            cache.upsert_node(wasm_node(name, "8Gi"));
        }
        let mut framework = default_framework();
        for i in 0..9 {
            schedule(&mut framework, &mut cache, replica(&format!("r{i}"))).unwrap();
        }
        let counts: Vec<usize> = ["a", "b", "c"].iter().map(|n| cache.node(n).unwrap().pods.len()).collect();
        assert_eq!(counts, vec![3, 3, 3]);
    }

    #[test]
    fn daemonset_pods_go_to_their_node_among_many() {
        let mut cache = Cache::default();
        for i in 0..300 {
            cache.upsert_node(wasm_node(&format!("n{i}"), "8Gi"));
        }
        let pinned = pod(
            "ds",
            json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n217"]}]}]}}}}}),
        );
        assert_eq!(schedule(&mut default_framework(), &mut cache, pinned.clone()).unwrap(), "n217");
        cache.remove_pod("ds");
        cache.upsert_node(wasm_node("n217", "8Gi"));
        let mut cordoned = (*cache.node("n217").unwrap().node.clone().unwrap()).clone();
        cordoned.spec.get_or_insert_default().unschedulable = Some(true);
        cache.upsert_node(Arc::new(cordoned));
        assert_eq!(
            schedule(&mut default_framework(), &mut cache, pinned).unwrap_err(),
            "0/300 nodes are available: 299 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable."
        );
    }

    /// A cycle over 1,000 nodes samples some of them and still spreads a workload's pods.
    #[test]
    fn a_thousand_nodes_sampled_and_spread() {
        let mut cache = Cache::default();
        for i in 0..1000 {
            cache.upsert_node(wasm_node(&format!("n{i}"), "64Gi"));
        }
        let mut framework = default_framework();
        let started = std::time::Instant::now();
        for i in 0..2_000 {
            schedule(&mut framework, &mut cache, replica(&format!("r{i}"))).unwrap();
        }
        let elapsed = started.elapsed();
        println!("2,000 pods on 1,000 nodes: {elapsed:?}, {:.0} pods/s", 2_000.0 / elapsed.as_secs_f64());
        let counts: Vec<usize> = cache.nodes().map(|n| n.pods.len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 2_000);
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 3, "replicas spread within the default hostname skew: {min}..{max}");
    }
}
