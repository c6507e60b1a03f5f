//! The scheduler, in the manner of kube-scheduler: watches feed an incremental [`cache`] of
//! nodes and the pods on them, and a [`queue`] of pending pods; the loop pops one pod at a
//! time and runs the [`framework`]'s filter and score [`plugins`] on it, assumes it on the
//! chosen node at once, and binds it (`pods/binding`) in the background while the next pod is
//! scheduled, up to [`Options::bind_concurrency`] binds at a time. A pod that fits nowhere
//! keeps PodScheduled=False (reason Unschedulable, kube-scheduler's message) with a
//! FailedScheduling event when the message changes, and waits for a cluster change or its
//! backoff.

pub mod cache;
pub mod framework;
pub mod plugins;
pub mod queue;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use self::cache::Cache;
use self::framework::{CycleState, FitError, PodInfo, RuntimeRequirements};
use self::plugins::inter_pod_affinity::NAME as INTER_POD_AFFINITY;
use self::plugins::pod_topology_spread::NAME as POD_TOPOLOGY_SPREAD;
use self::plugins::runtime_support::ImageRuntimes;
use self::queue::SchedulingQueue;
use crate::events::{EventType, Recorder, reference};

/// The scheduler name pods ask for by default; pods naming another are left alone.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bindings written at the same time while the next pods are scheduled.
    pub bind_concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { bind_concurrency: 128 }
    }
}

/// Counters a benchmark (or a test) can read while the scheduler runs.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Scheduling cycles run (a pod retried counts again).
    pub attempts: AtomicU64,
    /// Cycles that found no node.
    pub unschedulable: AtomicU64,
    /// Bindings written.
    pub bound: AtomicU64,
    /// Bindings that failed.
    pub bind_errors: AtomicU64,
    /// Microseconds from a pod's arrival in the queue to its binding, per bound pod (the
    /// first million).
    latencies_us: Mutex<Vec<u64>>,
}

impl Metrics {
    const MAX_SAMPLES: usize = 1_000_000;

    fn observe(&self, latency: Duration) {
        if let Ok(mut samples) = self.latencies_us.lock()
            && samples.len() < Self::MAX_SAMPLES
        {
            samples.push(latency.as_micros() as u64);
        }
    }

    /// The scheduling latency (queue arrival → bound) at quantile `q` (0.5, 0.99) so far.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let mut samples = self.latencies_us.lock().ok()?.clone();
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let i = ((samples.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        Some(Duration::from_micros(samples[i]))
    }
}

/// State shared by the watches, the scheduling loop and the bind tasks.
struct Shared {
    cache: Mutex<Cache>,
    queue: Mutex<SchedulingQueue>,
    wake: Notify,
    runtime_classes: Mutex<HashMap<String, Arc<RuntimeClass>>>,
    /// The last Unschedulable message written per pod uid.
    reported: Mutex<HashMap<String, String>>,
    metrics: Arc<Metrics>,
}

/// Locks `mutex`, taking it over if a panicking holder poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn uid_of(meta: &ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_default()
}

fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Whether this scheduler is responsible for the pending pod.
fn ours(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| s.scheduler_name.as_deref().is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME))
}

impl Shared {
    /// Something changed that may let pending pods fit.
    fn cluster_changed(&self) {
        lock(&self.queue).move_all(Instant::now());
        self.wake.notify_one();
    }

    fn on_pod(&self, pod: Pod) {
        let uid = uid_of(&pod.metadata);
        if let Some(node) = bound_node(&pod) {
            lock(&self.queue).delete(&uid);
            lock(&self.reported).remove(&uid);
            if is_terminal(&pod) {
                if lock(&self.cache).remove_pod(&uid) {
                    self.cluster_changed();
                }
            } else {
                let node = node.to_string();
                let info = Arc::new(PodInfo::new(Arc::new(pod)));
                let newly_bound = {
                    let mut cache = lock(&self.cache);
                    let confirmed = cache.has_pod(&uid) && !cache.is_assumed(&uid);
                    cache.add_bound_pod(info, &node);
                    !confirmed
                };
                if newly_bound {
                    // A pod on a node may be what an affinity or spread constraint waits for.
                    lock(&self.queue).move_rejected_by(&[INTER_POD_AFFINITY, POD_TOPOLOGY_SPREAD], Instant::now());
                    self.wake.notify_one();
                }
            }
        } else if !ours(&pod) || pod.metadata.deletion_timestamp.is_some() {
            lock(&self.queue).delete(&uid);
        } else if !lock(&self.cache).is_assumed(&uid) {
            lock(&self.queue).add(Arc::new(pod), Instant::now());
            self.wake.notify_one();
        }
    }

