//! The scheduling framework, in the manner of kube-scheduler's: a pod's cycle runs every
//! plugin's PreFilter once, then Filter on nodes until enough feasible ones are found, then
//! PreScore and Score (normalized to 0..100 per plugin, weighted) on those, and picks the best.
//! A pod that fits nowhere gets a [`FitError`] whose message counts why each node was rejected.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};
use k8s_openapi::api::node::v1::RuntimeClass;

use super::cache::{Cache, NodeInfo};
use crate::registry::validation::Quantity;

/// The highest score a plugin gives a node after normalization.
pub const MAX_NODE_SCORE: i64 = 100;

/// kube-scheduler's requests for containers that set none, so such pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler accounts: cpu in millicores, bytes for the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
}

impl Resources {
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
    }

    fn max(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
    }

    /// Reads `cpu`, `memory` and `ephemeral-storage` from a resource list.
    pub fn from_list(list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>) -> Self {
        let get = |name: &str| list.and_then(|l| l.get(name)).map(|q| quantity_milli(&q.0)).unwrap_or(0);
        Resources {
            milli_cpu: get("cpu"),
            memory: get("memory") / 1000,
            ephemeral_storage: get("ephemeral-storage") / 1000,
        }
    }
}

/// A quantity in thousandths (`100m` → 100, `1` → 1000); unparsable → 0.
pub fn quantity_milli(text: &str) -> i64 {
    Quantity::parse(text).map(|q| q.milli_value().clamp(0, i64::MAX as i128) as i64).unwrap_or(0)
}

/// What the scheduler needs of a pod, computed once when the pod is seen.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Requests: the app containers' sum or the largest init container's, plus overhead.
    pub requests: Resources,
    /// The same with kube-scheduler's defaults for containers without cpu/memory requests.
    pub non_zero_requests: Resources,
    /// The uid of the controller owning the pod (its workload).
    pub owner_uid: Option<String>,
    /// Normalized image references of all containers.
    pub images: Vec<String>,
    /// Required anti-affinity terms (other pods must respect them too).
    pub required_anti_affinity: Vec<PodAffinityTerm>,
}

/// `name` with `:latest` when it has neither tag nor digest, as node.status.images lists them.
pub fn normalize_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') { image.to_string() } else { format!("{image}:latest") }
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let mut requests = Resources::default();
        let mut non_zero = Resources::default();
        let mut images = Vec::new();
        if let Some(spec) = spec {
            let container_requests = |c: &k8s_openapi::api::core::v1::Container| {
                Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
            };
            let non_zero_of = |r: Resources| Resources {
                milli_cpu: if r.milli_cpu == 0 { DEFAULT_MILLI_CPU_REQUEST } else { r.milli_cpu },
                memory: if r.memory == 0 { DEFAULT_MEMORY_REQUEST } else { r.memory },
                ephemeral_storage: r.ephemeral_storage,
            };
            for c in &spec.containers {
                let r = container_requests(c);
                requests.add(&r);
                non_zero.add(&non_zero_of(r));
                images.extend(c.image.as_deref().map(normalize_image));
            }
            for c in spec.init_containers.iter().flatten() {
                let r = container_requests(c);
                requests.max(&r);
                non_zero.max(&non_zero_of(r));
                images.extend(c.image.as_deref().map(normalize_image));
            }
            let overhead = Resources::from_list(spec.overhead.as_ref());
            requests.add(&overhead);
            non_zero.add(&overhead);
        }
        images.sort();
        images.dedup();
        let required_anti_affinity = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| a.required_during_scheduling_ignored_during_execution.clone())
            .unwrap_or_default();
        PodInfo {
            uid: meta.uid.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            requests,
            non_zero_requests: non_zero,
            owner_uid: crate::controllers::workload::controller_of(meta).map(|o| o.uid.clone()),
            images,
            required_anti_affinity,
            pod,
        }
    }

    pub fn spec(&self) -> Option<&k8s_openapi::api::core::v1::PodSpec> {
        self.pod.spec.as_ref()
    }
}

/// What decides the runtimes a pod needs, looked up before its cycle (the lookups may wait on
/// the API; a cycle never does).
#[derive(Debug, Clone, Default)]
pub struct RuntimeRequirements {
    /// The pod's RuntimeClass, if it names one that exists.
    pub runtime_class: Option<Arc<RuntimeClass>>,
    /// The RuntimeClass the pod names when it does not exist.
    pub missing_runtime_class: Option<String>,
    /// Without a RuntimeClass: the handlers the pod's images call for (`wasmtime`, `youki`).
    pub image_runtimes: BTreeSet<String>,
}

