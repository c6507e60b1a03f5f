//! `wharf bench deployment`: a Deployment of `--replicas` Wasm ticker pods (the `ticker` guest,
//! which prints a line every second and sleeps in between) on the local node of a server of its
//! own. Measured: the time from the create of the Deployment (what the first `kubectl apply`
//! sends) until its status says every replica is available (seen through a watch on the
//! Deployment), and until every pod is Ready (seen through a watch on the pods); the memory of the
//! server process, which holds the agent, idle before and once all run.
//!
//! The peer, in the same run on a fresh server: the same number of pods from the same template,
//! created bare by the benchmark (no Deployment, no ReplicaSet), `--in-flight` creates at once.
//! The ratio of the two times is what the controllers cost.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};

use super::wasm::{self, NODE};
use super::{
    Cpu, CpuMeter, Memory, REQUEST_LIMIT, SETTLE, Server, build, count, cpu_table, memory_of, memory_total, ms,
    percentile, problems_section, progress, secs, table, thousands,
};

const NAMESPACE: &str = "bench-deployment";
const NAME: &str = "ticker";
/// Longest the server (and its agent) may take to stop once asked.
const STOP_LIMIT: Duration = Duration::from_secs(120);

#[derive(clap::Args)]
pub struct DeploymentArgs {
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the temporary data dirs go (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Replicas of the Deployment (and bare pods of the peer).
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// Create calls in flight at once when the peer creates its bare pods.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Longest wait, in seconds, from the create until every replica is available.
    #[arg(long, default_value_t = 600)]
    limit_secs: u64,
    /// Seconds the pods run before memory is read again.
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
    /// Skip the peer run (for development only: the report then has no ratio).
    #[arg(long)]
    no_peer: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Deployment,
    Bare,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Deployment => "Deployment",
            Mode::Bare => "peer: bare pods",
        }
    }
}

struct Run {
    mode: Mode,
    node_ready: Duration,
    idle: Memory,
    /// Create sent → every pod Ready in the pod watch.
    all_ready_after: Option<Duration>,
    /// Create sent → the Deployment's status says every replica is available.
    available_after: Option<Duration>,
    ready: usize,
    /// Creates of the peer: all acknowledged after, and their latencies (sorted).
    creates: Option<(Duration, Vec<Duration>)>,
    at_ready: Memory,
    settled: Memory,
    cpu: Option<Cpu>,
    census: BTreeMap<String, usize>,
    stop_time: Option<Duration>,
    problems: Vec<String>,
}

pub async fn run(args: DeploymentArgs) -> Result<()> {
    if args.replicas == 0 || args.in_flight == 0 {
        bail!("--replicas and --in-flight must be at least 1");
    }
    let base = super::bench_dir(args.dir.clone())?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let ticker = base.path().join("ticker.wasm");
    std::fs::write(&ticker, wasm::fixture("ticker")?)?;
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut modes = vec![Mode::Deployment];
    if !args.no_peer {
        modes.push(Mode::Bare);
    }
    let mut runs = Vec::new();
    for mode in modes {
        let dir = base.path().join(if mode == Mode::Deployment { "deployment" } else { "bare" });
        runs.push(one_run(&args, &exe, &dir, &ticker, mode).await?);
    }
    let report = render(&args, &runs, base.path(), &load_avg);
    let problems: Vec<String> = runs.iter().flat_map(|r| r.problems.iter().cloned()).collect();
    super::publish(&report, args.out.as_deref(), "not every replica became available", &problems)
}

