//! `wharf bench scheduler`: scheduling throughput against light fake nodes, in the manner of kwok.
//!
//! A server of its own runs with `--no-agent`; the benchmark registers `--nodes` fake nodes (a
//! Ready Node with room for 110 pods and both runtime labels, and a Lease in kube-node-lease
//! renewed every 10 s, staggered) and a fake kubelet for all of them: one watch on the pods, and a
//! status patch (Running, Ready) with bounded concurrency for each pod bound to a fake node. It
//! runs nothing. Then `--pods` pods (an image the embedded registry does not hold, so no runtime
//! restriction; requests 100m CPU and 64Mi) are created from concurrent clients as fast as the API
//! takes them. Measured, all on the benchmark's clock: first create → last pod seen bound in the
//! watch (pods/s), per pod create response → nodeName seen (p50/p99), first create → all Running,
//! and the spread over the nodes.
//!
//! The peer, in the same run on a fresh server of the same kind with the same fake nodes: the
//! pods name another scheduler, and the benchmark binds them itself, round-robin through
//! pods/binding, with as many binding clients as creating ones — the API's ceiling for create +
//! bind, which Wharf's rate is reported as a ratio of.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Binding, Container, Node, ObjectReference, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::{
    Cpu, CpuMeter, REQUEST_LIMIT, SETTLE, Server, build, count, cpu_table, memory_total, meta, ms, percentile,
    problems_section, progress, secs, table, thousands, wasm,
};

const NAMESPACE: &str = "bench-scheduler";
const NODE_PREFIX: &str = "fake-node-";
const POD_PREFIX: &str = "pod-";
/// Not in the embedded registry (and never pulled: the fake nodes run nothing).
const IMAGE: &str = "registry.invalid/bench/pause:3.10";
/// The scheduler the peer's pods name, so Wharf's scheduler leaves them alone.
const PEER_SCHEDULER: &str = "bench-binder";
/// How often each fake node renews its Lease, as the agent (and the kubelet) do.
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// Lease renewals in flight at once.
const LEASE_CONCURRENCY: usize = 4;
/// Requests in flight at once while registering the fake nodes.
const REGISTER_CONCURRENCY: usize = 16;
/// Longest the fake nodes may take to register.
const REGISTER_LIMIT: Duration = Duration::from_secs(300);
/// Longest the server may take to stop once asked.
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// Reconnections of the pod watch before it gives up.
const WATCH_RECONNECTS: usize = 20;
/// Target: pods scheduled and bound per second.
const TARGET_RATE: f64 = 1000.0;

#[derive(clap::Args)]
pub struct SchedulerArgs {
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the temporary data dirs go (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Fake nodes to register.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Pods to create (and have scheduled).
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Creating clients, each with its own connection and one create in flight (the peer also
    /// binds with as many).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Status patches the fake kubelet has in flight at once.
    #[arg(long, default_value_t = 8)]
    kubelet_concurrency: usize,
    /// Longest wait, in seconds, for each phase: all bound, then all Running.
    #[arg(long, default_value_t = 300)]
    limit_secs: u64,
    /// Skip the peer run (for development only: the report then has no ratio).
    #[arg(long)]
    no_peer: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Wharf's scheduler binds the pods.
    Scheduler,
    /// The pods name another scheduler; the benchmark binds them round-robin.
    BindOnly,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Scheduler => "Wharf scheduler",
            Mode::BindOnly => "peer: bind-only (benchmark binds round-robin)",
        }
    }
}

pub async fn run(args: SchedulerArgs) -> Result<()> {
    if args.nodes == 0 || args.pods == 0 || args.clients == 0 || args.kubelet_concurrency == 0 {
        bail!("--nodes, --pods, --clients and --kubelet-concurrency must be at least 1");
    }
    if args.pods > args.nodes * PODS_PER_NODE {
        bail!("{} pods do not fit on {} nodes of {PODS_PER_NODE} pods", args.pods, args.nodes);
    }
    let base = super::bench_dir(args.dir.clone())?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut runs = Vec::new();
    let mut modes = vec![Mode::Scheduler];
    if !args.no_peer {
        modes.push(Mode::BindOnly);
    }
    for mode in modes {
        let dir = base.path().join(if mode == Mode::Scheduler { "wharf" } else { "peer" });
        runs.push(one_run(&args, &exe, &dir, mode).await?);
    }
    let report = render(&args, &runs, base.path(), &load_avg);
    print!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let problems: Vec<&String> = runs.iter().flat_map(|r| &r.problems).collect();
    if !problems.is_empty() {
        bail!(
            "not every pod was scheduled and Running as it should:\n  {}",
            problems.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("\n  ")
        );
    }
    Ok(())
}

