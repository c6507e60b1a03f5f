//! The scheduler's view of the cluster, kept up to date from watches: per node what the
//! scheduler needs (labels, taints, allocatable, images) and the pods on it with their summed
//! requests. A pod is *assumed* on its node as soon as it is chosen, before its binding is
//! written, and *forgotten* if the binding fails; the watch later confirms it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use super::framework::{PodInfo, Resources, quantity_milli};

/// One node and the pods on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    /// `None` while pods are known on a node the cache has not seen (or no longer has).
    pub node: Option<Arc<Node>>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub ready: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    /// Image name → size in bytes, from node.status.images (every name of each image).
    pub images: HashMap<String, i64>,
    pub pods: Vec<Arc<PodInfo>>,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    /// How many pods on the node each controller (by uid) owns.
    pub owner_counts: HashMap<String, u32>,
}

impl NodeInfo {
    /// A node as the scheduler sees it, without pods.
    pub fn from_node(node: Arc<Node>) -> Self {
        let mut info = NodeInfo { name: node.metadata.name.clone().unwrap_or_default(), ..Default::default() };
        info.set_node(node);
        info
    }

    fn set_node(&mut self, node: Arc<Node>) {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        self.ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let allocatable = status.and_then(|s| s.allocatable.as_ref());
        self.allocatable = Resources::from_list(allocatable);
        self.allowed_pods = allocatable.and_then(|a| a.get("pods")).map(|q| quantity_milli(&q.0) / 1000).unwrap_or(0);
        self.images = status
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|image| {
                let size = image.size_bytes.unwrap_or(0);
                image.names.iter().flatten().map(move |name| (super::framework::normalize_image(name), size))
            })
            .collect();
        self.node = Some(node);
    }

    /// Whether what the scheduler reads of the node differs (a heartbeat that only renews
    /// condition timestamps does not make pending pods worth retrying).
    fn same_for_scheduling(&self, other: &NodeInfo) -> bool {
        self.labels == other.labels
            && self.taints == other.taints
            && self.unschedulable == other.unschedulable
            && self.ready == other.ready
            && self.allocatable == other.allocatable
            && self.allowed_pods == other.allowed_pods
            && self.images == other.images
    }

    fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero_requests);
        if let Some(owner) = &pod.owner_uid {
            *self.owner_counts.entry(owner.clone()).or_default() += 1;
        }
        self.pods.push(pod);
    }

    fn remove_pod(&mut self, uid: &str) {
        if let Some(i) = self.pods.iter().position(|p| p.uid == uid) {
            let pod = self.pods.swap_remove(i);
            self.requested.sub(&pod.requests);
            self.non_zero_requested.sub(&pod.non_zero_requests);
            if let Some(owner) = &pod.owner_uid
                && let Some(count) = self.owner_counts.get_mut(owner)
            {
                *count -= 1;
                if *count == 0 {
                    self.owner_counts.remove(owner);
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct PodEntry {
    node: String,
    assumed: bool,
}

/// Nodes and the pods bound (or assumed) to them.
#[derive(Debug, Default)]
pub struct Cache {
    slots: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    num_nodes: usize,
    pods: HashMap<String, PodEntry>,
    /// Image name → how many nodes hold it.
    image_nodes: HashMap<String, usize>,
    /// Uids of pods with required anti-affinity terms (which other pods must respect).
    anti_affinity_pods: HashMap<String, String>,
}

impl Cache {
    /// Nodes the cache knows an object for.
    pub fn num_nodes(&self) -> usize {
        self.num_nodes
    }

    /// Every node slot, including placeholders for pods on unknown nodes (`node` is `None`).
    pub fn node_slots(&self) -> &[NodeInfo] {
        &self.slots
    }

    /// Nodes with an object.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.slots.iter().filter(|n| n.node.is_some())
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.slots[i])
    }

    /// How many nodes hold `image` (normalized).
    pub fn nodes_with_image(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// Pods (anywhere) with required anti-affinity terms, and their nodes.
    pub fn anti_affinity_pods(&self) -> impl Iterator<Item = (&PodInfo, &NodeInfo)> {
        self.anti_affinity_pods.iter().filter_map(|(uid, node)| {
            let node = self.node(node)?;
            node.pods.iter().find(|p| &p.uid == uid).map(|p| (p.as_ref(), node))
        })
    }

    fn slot(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.slots.push(NodeInfo { name: name.to_string(), ..Default::default() });
                self.index.insert(name.to_string(), self.slots.len() - 1);
                self.slots.len() - 1
            }
        };
        &mut self.slots[i]
    }

    fn count_images(&mut self, images: &HashMap<String, i64>, add: bool) {
        for name in images.keys() {
            let count = self.image_nodes.entry(name.clone()).or_default();
            if add {
                *count += 1;
            } else {
                *count = count.saturating_sub(1);
            }
        }
    }

    /// Adds or updates a node; true when something the scheduler reads changed (pending pods
    /// may fit now).
    pub fn upsert_node(&mut self, node: Arc<Node>) -> bool {
        let incoming = NodeInfo::from_node(node.clone());
        let slot = self.slot(&incoming.name);
        let was_known = slot.node.is_some();
        let changed = !was_known || !slot.same_for_scheduling(&incoming);
        let old_images = std::mem::take(&mut slot.images);
        slot.set_node(node);
        let new_images = slot.images.clone();
        if !was_known {
            self.num_nodes += 1;
        }
        if was_known {
            self.count_images(&old_images, false);
        }
        self.count_images(&new_images, true);
        changed
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else { return };
        if self.slots[i].node.take().is_some() {
            self.num_nodes -= 1;
            let images = std::mem::take(&mut self.slots[i].images);
            self.count_images(&images, false);
        }
        if self.slots[i].pods.is_empty() {
            self.remove_slot(i);
        }
    }

    fn remove_slot(&mut self, i: usize) {
        let removed = self.slots.swap_remove(i);
        self.index.remove(&removed.name);
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    /// Whether the pod is assumed (chosen, binding not yet confirmed by the watch).
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|p| p.assumed)
    }

    /// Whether the cache holds the pod on a node (bound or assumed).
    pub fn has_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: &str, assumed: bool) {
        self.remove_pod(&pod.uid);
        if !pod.required_anti_affinity.is_empty() {
            self.anti_affinity_pods.insert(pod.uid.clone(), node.to_string());
        }
        self.pods.insert(pod.uid.clone(), PodEntry { node: node.to_string(), assumed });
        self.slot(node).add_pod(pod);
    }

    /// Places a pod on the node chosen for it, before the binding is written.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.place(pod, node, true);
    }

    /// Takes back an assumed pod whose binding failed; a confirmed pod stays.
    pub fn forget(&mut self, uid: &str) {
        if self.is_assumed(uid) {
            self.remove_pod(uid);
        }
    }

    /// A pod the watch shows bound to `node` and not finished: confirms an assumed pod or adds it.
    pub fn add_bound_pod(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.place(pod, node, false);
    }

    /// Removes a pod (deleted, or finished); true if it was there.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(entry) = self.pods.remove(uid) else { return false };
        self.anti_affinity_pods.remove(uid);
        if let Some(&i) = self.index.get(&entry.node) {
            self.slots[i].remove_pod(uid);
            if self.slots[i].node.is_none() && self.slots[i].pods.is_empty() {
                self.remove_slot(i);
            }
        }
        true
    }

    /// Uids of all pods in the cache, assumed or confirmed.
    pub fn pod_uids(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    /// Names of all nodes with an object.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes().map(|n| n.name.clone()).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    pub fn node(name: &str, extra: serde_json::Value) -> Arc<Node> {
        let mut value = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        });
        merge(&mut value, extra);
        Arc::new(serde_json::from_value(value).unwrap())
    }

    pub fn pod(name: &str, extra: serde_json::Value) -> Arc<PodInfo> {
        let mut value = json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"containers": [{"name": "c", "image": "ticker:v1"}]},
        });
        merge(&mut value, extra);
        let pod: Pod = serde_json::from_value(value).unwrap();
        Arc::new(PodInfo::new(Arc::new(pod)))
    }

    /// JSON merge patch of `patch` into `value`.
    pub fn merge(value: &mut serde_json::Value, patch: serde_json::Value) {
        match (value, patch) {
            (serde_json::Value::Object(target), serde_json::Value::Object(patch)) => {
                for (k, v) in patch {
                    merge(target.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (target, patch) => *target = patch,
        }
    }

    #[test]
    fn assumed_pods_count_until_forgotten() {
        let mut cache = Cache::default();
        assert!(cache.upsert_node(node("a", json!({}))));
        let p = pod("p", json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}));
        cache.assume(p.clone(), "a");
        assert!(cache.is_assumed("p"));
        assert_eq!(cache.node("a").unwrap().requested.milli_cpu, 1000);
        assert_eq!(cache.node("a").unwrap().pods.len(), 1);
        cache.forget("p");
        assert!(!cache.has_pod("p"));
        assert_eq!(cache.node("a").unwrap().requested.milli_cpu, 0);
        // Once the watch confirms it, forgetting does nothing.
        cache.assume(p.clone(), "a");
        cache.add_bound_pod(p, "a");
        assert!(!cache.is_assumed("p"));
        cache.forget("p");
        assert_eq!(cache.node("a").unwrap().pods.len(), 1);
        assert!(cache.remove_pod("p"));
        assert_eq!(cache.node("a").unwrap().non_zero_requested, Resources::default());
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_their_node() {
        let mut cache = Cache::default();
        cache.add_bound_pod(pod("p", json!({})), "later");
        assert_eq!(cache.num_nodes(), 0);
        assert!(cache.nodes().next().is_none());
        cache.upsert_node(node("later", json!({})));
        assert_eq!(cache.num_nodes(), 1);
        assert_eq!(cache.node("later").unwrap().pods.len(), 1);
        cache.remove_node("later");
        assert_eq!(cache.num_nodes(), 0);
        assert!(cache.node("later").is_some(), "kept while it has pods");
        cache.remove_pod("p");
        assert!(cache.node("later").is_none());
    }

    #[test]
    fn heartbeats_are_not_changes_but_taints_are() {
        let mut cache = Cache::default();
        cache.upsert_node(node("a", json!({})));
        assert!(!cache.upsert_node(node("a", json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}}))));
        assert!(cache.upsert_node(node("a", json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}))));
    }

    #[test]
    fn image_counts_follow_nodes() {
        let mut cache = Cache::default();
        let images = json!({"status": {"images": [{"names": ["ticker:v1"], "sizeBytes": 1000}]}});
        cache.upsert_node(node("a", images.clone()));
        cache.upsert_node(node("b", images.clone()));
        cache.upsert_node(node("a", images));
        assert_eq!(cache.nodes_with_image("ticker:v1"), 2);
        cache.remove_node("b");
        assert_eq!(cache.nodes_with_image("ticker:v1"), 1);
    }
}
