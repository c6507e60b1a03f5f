//! InterPodAffinity: required pod anti-affinity (the pod's own terms, and existing pods' terms
//! against it) and required pod affinity filter nodes by topology domain; preferred terms
//! score (affinity adds the weight, anti-affinity subtracts it).

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{PodAffinityTerm, WeightedPodAffinityTerm};

use crate::controllers::workload::selector_matches;
use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, PodInfo, ScorePlugin, Unfit};

pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// Whether `term` (of a pod in `namespace`) selects `pod`.
pub fn term_matches(term: &PodAffinityTerm, namespace: &str, pod: &PodInfo) -> bool {
    let namespaces = term.namespaces.as_deref().unwrap_or_default();
    // A namespaceSelector (Wharf does not read namespace labels here) selects all namespaces.
    let in_namespace = if !namespaces.is_empty() {
        namespaces.iter().any(|n| n == &pod.namespace)
    } else {
        term.namespace_selector.is_some() || pod.namespace == namespace
    };
    in_namespace && term.label_selector.as_ref().is_some_and(|s| selector_matches(s, Some(&pod.labels)))
}

/// Topology domains, as `key → values`.
type Domains = HashMap<String, HashSet<String>>;

fn in_domains(domains: &Domains, node: &NodeInfo) -> bool {
    domains.iter().any(|(key, values)| node.labels.get(key).is_some_and(|v| values.contains(v)))
}

fn insert(domains: &mut Domains, key: &str, node: &NodeInfo) {
    if let Some(value) = node.labels.get(key) {
        domains.entry(key.to_string()).or_default().insert(value.clone());
    }
}

#[derive(Default)]
struct FilterState {
    existing_anti: Domains,
    anti: Domains,
    /// Per required affinity term, the domains holding a matching pod (`None`: the term is
    /// waived, as no pod matches it yet but the pod itself).
    affinity: Vec<Option<HashSet<String>>>,
    affinity_keys: Vec<String>,
}

fn required_affinity(pod: &PodInfo) -> &[PodAffinityTerm] {
    pod.spec()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

/// The plugin's name, as kube-scheduler's.
pub const NAME: &str = "InterPodAffinity";

pub struct InterPodAffinity;

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, state: &mut CycleState, cache: &Cache) -> Result<(), Unfit> {
        let pod = state.pod.clone();
        let mut result = FilterState::default();
        for (existing, node) in cache.anti_affinity_pods() {
            for term in &existing.required_anti_affinity {
                if term_matches(term, &existing.namespace, &pod) {
                    insert(&mut result.existing_anti, &term.topology_key, node);
                }
            }
        }
        let affinity = required_affinity(&pod);
        if !pod.required_anti_affinity.is_empty() || !affinity.is_empty() {
            let mut found: Vec<HashSet<String>> = vec![HashSet::new(); affinity.len()];
            for node in cache.nodes() {
                for other in &node.pods {
                    for term in &pod.required_anti_affinity {
                        if term_matches(term, &pod.namespace, other) {
                            insert(&mut result.anti, &term.topology_key, node);
                        }
                    }
                    for (term, found) in affinity.iter().zip(found.iter_mut()) {
                        if term_matches(term, &pod.namespace, other)
                            && let Some(value) = node.labels.get(&term.topology_key)
                        {
                            found.insert(value.clone());
                        }
                    }
                }
            }
            let none_yet = found.iter().all(HashSet::is_empty);
            let matches_itself = affinity.iter().all(|t| term_matches(t, &pod.namespace, &pod));
            let waived = none_yet && matches_itself;
            result.affinity = found.into_iter().map(|f| (!waived).then_some(f)).collect();
            result.affinity_keys = affinity.iter().map(|t| t.topology_key.clone()).collect();
        }
        if !result.existing_anti.is_empty() || !result.anti.is_empty() || !result.affinity.is_empty() {
            state.write(result);
        }
        Ok(())
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Result<(), Unfit> {
        let Some(s) = state.read::<FilterState>() else { return Ok(()) };
        // kube-scheduler's order: the pod's affinity, its anti-affinity, then existing pods'.
        for (domains, key) in s.affinity.iter().zip(&s.affinity_keys) {
            let Some(domains) = domains else { continue };
            if !node.labels.get(key).is_some_and(|v| domains.contains(v)) {
                return Err(Unfit::new(AFFINITY));
            }
        }
        if in_domains(&s.anti, node) {
            return Err(Unfit::new(ANTI_AFFINITY));
        }
        if in_domains(&s.existing_anti, node) {
            return Err(Unfit::new(EXISTING_ANTI_AFFINITY));
        }
        Ok(())
    }
}

/// Preferred terms with their weights times `sign`.
fn weighted(list: Option<&Vec<WeightedPodAffinityTerm>>, sign: i64) -> impl Iterator<Item = (&PodAffinityTerm, i64)> {
    list.into_iter().flatten().map(move |t| (&t.pod_affinity_term, sign * t.weight as i64))
}

/// Per topology key and value, the summed weights of matching preferred terms.
struct ScoreState(HashMap<String, HashMap<String, i64>>);