    fn on_pod_deleted(&self, pod: &Pod) {
        let uid = uid_of(&pod.metadata);
        lock(&self.queue).delete(&uid);
        lock(&self.reported).remove(&uid);
        if lock(&self.cache).remove_pod(&uid) {
            self.cluster_changed();
        }
    }

    fn on_node(&self, node: Node) {
        if lock(&self.cache).upsert_node(Arc::new(node)) {
            self.cluster_changed();
        }
    }

    fn on_node_deleted(&self, node: &Node) {
        lock(&self.cache).remove_node(node.metadata.name.as_deref().unwrap_or_default());
    }
}

/// Runs the scheduler until the task is dropped.
pub async fn run(client: kube::Client) {
    run_with(client, Options::default(), Arc::default()).await
}

/// Runs the scheduler with `options`, counting into `metrics`, until the task is dropped.
pub async fn run_with(client: kube::Client, options: Options, metrics: Arc<Metrics>) {
    let shared = Arc::new(Shared {
        cache: Mutex::default(),
        queue: Mutex::default(),
        wake: Notify::new(),
        runtime_classes: Mutex::default(),
        reported: Mutex::default(),
        metrics,
    });
    let (nodes_ready, mut nodes_listed) = tokio::sync::watch::channel(false);
    let (pods_ready, mut pods_listed) = tokio::sync::watch::channel(false);
    tokio::spawn(watch_nodes(client.clone(), shared.clone(), nodes_ready));
    tokio::spawn(watch_pods(client.clone(), shared.clone(), pods_ready));
    tokio::spawn(watch_runtime_classes(client.clone(), shared.clone()));
    // Schedule only once the cache has every node and every bound pod.
    let _ = nodes_listed.wait_for(|listed| *listed).await;
    let _ = pods_listed.wait_for(|listed| *listed).await;
    tracing::info!(nodes = lock(&shared.cache).num_nodes(), "scheduler started");
    schedule_loop(client, shared, options).await;
}

/// A watch stream of `api` with kube-runtime's default backoff.
fn watch<K>(api: Api<K>) -> impl Stream<Item = watcher::Event<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, watcher::Config::default()).default_backoff().filter_map(|event| async move {
        match event {
            Ok(event) => Some(event),
            Err(e) => {
                tracing::warn!(error = %e, "scheduler watch failed; retrying");
                None
            }
        }
    })
}

async fn watch_nodes(client: kube::Client, shared: Arc<Shared>, ready: tokio::sync::watch::Sender<bool>) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut events = std::pin::pin!(watch(Api::<Node>::all(client)));
    while let Some(event) = events.next().await {
        match event {
            watcher::Event::Init => seen.clear(),
            watcher::Event::InitApply(node) => {
                seen.insert(node.metadata.name.clone().unwrap_or_default());
                shared.on_node(node);
            }
            watcher::Event::InitDone => {
                let gone: Vec<String> =
                    lock(&shared.cache).node_names().into_iter().filter(|n| !seen.contains(n)).collect();
                for name in gone {
                    lock(&shared.cache).remove_node(&name);
                }
                let _ = ready.send(true);
            }
            watcher::Event::Apply(node) => shared.on_node(node),
            watcher::Event::Delete(node) => shared.on_node_deleted(&node),
        }
    }
}