async fn one_run(args: &DeploymentArgs, exe: &Path, dir: &Path, ticker: &Path, mode: Mode) -> Result<Run> {
    progress(&format!("{}: starting a server with its local node", mode.label()));
    let max_pods = (args.replicas + 100).max(2500).to_string();
    let server = Server::start_with(exe, dir, &["--node-name", NODE, "--max-pods", &max_pods]).await?;
    let measured = measure(args, exe, &server, ticker, mode).await;
    let stop_started = Instant::now();
    let stopped = server.stop_within(STOP_LIMIT).await;
    let mut run = measured?;
    match stopped {
        Ok(_) => run.stop_time = Some(stop_started.elapsed()),
        Err(e) => run.problems.push(format!("stopping the server: {e:#}")),
    }
    Ok(run)
}

fn labels() -> BTreeMap<String, String> {
    [("app".to_string(), NAME.to_string())].into()
}

fn template() -> PodTemplateSpec {
    let pod = wasm::pod(NAME, NAME, "ticker:v1", "Always");
    PodTemplateSpec { metadata: Some(ObjectMeta { labels: Some(labels()), ..Default::default() }), spec: pod.spec }
}

fn deployment(replicas: usize) -> Deployment {
    Deployment {
        metadata: ObjectMeta { name: Some(NAME.into()), labels: Some(labels()), ..Default::default() },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas as i32),
            selector: LabelSelector { match_labels: Some(labels()), ..Default::default() },
            template: template(),
            ..Default::default()
        }),
        status: None,
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Follows the namespace's pods until `want` of them are Ready; when the last became Ready, and
/// how many pods were in which phase when it stopped.
async fn pods_ready(
    client: kube::Client,
    want: usize,
    census: std::sync::Arc<std::sync::Mutex<(usize, BTreeMap<String, String>)>>,
) -> Option<Instant> {
    let api: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let mut ready: HashSet<String> = HashSet::new();
    let stream = watcher(api, watcher::Config::default()).default_backoff().applied_objects();
    let mut stream = std::pin::pin!(stream);
    while let Some(next) = stream.next().await {
        let Ok(pod) = next else { continue };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into());
        let is_ready = pod_ready(&pod);
        if is_ready {
            ready.insert(name.clone());
        } else {
            ready.remove(&name);
        }
        {
            let mut c = census.lock().expect("census lock");
            c.0 = ready.len();
            c.1.insert(name, if is_ready { format!("{phase}/Ready") } else { phase });
        }
        if ready.len() >= want {
            return Some(Instant::now());
        }
    }
    None
}

/// Follows the Deployment until its status says `want` replicas are available (for its current
/// generation); when that was seen.
async fn deployment_available(client: kube::Client, want: usize) -> Option<Instant> {
    let api: Api<Deployment> = Api::namespaced(client, NAMESPACE);
    let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let stream = watcher(api, config).default_backoff().applied_objects();
    let mut stream = std::pin::pin!(stream);
    while let Some(next) = stream.next().await {
        let Ok(d) = next else { continue };
        let status = d.status.as_ref();
        let observed = status.and_then(|s| s.observed_generation).unwrap_or(0) >= d.metadata.generation.unwrap_or(1);
        if observed && status.and_then(|s| s.available_replicas).unwrap_or(0) as usize >= want {
            return Some(Instant::now());
        }
    }
    None
}

