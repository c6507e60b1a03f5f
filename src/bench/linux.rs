//! `wharf bench linux`: how long a Linux pod takes from the create call to phase `Running`, seen
//! through a watch on pods, over the whole orchestrated path (API server, scheduler, node agent,
//! pod sandbox, overlay rootfs, youki's libcontainer, status back through the API), with the
//! image already on the node; and a Wasm pod's start in the same run and the same table.
//!
//! The peers, in the same run on the same root filesystem (the busybox image's unpacked layer,
//! read-only): Debian's `runc run` and the youki CLI's `youki run` + `youki delete` of `true`,
//! timed from spawn to exit.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use super::wasm::{self, NODE, PodWatch};
use super::{Server, build, count, ms, percentile, problems_section, progress, result_row, table};

const NAMESPACE: &str = "bench-linux";
/// Longest one pod may take to be Running before it counts as stuck.
const POD_LIMIT: Duration = Duration::from_secs(60);
/// Longest deleting the pods may take.
const DELETE_LIMIT: Duration = Duration::from_secs(300);
/// Longest one peer run may take.
const PROCESS_LIMIT: Duration = Duration::from_secs(30);
/// Target: Linux pod start p50, create → Running.
const LINUX_P50: Duration = Duration::from_millis(100);
const RUNNING: &[&str] = &["Running", "Succeeded", "Failed"];

const YOUKI_HINT: &str = "Install the youki CLI and pass it with --youki PATH or $YOUKI (long on 2 cores):
  cargo install youki --version 0.7.0 --no-default-features --features v1,v2,seccomp --root /opt/youki";

#[derive(clap::Args)]
pub struct LinuxArgs {
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the temporary data dirs go (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Pods in each series, and runs of each peer.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// The busybox OCI image layout (`samples/build` makes it).
    #[arg(long, default_value = "samples/out/busybox")]
    image: PathBuf,
    /// The youki CLI, a peer (default: $YOUKI, then `youki` on PATH).
    #[arg(long, env = "YOUKI")]
    youki: Option<PathBuf>,
    /// runc, a peer (default: $RUNC, then `runc` on PATH).
    #[arg(long, env = "RUNC")]
    runc: Option<PathBuf>,
}

/// A program on PATH, or `None`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(name)).find(|p| p.is_file())
}

/// Start latencies, sorted, and what went wrong.
#[derive(Default)]
struct Series {
    latencies: Vec<Duration>,
    problems: Vec<String>,
}

impl Series {
    fn p(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    fn summary(&self) -> String {
        if self.latencies.is_empty() {
            return "no successful run".into();
        }
        format!("{} / {}", ms(self.p(50.0)), ms(self.p(99.0)))
    }
}

pub async fn run(args: LinuxArgs) -> Result<()> {
    if args.pods == 0 {
        bail!("--pods must be at least 1");
    }
    if !args.image.join("index.json").is_file() {
        bail!("{} is not an OCI image layout (no index.json); build it with samples/build", args.image.display());
    }
    let runc = args.runc.clone().or_else(|| on_path("runc")).context("runc not found: apt-get install runc")?;
    let youki =
        args.youki.clone().or_else(|| on_path("youki")).with_context(|| format!("youki not found. {YOUKI_HINT}"))?;
    let base = super::bench_dir(args.dir.clone())?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let ticker = base.path().join("ticker.wasm");
    std::fs::write(&ticker, wasm::fixture("ticker")?)?;

    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let data_dir = base.path().join("server");
    let server = Server::start_with(&exe, &data_dir, &["--node-name", NODE]).await?;
    let client = server.client()?;
    wasm::node_ready(&client).await?;
    wasm::import(&exe, &server, &args.image, "busybox:v1").await?;
    wasm::import(&exe, &server, &ticker, "ticker:v1").await?;
    wasm::create_namespace(&client, NAMESPACE).await?;
    let watch = PodWatch::start(&client, NAMESPACE).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);