async fn watch_pods(client: kube::Client, shared: Arc<Shared>, ready: tokio::sync::watch::Sender<bool>) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut events = std::pin::pin!(watch(Api::<Pod>::all(client)));
    while let Some(event) = events.next().await {
        match event {
            watcher::Event::Init => seen.clear(),
            watcher::Event::InitApply(pod) => {
                seen.insert(uid_of(&pod.metadata));
                shared.on_pod(pod);
            }
            watcher::Event::InitDone => {
                // An assumed pod still exists (its binding is in flight), so it is in the listing:
                // whatever the listing lacks is gone.
                let gone: Vec<String> =
                    lock(&shared.cache).pod_uids().into_iter().filter(|uid| !seen.contains(uid)).collect();
                for uid in gone {
                    lock(&shared.cache).remove_pod(&uid);
                }
                let mut queue = lock(&shared.queue);
                for uid in queue.uids().into_iter().filter(|uid| !seen.contains(uid)) {
                    queue.delete(&uid);
                }
                drop(queue);
                seen = HashSet::new();
                let _ = ready.send(true);
                shared.cluster_changed();
            }
            watcher::Event::Apply(pod) => shared.on_pod(pod),
            watcher::Event::Delete(pod) => shared.on_pod_deleted(&pod),
        }
    }
}

async fn watch_runtime_classes(client: kube::Client, shared: Arc<Shared>) {
    let mut events = std::pin::pin!(watch(Api::<RuntimeClass>::all(client)).touched_objects_or_deleted());
    while let Some((class, deleted)) = events.next().await {
        let name = class.metadata.name.clone().unwrap_or_default();
        if deleted {
            lock(&shared.runtime_classes).remove(&name);
        } else {
            lock(&shared.runtime_classes).insert(name, Arc::new(class));
            shared.cluster_changed();
        }
    }
}

/// Turns watch events into `(object, deleted)`, keeping init listings as applies.
trait TouchedOrDeleted<K>: Stream<Item = watcher::Event<K>> + Sized {
    fn touched_objects_or_deleted(self) -> impl Stream<Item = (K, bool)> {
        self.flat_map(|event| {
            futures::stream::iter(match event {
                watcher::Event::Apply(k) | watcher::Event::InitApply(k) => Some((k, false)),
                watcher::Event::Delete(k) => Some((k, true)),
                watcher::Event::Init | watcher::Event::InitDone => None,
            })
        })
    }
}

impl<K, S: Stream<Item = watcher::Event<K>>> TouchedOrDeleted<K> for S {}

/// What decides the pod's runtimes: its RuntimeClass, or its images.
async fn runtime_requirements(shared: &Shared, images: &ImageRuntimes, pod: &Pod) -> RuntimeRequirements {
    match pod.spec.as_ref().and_then(|s| s.runtime_class_name.as_deref()).filter(|n| !n.is_empty()) {
        Some(name) => match lock(&shared.runtime_classes).get(name) {
            Some(class) => RuntimeRequirements { runtime_class: Some(class.clone()), ..Default::default() },
            None => RuntimeRequirements { missing_runtime_class: Some(name.to_string()), ..Default::default() },
        },
        None => RuntimeRequirements { image_runtimes: images.for_pod(pod).await, ..Default::default() },
    }
}

async fn schedule_loop(client: kube::Client, shared: Arc<Shared>, options: Options) {
    let mut framework = plugins::default_framework();
    let images = ImageRuntimes::new(client.clone());
    let recorder = Recorder::new(client.clone(), SCHEDULER_NAME);
    let binds = Arc::new(Semaphore::new(options.bind_concurrency.max(1)));
    tokio::spawn(log_progress(shared.clone(), binds.clone(), options.bind_concurrency.max(1)));
    loop {
        let popped = lock(&shared.queue).pop(Instant::now());
        let Some(popped) = popped else {
            let next = lock(&shared.queue).next_backoff();
            let deadline =
                (Instant::now() + Duration::from_secs(1)).min(next.unwrap_or(Instant::now() + Duration::from_secs(1)));
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            continue;
        };
        let pod = popped.pod.clone();
        let uid = uid_of(&pod.metadata);
        if pod.metadata.deletion_timestamp.is_some() || bound_node(&pod).is_some() {
            lock(&shared.queue).delete(&uid);
            continue;
        }
        shared.metrics.attempts.fetch_add(1, Ordering::Relaxed);
        let runtime = runtime_requirements(&shared, &images, &pod).await;
        let info = Arc::new(PodInfo::new(pod.clone()));
        let mut state = CycleState::new(info.clone(), runtime);
        let chosen = {
            let mut cache = lock(&shared.cache);
            let chosen = framework.schedule(&mut state, &cache);
            if let Ok(node) = &chosen {
                cache.assume(info, node);
            }
            chosen
        };
        match chosen {
            Ok(node) => {
                lock(&shared.queue).done(&uid);
                lock(&shared.reported).remove(&uid);
                let Ok(permit) = binds.clone().acquire_owned().await else { return };
                let (client, shared, recorder) = (client.clone(), shared.clone(), recorder.clone());
                tokio::spawn(async move {
                    bind(&client, &shared, &recorder, popped, &node).await;
                    drop(permit);
                });
            }
            Err(error) => {
                shared.metrics.unschedulable.fetch_add(1, Ordering::Relaxed);
                lock(&shared.queue).unschedulable(&uid, popped.cycle, error.plugins.clone(), Instant::now());
                report_unschedulable(&client, &shared, &recorder, &pod, &error);
            }
        }
    }
}