/// Per-cycle data: the pod, and what plugins computed in PreFilter/PreScore for their Filter
/// and Score, one value per type.
pub struct CycleState {
    pub pod: Arc<PodInfo>,
    pub runtime: RuntimeRequirements,
    /// Set in PreFilter when only some nodes can fit (a pod pinned to one node): those, and
    /// the reason every other node is counted under.
    candidates: Option<(BTreeSet<String>, &'static str)>,
    /// A few entries at most: a list is quicker to search than a map.
    data: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
}

impl CycleState {
    pub fn new(pod: Arc<PodInfo>, runtime: RuntimeRequirements) -> Self {
        CycleState { pod, runtime, candidates: None, data: Vec::new() }
    }

    /// Only `names` can fit; the other nodes are rejected for `reason` without being filtered.
    pub fn restrict_nodes(&mut self, names: BTreeSet<String>, reason: &'static str) {
        let names = match self.candidates.take() {
            Some((previous, _)) => previous.intersection(&names).cloned().collect(),
            None => names,
        };
        self.candidates = Some((names, reason));
    }

    pub fn candidates(&self) -> Option<(&BTreeSet<String>, &'static str)> {
        self.candidates.as_ref().map(|(names, reason)| (names, *reason))
    }

    pub fn write<T: Any + Send + Sync>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        self.data.retain(|(t, _)| *t != id);
        self.data.push((id, Box::new(value)));
    }

    pub fn read<T: Any + Send + Sync>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.data.iter().find(|(t, _)| *t == id).and_then(|(_, v)| v.downcast_ref())
    }
}

/// Why a node cannot take the pod: one or more reasons, worded as kube-scheduler's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit(pub Vec<Cow<'static, str>>);

impl Unfit {
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Unfit(vec![reason.into()])
    }
}

/// A filter plugin: may reject nodes.
pub trait FilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// Computes once per pod what `filter` needs; an error rejects the pod on every node.
    fn pre_filter(&self, _state: &mut CycleState, _cache: &Cache) -> Result<(), Unfit> {
        Ok(())
    }
    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Result<(), Unfit>;
}

/// A score plugin: ranks feasible nodes.
pub trait ScorePlugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// Computes once per pod what `score` needs, given the feasible nodes.
    fn pre_score(&self, _state: &mut CycleState, _cache: &Cache, _nodes: &[&NodeInfo]) {}
    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64;
    /// Brings the raw scores (one per feasible node, in order) into 0..=MAX_NODE_SCORE.
    fn normalize(&self, _state: &CycleState, _scores: &mut [i64]) {}
}

/// Scales scores so the highest becomes MAX_NODE_SCORE (or the lowest, when `reverse`), as
/// kube-scheduler's DefaultNormalizeScore.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

/// Why a pod fits no node: how many nodes exist and how often each reason was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_nodes: usize,
    pub reasons: BTreeMap<String, usize>,
    /// Why PreFilter rejected the pod everywhere (then `reasons` is empty).
    pub pre_filter: Option<String>,
    /// The plugins that rejected the pod (kube-scheduler's UnschedulablePlugins): a change
    /// that concerns one of them may let it fit.
    pub plugins: BTreeSet<&'static str>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_nodes)?;
        if let Some(message) = &self.pre_filter {
            return write!(f, " {message}.");
        }
        let mut first = true;
        for (reason, count) in &self.reasons {
            write!(f, "{} {count} {reason}", if first { "" } else { "," })?;
            first = false;
        }
        write!(f, ".")
    }
}

/// How many feasible nodes to find before scoring, as kube-scheduler's adaptive
/// percentageOfNodesToScore: all of a small cluster, at least 100, 50% less 1% per 125 nodes
/// (never under 5%) of a big one.
pub fn num_feasible_nodes_to_find(num_nodes: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if num_nodes < MIN_FEASIBLE {
        return num_nodes;
    }
    let percentage = 50usize.saturating_sub(num_nodes / 125).max(5);
    (num_nodes * percentage / 100).max(MIN_FEASIBLE)
}

/// The configured plugins and the cycle that runs them.
pub struct Framework {
    pub filters: Vec<Arc<dyn FilterPlugin>>,
    /// Score plugins with their weights.
    pub scorers: Vec<(Arc<dyn ScorePlugin>, i64)>,
    /// Where the next cycle starts looking, so all nodes get their turn.
    next_start: usize,
}