/// What one run (Wharf's scheduler or the peer) measured.
struct Run {
    mode: Mode,
    register_time: Duration,
    /// Pods whose create was acknowledged, and the latencies of those calls (sorted).
    created: usize,
    create_latencies: Vec<Duration>,
    /// First create sent → last create acknowledged.
    creates_done_after: Duration,
    bound: usize,
    /// First create sent → last pod seen bound, if all were.
    all_bound_after: Option<Duration>,
    /// Create acknowledged → nodeName seen, per pod (sorted).
    to_bound: Vec<Duration>,
    running: usize,
    all_running_after: Option<Duration>,
    /// Fewest and most pods on one fake node.
    spread: (usize, usize),
    cpu_to_bound: Option<Cpu>,
    lease_renewals: usize,
    lease_failures: usize,
    kubelet_patches: usize,
    problems: Vec<String>,
}

/// What the watch saw of one pod, on the benchmark's clock.
#[derive(Clone, Copy, Default)]
struct Times {
    created: Option<Instant>,
    bound: Option<Instant>,
    node: Option<usize>,
    running: Option<Instant>,
    /// Handed to the fake kubelet.
    dispatched: bool,
}

#[derive(Default)]
struct Observed {
    pods: Vec<Times>,
    bound: usize,
    running: usize,
    problems: Vec<String>,
}

type Shared = Arc<Mutex<Observed>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Observed> {
    shared.lock().expect("observed lock")
}

/// Pods one fake node offers room for (kubelet's default is 110).
const PODS_PER_NODE: usize = 110;

fn node_name(i: usize) -> String {
    format!("{NODE_PREFIX}{i:05}")
}

fn fake_node(i: usize) -> (Node, serde_json::Value) {
    let name = node_name(i);
    let labels = [
        ("kubernetes.io/hostname", name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("runtime.wharf.dev/wasmtime", "true"),
        ("runtime.wharf.dev/youki", "true"),
        ("type", "fake"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let node = Node {
        metadata: ObjectMeta { name: Some(name.clone()), labels: Some(labels), ..Default::default() },
        spec: Some(Default::default()),
        status: None,
    };
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": "fake node (wharf bench scheduler)",
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let resources = json!({"cpu": "32", "memory": "256Gi", "pods": PODS_PER_NODE.to_string(),
                           "ephemeral-storage": "100Gi"});
    let status = json!({"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            condition("Ready", "True", "KubeletReady"),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "nodeInfo": {"architecture": "amd64", "bootID": "", "containerRuntimeVersion": "fake://", "kernelVersion": "",
                     "kubeProxyVersion": "", "kubeletVersion": "v1.33.0-fake", "machineID": "", "operatingSystem": "linux",
                     "osImage": "fake", "systemUUID": ""},
    }});
    (node, status)
}

/// Registers the fake nodes (Node, its status, its Lease).
async fn register(client: &kube::Client, nodes: usize) -> Result<()> {
    let node_api: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let results = wasm::bounded(nodes, REGISTER_CONCURRENCY, |i| {
        let (node_api, leases) = (&node_api, &leases);
        async move {
            let (node, status) = fake_node(i);
            let name = node.metadata.name.clone().unwrap_or_default();
            node_api.create(&PostParams::default(), &node).await.with_context(|| format!("creating node {name}"))?;
            node_api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .with_context(|| format!("setting the status of node {name}"))?;
            let lease = Lease {
                metadata: meta(&name),
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.clone()),
                    lease_duration_seconds: Some(40),
                    renew_time: Some(MicroTime(jiff::Timestamp::now())),
                    ..Default::default()
                }),
            };
            leases.create(&PostParams::default(), &lease).await.with_context(|| format!("creating lease {name}"))?;
            Ok::<_, anyhow::Error>(())
        }
    })
    .await;
    results.into_iter().collect()
}