async fn measure(args: &DeploymentArgs, exe: &Path, server: &Server, ticker: &Path, mode: Mode) -> Result<Run> {
    let client = server.client()?;
    let node_ready = wasm::node_ready(&client).await?;
    wasm::import(exe, server, ticker, "ticker:v1").await?;
    wasm::create_namespace(&client, NAMESPACE).await?;
    tokio::time::sleep(SETTLE).await;
    let idle = memory_of(server.pid)?;
    let limit = Duration::from_secs(args.limit_secs);
    let census = std::sync::Arc::new(std::sync::Mutex::new((0usize, BTreeMap::new())));
    let mut problems = Vec::new();

    let watching = tokio::spawn(pods_ready(server.client()?, args.replicas, census.clone()));
    let available = match mode {
        Mode::Deployment => Some(tokio::spawn(deployment_available(server.client()?, args.replicas))),
        Mode::Bare => None,
    };
    // Let the watches open before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    progress(&format!("{}: {} ticker replicas", mode.label(), count(args.replicas)));
    let meter = CpuMeter::start(Some(server))?;
    let began = Instant::now();
    let deadline = tokio::time::Instant::from_std(began + limit);
    let mut creates = None;
    match mode {
        Mode::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
            tokio::time::timeout(REQUEST_LIMIT, api.create(&PostParams::default(), &deployment(args.replicas)))
                .await
                .context("creating the Deployment got no answer")?
                .context("creating the Deployment")?;
        }
        Mode::Bare => {
            let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
            let results = wasm::bounded(args.replicas, args.in_flight, |i| {
                let api = &api;
                async move {
                    let mut pod = Pod {
                        metadata: ObjectMeta {
                            name: Some(format!("{NAME}-{i}")),
                            labels: Some(labels()),
                            ..Default::default()
                        },
                        spec: template().spec,
                        status: None,
                    };
                    pod.metadata.namespace = Some(NAMESPACE.into());
                    let sent = Instant::now();
                    match tokio::time::timeout(REQUEST_LIMIT, api.create(&PostParams::default(), &pod)).await {
                        Ok(Ok(_)) => Ok(sent.elapsed()),
                        Ok(Err(e)) => Err(format!("POST pods {NAME}-{i} failed: {e}")),
                        Err(_) => Err(format!("POST pods {NAME}-{i} got no answer within {REQUEST_LIMIT:?}")),
                    }
                }
            })
            .await;
            let done = began.elapsed();
            let mut latencies = Vec::new();
            for r in results {
                match r {
                    Ok(l) => latencies.push(l),
                    Err(e) if problems.len() < 5 => problems.push(e),
                    Err(_) => {}
                }
            }
            latencies.sort();
            creates = Some((done, latencies));
        }
    }

    let mut report_every = tokio::time::interval(Duration::from_secs(10));
    report_every.tick().await;
    let wait = async {
        let ready_at = tokio::select! {
            r = watching => r.ok().flatten(),
            _ = tokio::time::sleep_until(deadline) => None,
        };
        let available_at = match available {
            Some(task) => tokio::select! {
                r = task => r.ok().flatten(),
                _ = tokio::time::sleep_until(deadline) => None,
            },
            None => None,
        };
        (ready_at, available_at)
    };
    let mut wait = std::pin::pin!(wait);
    let (ready_at, available_at) = loop {
        tokio::select! {
            done = &mut wait => break done,
            _ = report_every.tick() => {
                let c = census.lock().expect("census lock");
                let mut by: BTreeMap<&str, usize> = BTreeMap::new();
                for state in c.1.values() {
                    *by.entry(state.as_str()).or_default() += 1;
                }
                progress(&format!("{} s: {} Ready; {by:?}", began.elapsed().as_secs(), c.0));
            }
        }
    };
    let cpu = meter.stop().ok();
    let at_ready = memory_of(server.pid)?;
    let (ready, states) = census.lock().expect("census lock").clone();
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for state in states.values() {
        *by.entry(state.clone()).or_default() += 1;
    }
    if ready_at.is_none() {
        problems.push(format!("{} of {} pods Ready within {limit:?}: {by:?}", ready, args.replicas));
    }
    if mode == Mode::Deployment && available_at.is_none() {
        problems.push(format!("the Deployment did not report {} available replicas within {limit:?}", args.replicas));
    }
    progress(&format!("{}: settling {} s", mode.label(), args.settle_secs));
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let settled = memory_of(server.pid)?;
    Ok(Run {
        mode,
        node_ready,
        idle,
        all_ready_after: ready_at.map(|at| at - began),
        available_after: available_at.map(|at| at - began),
        ready,
        creates,
        at_ready,
        settled,
        cpu,
        census: by,
        stop_time: None,
        problems,
    })
}

