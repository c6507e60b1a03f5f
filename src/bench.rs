//! `wharf bench api`: starts a fresh API server from this very binary on a temporary data dir and
//! a free loopback port, and measures it over HTTPS with kube-rs clients: cold start to `/readyz`,
//! idle RSS, create throughput and latency of 1 KiB ConfigMaps from concurrent clients, the same
//! with watchers following the namespace, and the fan-out of a burst to many watchers. In the same
//! run, on the same disk, it measures a peer: bare SQLite (WAL, `synchronous=FULL`) inserting the
//! same number of 1 KiB rows, and reports Wharf's throughput as a ratio of the peer's.
//!
//! `wharf bench pods` and `wharf bench density` (in [`pods`] and [`density`]) measure the node
//! agent running Wasm pods the same way: a server of their own, then pods created through the API.
//!
//! Every phase has a fixed count and a time limit; all traffic stays on 127.0.0.1; the only
//! processes stopped are the ones this command started, by their PIDs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ListParams, PostParams};
use tokio::task::JoinSet;

mod datastore;
mod density;
mod deployment;
mod functions;
mod linux;
mod pods;
mod scheduler;
mod wasm;

/// Bytes of data in every ConfigMap (and every peer row).
const PAYLOAD: usize = 1024;
/// Longest wait for the server to answer `/readyz`.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Fresh servers started only to time their cold start (the one under load is one more).
const COLD_STARTS: usize = 5;
/// How long the server idles before its RSS is read.
const SETTLE: Duration = Duration::from_secs(2);
/// Longest a single create may take before it counts as failed.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// Longest a watcher waits for its next event before giving up.
const WATCH_IDLE_LIMIT: Duration = Duration::from_secs(30);
/// Longest any load phase may take as a whole.
const PHASE_LIMIT: Duration = Duration::from_secs(300);
/// Watchers that share one client (each still holds its own connection: kube-rs speaks HTTP/1.1).
const WATCHERS_PER_CLIENT: usize = 100;
/// Rows per transaction in the batched peer, as the server's writer batches at most.
const PEER_BATCH: usize = 1024;
/// Clock ticks per second in /proc/PID/stat (USER_HZ, 100 on every Linux port we run on).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(clap::Subcommand)]
pub enum Target {
    /// The API server: cold start, idle memory, create throughput and latency, watch fan-out,
    /// with a bare durable SQLite peer measured in the same run.
    Api(ApiArgs),
    /// Wasm pod start latency (create → Succeeded, seen through a watch), cold and warm, one and
    /// several in flight, with the wasmtime CLI running the same module as a process as the peer.
    Pods(pods::PodsArgs),
    /// Many idle Wasm pods on the local node: time until all are Running, and the memory they cost.
    Density(density::DensityArgs),
    /// Linux pod start latency (create → Running, seen through a watch) beside Wasm pod start,
    /// with `runc run` and the youki CLI on the same rootfs as peers.
    Linux(linux::LinuxArgs),
    /// Scheduling throughput and latency on light fake nodes (kwok-style), with a bind-only peer
    /// (the benchmark binds round-robin itself) measured in the same run.
    Scheduler(scheduler::SchedulerArgs),
    /// A Deployment of many Wasm ticker replicas on the local node: apply → all available, and the
    /// agent's memory, with the same pods created bare as the peer.
    Deployment(deployment::DeploymentArgs),
    /// A Wasm Function through the node's gateway: requests/s and latency at 1, 10 and 50 clients
    /// beside `wasmtime serve` of the same component, and its first request compiled and cached.
    Functions(functions::FunctionsArgs),
    /// The API server on Postgres against SQLite: create throughput and latency with 1 and 3
    /// servers, and the watch delay between servers.
    Datastore(datastore::DatastoreArgs),
}

#[derive(clap::Args)]
pub struct ApiArgs {
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the temporary data dirs go (default: the system temp dir); Wharf and the SQLite peer
    /// both write there, so they share a disk.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// ConfigMaps created in the throughput phase (and rows inserted by the peer).
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Concurrent creating clients (and peer threads), each with its own connection.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Watchers following the namespace in the latency phase.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// ConfigMaps created in the latency phase.
    #[arg(long, default_value_t = 5_000)]
    watched_objects: usize,
    /// Watchers in the fan-out phase.
    #[arg(long, default_value_t = 1_000)]
    fanout_watchers: usize,
    /// ConfigMaps in the fan-out burst.
    #[arg(long, default_value_t = 1_000)]
    fanout_objects: usize,
}

pub async fn run(target: Target) -> Result<()> {
    match target {
        Target::Api(args) => api(args).await,
        Target::Pods(args) => pods::run(args).await,
        Target::Density(args) => density::run(args).await,
        Target::Linux(args) => linux::run(args).await,
        Target::Scheduler(args) => scheduler::run(args).await,
        Target::Deployment(args) => deployment::run(args).await,
        Target::Functions(args) => functions::run(args).await,
        Target::Datastore(args) => datastore::run(args).await,
    }
}