/// Renews every fake node's Lease once per [`LEASE_RENEW`], spread evenly over the period.
async fn renew_leases(client: kube::Client, nodes: usize, renewals: Arc<AtomicUsize>, failures: Arc<AtomicUsize>) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let permits = Arc::new(tokio::sync::Semaphore::new(LEASE_CONCURRENCY));
    let mut tick = tokio::time::interval(LEASE_RENEW / nodes as u32);
    tick.tick().await;
    for i in (0..nodes).cycle() {
        tick.tick().await;
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let (leases, renewals, failures) = (leases.clone(), renewals.clone(), failures.clone());
        tokio::spawn(async move {
            let patch = json!({"spec": {"renewTime": MicroTime(jiff::Timestamp::now())}});
            match leases.patch(&node_name(i), &PatchParams::default(), &Patch::Merge(patch)).await {
                Ok(_) => renewals.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::debug!(error = %e, "lease renewal failed");
                    failures.fetch_add(1, Ordering::Relaxed)
                }
            };
            drop(permit);
        });
    }
}

/// The fake kubelet's status patch: the pod runs and is ready.
fn running_status() -> serde_json::Value {
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let condition = |type_: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now});
    json!({"status": {
        "phase": "Running",
        "startTime": now,
        "podIP": "10.0.0.1",
        "conditions": [condition("Initialized"), condition("ContainersReady"), condition("Ready")],
        "containerStatuses": [{"name": "c", "image": IMAGE, "imageID": "", "ready": true, "started": true,
                               "restartCount": 0, "state": {"running": {"startedAt": now}}}],
    }})
}

/// Marks each pod it is handed Running, `concurrency` patches at a time; counts the patches.
async fn fake_kubelet(
    client: kube::Client,
    pods: mpsc::UnboundedReceiver<String>,
    concurrency: usize,
    patched: Arc<AtomicUsize>,
    shared: Shared,
) {
    let api: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let names = futures::stream::unfold(pods, |mut rx| async move { rx.recv().await.map(|name| (name, rx)) });
    names
        .for_each_concurrent(concurrency, |name| {
            let (api, patched, shared) = (&api, &patched, &shared);
            async move {
                match api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(running_status())).await {
                    Ok(_) => {
                        patched.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let mut observed = lock(shared);
                        if observed.problems.len() < 5 {
                            observed.problems.push(format!("fake kubelet: status patch of {name} failed: {e}"));
                        }
                    }
                }
            }
        })
        .await;
}