/// Logs what the scheduler did every 10 s, when it did anything.
async fn log_progress(shared: Arc<Shared>, binds: Arc<Semaphore>, concurrency: usize) {
    let mut last = (0, 0, 0);
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let m = &shared.metrics;
        let now = (
            m.attempts.load(Ordering::Relaxed),
            m.bound.load(Ordering::Relaxed),
            m.bind_errors.load(Ordering::Relaxed),
        );
        if now == last {
            continue;
        }
        let (active, backoff, unschedulable) = lock(&shared.queue).counts();
        tracing::info!(
            attempts = now.0 - last.0,
            bound = now.1 - last.1,
            bind_errors = now.2 - last.2,
            binding = concurrency - binds.available_permits(),
            active,
            backoff,
            unschedulable,
            p50 = ?m.latency_quantile(0.5),
            p99 = ?m.latency_quantile(0.99),
            "scheduler progress in the last 10 s"
        );
        last = now;
    }
}

/// Writes the binding; the Scheduled event is stamped before it (so it sorts before the
/// node's first event for the pod) and recorded once it succeeded. A failed binding takes
/// the pod off its node in the cache and sends it back to the queue, unless the pod is gone
/// or already bound (the watch tells the rest).
async fn bind(client: &kube::Client, shared: &Shared, recorder: &Recorder, popped: queue::Popped, node: &str) {
    let pod = &popped.pod;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = uid_of(&pod.metadata);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let stamped = jiff::Timestamp::now();
    match api.create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding).await {
        Ok(_) => {
            shared.metrics.bound.fetch_add(1, Ordering::Relaxed);
            shared.metrics.observe(popped.added.elapsed());
            let message = format!("Successfully assigned {namespace}/{name} to {node}");
            recorder.record_at(reference(pod.as_ref()), stamped, EventType::Normal, "Scheduled", &message);
        }
        Err(e) => {
            shared.metrics.bind_errors.fetch_add(1, Ordering::Relaxed);
            lock(&shared.cache).forget(&uid);
            // The node the pod was assumed on has room again.
            shared.cluster_changed();
            let gone = matches!(&e, kube::Error::Api(status) if status.code == 404 || status.code == 409);
            if gone {
                tracing::debug!(pod = %format!("{namespace}/{name}"), error = %e, "binding refused; the watch has the pod's state");
            } else {
                tracing::warn!(pod = %format!("{namespace}/{name}"), node, error = %e, "binding failed; retrying");
                lock(&shared.queue).retry(popped.pod.clone(), popped.attempts, popped.added, Instant::now());
                shared.wake.notify_one();
            }
        }
    }
}