async fn api(args: ApiArgs) -> Result<()> {
    if [args.objects, args.clients, args.watchers, args.watched_objects, args.fanout_watchers, args.fanout_objects]
        .contains(&0)
    {
        bail!("every count must be at least 1");
    }
    let base = bench_dir(args.dir.clone())?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let data_dir = base.path().join("server");
    let mut problems = Vec::new();

    progress(&format!("peer: bare SQLite, {} rows of 1 KiB, in {}", count(args.objects), base.path().display()));
    let meter = CpuMeter::start(None)?;
    let peer = {
        let (dir, rows, threads) = (base.path().join("peer"), args.objects, args.clients);
        tokio::task::spawn_blocking(move || peer::measure(&dir, rows, threads)).await.context("the peer panicked")??
    };
    let peer_cpu = meter.stop()?;

    progress(&format!("server: {} cold starts", COLD_STARTS + 1));
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut cold_starts = Vec::new();
    for i in 0..COLD_STARTS {
        let server = Server::start(&exe, &base.path().join(format!("cold-{i}"))).await?;
        cold_starts.push(server.ready_after);
        server.stop().await?;
    }
    let server = Server::start(&exe, &data_dir).await?;
    cold_starts.push(server.ready_after);
    cold_starts.sort();
    tokio::time::sleep(SETTLE).await;
    let idle = server.memory()?;
    let load = load_phases(&server, &args, &mut problems).await;
    let after_load = server.memory();
    let stopped = server.stop().await;
    let load = load?;
    let after_load = after_load?;
    stopped?;

    let stored = args.objects + args.watched_objects + args.fanout_objects;
    progress(&format!("server: restart with {} ConfigMaps stored", count(stored)));
    let restarted = Server::start(&exe, &data_dir).await?;
    tokio::time::sleep(SETTLE).await;
    let restarted_idle = restarted.memory();
    let restart_time = restarted.ready_after;
    restarted.stop().await?;
    let restarted_idle = restarted_idle?;

    let report = Report {
        args: &args,
        place: base.path(),
        load_avg: load_avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        cold_starts,
        idle,
        load,
        after_load,
        restart: (stored, restart_time, restarted_idle),
        peer,
        peer_cpu,
    }
    .render(&problems);
    publish(&report, args.out.as_deref(), "the server misbehaved under load", &problems)
}