    // One pod of each first: pulls, unpacks and compiles, so the series find the images present.
    for (name, image) in [("warm-linux", "busybox:v1"), ("warm-wasm", "ticker:v1")] {
        let mut series = Series::default();
        start_one(&api, &watch, name, image, &mut series).await;
        if let Some(problem) = series.problems.first() {
            bail!("the warm-up pod did not start: {problem}");
        }
    }
    progress(&format!("{} Linux pods, one at a time", count(args.pods)));
    let mut linux = Series::default();
    for i in 0..args.pods {
        start_one(&api, &watch, &format!("linux-{i}"), "busybox:v1", &mut linux).await;
    }
    progress(&format!("{} Wasm pods, one at a time", count(args.pods)));
    let mut wasm_series = Series::default();
    for i in 0..args.pods {
        start_one(&api, &watch, &format!("wasm-{i}"), "ticker:v1", &mut wasm_series).await;
    }
    let deleted = wasm::delete_all(&client, NAMESPACE, DELETE_LIMIT).await;

    let rootfs = unpacked_busybox(&data_dir.join("agent/images"))?;
    let bundle = base.path().join("bundle");
    write_bundle(&runc, &bundle, &rootfs).await?;
    progress(&format!("peer: {} run, {} runs", runc.display(), count(args.pods)));
    let runc_series = peer(&args, &bundle, |id| {
        vec![vec![runc.clone().into(), "run".into(), "-b".into(), bundle.clone().into(), id.into()]]
    })
    .await;
    progress(&format!("peer: {} run + delete, {} runs", youki.display(), count(args.pods)));
    let youki_series = peer(&args, &bundle, |id| {
        vec![
            vec![youki.clone().into(), "run".into(), "-b".into(), bundle.clone().into(), id.into()],
            vec![youki.clone().into(), "delete".into(), "--force".into(), id.into()],
        ]
    })
    .await;
    server.stop().await?;

    let mut problems: Vec<String> = Vec::new();
    for (what, series) in
        [("Linux pods", &linux), ("Wasm pods", &wasm_series), ("runc", &runc_series), ("youki", &youki_series)]
    {
        problems.extend(series.problems.iter().take(5).map(|p| format!("{what}: {p}")));
    }
    if let Err(e) = deleted {
        problems.push(format!("deleting the pods: {e:#}"));
    }
    let report = render(&args, &load_avg, &linux, &wasm_series, &runc_series, &youki_series, &problems, &youki, &runc);
    super::publish(&report, args.out.as_deref(), "", &[])
}

/// A pod of one long-running container (busybox sleeps; the ticker ticks), gone at once when deleted.
fn bench_pod(name: &str, image: &str) -> Pod {
    let mut pod = wasm::pod(name, "main", image, "Never");
    let spec = pod.spec.as_mut().expect("pod spec");
    spec.termination_grace_period_seconds = Some(0);
    if image.starts_with("busybox") {
        spec.containers[0].command = Some(vec!["sleep".into(), "3600".into()]);
    }
    pod
}

async fn start_one(api: &Api<Pod>, watch: &PodWatch, name: &str, image: &str, series: &mut Series) {
    let started = wasm::start_pod(api, watch, bench_pod(name, image), RUNNING, POD_LIMIT).await;
    if let Err(e) = &started.created {
        series.problems.push(e.clone());
        return;
    }
    let reached = started.reached.expect("created pods are watched");
    match tokio::time::timeout(POD_LIMIT, reached).await {
        Ok(Ok(reached)) if reached.phase == "Running" => {
            let at = reached.at.duration_since(started.sent);
            let position = series.latencies.partition_point(|d| *d < at);
            series.latencies.insert(position, at);
        }
        Ok(Ok(reached)) => series.problems.push(format!("{name} ended {} instead of running", reached.phase)),
        _ => series.problems.push(wasm::stuck(watch, name, POD_LIMIT)),
    }
}

/// The unpacked layer of the busybox image in the node's image store: the dir holding bin/busybox.
fn unpacked_busybox(images: &Path) -> Result<PathBuf> {
    fn find(dir: &Path, depth: usize) -> Option<PathBuf> {
        if dir.join("bin/busybox").is_file() {
            return Some(dir.to_path_buf());
        }
        if depth == 0 {
            return None;
        }
        std::fs::read_dir(dir).ok()?.flatten().filter(|e| e.path().is_dir()).find_map(|e| find(&e.path(), depth - 1))
    }
    find(images, 4).with_context(|| format!("no unpacked busybox layer under {}", images.display()))
}

