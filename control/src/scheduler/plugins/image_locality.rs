//! ImageLocality: a node that already holds the pod's images (node.status.images) scores
//! higher, weighted by image size and by how many nodes hold it (an image every node has says
//! little), as kube-scheduler's plugin.

use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{CycleState, MAX_NODE_SCORE, ScorePlugin};

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// Per image of the pod: how many nodes hold it, and of how many.
struct Spread {
    image_nodes: Vec<usize>,
    total_nodes: usize,
}

pub struct ImageLocality;

impl ScorePlugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }

    fn pre_score(&self, state: &mut CycleState, cache: &Cache, _nodes: &[&NodeInfo]) {
        let image_nodes = state.pod.images.iter().map(|i| cache.nodes_with_image(i)).collect();
        state.write(Spread { image_nodes, total_nodes: cache.num_nodes() });
    }

    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(spread) = state.read::<Spread>() else { return 0 };
        if node.images.is_empty() || spread.total_nodes == 0 {
            return 0;
        }
        let sum: i64 = state
            .pod
            .images
            .iter()
            .zip(&spread.image_nodes)
            .filter_map(|(image, &holders)| {
                let size = *node.images.get(image)?;
                Some((size as i128 * holders as i128 / spread.total_nodes as i128) as i64)
            })
            .sum();
        let containers = state
            .pod
            .spec()
            .map(|s| s.containers.len() + s.init_containers.as_ref().map_or(0, Vec::len))
            .unwrap_or(1)
            .max(1) as i64;
        let max = MAX_CONTAINER_THRESHOLD * containers;
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::framework::RuntimeRequirements;
    use serde_json::json;

    #[test]
    fn nodes_holding_big_images_score_higher() {
        let mut cache = Cache::default();
        let holds =
            |size: i64| json!({"status": {"images": [{"names": ["registry/x:1", "ticker:v1"], "sizeBytes": size}]}});
        cache.upsert_node(node("big", holds(500 * MB)));
        cache.upsert_node(node("small", holds(MB)));
        cache.upsert_node(node("none", json!({})));
        let mut state = CycleState::new(pod("p", json!({})), RuntimeRequirements::default());
        ImageLocality.pre_score(&mut state, &cache, &[]);
        let score = |name: &str| ImageLocality.score(&state, cache.node(name).unwrap());
        // 500 MiB held by 2 of 3 nodes: (333 MiB - 23 MiB) of (1000 - 23) MiB.
        assert_eq!(
            score("big"),
            100 * ((500 * MB * 2 / 3) - MIN_THRESHOLD) / (MAX_CONTAINER_THRESHOLD - MIN_THRESHOLD)
        );
        assert!(score("big") > 0);
        assert_eq!(score("small"), 0, "below the threshold");
        assert_eq!(score("none"), 0);
    }
}