/// Prints a benchmark's report, writes it to `out` when asked, and fails with `failure` and the
/// `problems` if there are any.
fn publish(report: &str, out: Option<&Path>, failure: &str, problems: &[String]) -> Result<()> {
    print!("{report}");
    if let Some(out) = out {
        std::fs::write(out, report).with_context(|| format!("cannot write {}", out.display()))?;
    }
    if !problems.is_empty() {
        bail!("{failure}:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

fn progress(message: &str) {
    eprintln!("» {message}");
}

/// A server this benchmark started, and how long it took to answer `/readyz`.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    data_dir: PathBuf,
    log: PathBuf,
    /// Client configuration from the kubeconfig the server wrote (URL, CA, admin token).
    config: kube::Config,
    ready_after: Duration,
}

/// The kubeconfig's client configuration once the server on `port` answers `/readyz` with 200
/// (verified against the CA in the kubeconfig). A plain TCP connect comes first so that polling
/// a server that is not listening yet stays cheap and quiet.
async fn ready(kubeconfig: &Path, port: u16) -> Option<kube::Config> {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await.ok()?;
    // A restarted server rewrites the kubeconfig of its previous run once it listens.
    if config.cluster_url.port_u16() != Some(port) {
        return None;
    }
    // Every failure should count, not be retried away.
    config.default_retry = false;
    let client = kube::Client::try_from(config.clone()).ok()?;
    let request = http::Request::get("/readyz").body(Vec::new()).ok()?;
    tokio::time::timeout(Duration::from_secs(1), client.request_text(request)).await.ok()?.ok()?;
    Some(config)
}

impl Server {
    /// Spawns `wharf server` on `data_dir` and a free loopback port, and polls `/readyz` until
    /// it answers 200; the time from spawn to that answer is the cold start.
    async fn start(exe: &Path, data_dir: &Path) -> Result<Self> {
        Self::start_with(exe, data_dir, &[]).await
    }

    /// [`Server::start`] with more `wharf server` flags.
    async fn start_with(exe: &Path, data_dir: &Path, extra: &[&str]) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free loopback port")?
            .port();
        std::fs::create_dir_all(data_dir)?;
        let kubeconfig = data_dir.join("kubeconfig.yaml");
        let log = data_dir.with_extension("log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let err = out.try_clone()?;

        let spawned = Instant::now();
        let mut child = tokio::process::Command::new(exe)
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let config = loop {
            if let Some(config) = ready(&kubeconfig, port).await {
                break config;
            }
            if let Some(status) = child.try_wait()? {
                bail!("the server exited ({status}) before it was ready; its log:\n{}", tail(&log));
            }
            if spawned.elapsed() > START_LIMIT {
                bail!("the server did not answer /readyz within {START_LIMIT:?}; its log:\n{}", tail(&log));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        Ok(Self { child, pid, data_dir: data_dir.to_path_buf(), log, config, ready_after: spawned.elapsed() })
    }

    /// An API client of its own (its own connection pool), as the kubeconfig describes.
    fn client(&self) -> Result<kube::Client> {
        Ok(kube::Client::try_from(self.config.clone())?)
    }

    fn clients(&self, n: usize) -> Result<Vec<kube::Client>> {
        (0..n).map(|_| self.client()).collect()
    }

    fn memory(&self) -> Result<Memory> {
        memory_of(self.pid)
    }

    /// Sends SIGTERM to this server's PID and waits for it to exit.
    async fn stop(self) -> Result<()> {
        self.stop_within(Duration::from_secs(10)).await.map(|_| ())
    }

    /// Sends SIGTERM to this server's PID and waits up to `limit` for it to exit; how long that took.
    async fn stop_within(mut self, limit: Duration) -> Result<Duration> {
        terminate(&mut self.child, self.pid, &self.log, "server", limit).await
    }
}

/// `VmRSS` and `VmHWM` of a process.
fn memory_of(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name}"))?;
        Ok(line[name.len()..].trim().trim_end_matches("kB").trim().parse()?)
    };
    Ok(Memory { rss_kib: field("VmRSS:")?, peak_kib: field("VmHWM:")? })
}

/// Sends SIGTERM to `pid` (a child this benchmark started) and waits up to `limit` for it to
/// exit, killing it after that; how long it took to exit.
async fn terminate(
    child: &mut tokio::process::Child,
    pid: u32,
    log: &Path,
    what: &str,
    limit: Duration,
) -> Result<Duration> {
    if let Some(status) = child.try_wait()? {
        bail!("the {what} had already exited ({status}); its log:\n{}", tail(log));
    }
    let asked = Instant::now();
    let sent = tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await?;
    if !sent.success() {
        bail!("kill -TERM {pid} failed");
    }
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => {
            let status = status?;
            if !status.success() {
                bail!("the {what} exited with {status} after SIGTERM; its log:\n{}", tail(log));
            }
            Ok(asked.elapsed())
        }
        Err(_) => {
            child.kill().await?;
            bail!("the {what} ignored SIGTERM for {limit:?} and was killed")
        }
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn cpu_of(stat: &str) -> Result<Duration> {
    let text = std::fs::read_to_string(stat)?;
    // Fields after the command name, which is in parentheses: state is field 3, utime 14, stime 15.
    let rest = &text[text.rfind(')').context("malformed stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).context("no utime")?.parse::<u64>()? + fields.get(12).context("no stime")?.parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / TICKS_PER_SECOND))
}

#[derive(Clone, Copy)]
struct Memory {
    rss_kib: u64,
    peak_kib: u64,
}

/// CPU busy time of the whole machine (all CPUs added up), from /proc/stat.
fn machine_cpu() -> Result<Duration> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let line = text.lines().next().context("empty /proc/stat")?;
    // cpu user nice system idle iowait irq softirq steal …: everything but idle and iowait is busy.
    let mut busy = 0;
    for (i, field) in line.split_whitespace().skip(1).take(8).enumerate() {
        if i != 3 && i != 4 {
            busy += field.parse::<u64>()?;
        }
    }
    Ok(Duration::from_secs_f64(busy as f64 / TICKS_PER_SECOND))
}

/// CPU used during one phase by the server, by this benchmark (its clients), and by everything
/// else on the machine (which should be close to nothing for the figures to mean much).
struct Cpu {
    wall: Duration,
    server: Duration,
    bench: Duration,
    others: Duration,
}

struct CpuMeter {
    /// The server's /proc/PID/stat, if a server runs in the phase.
    server: Option<String>,
    started: Instant,
    before: [Duration; 3],
}

impl CpuMeter {
    fn read(server: Option<&str>) -> Result<[Duration; 3]> {
        Ok([server.map_or(Ok(Duration::ZERO), cpu_of)?, cpu_of("/proc/self/stat")?, machine_cpu()?])
    }

    fn start(server: Option<&Server>) -> Result<Self> {
        let server = server.map(|s| format!("/proc/{}/stat", s.pid));
        Ok(Self { before: Self::read(server.as_deref())?, server, started: Instant::now() })
    }

    fn stop(self) -> Result<Cpu> {
        let [server, bench, machine] = Self::read(self.server.as_deref())?;
        let [server_before, bench_before, machine_before] = self.before;
        let (server, bench) = (server.saturating_sub(server_before), bench.saturating_sub(bench_before));
        let others = machine.saturating_sub(machine_before).saturating_sub(server + bench);
        Ok(Cpu { wall: self.started.elapsed(), server, bench, others })
    }
}

/// Results of the load phases.
struct Load {
    throughput: Phase,
    watched: Phase,
    fanout: Phase,
}

/// One load phase: creates from concurrent clients while some watchers follow the namespace.
struct Phase {
    creates: Creates,
    watch: Option<Watch>,
    cpu: Cpu,
}

async fn load_phases(server: &Server, args: &ApiArgs, problems: &mut Vec<String>) -> Result<Load> {
    let namespaces: Api<Namespace> = Api::all(server.client()?);
    for name in ["bench-throughput", "bench-watched", "bench-fanout"] {
        let ns = Namespace { metadata: meta(name), ..Default::default() };
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("cannot create namespace {name}"))?;
    }
    let clients = server.clients(args.clients)?;
    // Watchers get threads of their own, so that a create's response never waits in the same
    // task queue behind watchers parsing events; they still share the machine's CPUs.
    let watch_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-watchers")
        .enable_all()
        .build()?;
    let watch_handle = watch_runtime.handle();

    let mut phase = async |label: &str, ns: &str, objects: usize, watchers: usize| -> Result<Phase> {
        progress(&format!(
            "{label}: {} clients create {} ConfigMaps, {} watchers",
            args.clients,
            count(objects),
            count(watchers)
        ));
        // Built inside the watchers' runtime, where their connections' tasks then run.
        let watch_clients = {
            let _runtime = watch_handle.enter();
            server.clients(watchers.div_ceil(WATCHERS_PER_CLIENT))?
        };
        let measured = tokio::time::timeout(PHASE_LIMIT, async {
            let meter = CpuMeter::start(Some(server))?;
            let (creates, watch) =
                watched_creates(&clients, (watch_handle, &watch_clients), ns, objects, watchers).await?;
            Ok::<_, anyhow::Error>(Phase { creates, watch, cpu: meter.stop()? })
        })
        .await
        .with_context(|| format!("{label}: did not finish within {PHASE_LIMIT:?}"))??;
        let failed = measured.creates.failed;
        if failed > 0 {
            problems.push(format!("{label}: {failed} of {objects} creates failed; the first of them:"));
        }
        problems.extend(measured.creates.errors.iter().map(|e| format!("{label}: {e}")));
        if let Some(watch) = &measured.watch {
            problems.extend(watch.problems.iter().map(|e| format!("{label}: {e}")));
        }
        Ok(measured)
    };
    let phases = async {
        let throughput = phase("throughput", "bench-throughput", args.objects, 0).await?;
        let watched = phase("latency under watchers", "bench-watched", args.watched_objects, args.watchers).await?;
        let fanout = phase("fan-out", "bench-fanout", args.fanout_objects, args.fanout_watchers).await?;
        Ok(Load { throughput, watched, fanout })
    }
    .await;
    watch_runtime.shutdown_background();
    phases
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_string()), ..Default::default() }
}

/// Outcome of creating ConfigMaps named `cm-0` … from concurrent clients.
struct Creates {
    ok: usize,
    /// The first few failures, each naming its request.
    errors: Vec<String>,
    failed: usize,
    latencies: Vec<Duration>,
    started: Instant,
    last_ack: Instant,
}

impl Creates {
    fn rate(&self) -> f64 {
        if self.ok == 0 {
            return 0.0;
        }
        self.ok as f64 / self.last_ack.duration_since(self.started).as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// Outcome of many watchers following one namespace through a burst of creates.
struct Watch {
    /// Watches established, and how long establishing all of them took.
    established: usize,
    establish_time: Duration,
    /// Distinct expected events delivered, over all watchers, and how many were expected.
    delivered: usize,
    expected: usize,
    /// When the last watcher held every event, if all did.
    last_complete: Option<Instant>,
    problems: Vec<String>,
}

/// Starts `watchers` watches on `ns` (spread over the watch clients, on their runtime), waits
/// until all are established, then creates `objects` ConfigMaps from `clients` and waits until
/// every watcher has seen each of them.
async fn watched_creates(
    clients: &[kube::Client],
    (watch_runtime, watch_clients): (&tokio::runtime::Handle, &[kube::Client]),
    ns: &str,
    objects: usize,
    watchers: usize,
) -> Result<(Creates, Option<Watch>)> {
    let api: Api<ConfigMap> = Api::namespaced(clients[0].clone(), ns);
    let rv = api.list(&ListParams::default().limit(1)).await?.metadata.resource_version.unwrap_or_default();
    let path = format!("/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=600");

    let establishing = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watch_tasks = JoinSet::new();
    for i in 0..watchers {
        let client = watch_clients[i / WATCHERS_PER_CLIENT].clone();
        let (path, ready) = (path.clone(), ready_tx.clone());
        watch_tasks.spawn_on(follow(client, path, objects, ready), watch_runtime);
    }
    drop(ready_tx);
    let mut established = 0;
    let mut problems = Vec::new();
    while let Some(outcome) = ready_rx.recv().await {
        match outcome {
            Ok(()) => established += 1,
            Err(e) => problems.push(format!("watch {path}: {e:#}")),
        }
    }
    let establish_time = establishing.elapsed();

    let creates = create_all(clients, ns, objects).await;

    let mut watch = Watch {
        established,
        establish_time,
        delivered: 0,
        expected: watchers * objects,
        last_complete: None,
        problems,
    };
    let mut complete = 0;
    while let Some(joined) = watch_tasks.join_next().await {
        let seen = joined.context("a watcher panicked")?;
        watch.delivered += seen.distinct;
        watch.problems.extend(seen.problems);
        if let Some(at) = seen.complete_at {
            complete += 1;
            watch.last_complete = watch.last_complete.max(Some(at));
        }
    }
    if complete < watchers {
        watch.last_complete = None;
        watch.problems.insert(
            0,
            format!(
                "{} of {watchers} watchers did not receive all {objects} events ({} of {} delivered)",
                watchers - complete,
                watch.delivered,
                watch.expected
            ),
        );
    }
    watch.problems.truncate(10);
    Ok((creates, (watchers > 0).then_some(watch)))
}

/// What one watcher saw.
struct Seen {
    distinct: usize,
    complete_at: Option<Instant>,
    problems: Vec<String>,
}

/// The N of an ADDED event for an object named `<prefix>N` in one line of a watch stream.
fn added_index(line: &[u8], prefix: &str) -> Option<usize> {
    let event = serde_json::from_slice::<WatchLine>(line).ok().filter(|e| e.kind == "ADDED")?;
    event.object.metadata.name.as_deref()?.strip_prefix(prefix)?.parse().ok()
}

/// One line of a watch stream, parsed only as far as needed to tell which object it carries.
#[derive(serde::Deserialize)]
struct WatchLine<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    object: WatchObject<'a>,
}

#[derive(serde::Deserialize)]
struct WatchObject<'a> {
    #[serde(borrow, default)]
    metadata: WatchMeta<'a>,
}

#[derive(serde::Deserialize, Default)]
struct WatchMeta<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
}

