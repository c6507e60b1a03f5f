//! PodTopologySpread: the pod's `topologySpreadConstraints` — DoNotSchedule ones filter (a
//! node may not push the skew of matching pods across its topology domain past maxSkew),
//! ScheduleAnyway ones score. A pod without constraints that belongs to a workload gets the
//! system defaults (hostname maxSkew 3, zone maxSkew 5, both ScheduleAnyway) over the pods of
//! the same controller, so one workload's replicas spread across nodes.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::node_affinity::RequiredNodeAffinity;
use crate::controllers::workload::selector_matches;
use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, PodInfo, ScorePlugin, Unfit};

pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const ZONE: &str = "topology.kubernetes.io/zone";
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
pub const MISSING_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

/// Which pods a constraint counts.
#[derive(Debug, Clone)]
enum Selector {
    Labels(LabelSelector),
    /// Pods of the same controller (the system default constraints).
    Owner(String),
}

#[derive(Debug, Clone)]
struct Constraint {
    max_skew: i64,
    key: String,
    hard: bool,
    selector: Selector,
    namespace: String,
}

impl Constraint {
    fn matches(&self, pod: &PodInfo) -> bool {
        pod.namespace == self.namespace
            && match &self.selector {
                Selector::Labels(selector) => selector_matches(selector, Some(&pod.labels)),
                Selector::Owner(uid) => pod.owner_uid.as_deref() == Some(uid),
            }
    }

    fn count_on(&self, node: &NodeInfo) -> i64 {
        match &self.selector {
            // Owner references never cross namespaces: the controller's uid is enough.
            Selector::Owner(uid) => node.owner_counts.get(uid).copied().unwrap_or(0) as i64,
            Selector::Labels(_) => node.pods.iter().filter(|p| self.matches(p)).count() as i64,
        }
    }
}

fn constraints(pod: &PodInfo) -> Vec<Constraint> {
    let declared = pod.spec().and_then(|s| s.topology_spread_constraints.as_deref()).unwrap_or_default();
    if declared.is_empty() {
        let Some(owner) = &pod.owner_uid else { return Vec::new() };
        return [(HOSTNAME, 3), (ZONE, 5)]
            .into_iter()
            .map(|(key, max_skew)| Constraint {
                max_skew,
                key: key.into(),
                hard: false,
                selector: Selector::Owner(owner.clone()),
                namespace: pod.namespace.clone(),
            })
            .collect();
    }
    declared
        .iter()
        .map(|c| Constraint {
            max_skew: c.max_skew.max(1) as i64,
            key: c.topology_key.clone(),
            hard: c.when_unsatisfiable != "ScheduleAnyway",
            // Without a selector a constraint counts no pods.
            selector: Selector::Labels(c.label_selector.clone().unwrap_or_else(|| LabelSelector {
                match_expressions: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                        key: "pod-topology-spread.wharf.dev/none".into(),
                        operator: "Exists".into(),
                        values: None,
                    },
                ]),
                match_labels: None,
            })),
            namespace: pod.namespace.clone(),
        })
        .collect()
}

/// Matching pods per domain of each hard constraint, and the least-loaded domain's count.
struct HardState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    minimums: Vec<i64>,
    self_match: Vec<i64>,
}

/// The soft constraints, their weights, and per-domain counts for keys other than hostname.
struct SoftState {
    constraints: Vec<Constraint>,
    weights: Vec<f64>,
    counts: Vec<Option<HashMap<String, i64>>>,
}

/// The plugin's name, as kube-scheduler's.
pub const NAME: &str = "PodTopologySpread";

pub struct PodTopologySpread;

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, state: &mut CycleState, cache: &Cache) -> Result<(), Unfit> {
        let hard: Vec<Constraint> = constraints(&state.pod).into_iter().filter(|c| c.hard).collect();
        if hard.is_empty() {
            return Ok(());
        }
        let required = RequiredNodeAffinity::of(state);
        let mut counts = vec![HashMap::<String, i64>::new(); hard.len()];
        for node in cache.nodes() {
            if !required.matches(node) || !hard.iter().all(|c| node.labels.contains_key(&c.key)) {
                continue;
            }
            for (c, counts) in hard.iter().zip(counts.iter_mut()) {
                *counts.entry(node.labels[&c.key].clone()).or_default() += c.count_on(node);
            }
        }
        let minimums = counts.iter().map(|c| c.values().copied().min().unwrap_or(0)).collect();
        let self_match = hard.iter().map(|c| c.matches(&state.pod) as i64).collect();
        state.write(HardState { constraints: hard, counts, minimums, self_match });
        Ok(())
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Result<(), Unfit> {
        let Some(hard) = state.read::<HardState>() else { return Ok(()) };
        for (i, c) in hard.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.key) else { return Err(Unfit::new(MISSING_LABEL)) };
            let count = hard.counts[i].get(value).copied().unwrap_or(0);
            if count + hard.self_match[i] - hard.minimums[i] > c.max_skew {
                return Err(Unfit::new(REASON));
            }
        }
        Ok(())
    }
}