impl ScorePlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(&self, state: &mut CycleState, cache: &Cache, _nodes: &[&NodeInfo]) {
        let pod = state.pod.clone();
        let affinity = pod.spec().and_then(|s| s.affinity.as_ref());
        let terms: Vec<(&PodAffinityTerm, i64)> = weighted(
            affinity
                .and_then(|a| a.pod_affinity.as_ref())
                .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()),
            1,
        )
        .chain(weighted(
            affinity
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()),
            -1,
        ))
        .collect();
        if terms.is_empty() {
            return;
        }
        let mut scores: HashMap<String, HashMap<String, i64>> = HashMap::new();
        for node in cache.nodes() {
            for other in &node.pods {
                for (term, weight) in &terms {
                    if let Some(value) = node.labels.get(&term.topology_key)
                        && term_matches(term, &pod.namespace, other)
                    {
                        *scores.entry(term.topology_key.clone()).or_default().entry(value.clone()).or_default() +=
                            weight;
                    }
                }
            }
        }
        state.write(ScoreState(scores));
    }

    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(ScoreState(scores)) = state.read::<ScoreState>() else { return 0 };
        scores.iter().filter_map(|(key, values)| values.get(node.labels.get(key)?)).sum()
    }

    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        let max = scores.iter().copied().max().unwrap_or(0);
        let min = scores.iter().copied().min().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if max > min { MAX_NODE_SCORE * (*s - min) / (max - min) } else { 0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::framework::RuntimeRequirements;
    use serde_json::json;

    fn anti(app: &str) -> serde_json::Value {
        json!({"metadata": {"labels": {"app": app}}, "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": app}}}]}}}})
    }

    fn cache_of(names: &[&str]) -> Cache {
        let mut cache = Cache::default();
        for name in names {
            cache.upsert_node(node(name, json!({})));
        }
        cache
    }

    fn filtered(cache: &Cache, incoming: serde_json::Value) -> Vec<Result<(), Unfit>> {
        let mut state = CycleState::new(pod("new", incoming), RuntimeRequirements::default());
        InterPodAffinity.pre_filter(&mut state, cache).unwrap();
        cache.nodes().map(|n| InterPodAffinity.filter(&state, n)).collect()
    }

    #[test]
    fn required_anti_affinity_keeps_replicas_apart() {
        let mut cache = cache_of(&["a", "b"]);
        cache.assume(pod("p1", anti("db")), "a");
        let results = filtered(&cache, anti("db"));
        assert_eq!(results[0], Err(Unfit::new(ANTI_AFFINITY)), "the pod's own terms are reported first");
        assert!(results[1].is_ok());
        // An existing pod's term against an incoming pod without terms.
        let results = filtered(&cache, json!({"metadata": {"labels": {"app": "db"}}}));
        assert_eq!(results[0], Err(Unfit::new(EXISTING_ANTI_AFFINITY)));
        assert!(results[1].is_ok());
        // The incoming pod's own term, against a pod without terms.
        let mut cache = cache_of(&["a", "b"]);
        cache.assume(pod("p1", json!({"metadata": {"labels": {"app": "db"}}})), "a");
        let results = filtered(&cache, anti("db"));
        assert_eq!(results[0], Err(Unfit::new(ANTI_AFFINITY)));
        assert!(results[1].is_ok());
    }

    #[test]
    fn required_affinity_follows_matching_pods_and_the_first_pod_is_free() {
        let affinity = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}]}}}});
        let cache = cache_of(&["a", "b"]);
        assert!(filtered(&cache, affinity.clone()).iter().all(Result::is_ok));
        let mut cache = cache_of(&["a", "b"]);
        cache.assume(pod("p1", json!({"metadata": {"labels": {"app": "web"}}})), "b");
        let results = filtered(&cache, affinity);
        assert_eq!(results[0], Err(Unfit::new(AFFINITY)));
        assert!(results[1].is_ok());
    }

    #[test]
    fn other_namespaces_do_not_count() {
        let mut cache = cache_of(&["a"]);
        cache.assume(pod("p1", json!({"metadata": {"namespace": "other", "labels": {"app": "db"}}})), "a");
        assert!(filtered(&cache, anti("db"))[0].is_ok());
    }

    #[test]
    fn preferred_terms_score() {
        let mut cache = cache_of(&["a", "b", "c"]);
        cache.assume(pod("cache1", json!({"metadata": {"labels": {"app": "cache"}}})), "a");
        cache.assume(pod("noisy", json!({"metadata": {"labels": {"app": "noisy"}}})), "b");
        let incoming = json!({"spec": {"affinity": {
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm":
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "cache"}}}}]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm":
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "noisy"}}}}]},
        }}});
        let mut state = CycleState::new(pod("new", incoming), RuntimeRequirements::default());
        let nodes: Vec<&NodeInfo> = ["a", "b", "c"].iter().map(|n| cache.node(n).unwrap()).collect();
        InterPodAffinity.pre_score(&mut state, &cache, &nodes);
        let mut scores: Vec<i64> = nodes.iter().map(|n| InterPodAffinity.score(&state, n)).collect();
        assert_eq!(scores, vec![50, -50, 0]);
        InterPodAffinity.normalize(&state, &mut scores);
        assert_eq!(scores, vec![100, 0, 50]);
    }
}