/// Follows one watch until it has seen ADDED for each of `cm-0` … `cm-{expected-1}`, reporting
/// on `ready` once the server has answered the watch request.
async fn follow(
    client: kube::Client,
    path: String,
    expected: usize,
    ready: tokio::sync::mpsc::UnboundedSender<Result<()>>,
) -> Seen {
    let mut seen = Seen { distinct: 0, complete_at: None, problems: Vec::new() };
    let opened = async {
        let request = http::Request::get(&path).body(Vec::new())?;
        Ok::<_, anyhow::Error>(tokio::time::timeout(REQUEST_LIMIT, client.request_stream(request)).await??)
    }
    .await;
    let reader = match opened {
        Ok(reader) => {
            let _ = ready.send(Ok(()));
            reader
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return seen;
        }
    };
    drop(ready);
    let mut reader = std::pin::pin!(reader);
    let mut have = vec![false; expected];
    let mut line = Vec::with_capacity(2 * PAYLOAD);
    while seen.distinct < expected {
        line.clear();
        match tokio::time::timeout(WATCH_IDLE_LIMIT, reader.read_until(b'\n', &mut line)).await {
            Err(_) => {
                seen.problems.push(format!(
                    "a watcher waited {WATCH_IDLE_LIMIT:?} without an event after {} of {expected}",
                    seen.distinct
                ));
                break;
            }
            Ok(Err(e)) => {
                seen.problems.push(format!("a watch stream failed after {} of {expected} events: {e}", seen.distinct));
                break;
            }
            Ok(Ok(0)) => {
                seen.problems.push(format!("a watch stream ended after {} of {expected} events", seen.distinct));
                break;
            }
            Ok(Ok(_)) => {}
        }
        let index = added_index(&line, "cm-").filter(|i| *i < expected);
        match index {
            Some(i) if !have[i] => {
                have[i] = true;
                seen.distinct += 1;
            }
            // A few examples say enough; the shortfall shows in the counts.
            _ if seen.problems.len() >= 3 => {}
            Some(i) => seen.problems.push(format!("a watcher received cm-{i} twice")),
            None => seen.problems.push(format!(
                "a watcher received an unexpected line: {}",
                String::from_utf8_lossy(&line[..line.len().min(300)]).trim_end()
            )),
        }
    }
    if seen.distinct == expected {
        seen.complete_at = Some(Instant::now());
    }
    seen
}