impl ScorePlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(&self, state: &mut CycleState, cache: &Cache, nodes: &[&NodeInfo]) {
        let soft: Vec<Constraint> = constraints(&state.pod).into_iter().filter(|c| !c.hard).collect();
        if soft.is_empty() {
            return;
        }
        let mut weights = Vec::with_capacity(soft.len());
        let mut counts = Vec::with_capacity(soft.len());
        for c in &soft {
            let domains: std::collections::HashSet<&String> =
                nodes.iter().filter_map(|n| n.labels.get(&c.key)).collect();
            weights.push(((domains.len() + 2) as f64).ln());
            if c.key == HOSTNAME || domains.is_empty() {
                counts.push(None);
                continue;
            }
            let mut per_domain: HashMap<String, i64> = HashMap::new();
            for node in cache.nodes() {
                if let Some(value) = node.labels.get(&c.key).filter(|v| domains.contains(v)) {
                    *per_domain.entry(value.clone()).or_default() += c.count_on(node);
                }
            }
            counts.push(Some(per_domain));
        }
        state.write(SoftState { constraints: soft, weights, counts });
    }

    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(soft) = state.read::<SoftState>() else { return 0 };
        let mut score = 0.0;
        for (i, c) in soft.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.key) else { continue };
            let count = match &soft.counts[i] {
                Some(per_domain) => per_domain.get(value).copied().unwrap_or(0),
                None => c.count_on(node),
            };
            score += count as f64 * soft.weights[i] + (c.max_skew - 1) as f64;
        }
        (score * 1000.0).round() as i64
    }

    /// Fewer matching pods is better: as kube-scheduler, `100 * (max + min - s) / max`.
    fn normalize(&self, state: &CycleState, scores: &mut [i64]) {
        if state.read::<SoftState>().is_none() {
            return;
        }
        let max = scores.iter().copied().max().unwrap_or(0);
        let min = scores.iter().copied().min().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if max == 0 { MAX_NODE_SCORE } else { MAX_NODE_SCORE * (max + min - *s) / max };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::framework::RuntimeRequirements;
    use serde_json::json;

    fn owned(name: &str) -> std::sync::Arc<PodInfo> {
        pod(
            name,
            json!({"metadata": {"labels": {"app": "web"}, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs1", "controller": true}]}}),
        )
    }

    fn zoned(name: &str, zone: &str) -> std::sync::Arc<k8s_openapi::api::core::v1::Node> {
        node(name, json!({"metadata": {"labels": {ZONE: zone}}}))
    }

    #[test]
    fn do_not_schedule_limits_the_skew() {
        let mut cache = Cache::default();
        cache.upsert_node(zoned("a", "z1"));
        cache.upsert_node(zoned("b", "z2"));
        cache.upsert_node(node("c", json!({})));
        cache.assume(owned("p1"), "a");
        let incoming = pod(
            "new",
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
        );
        let mut state = CycleState::new(incoming, RuntimeRequirements::default());
        PodTopologySpread.pre_filter(&mut state, &cache).unwrap();
        assert_eq!(PodTopologySpread.filter(&state, cache.node("a").unwrap()), Err(Unfit::new(REASON)));
        assert!(PodTopologySpread.filter(&state, cache.node("b").unwrap()).is_ok());
        assert_eq!(PodTopologySpread.filter(&state, cache.node("c").unwrap()), Err(Unfit::new(MISSING_LABEL)));
    }

    #[test]
    fn replicas_of_one_workload_spread_by_default() {
        let mut cache = Cache::default();
        for name in ["a", "b", "c"] {
            cache.upsert_node(node(name, json!({})));
        }
        cache.assume(owned("p1"), "a");
        cache.assume(owned("p2"), "a");
        cache.assume(owned("p3"), "b");
        // A pod of another workload does not count.
        cache.assume(pod("other", json!({"metadata": {"labels": {"app": "web"}}})), "c");
        let mut state = CycleState::new(owned("new"), RuntimeRequirements::default());
        let nodes: Vec<&NodeInfo> = ["a", "b", "c"].iter().map(|n| cache.node(n).unwrap()).collect();
        PodTopologySpread.pre_score(&mut state, &cache, &nodes);
        let mut scores: Vec<i64> = nodes.iter().map(|n| PodTopologySpread.score(&state, n)).collect();
        PodTopologySpread.normalize(&state, &mut scores);
        assert!(scores[2] > scores[1] && scores[1] > scores[0], "{scores:?}");
        assert_eq!(scores[2], 100);
    }

    #[test]
    fn pods_without_a_workload_or_constraints_are_not_spread() {
        let mut state = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        let cache = Cache::default();
        PodTopologySpread.pre_filter(&mut state, &cache).unwrap();
        PodTopologySpread.pre_score(&mut state, &cache, &[]);
        assert!(state.read::<SoftState>().is_none() && state.read::<HardState>().is_none());
    }
}