/// A pod as far as the benchmark reads it from lists and watch events.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SlimPod {
    metadata: SlimMeta,
    spec: SlimSpec,
    status: SlimStatus,
    /// Set on an ERROR event's Status object.
    code: Option<u16>,
    message: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    resource_version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SlimSpec {
    node_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SlimStatus {
    phase: Option<String>,
}

#[derive(Deserialize)]
struct SlimEvent {
    #[serde(rename = "type")]
    kind: String,
    object: SlimPod,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SlimList {
    metadata: SlimMeta,
    items: Vec<SlimPod>,
}

/// Records what a list or watch event shows of one pod at `at`, and hands pods bound to a fake
/// node but not yet Running to the fake kubelet. Returns whether the counts changed.
fn see(observed: &mut Observed, pod: &SlimPod, at: Instant, kubelet: &mpsc::UnboundedSender<String>) -> bool {
    let Some(name) = pod.metadata.name.as_deref() else { return false };
    let Some(i) = name.strip_prefix(POD_PREFIX).and_then(|i| i.parse::<usize>().ok()) else { return false };
    let Some(times) = observed.pods.get_mut(i) else { return false };
    let node = pod.spec.node_name.as_deref().and_then(|n| n.strip_prefix(NODE_PREFIX)).and_then(|n| n.parse().ok());
    let running = pod.status.phase.as_deref() == Some("Running");
    let mut changed = false;
    let mut newly = (false, false);
    if let Some(node) = node {
        if times.bound.is_none() {
            times.bound = Some(at);
            times.node = Some(node);
            newly.0 = true;
        }
        if !running && !times.dispatched {
            times.dispatched = true;
            let _ = kubelet.send(name.to_string());
        }
    }
    if running && times.running.is_none() {
        times.running = Some(at);
        newly.1 = true;
    }
    if newly.0 {
        observed.bound += 1;
        changed = true;
    }
    if newly.1 {
        observed.running += 1;
        changed = true;
    }
    changed
}

/// One watch on the benchmark's pods for the whole run: it times bindings and Running, and is the
/// fake kubelet's eyes. Counts (bound, running) are published on `counts`.
async fn observe(
    client: kube::Client,
    shared: Shared,
    kubelet: mpsc::UnboundedSender<String>,
    counts: tokio::sync::watch::Sender<(usize, usize)>,
    opened: tokio::sync::oneshot::Sender<Result<()>>,
) {
    let mut opened = Some(opened);
    let mut revision = String::new();
    let publish = |observed: &Observed| counts.send_replace((observed.bound, observed.running));
    for attempt in 0..=WATCH_RECONNECTS {
        if revision.is_empty() {
            let listed = async {
                let request = http::Request::get(format!("/api/v1/namespaces/{NAMESPACE}/pods")).body(Vec::new())?;
                Ok::<SlimList, anyhow::Error>(client.request::<SlimList>(request).await?)
            }
            .await;
            match listed {
                Ok(list) => {
                    let at = Instant::now();
                    let mut observed = lock(&shared);
                    for pod in &list.items {
                        see(&mut observed, pod, at, &kubelet);
                    }
                    publish(&observed);
                    revision = list.metadata.resource_version.unwrap_or_default();
                }
                Err(e) => {
                    if let Some(tx) = opened.take() {
                        let _ = tx.send(Err(e.context("cannot list the pods")));
                        return;
                    }
                    lock(&shared).problems.push(format!("pod watch: cannot list the pods: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        let path =
            format!("/api/v1/namespaces/{NAMESPACE}/pods?watch=true&resourceVersion={revision}&timeoutSeconds=3600");
        let stream = match http::Request::get(&path).body(Vec::new()) {
            Ok(request) => client.request_stream(request).await,
            Err(e) => {
                if let Some(tx) = opened.take() {
                    let _ = tx.send(Err(e.into()));
                }
                return;
            }
        };
        let reader = match stream {
            Ok(reader) => reader,
            Err(e) => {
                if let Some(tx) = opened.take() {
                    let _ = tx.send(Err(anyhow::anyhow!("cannot watch the pods: {e}")));
                    return;
                }
                lock(&shared).problems.push(format!("pod watch could not reopen: {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Some(tx) = opened.take() {
            let _ = tx.send(Ok(()));
        }
        let mut reader = std::pin::pin!(reader);
        let mut line = Vec::with_capacity(8192);
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    lock(&shared).problems.push(format!("pod watch stream failed: {e}"));
                    break;
                }
            }
            let at = Instant::now();
            let Ok(event) = serde_json::from_slice::<SlimEvent>(&line) else { continue };
            match event.kind.as_str() {
                "ERROR" => {
                    // Expired (410): list again and watch from there.
                    let mut observed = lock(&shared);
                    if observed.problems.len() < 10 {
                        observed.problems.push(format!(
                            "pod watch error {}: {} (listed again)",
                            event.object.code.unwrap_or_default(),
                            event.object.message.unwrap_or_default()
                        ));
                    }
                    revision.clear();
                    break;
                }
                "ADDED" | "MODIFIED" => {
                    if let Some(rv) = &event.object.metadata.resource_version {
                        revision.clone_from(rv);
                    }
                    let mut observed = lock(&shared);
                    if see(&mut observed, &event.object, at, &kubelet) {
                        publish(&observed);
                    }
                }
                _ => {
                    if let Some(rv) = event.object.metadata.resource_version {
                        revision = rv;
                    }
                }
            }
        }
        if attempt == WATCH_RECONNECTS {
            lock(&shared).problems.push("pod watch gave up reconnecting".into());
        }
    }
}

/// A pod of the benchmark: one container, requests 100m CPU and 64Mi.
fn bench_pod(i: usize, mode: Mode) -> Pod {
    let requests = [("cpu", "100m"), ("memory", "64Mi")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{POD_PREFIX}{i}")),
            labels: Some([("app".to_string(), "bench-scheduler".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            scheduler_name: (mode == Mode::BindOnly).then(|| PEER_SCHEDULER.to_string()),
            containers: vec![Container {
                name: "c".into(),
                image: Some(IMAGE.into()),
                resources: Some(ResourceRequirements { requests: Some(requests), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates pods `pod-0` … from `clients` (each taking the next index once its previous create is
/// acknowledged); each acknowledged index goes to `created` if given. Returns the latencies of
/// the acknowledged creates and when the last one was acknowledged.
async fn create_pods(
    clients: &[kube::Client],
    pods: usize,
    mode: Mode,
    shared: &Shared,
    created: Option<mpsc::UnboundedSender<usize>>,
) -> (Vec<Duration>, Instant) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for client in clients {
        let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let (next, shared, created) = (next.clone(), shared.clone(), created.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut last = started;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pods {
                    break;
                }
                let pod = bench_pod(i, mode);
                let sent = Instant::now();
                match tokio::time::timeout(REQUEST_LIMIT, api.create(&PostParams::default(), &pod)).await {
                    Ok(Ok(_)) => {
                        let at = Instant::now();
                        lock(&shared).pods[i].created = Some(at);
                        latencies.push(at - sent);
                        last = last.max(at);
                        if let Some(tx) = &created {
                            let _ = tx.send(i);
                        }
                    }
                    Ok(Err(e)) => push_problem(&shared, format!("POST pods {POD_PREFIX}{i} failed: {e}")),
                    Err(_) => push_problem(
                        &shared,
                        format!("POST pods {POD_PREFIX}{i} got no answer within {REQUEST_LIMIT:?}"),
                    ),
                }
            }
            (latencies, last)
        });
    }
    let mut latencies = Vec::new();
    let mut last = started;
    while let Some(joined) = tasks.join_next().await {
        let (l, at) = joined.expect("a create task panicked");
        latencies.extend(l);
        last = last.max(at);
    }
    latencies.sort();
    (latencies, last)
}

fn push_problem(shared: &Shared, problem: String) {
    let mut observed = lock(shared);
    if observed.problems.len() < 10 {
        observed.problems.push(problem);
    }
}

/// The peer's binder: binds each created pod to the next fake node, round-robin, from `clients`
/// (one binding in flight each).
async fn bind_pods(clients: Vec<kube::Client>, nodes: usize, created: mpsc::UnboundedReceiver<usize>, shared: Shared) {
    let created = Arc::new(tokio::sync::Mutex::new(created));
    let next_node = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let api: Api<Pod> = Api::namespaced(client, NAMESPACE);
        let (created, next_node, shared) = (created.clone(), next_node.clone(), shared.clone());
        tasks.spawn(async move {
            loop {
                let Some(i) = created.lock().await.recv().await else { break };
                let name = format!("{POD_PREFIX}{i}");
                let node = node_name(next_node.fetch_add(1, Ordering::Relaxed) % nodes);
                let binding = Binding {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(NAMESPACE.into()),
                        ..Default::default()
                    },
                    target: ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Node".into()),
                        name: Some(node),
                        ..Default::default()
                    },
                };
                let params = PostParams::default();
                let bound = api.create_subresource::<_, serde_json::Value>("binding", &name, &params, &binding);
                match tokio::time::timeout(REQUEST_LIMIT, bound).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => push_problem(&shared, format!("binding {name} failed: {e}")),
                    Err(_) => push_problem(&shared, format!("binding {name} got no answer within {REQUEST_LIMIT:?}")),
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Aborts the benchmark's own background tasks when dropped.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn one_run(args: &SchedulerArgs, exe: &Path, dir: &Path, mode: Mode) -> Result<Run> {
    progress(&format!("{}: starting a server with --no-agent", mode.label()));
    let server = Server::start_with(exe, dir, &["--no-agent"]).await?;
    let measured = measure(args, &server, mode).await;
    let stopped = server.stop_within(STOP_LIMIT).await;
    let mut run = measured?;
    if let Err(e) = stopped {
        run.problems.push(format!("stopping the server: {e:#}"));
    }
    Ok(run)
}

async fn measure(args: &SchedulerArgs, server: &Server, mode: Mode) -> Result<Run> {
    let client = server.client()?;
    wasm::create_namespace(&client, NAMESPACE).await?;

    progress(&format!("registering {} fake nodes (Node, status, Lease)", count(args.nodes)));
    let began = Instant::now();
    tokio::time::timeout(REGISTER_LIMIT, register(&client, args.nodes))
        .await
        .with_context(|| format!("registering the fake nodes took over {REGISTER_LIMIT:?}"))??;
    let register_time = began.elapsed();
    let (renewals, lease_failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks =
        Tasks(vec![tokio::spawn(renew_leases(server.client()?, args.nodes, renewals.clone(), lease_failures.clone()))]);

    let shared: Shared =
        Arc::new(Mutex::new(Observed { pods: vec![Times::default(); args.pods], ..Default::default() }));
    let (kubelet_tx, kubelet_rx) = mpsc::unbounded_channel();
    let patched = Arc::new(AtomicUsize::new(0));
    tasks.0.push(tokio::spawn(fake_kubelet(
        server.client()?,
        kubelet_rx,
        args.kubelet_concurrency,
        patched.clone(),
        shared.clone(),
    )));
    let (counts_tx, mut counts) = tokio::sync::watch::channel((0, 0));
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    tasks.0.push(tokio::spawn(observe(server.client()?, shared.clone(), kubelet_tx, counts_tx, opened_tx)));
    opened_rx.await.context("the pod watch task ended")??;
    // Let the scheduler's caches take in the nodes before the first pod comes.
    tokio::time::sleep(SETTLE).await;

    let clients = server.clients(args.clients)?;
    let (created_tx, created_rx) = mpsc::unbounded_channel();
    if mode == Mode::BindOnly {
        tasks.0.push(tokio::spawn(bind_pods(server.clients(args.clients)?, args.nodes, created_rx, shared.clone())));
    }
    progress(&format!(
        "{}: {} clients create {} pods on {} fake nodes",
        mode.label(),
        args.clients,
        count(args.pods),
        count(args.nodes)
    ));
    let limit = Duration::from_secs(args.limit_secs);
    let meter = CpuMeter::start(Some(server))?;
    let first_create = Instant::now();
    let creating = create_pods(&clients, args.pods, mode, &shared, (mode == Mode::BindOnly).then_some(created_tx));
    let (create_latencies, last_ack) = match tokio::time::timeout(limit, creating).await {
        Ok(done) => done,
        Err(_) => bail!("creating {} pods took longer than {limit:?}", args.pods),
    };
    let creates_done_after = last_ack - first_create;
    progress(&format!(
        "{} creates acknowledged in {}; waiting until all are bound",
        count(create_latencies.len()),
        secs(creates_done_after)
    ));

    let wait = |target: usize, running: bool| {
        let mut counts = counts.clone();
        async move {
            let deadline = tokio::time::Instant::now() + limit;
            let mut report = tokio::time::interval(Duration::from_secs(10));
            report.tick().await;
            loop {
                let (bound, run) = *counts.borrow_and_update();
                if (if running { run } else { bound }) >= target {
                    return true;
                }
                tokio::select! {
                    changed = counts.changed() => if changed.is_err() { return false },
                    _ = tokio::time::sleep_until(deadline) => return false,
                    _ = report.tick() => progress(&format!("{} s: {} bound, {} Running", first_create.elapsed().as_secs(), count(bound), count(run))),
                }
            }
        }
    };
    let created = create_latencies.len();
    let all_bound = wait(created, false).await;
    let cpu_to_bound = meter.stop().ok();
    if all_bound {
        progress("all bound; waiting until the fake kubelet has them Running");
    }
    let all_running = all_bound && wait(created, true).await;
    counts.borrow_and_update();
    drop(tasks);

    let observed = lock(&shared);
    let mut problems = observed.problems.clone();
    let last = |of: fn(&Times) -> Option<Instant>| observed.pods.iter().filter_map(of).max();
    let mut to_bound: Vec<Duration> =
        observed.pods.iter().filter_map(|t| Some(t.bound?.saturating_duration_since(t.created?))).collect();
    to_bound.sort();
    let mut per_node = vec![0usize; args.nodes];
    for node in observed.pods.iter().filter_map(|t| t.node) {
        if let Some(n) = per_node.get_mut(node) {
            *n += 1;
        }
    }
    let spread = (per_node.iter().copied().min().unwrap_or(0), per_node.iter().copied().max().unwrap_or(0));
    if created < args.pods {
        problems.push(format!("{} of {} creates acknowledged", created, args.pods));
    }
    if !all_bound {
        problems.push(format!("{} of {created} pods bound within {limit:?}", observed.bound));
    } else if !all_running {
        problems.push(format!("{} of {created} pods Running within {limit:?} after all were bound", observed.running));
    }
    Ok(Run {
        mode,
        register_time,
        created,
        create_latencies,
        creates_done_after,
        bound: observed.bound,
        all_bound_after: all_bound.then(|| last(|t| t.bound).map(|at| at - first_create)).flatten(),
        to_bound,
        running: observed.running,
        all_running_after: all_running.then(|| last(|t| t.running).map(|at| at - first_create)).flatten(),
        spread,
        cpu_to_bound,
        lease_renewals: renewals.load(Ordering::Relaxed),
        lease_failures: lease_failures.load(Ordering::Relaxed),
        kubelet_patches: patched.load(Ordering::Relaxed),
        problems,
    })
}

fn rate(run: &Run) -> Option<f64> {
    run.all_bound_after.map(|d| run.bound as f64 / d.as_secs_f64())
}

fn render(args: &SchedulerArgs, runs: &[Run], place: &Path, load_avg: &str) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |measure: String, result: String, target: &str, met: Option<bool>| {
        rows.push(super::result_row(measure, result, target, met));
    };
    let peer_rate = runs.iter().find(|r| r.mode == Mode::BindOnly).and_then(rate);
    for run in runs {
        let name = match run.mode {
            Mode::Scheduler => "Wharf scheduler",
            Mode::BindOnly => "Peer (bind-only)",
        };
        let is_wharf = run.mode == Mode::Scheduler;
        row(
            format!("{name}: first create → last pod seen bound (pods/s)"),
            match (run.all_bound_after, rate(run)) {
                (Some(d), Some(r)) => format!(
                    "{} of {} in {} (**{} pods/s**)",
                    count(run.bound),
                    count(run.created),
                    secs(d),
                    thousands(r)
                ),
                _ => format!("{} of {} bound within {} s", count(run.bound), count(run.created), args.limit_secs),
            },
            if is_wharf { "≥ 1,000 pods/s" } else { "" },
            is_wharf.then(|| rate(run).is_some_and(|r| r >= TARGET_RATE)),
        );
        if is_wharf && let (Some(w), Some(p)) = (rate(run), peer_rate) {
            row("  as a ratio of the peer's create + bind ceiling".into(), format!("{:.2}×", w / p), "", None);
        }
        row(
            "  create response → nodeName seen, per pod: p50 / p99 / max".into(),
            format!(
                "{} / {} / {}",
                ms(percentile(&run.to_bound, 50.0)),
                ms(percentile(&run.to_bound, 99.0)),
                ms(percentile(&run.to_bound, 100.0))
            ),
            "report",
            None,
        );
        row(
            format!("  creates ({} clients): all acknowledged after (creates/s); p50 / p99", args.clients),
            format!(
                "{} ({}/s); {} / {}",
                secs(run.creates_done_after),
                thousands(run.created as f64 / run.creates_done_after.as_secs_f64().max(1e-9)),
                ms(percentile(&run.create_latencies, 50.0)),
                ms(percentile(&run.create_latencies, 99.0))
            ),
            "",
            None,
        );
        row(
            "  first create → all Running (fake kubelet's status patches)".into(),
            run.all_running_after.map_or(format!("{} Running, not all", count(run.running)), |d| {
                format!("{} ({} pods/s)", secs(d), thousands(run.running as f64 / d.as_secs_f64()))
            }),
            "",
            None,
        );
        row(
            "  pods per fake node: min / max".into(),
            format!("{} / {} (even: {:.1})", run.spread.0, run.spread.1, run.bound as f64 / args.nodes as f64),
            "",
            None,
        );
        row(
            "  fake nodes registered (Node, status, Lease); lease renewals (failed); kubelet patches acknowledged"
                .into(),
            format!(
                "{} in {}; {} ({}); {}",
                count(args.nodes),
                secs(run.register_time),
                count(run.lease_renewals),
                run.lease_failures,
                count(run.kubelet_patches)
            ),
            "",
            None,
        );
    }
    let mut out = String::new();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(out, "\nWharf scheduler benchmark ({} build)", build());
    let _ = writeln!(
        out,
        "{cpus} CPUs, {} memory, load average {} before the first server started; data under {}; {} fake nodes \
         (cpu 32, memory 256Gi, pods {PODS_PER_NODE}, Lease renewed every {} s) and a fake kubelet (one watch, {} \
         status patches at once); {} pods (image {IMAGE}, requests cpu 100m / memory 64Mi) created by {} clients; \
         each run on a fresh `wharf server --no-agent`; latencies and rates on the benchmark's clock, bound = \
         spec.nodeName seen in the benchmark's pod watch\n",
        memory_total(),
        load_avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        place.display(),
        count(args.nodes),
        LEASE_RENEW.as_secs(),
        args.kubelet_concurrency,
        count(args.pods),
        args.clients,
    );
    table(&mut out, ["Measure", "Result", "Target", "Met"], &rows);
    let cpu: Vec<(String, &Cpu)> = runs
        .iter()
        .filter_map(|r| Some((format!("{}: first create → all bound", r.mode.label()), r.cpu_to_bound.as_ref()?)))
        .collect();
    if !cpu.is_empty() {
        out.push('\n');
        cpu_table(&mut out, &cpu);
    }
    problems_section(&mut out, runs.iter().flat_map(|r| &r.problems));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_times_binding_and_running_once_and_feeds_the_kubelet_once() {
        let mut observed = Observed { pods: vec![Times::default(); 2], ..Default::default() };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let pod = |node: Option<&str>, phase: Option<&str>| SlimPod {
            metadata: SlimMeta { name: Some("pod-1".into()), resource_version: None },
            spec: SlimSpec { node_name: node.map(str::to_string) },
            status: SlimStatus { phase: phase.map(str::to_string) },
            ..Default::default()
        };
        let t0 = Instant::now();
        assert!(!see(&mut observed, &pod(None, Some("Pending")), t0, &tx));
        assert!(see(&mut observed, &pod(Some("fake-node-00003"), Some("Pending")), t0, &tx));
        assert!(!see(&mut observed, &pod(Some("fake-node-00003"), Some("Pending")), t0, &tx));
        assert!(see(&mut observed, &pod(Some("fake-node-00003"), Some("Running")), t0, &tx));
        assert_eq!((observed.bound, observed.running), (1, 1));
        assert_eq!(observed.pods[1].node, Some(3));
        assert_eq!(rx.try_recv().unwrap(), "pod-1");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn watch_events_parse_slimly() {
        let line = br#"{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"pod-7","resourceVersion":"42","labels":{"a":"b"}},"spec":{"nodeName":"fake-node-00001","containers":[]},"status":{"phase":"Pending"}}}"#;
        let event: SlimEvent = serde_json::from_slice(line).unwrap();
        assert_eq!(event.kind, "MODIFIED");
        assert_eq!(event.object.spec.node_name.as_deref(), Some("fake-node-00001"));
        let error = br#"{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}"#;
        let event: SlimEvent = serde_json::from_slice(error).unwrap();
        assert_eq!(event.object.code, Some(410));
    }
}