/// Creates ConfigMaps `cm-0` … `cm-{count-1}` with 1 KiB of data in `ns`, each client taking
/// the next name as soon as its previous create is acknowledged.
async fn create_all(clients: &[kube::Client], ns: &str, count: usize) -> Creates {
    let next = Arc::new(AtomicUsize::new(0));
    let payload: Arc<str> = "x".repeat(PAYLOAD).into();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for client in clients {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let (next, payload) = (next.clone(), payload.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            let mut last_ack = started;
            let params = PostParams::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let config_map = ConfigMap {
                    metadata: meta(&format!("cm-{i}")),
                    data: Some(BTreeMap::from([("payload".to_string(), payload.to_string())])),
                    ..Default::default()
                };
                let sent = Instant::now();
                match tokio::time::timeout(REQUEST_LIMIT, api.create(&params, &config_map)).await {
                    Ok(Ok(_)) => {
                        last_ack = Instant::now();
                        latencies.push(last_ack - sent);
                    }
                    Ok(Err(e)) => errors.push(format!("POST configmaps cm-{i} failed: {e}")),
                    Err(_) => errors.push(format!("POST configmaps cm-{i} got no answer within {REQUEST_LIMIT:?}")),
                }
            }
            (latencies, errors, last_ack)
        });
    }
    let mut creates =
        Creates { ok: 0, errors: Vec::new(), failed: 0, latencies: Vec::new(), started, last_ack: started };
    while let Some(joined) = tasks.join_next().await {
        let (latencies, errors, last_ack) = joined.expect("a create task panicked");
        creates.ok += latencies.len();
        creates.latencies.extend(latencies);
        creates.failed += errors.len();
        creates.errors.extend(errors);
        creates.last_ack = creates.last_ack.max(last_ack);
    }
    creates.latencies.sort();
    creates.errors.truncate(10);
    creates
}