fn kib(k: u64) -> String {
    if k >= 10 * 1024 { format!("{:.1} MiB", k as f64 / 1024.0) } else { format!("{k} KiB") }
}

fn render(args: &DeploymentArgs, runs: &[Run], place: &Path, load_avg: &str) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |measure: String, result: String| rows.push(super::result_row(measure, result, "", None));
    let r = args.replicas as f64;
    let bare = runs.iter().find(|r| r.mode == Mode::Bare).and_then(|r| r.all_ready_after);
    for run in runs {
        let name = run.mode.label();
        let timed = |d: Option<Duration>| {
            d.map_or("not reached".into(), |d| format!("{} ({} pods/s)", secs(d), thousands(r / d.as_secs_f64())))
        };
        if run.mode == Mode::Deployment {
            row(
                format!("{name}: create → status.availableReplicas = {}", count(args.replicas)),
                format!("**{}**", timed(run.available_after)),
            );
            if let (Some(d), Some(b)) = (run.available_after, bare) {
                row(
                    "  as a ratio of the bare pods' time (the controllers' cost)".into(),
                    format!("{:.2}×", d.as_secs_f64() / b.as_secs_f64()),
                );
            }
            row("  create → every pod Ready (pod watch)".into(), timed(run.all_ready_after));
        } else {
            row(
                format!("{name}: first create → every pod Ready (pod watch)"),
                format!("**{}**", timed(run.all_ready_after)),
            );
            if let Some((done, latencies)) = &run.creates {
                row(
                    format!("  creates, {} at once: all acknowledged after; p50 / p99", args.in_flight),
                    format!(
                        "{}; {} / {}",
                        secs(*done),
                        ms(percentile(latencies, 50.0)),
                        ms(percentile(latencies, 99.0))
                    ),
                );
            }
        }
        row(
            format!(
                "  RSS of the server process (API + controllers + agent): idle → all Ready → {} s later",
                args.settle_secs
            ),
            format!("{} → {} → {}", kib(run.idle.rss_kib), kib(run.at_ready.rss_kib), kib(run.settled.rss_kib)),
        );
        row(
            format!("  per Ready pod ({} s after all Ready); peak RSS", args.settle_secs),
            format!(
                "{} KiB; {}",
                run.settled.rss_kib.saturating_sub(run.idle.rss_kib) / run.ready.max(1) as u64,
                kib(run.settled.peak_kib)
            ),
        );
        row(
            "  pods by phase at the end; SIGTERM → server exited".into(),
            format!(
                "{}; {}",
                run.census.iter().map(|(k, v)| format!("{k} {}", count(*v))).collect::<Vec<_>>().join(", "),
                run.stop_time.map_or("—".into(), secs)
            ),
        );
    }
    let mut out = String::new();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(out, "\nWharf Deployment benchmark ({} build)", build());
    let _ = writeln!(
        out,
        "{cpus} CPUs, {} memory, load average {} before the first server started; data under {}; {} replicas of \
         image ticker:v1 (tests/fixtures/ticker.wat: prints a line every second, sleeps in between) on the local \
         node; each run on a fresh `wharf server` (node Ready {} after /readyz); idle memory read {} s after the \
         image was imported\n",
        memory_total(),
        load_avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        place.display(),
        count(args.replicas),
        runs.first().map_or("—".into(), |r| ms(r.node_ready)),
        SETTLE.as_secs()
    );
    table(&mut out, ["Measure", "Result", "Target", "Met"], &rows);
    let cpu: Vec<(String, &Cpu)> = runs
        .iter()
        .filter_map(|r| Some((format!("{}: create → all Ready", r.mode.label()), r.cpu.as_ref()?)))
        .collect();
    if !cpu.is_empty() {
        out.push('\n');
        cpu_table(&mut out, &cpu);
    }
    problems_section(&mut out, runs.iter().flat_map(|r| &r.problems));
    out
}
