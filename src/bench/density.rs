//! `wharf bench density`: `--pods` idle Wasm pods (the `ticker` guest, which prints a line every
//! second and sleeps in between) on the local node of a server of its own. Measured: the time from
//! the first create call to every pod Running (seen through a watch on pods), and the memory of
//! the process the agent runs in (the server, since the agent is in-process) before the pods,
//! once all run, and after they were deleted. With `--separate-agent` the agent runs as a
//! `wharf agent` process of its own, so its memory is told apart from the control plane's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use super::wasm::{self, NODE, PodWatch};
use super::{
    Memory, REQUEST_LIMIT, SETTLE, Server, build, count, memory_of, memory_total, ms, percentile, problems_section,
    progress, secs, table, terminate, thousands,
};

const NAMESPACE: &str = "bench-density";
/// Phases a ticker pod may settle in (it never exits, so anything but Running is a problem).
const SETTLED: &[&str] = &["Running", "Succeeded", "Failed"];
/// Target: agent memory per idle pod.
const PER_POD_KIB: u64 = 1024;
/// Longest the server (and agent) may take to stop once asked.
const STOP_LIMIT: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct DensityArgs {
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the temporary data dirs go (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Idle pods to start.
    #[arg(long, default_value_t = 2000)]
    pods: usize,
    /// Create calls in flight at once.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Longest wait, in seconds, from the first create until every pod is Running.
    #[arg(long, default_value_t = 600)]
    limit_secs: u64,
    /// Seconds the pods run before memory is read again.
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
    /// The node's --max-pods (default: the server's own default).
    #[arg(long)]
    max_pods: Option<u32>,
    /// Run the agent as a `wharf agent` process of its own (the server with --no-agent).
    #[arg(long)]
    separate_agent: bool,
    /// Times to repeat create → all Running → delete all, with fresh pod names, on the same
    /// server: memory that grows from one wave to the next is kept, not reused.
    #[arg(long, default_value_t = 1)]
    waves: usize,
}

/// A `wharf agent` process this benchmark started.
struct AgentProcess {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
}

impl AgentProcess {
    async fn start(exe: &Path, server: &Server, dir: &Path, max_pods: Option<u32>) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let log = dir.with_extension("log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let mut command = tokio::process::Command::new(exe);
        command
            .arg("agent")
            .arg("--server")
            .arg(server.config.cluster_url.to_string())
            .arg("--token-file")
            .arg(server.data_dir.join("node-token"))
            .args(["--name", NODE, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir);
        if let Some(max) = max_pods {
            command.args(["--max-pods", &max.to_string()]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} agent", exe.display()))?;
        let pid = child.id().context("the agent exited at once")?;
        Ok(AgentProcess { child, pid, log })
    }
}

/// Memory, open files and threads of one process at one moment.
#[derive(Clone, Copy)]
struct Sample {
    memory: Memory,
    fds: wasm::Fds,
    threads: usize,
}

fn sample(pid: u32) -> Result<Sample> {
    let (fds, threads) = wasm::fds_and_threads(pid);
    Ok(Sample { memory: memory_of(pid)?, fds, threads })
}

/// Picks one process's sample out of [`Samples`].
type Pick = fn(&Samples) -> Option<Sample>;

/// Samples of the server and, with `--separate-agent`, of the agent.
#[derive(Clone, Copy)]
struct Samples {
    server: Sample,
    agent: Option<Sample>,
}

pub async fn run(args: DensityArgs) -> Result<()> {
    if args.pods == 0 || args.in_flight == 0 || args.waves == 0 {
        bail!("--pods, --in-flight and --waves must be at least 1");
    }
    let base = super::bench_dir(args.dir.clone())?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let ticker = base.path().join("ticker.wasm");
    std::fs::write(&ticker, wasm::fixture("ticker")?)?;
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let max_pods = args.max_pods.map(|m| m.to_string());
    let mut flags = vec!["--node-name", NODE];
    if args.separate_agent {
        flags.push("--no-agent");
    } else if let Some(max) = &max_pods {
        flags.extend(["--max-pods", max.as_str()]);
    }
    let server = Server::start_with(&exe, &base.path().join("server"), &flags).await?;
    let mut agent = None;
    if args.separate_agent {
        agent = Some(AgentProcess::start(&exe, &server, &base.path().join("agent"), args.max_pods).await?);
    }
    let measured = measure(&args, &exe, &server, agent.as_ref(), &ticker).await;
    // Stop what this benchmark started, by PID, whatever happened.
    let stop_started = Instant::now();
    let agent_stop = match agent.as_mut() {
        Some(a) => Some(terminate(&mut a.child, a.pid, &a.log, "agent", STOP_LIMIT).await),
        None => None,
    };
    let server_stop = server.stop_within(STOP_LIMIT).await;
    let stop_time = stop_started.elapsed();
    let mut run = measured?;
    for (what, stopped) in [("agent", agent_stop), ("server", Some(server_stop))] {
        if let Some(Err(e)) = stopped {
            run.problems.push(format!("stopping the {what}: {e:#}"));
        }
    }
    run.stop_time = Some(stop_time);
    let report = run.render(&args, base.path(), &load_avg);
    super::publish(&report, args.out.as_deref(), "not every pod ran as it should", &run.problems)
}

struct Run {
    node_ready: Duration,
    before: Samples,
    waves: Vec<Wave>,
    stop_time: Option<Duration>,
    problems: Vec<String>,
}

/// One wave: `--pods` pods created, run until all are Running, then deleted.
struct Wave {
    /// When every pod had settled (or the limit passed), and `--settle-secs` later.
    at_all_running: Samples,
    settled: Samples,
    after_delete: Option<Samples>,
    created: usize,
    create_latencies: Vec<Duration>,
    running: usize,
    /// First create sent → last pod Running.
    all_running_after: Option<Duration>,
    creates_done_after: Duration,
    /// Create sent → Running, per pod, sorted.
    to_running: Vec<Duration>,
    /// Pods by phase (and reason) once settled, and restarts seen.
    census: BTreeMap<String, usize>,
    restarts: i64,
    deleted_after: Option<Duration>,
}

async fn measure(
    args: &DensityArgs,
    exe: &Path,
    server: &Server,
    agent: Option<&AgentProcess>,
    ticker: &Path,
) -> Result<Run> {
    let samples = || -> Result<Samples> {
        Ok(Samples { server: sample(server.pid)?, agent: agent.map(|a| sample(a.pid)).transpose()? })
    };
    let client = server.client()?;
    let node_ready = wasm::node_ready(&client).await?;
    wasm::import(exe, server, ticker, "ticker:v1").await?;
    wasm::create_namespace(&client, NAMESPACE).await?;
    tokio::time::sleep(SETTLE).await;
    let before = samples()?;
    let watch = PodWatch::start(&client, NAMESPACE).await?;
    let mut run = Run { node_ready, before, waves: Vec::new(), stop_time: None, problems: Vec::new() };
    for wave in 0..args.waves {
        let w = one_wave(args, &client, &watch, wave, &samples, &mut run.problems).await?;
        let complete = w.running == args.pods && w.after_delete.is_some();
        run.waves.push(w);
        if !complete {
            break;
        }
    }
    run.problems.extend(watch.problems());
    Ok(run)
}

async fn one_wave(
    args: &DensityArgs,
    client: &kube::Client,
    watch: &PodWatch,
    wave: usize,
    samples: &dyn Fn() -> Result<Samples>,
    problems: &mut Vec<String>,
) -> Result<Wave> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let limit = Duration::from_secs(args.limit_secs);
    progress(&format!(
        "wave {}: creating {} ticker pods, {} create calls at once",
        wave + 1,
        count(args.pods),
        args.in_flight
    ));
    let began = Instant::now();
    let deadline = tokio::time::Instant::from_std(began + limit);
    let creating = wasm::bounded(args.pods, args.in_flight, |i| {
        let api = &api;
        async move {
            let pod = wasm::pod(&format!("ticker-{}-{i}", wave + 1), "ticker", "ticker:v1", "Always");
            wasm::start_pod(api, watch, pod, SETTLED, REQUEST_LIMIT).await
        }
    });
    let started = match tokio::time::timeout_at(deadline, creating).await {
        Ok(started) => started,
        Err(_) => bail!("creating {} pods took longer than {limit:?}", args.pods),
    };
    let creates_done_after = began.elapsed();
    let before = samples()?;
    let mut w = Wave {
        at_all_running: before,
        settled: before,
        after_delete: None,
        created: 0,
        create_latencies: Vec::new(),
        running: 0,
        all_running_after: None,
        creates_done_after,
        to_running: Vec::new(),
        census: BTreeMap::new(),
        restarts: 0,
        deleted_after: None,
    };
    let mut pending = FuturesUnordered::new();
    let mut failed_creates = Vec::new();
    for s in started {
        match (s.created, s.reached) {
            (Ok(took), Some(reached)) => {
                w.created += 1;
                w.create_latencies.push(took);
                let (name, sent) = (s.name, s.sent);
                pending.push(async move { (name, sent, reached.await) });
            }
            (Err(e), _) => failed_creates.push(e),
            _ => {}
        }
    }
    w.create_latencies.sort();
    if !failed_creates.is_empty() {
        problems.push(format!("wave {}: {} of {} create calls failed", wave + 1, failed_creates.len(), args.pods));
        problems.extend(failed_creates.into_iter().take(5));
    }
    progress(&format!("{} pods created in {}; waiting until they run", count(w.created), secs(creates_done_after)));
    let mut report_every = tokio::time::interval(Duration::from_secs(10));
    report_every.tick().await;
    let mut last_running = began;
    let mut other = Vec::new();
    loop {
        tokio::select! {
            next = pending.next() => match next {
                None => break,
                Some((_, sent, Ok(reached))) if reached.phase == "Running" => {
                    w.running += 1;
                    w.to_running.push(reached.at - sent);
                    last_running = last_running.max(reached.at);
                }
                Some((name, _, Ok(reached))) => other.push(format!("{name} ended {} instead of running", reached.phase)),
                Some((name, _, Err(_))) => other.push(format!("{name}: the pod watch ended")),
            },
            _ = tokio::time::sleep_until(deadline) => break,
            _ = report_every.tick() => {
                progress(&format!("{} s: {:?}", began.elapsed().as_secs(), watch.census()));
            }
        }
    }
    w.to_running.sort();
    w.at_all_running = samples()?;
    if w.running == args.pods {
        w.all_running_after = Some(last_running - began);
    } else {
        problems.push(format!(
            "wave {}: {} of {} pods Running within {limit:?} ({} ended otherwise, {} still waiting); pods by \
             phase/reason: {:?}",
            wave + 1,
            w.running,
            args.pods,
            other.len(),
            pending.len(),
            watch.census()
        ));
        problems.extend(other.into_iter().take(5));
        for (label, _) in watch.census().into_iter().filter(|(l, _)| l != "Running") {
            for example in watch.examples(&label, 3) {
                problems.push(format!("{label}: {example}"));
            }
        }
    }
    drop(pending);

    progress(&format!("{} pods Running; settling {} s", count(w.running), args.settle_secs));
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    w.settled = samples()?;
    w.census = watch.census();
    let pods = api.list(&Default::default()).await?;
    w.restarts = pods
        .items
        .iter()
        .flat_map(|p| p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()))
        .map(|c| i64::from(c.restart_count))
        .sum();
    if w.restarts > 0 {
        problems.push(format!("wave {}: {} container restarts among pods that should idle", wave + 1, w.restarts));
    }

    progress(&format!("deleting the {} pods", count(pods.items.len())));
    match wasm::delete_all(client, NAMESPACE, limit).await {
        Ok(took) => {
            w.deleted_after = Some(took);
            tokio::time::sleep(SETTLE).await;
            w.after_delete = Some(samples()?);
        }
        Err(e) => problems.push(format!("wave {}: {e:#}", wave + 1)),
    }
    Ok(w)
}

fn kib(k: u64) -> String {
    if k >= 10 * 1024 { format!("{:.1} MiB", k as f64 / 1024.0) } else { format!("{k} KiB") }
}

impl Run {
    fn render(&self, args: &DensityArgs, place: &Path, load_avg: &str) -> String {
        let Some(first) = self.waves.first() else { return "\nno wave ran\n".into() };
        let requested = args.pods;
        let mut rows: Vec<[String; 4]> = Vec::new();
        let mut row = |measure: String, result: String, target: &str, met: Option<bool>| {
            rows.push(super::result_row(measure, result, target, met));
        };
        row(
            "Pods Running (of requested)".into(),
            format!("{} of {}", count(first.running), count(requested)),
            "≥ 2,000",
            Some(first.running >= 2000 && first.running == requested),
        );
        row(
            format!("Create calls, {} at once: all acknowledged after; p50 / p99", args.in_flight),
            format!(
                "{}; {} / {}",
                secs(first.creates_done_after),
                ms(percentile(&first.create_latencies, 50.0)),
                ms(percentile(&first.create_latencies, 99.0))
            ),
            "",
            None,
        );
        row(
            "First create sent → every pod Running".into(),
            match first.all_running_after {
                Some(d) => format!("{} ({} pods/s)", secs(d), thousands(first.running as f64 / d.as_secs_f64())),
                None => format!("not reached within {} s", args.limit_secs),
            },
            "report",
            None,
        );
        row(
            "Create sent → Running, per pod: p50 / p99 / max".into(),
            format!(
                "{} / {} / {}",
                secs(percentile(&first.to_running, 50.0)),
                secs(percentile(&first.to_running, 99.0)),
                secs(percentile(&first.to_running, 100.0))
            ),
            "",
            None,
        );
        let processes: Vec<(&str, Pick)> = if args.separate_agent {
            vec![("agent process", |s| s.agent), ("server process (control plane only)", |s| Some(s.server))]
        } else {
            vec![("server process (API server + in-process agent)", |s| Some(s.server))]
        };
        for (name, of) in processes {
            let (Some(before), Some(all), Some(settled)) =
                (of(&self.before), of(&first.at_all_running), of(&first.settled))
            else {
                continue;
            };
            row(
                format!("RSS of the {name}: before the pods → all Running → {} s later", args.settle_secs),
                format!(
                    "{} → {} → {}",
                    kib(before.memory.rss_kib),
                    kib(all.memory.rss_kib),
                    kib(settled.memory.rss_kib)
                ),
                "",
                None,
            );
            let per_pod = settled.memory.rss_kib.saturating_sub(before.memory.rss_kib) / first.running.max(1) as u64;
            let is_agent = name.starts_with("agent") || !args.separate_agent;
            row(
                format!("  per Running pod ({} s after all Running)", args.settle_secs),
                format!("{per_pod} KiB"),
                if is_agent { "≤ 1 MiB" } else { "" },
                is_agent.then_some(per_pod <= PER_POD_KIB && first.running > 0),
            );
            row(
                "  peak RSS (VmHWM); open fds and threads before → settled".into(),
                format!(
                    "{}; {} → {} fds, {} → {} threads",
                    kib(settled.memory.peak_kib),
                    before.fds,
                    settled.fds,
                    count(before.threads),
                    count(settled.threads)
                ),
                "",
                None,
            );
            if let Some(after) = first.after_delete.as_ref().and_then(of) {
                row(
                    "  after deleting every pod: RSS; fds; threads".into(),
                    format!(
                        "{} ({} above before the pods); {} fds; {} threads",
                        kib(after.memory.rss_kib),
                        kib(after.memory.rss_kib.saturating_sub(before.memory.rss_kib)),
                        after.fds,
                        count(after.threads)
                    ),
                    "",
                    None,
                );
            }
        }
        row(
            format!("Pods by phase {} s after all Running; container restarts", args.settle_secs),
            format!(
                "{}; {}",
                first.census.iter().map(|(k, v)| format!("{k} {}", count(*v))).collect::<Vec<_>>().join(", "),
                first.restarts
            ),
            "all Running, 0",
            Some(first.census.len() == 1 && first.census.contains_key("Running") && first.restarts == 0),
        );
        row(
            "Delete every pod → all gone; then (after the last wave) SIGTERM → exited".into(),
            format!(
                "{}; {}",
                first.deleted_after.map_or("not all gone".into(), secs),
                self.stop_time.map_or("—".into(), secs)
            ),
            "",
            None,
        );
        for (k, w) in self.waves.iter().enumerate().skip(1) {
            let memory = |of: Pick| {
                let at = |s: Option<&Samples>| s.and_then(of).map_or("—".into(), |s| kib(s.memory.rss_kib));
                format!("{} → {}", at(Some(&w.settled)), at(w.after_delete.as_ref()))
            };
            let rss = if args.separate_agent {
                format!("agent {}, server {}", memory(|s| s.agent), memory(|s| Some(s.server)))
            } else {
                memory(|s| Some(s.server))
            };
            row(
                format!(
                    "Wave {}: Running; first create → all Running; RSS {} s after all Running → all deleted",
                    k + 1,
                    args.settle_secs
                ),
                format!("{}; {}; {rss}", count(w.running), w.all_running_after.map_or("not reached".into(), secs)),
                "",
                None,
            );
        }

        let mut out = String::new();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let _ = writeln!(out, "\nWharf pod density benchmark ({} build)", build());
        let _ = writeln!(
            out,
            "{cpus} CPUs, {} memory, load average {} before the server started; data under {}; pods: one container, \
             image ticker:v1 (tests/fixtures/ticker.wat: prints a line every second, sleeps in between), \
             restartPolicy Always; agent {}; node {NODE} Ready {} after the server answered /readyz; memory \
             before the pods read {} s after the image was imported\n",
            memory_total(),
            load_avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            place.display(),
            if args.separate_agent { "in a `wharf agent` process of its own" } else { "in the server process" },
            ms(self.node_ready),
            SETTLE.as_secs()
        );
        table(&mut out, ["Measure", "Result", "Target", "Met"], &rows);
        problems_section(&mut out, &self.problems);
        out
    }
}