/// The `p`th percentile (nearest rank) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The peer: bare SQLite with the server's durability settings, no HTTP, no JSON.
mod peer {
    use super::*;
    use rusqlite::{Connection, TransactionBehavior, params};

    pub struct Variant {
        pub label: &'static str,
        pub rows_per_second: f64,
        /// Commit latency percentiles (p50, p99), for the variants that commit per row.
        pub commit: Option<(Duration, Duration)>,
    }

    fn open(path: &Path) -> Result<Connection> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS objects (namespace TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL,
                 PRIMARY KEY (namespace, name)) WITHOUT ROWID;",
        )?;
        Ok(conn)
    }

    const INSERT: &str = "INSERT INTO objects (namespace, name, data) VALUES ('bench', ?1, ?2)";

    /// `threads` threads, each with its own connection, insert `rows` rows between them, one
    /// transaction (and so one durable commit) per row.
    fn per_row(path: &Path, rows: usize, threads: usize) -> Result<(f64, Vec<Duration>)> {
        open(path)?;
        let next = AtomicUsize::new(0);
        let payload = vec![b'x'; PAYLOAD];
        let started = Instant::now();
        let per_thread = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| -> Result<Vec<Duration>> {
                        let mut conn = open(path)?;
                        let mut latencies = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= rows {
                                return Ok(latencies);
                            }
                            let begun = Instant::now();
                            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                            tx.prepare_cached(INSERT)?.execute(params![format!("cm-{i}"), payload])?;
                            tx.commit()?;
                            latencies.push(begun.elapsed());
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a peer thread panicked")).collect::<Result<Vec<_>>>()
        })?;
        let elapsed = started.elapsed();
        let mut latencies: Vec<Duration> = per_thread.into_iter().flatten().collect();
        latencies.sort();
        Ok((rows as f64 / elapsed.as_secs_f64(), latencies))
    }

    /// One thread inserts `rows` rows, `PEER_BATCH` per transaction: the most group commit can give.
    fn batched(path: &Path, rows: usize) -> Result<f64> {
        let mut conn = open(path)?;
        let payload = vec![b'x'; PAYLOAD];
        let started = Instant::now();
        for chunk in (0..rows).collect::<Vec<_>>().chunks(PEER_BATCH) {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(INSERT)?;
                for i in chunk {
                    insert.execute(params![format!("cm-{i}"), payload])?;
                }
            }
            tx.commit()?;
        }
        Ok(rows as f64 / started.elapsed().as_secs_f64())
    }

    pub fn measure(dir: &Path, rows: usize, threads: usize) -> Result<Vec<Variant>> {
        std::fs::create_dir_all(dir)?;
        let with_latency = |label, (rate, latencies): (f64, Vec<Duration>)| Variant {
            label,
            rows_per_second: rate,
            commit: Some((percentile(&latencies, 50.0), percentile(&latencies, 99.0))),
        };
        Ok(vec![
            with_latency("concurrent", per_row(&dir.join("concurrent.db"), rows, threads)?),
            with_latency("serial", per_row(&dir.join("serial.db"), rows, 1)?),
            Variant { label: "batched", rows_per_second: batched(&dir.join("batched.db"), rows)?, commit: None },
        ])
    }
}