/// The PodScheduled=False condition and a FailedScheduling event, when the message changed.
fn report_unschedulable(client: &kube::Client, shared: &Shared, recorder: &Recorder, pod: &Arc<Pod>, error: &FitError) {
    let uid = uid_of(&pod.metadata);
    let message = error.to_string();
    {
        let mut reported = lock(&shared.reported);
        if reported.get(&uid) == Some(&message) {
            return;
        }
        reported.insert(uid, message.clone());
    }
    tracing::debug!(pod = pod.metadata.name.as_deref().unwrap_or_default(), %message, "unschedulable");
    recorder.record(pod.as_ref(), EventType::Warning, "FailedScheduling", &message);
    let api: Api<Pod> = Api::namespaced(client.clone(), pod.metadata.namespace.as_deref().unwrap_or_default());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null,
        "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }]}});
    tokio::spawn(async move {
        if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(status)).await {
            tracing::debug!(error = %e, "cannot mark the pod unschedulable");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn shared() -> Shared {
        Shared {
            cache: Mutex::default(),
            queue: Mutex::default(),
            wake: Notify::new(),
            runtime_classes: Mutex::default(),
            reported: Mutex::default(),
            metrics: Arc::default(),
        }
    }

    fn pod(name: &str, extra: serde_json::Value) -> Pod {
        let mut value = json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"containers": [{"name": "c", "image": "ticker:v1"}]},
        });
        cache::tests::merge(&mut value, extra);
        serde_json::from_value(value).unwrap()
    }

    fn node(name: &str) -> Node {
        (*cache::tests::node(name, json!({}))).clone()
    }

    /// Pops the next pod and fails it, as a cycle that found no node.
    fn fail_next(shared: &Shared) -> String {
        let popped = lock(&shared.queue).pop(Instant::now()).expect("a pod to schedule");
        let uid = uid_of(&popped.pod.metadata);
        lock(&shared.queue).unschedulable(&uid, popped.cycle, BTreeSet::new(), Instant::now());
        uid
    }

    #[test]
    fn pending_pods_are_queued_unless_another_scheduler_owns_them_or_they_are_deleted() {
        let shared = shared();
        shared.on_pod(pod("mine", json!({})));
        shared.on_pod(pod("theirs", json!({"spec": {"schedulerName": "other"}})));
        shared.on_pod(pod("leaving", json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})));
        let queue = lock(&shared.queue);
        assert!(queue.contains("mine") && !queue.contains("theirs") && !queue.contains("leaving"));
    }

    #[test]
    fn bound_pods_fill_the_cache_and_leave_the_queue() {
        let shared = shared();
        shared.on_node(node("a"));
        shared.on_pod(pod("p", json!({})));
        shared.on_pod(pod("p", json!({"spec": {"nodeName": "a"}})));
        assert!(!lock(&shared.queue).contains("p"));
        assert_eq!(lock(&shared.cache).node("a").unwrap().pods.len(), 1);
        // An assumed pod's own status updates do not queue it again.
        lock(&shared.cache).assume(Arc::new(PodInfo::new(Arc::new(pod("q", json!({}))))), "a");
        shared.on_pod(pod("q", json!({"status": {"conditions": []}})));
        assert!(!lock(&shared.queue).contains("q"));
    }

    #[test]
    fn unschedulable_pods_are_retried_when_a_pod_finishes_or_goes_or_a_node_changes() {
        let shared = shared();
        shared.on_node(node("a"));
        shared.on_pod(pod("running", json!({"spec": {"nodeName": "a"}})));
        shared.on_pod(pod("gone", json!({"spec": {"nodeName": "a"}})));
        shared.on_pod(pod("waiting", json!({})));
        let counts = || lock(&shared.queue).counts();

        fail_next(&shared);
        assert_eq!(counts(), (0, 0, 1));
        shared.on_pod(pod("running", json!({"spec": {"nodeName": "a"}, "status": {"phase": "Succeeded"}})));
        assert_eq!(counts(), (0, 1, 0), "a finished pod frees room");

        std::thread::sleep(queue::INITIAL_BACKOFF);
        fail_next(&shared);
        shared.on_pod_deleted(&pod("gone", json!({"spec": {"nodeName": "a"}})));
        assert_eq!(counts(), (0, 1, 0), "a deleted pod frees room");

        std::thread::sleep(queue::backoff(2));
        fail_next(&shared);
        shared.on_node(node("a"));
        assert_eq!(counts(), (0, 0, 1), "a heartbeat changes nothing");
        let mut tainted = node("a");
        tainted.spec.get_or_insert_default().unschedulable = Some(true);
        shared.on_node(tainted);
        assert_eq!(counts(), (0, 1, 0), "a node update does");
    }
}
