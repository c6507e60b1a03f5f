//! The agent's `/metrics`: what runs on the node, read when scraped, in the Prometheus
//! (OpenMetrics) text format. Containers are reported under the names the kubelet's resource
//! metrics use (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`, and the
//! `pod_` sums), from each shim's accounting: cgroups for Linux containers, the wasmtime shim's own
//! counters (linear memory, and the time spent polling the guest) for Wasm. Functions served by
//! the node's gateway are reported as `wharf_function_*` from [`crate::gateway::stats`].

use std::collections::BTreeMap;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use wharf_shim::Stats;

pub use crate::exec::RunningContainers;
use crate::gateway::stats::{FunctionStats, LATENCY_BUCKETS};

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
    registry.register(
        "pod_memory_working_set_bytes",
        "Current memory use of the pod's containers in bytes",
        pod_memory,
    );
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FunctionLabels {
    namespace: String,
    function: String,
}

/// A latency histogram as the gateway counted it (per bucket, not cumulative, and the sum).
#[derive(Debug, Default)]
struct LatencySnapshot(std::sync::Mutex<(Vec<u64>, f64)>);

impl TypedMetric for LatencySnapshot {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencySnapshot {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (counts, sum) = &*self.0.lock().unwrap_or_else(|e| e.into_inner());
        // The encoder sums the buckets up itself.
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(counts.iter().copied()).collect();
        let count = counts.iter().sum();
        encoder.encode_histogram::<NoLabelSet>(*sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Registers the gateway's per-function families for `functions` in `registry`.
pub fn register_functions(registry: &mut Registry, functions: &[FunctionStats]) {
    let requests = Family::<FunctionLabels, Counter>::default();
    let errors = Family::<FunctionLabels, Counter>::default();
    let cold_starts = Family::<FunctionLabels, Counter>::default();
    let in_flight = Family::<FunctionLabels, Gauge>::default();
    let latency = Family::<FunctionLabels, LatencySnapshot>::default();
    for f in functions {
        let labels = FunctionLabels { namespace: f.namespace.clone(), function: f.name.clone() };
        requests.get_or_create(&labels).inc_by(f.requests);
        errors.get_or_create(&labels).inc_by(f.errors);
        cold_starts.get_or_create(&labels).inc_by(f.cold_starts);
        in_flight.get_or_create(&labels).set(i64::try_from(f.in_flight).unwrap_or(i64::MAX));
        *latency.get_or_create(&labels).0.lock().unwrap_or_else(|e| e.into_inner()) =
            (f.latency_counts.clone(), f.latency_sum_seconds);
    }
    registry.register("wharf_function_requests", "Requests the node's gateway answered per function", requests);
    registry.register("wharf_function_errors", "Requests answered with a 5xx or refused for overload", errors);
    registry.register("wharf_function_cold_starts", "Requests that had to load or compile the function", cold_starts);
    registry.register("wharf_function_in_flight", "Requests being served now", in_flight);
    registry.register(
        "wharf_function_request_duration_seconds",
        "Time from a request's arrival at the gateway to its response head",
        latency,
    );
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
            text.contains(
                r#"container_memory_working_set_bytes{namespace="default",pod="web",container="app"} 4194304"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"container_cpu_usage_seconds_total{namespace="default",pod="web",container="sidecar"} 0.5"#
            )
        );
        assert!(text.contains(r#"pod_memory_working_set_bytes{namespace="default",pod="web"} 5242880"#));
        assert!(text.contains(r#"pod_cpu_usage_seconds_total{namespace="default",pod="web"} 2.0"#), "{text}");
    }

    #[test]
    fn functions_are_reported_with_a_cumulative_latency_histogram() {
        let mut counts = vec![0; LATENCY_BUCKETS.len() + 1];
        counts[0] = 3; // <= 0.5 ms
        counts[2] = 1; // <= 2.5 ms
        let stats = FunctionStats {
            namespace: "default".into(),
            name: "hello".into(),
            in_flight: 1,
            requests: 4,
            errors: 1,
            cold_starts: 1,
            latency_counts: counts,
            latency_sum_seconds: 0.004,
        };
        let mut registry = Registry::default();
        register_functions(&mut registry, &[stats]);
        let text = encode(&registry);
        let labels = r#"namespace="default",function="hello""#;
        for line in [
            format!("wharf_function_requests_total{{{labels}}} 4"),
            format!("wharf_function_errors_total{{{labels}}} 1"),
            format!("wharf_function_cold_starts_total{{{labels}}} 1"),
            format!("wharf_function_in_flight{{{labels}}} 1"),
            format!("wharf_function_request_duration_seconds_bucket{{le=\"0.0005\",{labels}}} 3"),
            format!("wharf_function_request_duration_seconds_bucket{{le=\"0.001\",{labels}}} 3"),
            format!("wharf_function_request_duration_seconds_bucket{{le=\"0.0025\",{labels}}} 4"),
            format!("wharf_function_request_duration_seconds_bucket{{le=\"+Inf\",{labels}}} 4"),
            format!("wharf_function_request_duration_seconds_count{{{labels}}} 4"),
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line} in:\n{text}");
        }
    }
}