struct Report<'a> {
    args: &'a ApiArgs,
    place: &'a Path,
    /// 1, 5 and 15 minute load averages before the server phases.
    load_avg: String,
    /// Sorted.
    cold_starts: Vec<Duration>,
    idle: Memory,
    load: Load,
    after_load: Memory,
    restart: (usize, Duration, Memory),
    peer: Vec<peer::Variant>,
    peer_cpu: Cpu,
}

impl Report<'_> {
    fn render(&self, problems: &[String]) -> String {
        let a = self.args;
        let Load { throughput, watched, fanout } = &self.load;
        let mut rows: Vec<[String; 4]> = Vec::new();
        let mut row = |measure: String, result: String, target: &str, met: Option<bool>| {
            rows.push(result_row(measure, result, target, met));
        };
        let (median, slowest) = (percentile(&self.cold_starts, 50.0), percentile(&self.cold_starts, 100.0));
        row(
            format!(
                "Cold start: spawn → first 200 from /readyz, fresh data dir (median of {})",
                self.cold_starts.len()
            ),
            format!("{} (slowest {})", ms(median), ms(slowest)),
            "≤ 300 ms",
            Some(slowest <= Duration::from_millis(300)),
        );
        row(
            format!("Idle RSS, {} s after ready", SETTLE.as_secs()),
            megabytes(self.idle.rss_kib),
            "≤ 40 MB",
            Some(self.idle.rss_kib * 1024 <= 40_000_000),
        );
        let t = &throughput.creates;
        row(
            format!("Create throughput: {} clients, {} ConfigMaps of 1 KiB", a.clients, count(a.objects)),
            format!("{} objects/s", thousands(t.rate())),
            "≥ 2,000 objects/s",
            Some(t.rate() >= 2000.0 && t.failed == 0),
        );
        row("  create latency p50 / p99 / max".into(), latencies(t), "", None);
        let w = &watched.creates;
        row(
            format!(
                "Creates with {} watchers on the namespace: {} clients, {} ConfigMaps",
                count(a.watchers),
                a.clients,
                count(a.watched_objects)
            ),
            format!("{} objects/s", thousands(w.rate())),
            "",
            None,
        );
        row(
            format!("p99 create latency with {} watchers", count(a.watchers)),
            format!("{} (p50 / p99 / max: {})", ms(w.percentile(99.0)), latencies(w)),
            "≤ 10 ms",
            Some(w.percentile(99.0) <= Duration::from_millis(10) && w.failed == 0),
        );
        if let Some(watch) = &watched.watch {
            row(
                format!("  events delivered to the {} watchers", count(a.watchers)),
                delivered(watch),
                "every event",
                Some(watch.delivered == watch.expected),
            );
        }
        if let Some(watch) = &fanout.watch {
            let f = &fanout.creates;
            row(
                format!("Fan-out: {} watches established (one connection each)", count(a.fanout_watchers)),
                format!("{} in {}", count(watch.established), secs(watch.establish_time)),
                "",
                None,
            );
            row(
                format!("Fan-out: burst of {} creates, first sent → last acknowledged", count(a.fanout_objects)),
                ms(f.last_ack - f.started),
                "",
                None,
            );
            row(
                format!("Fan-out: events delivered to {} watchers", count(a.fanout_watchers)),
                delivered(watch),
                "every event",
                Some(watch.delivered == watch.expected),
            );
            let (after_ack, after_start) = match watch.last_complete {
                Some(last) => (
                    signed_ms(last, f.last_ack),
                    format!(
                        "{} ({} events/s delivered)",
                        ms(last - f.started),
                        thousands(watch.delivered as f64 / (last - f.started).as_secs_f64())
                    ),
                ),
                None => ("incomplete".into(), "incomplete".into()),
            };
            row("Fan-out: last create acknowledged → last watcher has every event".into(), after_ack, "report", None);
            row("Fan-out: first create sent → last watcher has every event".into(), after_start, "", None);
        }
        row(
            "RSS after the load phases (peak during the run)".into(),
            format!("{} ({})", megabytes(self.after_load.rss_kib), megabytes(self.after_load.peak_kib)),
            "",
            None,
        );
        let (stored, restart, restart_memory) = &self.restart;
        row(
            format!("Restart with {} ConfigMaps stored: spawn → /readyz; idle RSS", count(*stored)),
            format!("{}; {}", ms(*restart), megabytes(restart_memory.rss_kib)),
            "",
            None,
        );

        let mut out = String::new();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let _ = writeln!(out, "\nWharf API server benchmark ({} build)", build());
        let _ = writeln!(
            out,
            "{cpus} CPUs, {} memory, load average {} before the server phases; data under {} (server and \
             peer on the same disk); clients: kube-rs over HTTPS (HTTP/1.1, one connection per client and \
             per watcher), in this process, sharing the CPUs with the server\n",
            memory_total(),
            self.load_avg,
            self.place.display()
        );
        table(&mut out, ["Measure", "Result", "Target", "Met"], &rows);

        let _ = writeln!(
            out,
            "\nPeer: bare SQLite (rusqlite, bundled SQLite, WAL, synchronous=FULL), same disk, same run: \
             {} rows of 1 KiB into one table, no HTTP, no JSON\n",
            count(a.objects)
        );
        let wharf = throughput.creates.rate();
        let peer_rows: Vec<[String; 4]> = self
            .peer
            .iter()
            .map(|v| {
                let label = match v.label {
                    "concurrent" => format!("{} threads, one transaction per row (the peer)", a.clients),
                    "serial" => "1 thread, one transaction per row".to_string(),
                    _ => format!("1 thread, {} rows per transaction (upper bound)", count(PEER_BATCH)),
                };
                let commit = v.commit.map_or("—".into(), |(p50, p99)| format!("{} / {}", ms(p50), ms(p99)));
                [label, thousands(v.rows_per_second), commit, format!("{:.2}×", wharf / v.rows_per_second)]
            })
            .collect();
        table(&mut out, ["Peer variant", "rows/s", "commit p50 / p99", "Wharf creates/s ÷ peer rows/s"], &peer_rows);

        let _ = writeln!(
            out,
            "\nCPU time per phase (the server; this benchmark, i.e. its clients or the peer; all other processes)\n"
        );
        let phases = [
            ("peer (bare SQLite, all variants)", &self.peer_cpu),
            ("throughput", &throughput.cpu),
            ("with watchers", &watched.cpu),
            ("fan-out", &fanout.cpu),
        ]
        .map(|(name, cpu)| (name.to_string(), cpu));
        cpu_table(&mut out, &phases);
        if !problems.is_empty() {
            let _ = writeln!(out, "\nProblems under load:\n");
            for problem in problems {
                let _ = writeln!(out, "- {problem}");
            }
        }
        out
    }
}