impl Framework {
    pub fn new(filters: Vec<Arc<dyn FilterPlugin>>, scorers: Vec<(Arc<dyn ScorePlugin>, i64)>) -> Self {
        Framework { filters, scorers, next_start: 0 }
    }

    /// Runs the filters on the node; the first that rejects it says why.
    fn filter_node(&self, state: &CycleState, node: &NodeInfo) -> Result<(), (&'static str, Unfit)> {
        for plugin in &self.filters {
            plugin.filter(state, node).map_err(|unfit| (plugin.name(), unfit))?;
        }
        Ok(())
    }

    /// One scheduling cycle: the chosen node's name, or why none fits.
    pub fn schedule(&mut self, state: &mut CycleState, cache: &Cache) -> Result<String, FitError> {
        let num_nodes = cache.num_nodes();
        if num_nodes == 0 {
            return Err(FitError {
                num_nodes: 0,
                reasons: BTreeMap::new(),
                pre_filter: None,
                plugins: BTreeSet::new(),
            });
        }
        for plugin in &self.filters {
            if let Err(unfit) = plugin.pre_filter(state, cache) {
                let message = unfit.0.join(", ");
                let plugins = BTreeSet::from([plugin.name()]);
                return Err(FitError { num_nodes, reasons: BTreeMap::new(), pre_filter: Some(message), plugins });
            }
        }
        let to_find = num_feasible_nodes_to_find(num_nodes);
        if let Some((names, reason)) = state.candidates().map(|(names, reason)| (names.clone(), reason)) {
            let candidates: Vec<&NodeInfo> =
                names.iter().filter_map(|n| cache.node(n)).filter(|n| n.node.is_some()).collect();
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            if num_nodes > candidates.len() {
                reasons.insert(reason.to_string(), num_nodes - candidates.len());
            }
            return self.schedule_among(state, cache, candidates, reasons, num_nodes);
        }
        let all = cache.node_slots();
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(to_find.min(num_nodes));
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut plugins = BTreeSet::new();
        let start = self.next_start % all.len().max(1);
        let mut visited = 0;
        for i in 0..all.len() {
            let node = &all[(start + i) % all.len()];
            visited = i + 1;
            if node.node.is_none() {
                continue;
            }
            match self.filter_node(state, node) {
                Ok(()) => {
                    feasible.push(node);
                    if feasible.len() >= to_find {
                        break;
                    }
                }
                Err((plugin, unfit)) => {
                    plugins.insert(plugin);
                    for reason in unfit.0 {
                        *reasons.entry(reason.into_owned()).or_default() += 1;
                    }
                }
            }
        }
        self.next_start = (start + visited) % all.len().max(1);
        self.pick(state, cache, feasible, FitError { num_nodes, reasons, pre_filter: None, plugins })
    }

    /// Filters the given nodes only (PreFilter narrowed the candidates), then picks.
    fn schedule_among(
        &self,
        state: &mut CycleState,
        cache: &Cache,
        nodes: Vec<&NodeInfo>,
        mut reasons: BTreeMap<String, usize>,
        num_nodes: usize,
    ) -> Result<String, FitError> {
        let mut feasible = Vec::with_capacity(nodes.len());
        let mut plugins = BTreeSet::new();
        for node in nodes {
            match self.filter_node(state, node) {
                Ok(()) => feasible.push(node),
                Err((plugin, unfit)) => {
                    plugins.insert(plugin);
                    for reason in unfit.0 {
                        *reasons.entry(reason.into_owned()).or_default() += 1;
                    }
                }
            }
        }
        self.pick(state, cache, feasible, FitError { num_nodes, reasons, pre_filter: None, plugins })
    }

    /// The best of the feasible nodes, or `unfit` (why the others were rejected) if none is.
    fn pick(
        &self,
        state: &mut CycleState,
        cache: &Cache,
        feasible: Vec<&NodeInfo>,
        unfit: FitError,
    ) -> Result<String, FitError> {
        match feasible.len() {
            0 => Err(unfit),
            1 => Ok(feasible[0].name.clone()),
            _ => {
                let totals = self.score(state, cache, &feasible);
                Ok(feasible[select_best(&totals, rand::random::<u64>)].name.clone())
            }
        }
    }

    /// The weighted sum of every score plugin's normalized score, per feasible node.
    pub fn score(&self, state: &mut CycleState, cache: &Cache, feasible: &[&NodeInfo]) -> Vec<i64> {
        for (plugin, _) in &self.scorers {
            plugin.pre_score(state, cache, feasible);
        }
        let mut totals = vec![0i64; feasible.len()];
        let mut scores = vec![0i64; feasible.len()];
        for (plugin, weight) in &self.scorers {
            for (score, node) in scores.iter_mut().zip(feasible) {
                *score = plugin.score(state, node);
            }
            plugin.normalize(state, &mut scores);
            for (total, score) in totals.iter_mut().zip(&scores) {
                *total += score.clamp(&0, &MAX_NODE_SCORE) * weight;
            }
        }
        totals
    }
}

