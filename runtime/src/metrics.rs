//! The agent's `/metrics`: what runs on the node, read when scraped, in the Prometheus
//! (OpenMetrics) text format. Containers are reported under the names the kubelet's resource
//! metrics use (`container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`, and the
//! `pod_` sums), from each shim's accounting: cgroups for Linux containers, the wasmtime shim's own
//! counters (linear memory, and the time spent polling the guest) for Wasm. Functions served by
//! the node's gateway are reported as `wharf_function_*` from [`crate::gateway::stats`]. The
//! node itself is reported as `node_cpu_usage_seconds_total` and `node_memory_working_set_bytes`
//! (the kubelet's resource metrics) from `/proc/stat` and `/proc/meminfo`.

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

/// The node's own resource use, as sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeSample {
    /// CPU time spent outside idle and I/O wait since boot, all CPUs.
    pub cpu_seconds: f64,
    /// Memory in use that the kernel cannot reclaim at once (total less available).
    pub memory_working_set_bytes: u64,
}

/// Clock ticks per second of `/proc/stat` (USER_HZ, 100 on every Linux architecture).
const USER_HZ: f64 = 100.0;

/// Samples the node now; None where `/proc` cannot be read.
pub fn sample_node() -> Option<NodeSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    Some(NodeSample { cpu_seconds: busy_cpu_seconds(&stat)?, memory_working_set_bytes: working_set(&meminfo)? })
}

/// The busy time of the `cpu` line of `/proc/stat`: user, nice, system, irq, softirq and steal
/// (guest time is already in user).
fn busy_cpu_seconds(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map_while(|v| v.parse().ok()).collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    (ticks.len() >= 4).then(|| (at(0) + at(1) + at(2) + at(5) + at(6) + at(7)) as f64 / USER_HZ)
}

/// `MemTotal - MemAvailable` of `/proc/meminfo`, in bytes.
fn working_set(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.split(':').next() == Some(name))?;
        let kib: u64 = line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(field("MemTotal")?.saturating_sub(field("MemAvailable")?))
}

/// Registers the node's families for `node` in `registry`.
pub fn register_node(registry: &mut Registry, node: &NodeSample) {
    let cpu = Counter::<f64>::default();
    cpu.inc_by(node.cpu_seconds);
    let memory = Gauge::<i64>::default();
    memory.set(i64::try_from(node.memory_working_set_bytes).unwrap_or(i64::MAX));
    registry.register("node_cpu_usage_seconds", "Cumulative CPU time the node spent busy, in seconds", cpu);
    registry.register("node_memory_working_set_bytes", "Memory in use on the node, in bytes", memory);
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
    fn the_node_is_read_from_proc_and_reported() {
        let stat = "cpu  100 20 30 4000 50 6 7 8 9 0\ncpu0 50 10 15 2000 25 3 3 4 0 0\nintr 1\n";
        assert_eq!(busy_cpu_seconds(stat), Some(1.71));
        let meminfo = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    6000000 kB\n";
        assert_eq!(working_set(meminfo), Some(10_000_000 * 1024));
        let mut registry = Registry::default();
        register_node(&mut registry, &NodeSample { cpu_seconds: 1.5, memory_working_set_bytes: 4096 });
        let text = encode(&registry);
        assert!(text.lines().any(|l| l == "node_cpu_usage_seconds_total 1.5"), "{text}");
        assert!(text.lines().any(|l| l == "node_memory_working_set_bytes 4096"), "{text}");
        let live = sample_node().expect("this machine has /proc");
        assert!(live.cpu_seconds > 0.0 && live.memory_working_set_bytes > 0, "{live:?}");
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
