//! The agent's `/metrics`: what runs on the node, read when scraped, in the Prometheus
//! (OpenMetrics) text format. Containers are reported under the names the kubelet's resource
//! metrics use (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`, and the
//! `pod_` sums), from each shim's accounting: cgroups for Linux containers, the wasmtime shim's own
//! counters (linear memory, and the time spent polling the guest) for Wasm.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use wharf_shim::Stats;

pub use crate::exec::RunningContainers;

/// The content type of what [`render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ContainerLabels {
    namespace: String,
    pod: String,
    container: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, EncodeLabelSet)]
struct PodLabels {
    namespace: String,
    pod: String,
}

/// One container's resource use, as sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSample {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub stats: Stats,
}

/// Samples every running container now.
pub fn sample(running: &RunningContainers) -> Vec<ContainerSample> {
    running
        .all()
        .into_iter()
        .map(|(namespace, pod, container, c)| ContainerSample { namespace, pod, container, stats: c.stats() })
        .collect()
}

/// Registers the container and pod families for `samples` in `registry`.
pub fn register_containers(registry: &mut Registry, samples: &[ContainerSample]) {
    let cpu = Family::<ContainerLabels, Counter<f64>>::default();
    let memory = Family::<ContainerLabels, Gauge>::default();
    let pod_cpu = Family::<PodLabels, Counter<f64>>::default();
    let pod_memory = Family::<PodLabels, Gauge>::default();
    let mut pods: BTreeMap<PodLabels, Stats> = BTreeMap::new();
    for s in samples {
        let labels =
            ContainerLabels { namespace: s.namespace.clone(), pod: s.pod.clone(), container: s.container.clone() };
        cpu.get_or_create(&labels).inc_by(s.stats.cpu_nanos as f64 / 1e9);
        memory.get_or_create(&labels).set(i64::try_from(s.stats.memory_bytes).unwrap_or(i64::MAX));
        let pod = pods.entry(PodLabels { namespace: s.namespace.clone(), pod: s.pod.clone() }).or_default();
        pod.cpu_nanos += s.stats.cpu_nanos;
        pod.memory_bytes += s.stats.memory_bytes;
    }
    for (labels, stats) in &pods {
        pod_cpu.get_or_create(labels).inc_by(stats.cpu_nanos as f64 / 1e9);
        pod_memory.get_or_create(labels).set(i64::try_from(stats.memory_bytes).unwrap_or(i64::MAX));
    }
    registry.register("container_cpu_usage_seconds", "Cumulative CPU time of the container in seconds", cpu);
    registry.register("container_memory_working_set_bytes", "Current memory use of the container in bytes", memory);
    registry.register("pod_cpu_usage_seconds", "Cumulative CPU time of the pod's containers in seconds", pod_cpu);
    registry.register("pod_memory_working_set_bytes", "Current memory use of the pod's containers in bytes", pod_memory);
}

/// Encodes `registry` in the text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pod: &str, container: &str, memory_bytes: u64, cpu_nanos: u64) -> ContainerSample {
        ContainerSample {
            namespace: "default".into(),
            pod: pod.into(),
            container: container.into(),
            stats: Stats { memory_bytes, cpu_nanos },
        }
    }

    #[test]
    fn containers_and_their_pods_are_reported() {
        let mut registry = Registry::default();
        register_containers(
            &mut registry,
            &[sample("web", "app", 4 << 20, 1_500_000_000), sample("web", "sidecar", 1 << 20, 500_000_000)],
        );
        let text = encode(&registry);
        assert!(
            text.contains(r#"container_memory_working_set_bytes{namespace="default",pod="web",container="app"} 4194304"#),
            "{text}"
        );
        assert!(text.contains(r#"container_cpu_usage_seconds_total{namespace="default",pod="web",container="sidecar"} 0.5"#));
        assert!(text.contains(r#"pod_memory_working_set_bytes{namespace="default",pod="web"} 5242880"#));
        assert!(text.contains(r#"pod_cpu_usage_seconds_total{namespace="default",pod="web"} 2.0"#), "{text}");
    }
}