/// The index of the highest total; ties are broken at random (reservoir sampling, as
/// kube-scheduler), so equal nodes share the load.
pub fn select_best(totals: &[i64], mut random: impl FnMut() -> u64) -> usize {
    let mut best = 0;
    let mut ties = 1u64;
    for (i, total) in totals.iter().enumerate().skip(1) {
        if *total > totals[best] {
            best = i;
            ties = 1;
        } else if *total == totals[best] {
            ties += 1;
            if random().is_multiple_of(ties) {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_counts_sorted_reasons_and_ends_with_a_period() {
        let error = FitError {
            num_nodes: 3,
            reasons: BTreeMap::from([
                ("node(s) didn't offer runtime wasmtime".to_string(), 1),
                ("Insufficient memory".to_string(), 2),
            ]),
            pre_filter: None,
            plugins: BTreeSet::new(),
        };
        assert_eq!(
            error.to_string(),
            "0/3 nodes are available: 2 Insufficient memory, 1 node(s) didn't offer runtime wasmtime."
        );
        assert_eq!(
            FitError { num_nodes: 0, reasons: BTreeMap::new(), pre_filter: None, plugins: BTreeSet::new() }.to_string(),
            "no nodes available to schedule pods"
        );
        let rejected = FitError {
            num_nodes: 2,
            reasons: BTreeMap::new(),
            pre_filter: Some("pod's RuntimeClass \"x\" not found".into()),
            plugins: BTreeSet::from(["RuntimeSupport"]),
        };
        assert_eq!(rejected.to_string(), "0/2 nodes are available: pod's RuntimeClass \"x\" not found.");
    }

    #[test]
    fn big_clusters_score_a_sample() {
        assert_eq!(num_feasible_nodes_to_find(50), 50);
        assert_eq!(num_feasible_nodes_to_find(300), 300 * 48 / 100);
        assert_eq!(num_feasible_nodes_to_find(1000), 420);
        assert_eq!(num_feasible_nodes_to_find(100_000), 5000);
        assert_eq!(num_feasible_nodes_to_find(120), 100);
    }

    #[test]
    fn normalizing_scales_to_the_maximum() {
        let mut scores = vec![0, 5, 10];
        default_normalize(&mut scores, false);
        assert_eq!(scores, vec![0, 50, 100]);
        let mut scores = vec![0, 5, 10];
        default_normalize(&mut scores, true);
        assert_eq!(scores, vec![100, 50, 0]);
        let mut zeros = vec![0, 0];
        default_normalize(&mut zeros, true);
        assert_eq!(zeros, vec![100, 100]);
    }

    #[test]
    fn the_best_total_wins_and_ties_are_shared() {
        assert_eq!(select_best(&[1, 5, 3], || 0), 1);
        // With a random source that always says "take it", the last of the tied wins.
        assert_eq!(select_best(&[5, 1, 5, 5], || 0), 3);
        assert_eq!(select_best(&[5, 1, 5, 5], || 1), 0);
    }

    #[test]
    fn requests_take_the_largest_init_container_overhead_and_defaults() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": true}]},
            "spec": {
                "containers": [
                    {"name": "a", "image": "ticker:v1", "resources": {"requests": {"cpu": "200m", "memory": "64Mi"}}},
                    {"name": "b", "image": "busybox"},
                ],
                "initContainers": [{"name": "i", "image": "ticker:v1", "resources": {"requests": {"cpu": "1", "ephemeral-storage": "1Gi"}}}],
                "overhead": {"cpu": "10m"},
            },
        }))
        .unwrap();
        let info = PodInfo::new(Arc::new(pod));
        assert_eq!(info.requests, Resources { milli_cpu: 1010, memory: 64 << 20, ephemeral_storage: 1 << 30 });
        assert_eq!(info.non_zero_requests.milli_cpu, 1010);
        assert_eq!(info.non_zero_requests.memory, (64 << 20) + DEFAULT_MEMORY_REQUEST);
        assert_eq!(info.owner_uid.as_deref(), Some("rs-uid"));
        assert_eq!(info.images, vec!["busybox:latest".to_string(), "ticker:v1".to_string()]);
    }
}