/// An OCI bundle running `true` on `rootfs` (read-only), from `runc spec`'s defaults.
async fn write_bundle(runc: &Path, bundle: &Path, rootfs: &Path) -> Result<()> {
    std::fs::create_dir_all(bundle)?;
    let out = tokio::process::Command::new(runc).arg("spec").current_dir(bundle).output().await?;
    if !out.status.success() {
        bail!("runc spec failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["true"]);
    config["root"] = serde_json::json!({"path": rootfs, "readonly": true});
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    Ok(())
}

/// Runs each command list `args.pods` times in sequence, timing spawn → last exit.
async fn peer(args: &LinuxArgs, bundle: &Path, commands: impl Fn(&str) -> Vec<Vec<std::ffi::OsString>>) -> Series {
    let mut series = Series::default();
    for i in 0..args.pods {
        let id = format!("wharf-bench-{}-{i}", std::process::id());
        let started = Instant::now();
        let mut failed = None;
        for argv in commands(&id) {
            let run = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .current_dir(bundle)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .output();
            match tokio::time::timeout(PROCESS_LIMIT, run).await {
                Ok(Ok(out)) if out.status.success() => {}
                Ok(Ok(out)) => {
                    failed = Some(format!("{:?} {}: {}", argv, out.status, String::from_utf8_lossy(&out.stderr).trim()))
                }
                Ok(Err(e)) => failed = Some(format!("{:?}: {e}", argv)),
                Err(_) => failed = Some(format!("{:?} took over {PROCESS_LIMIT:?}", argv)),
            }
            if failed.is_some() {
                break;
            }
        }
        if failed.is_some() {
            // A run that failed or hung may leave its container behind: the peer removes it.
            let runtime = &commands(&id)[0][0];
            let _ = tokio::process::Command::new(runtime).args(["delete", "--force", &id]).output().await;
        }
        match failed {
            None => {
                let at = started.elapsed();
                let position = series.latencies.partition_point(|d| *d < at);
                series.latencies.insert(position, at);
            }
            Some(problem) => series.problems.push(problem),
        }
    }
    series
}

#[allow(clippy::too_many_arguments)]
fn render(
    args: &LinuxArgs,
    load_avg: &str,
    linux: &Series,
    wasm_series: &Series,
    runc: &Series,
    youki: &Series,
    problems: &[String],
    youki_path: &Path,
    runc_path: &Path,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Linux pod start\n");
    let _ = writeln!(
        out,
        "`wharf bench linux --pods {}` ({} build), {} pods per series, one at a time, images present; \
         load average before: {}\n",
        args.pods,
        build(),
        count(args.pods),
        load_avg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let ratio = |a: &Series, b: &Series| {
        if a.latencies.is_empty() || b.latencies.is_empty() {
            "n/a".to_string()
        } else {
            format!("{:.2}×", a.p(50.0).as_secs_f64() / b.p(50.0).as_secs_f64())
        }
    };
    let rows = [
        result_row(
            "Linux pod (busybox), create → Running, p50 / p99".into(),
            linux.summary(),
            "p50 ≤ 100 ms",
            (!linux.latencies.is_empty()).then(|| linux.p(50.0) <= LINUX_P50),
        ),
        result_row("Wasm pod (ticker), create → Running, p50 / p99".into(), wasm_series.summary(), "", None),
        result_row("`runc run` of `true`, spawn → exit, p50 / p99".into(), runc.summary(), "", None),
        result_row("`youki run` + `youki delete` of `true`, p50 / p99".into(), youki.summary(), "", None),
        result_row(
            "Linux pod p50 ÷ youki CLI p50".into(),
            ratio(linux, youki),
            "< 1 (faster than youki)",
            (!linux.latencies.is_empty() && !youki.latencies.is_empty()).then(|| linux.p(50.0) < youki.p(50.0)),
        ),
        result_row("Linux pod p50 ÷ runc p50".into(), ratio(linux, runc), "reported", None),
        result_row("Wasm pod p50 ÷ Linux pod p50".into(), ratio(wasm_series, linux), "", None),
    ];
    table(&mut out, ["Measure", "Result", "Target", "Met"], &rows);
    let _ = writeln!(
        out,
        "\nPeers: {} and {}, on the same read-only rootfs (the image's unpacked layer in the node's store). \
         The pod path includes the API round trips, scheduling, the pod sandbox (network, IPC and UTS \
         namespaces), the overlay mount and the status write seen by a watch; the peers only create, \
         start and reap a container.",
        runc_path.display(),
        youki_path.display()
    );
    problems_section(&mut out, problems);
    out
}