/// A fresh temporary directory for one benchmark run, under `dir` or the system's temp dir.
fn bench_dir(dir: Option<PathBuf>) -> Result<tempfile::TempDir> {
    let parent = dir.unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("wharf-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a temporary dir in {}", parent.display()))
}

/// A results row: measure, result, target and whether it is met (blank when there is no target).
fn result_row(measure: String, result: String, target: &str, met: Option<bool>) -> [String; 4] {
    let met = match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "",
    };
    [measure, result, target.to_string(), met.to_string()]
}

/// The table of where each phase's CPU went: the server, the benchmark, everything else.
fn cpu_table(out: &mut String, phases: &[(String, &Cpu)]) {
    let rows: Vec<[String; 5]> = phases
        .iter()
        .map(|(name, c)| {
            let share = |d: Duration| {
                format!("{} ({:.0}% of one CPU)", secs(d), 100.0 * d.as_secs_f64() / c.wall.as_secs_f64())
            };
            [name.clone(), secs(c.wall), share(c.server), share(c.bench), share(c.others)]
        })
        .collect();
    table(out, ["Phase", "wall", "server CPU", "benchmark CPU", "other processes CPU"], &rows);
}

/// Appends a "Problems" list to a report, if there are any.
fn problems_section(out: &mut String, problems: impl IntoIterator<Item = impl std::fmt::Display>) {
    let mut problems = problems.into_iter().peekable();
    if problems.peek().is_some() {
        let _ = writeln!(out, "\nProblems:\n");
        for problem in problems {
            let _ = writeln!(out, "- {problem}");
        }
    }
}

fn table<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let mut widths: [usize; N] = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[&str]| {
        out.push('|');
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(out, " {cell}{} |", " ".repeat(w - cell.chars().count()));
        }
        out.push('\n');
    };
    line(out, &header);
    line(out, &widths.map(|w| "-".repeat(w)).iter().map(String::as_str).collect::<Vec<_>>());
    for row in rows {
        line(out, &row.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

fn build() -> &'static str {
    if cfg!(debug_assertions) { "DEBUG — figures are not meaningful" } else { "release" }
}

fn memory_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or("unknown".into(), |kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
}

fn latencies(c: &Creates) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} ms",
        c.percentile(50.0).as_secs_f64() * 1e3,
        c.percentile(99.0).as_secs_f64() * 1e3,
        c.latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    )
}

fn delivered(w: &Watch) -> String {
    format!("{} / {}", count(w.delivered), count(w.expected))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// `later − earlier`, negative if `later` came first.
fn signed_ms(later: Instant, earlier: Instant) -> String {
    match later.checked_duration_since(earlier) {
        Some(d) => ms(d),
        None => format!("−{}", ms(earlier - later)),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Decimal megabytes, as the targets are stated.
fn megabytes(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

fn count(n: usize) -> String {
    thousands(n as f64)
}

/// A whole number with thousands separators.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&samples, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
