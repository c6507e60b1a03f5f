//! `wharf bench functions`: a Wasm Function (`samples/out/http-hello.wasm`, a `wasi:http/proxy`
//! component) served by the node's gateway, beside `wasmtime serve` of the same component
//! measured in the same run with the same client.
//!
//! - **Throughput and latency**: closed-loop clients (1, 10 and 50 at once, each request sent
//!   when the previous one was answered, keep-alive connections from one pooled HTTP/1.1
//!   client in this process) send `GET /hello` for a fixed count; requests/s = answers ÷ time,
//!   p50/p99 of the round trip. Every answer must be 200 with the component's body.
//! - **First request**: compiled — the first 200 after `wharf fn deploy` on a fresh server (the
//!   node pulls the artifact from the embedded registry and compiles it); cached — the first 200
//!   after the server restarted on the same data dir (the artifact and the compiled code are on
//!   disk, nothing is in memory). The route reaches the gateway through a watch; until then the
//!   gateway answers 404 at once, so the first 200 is the first request that reached the
//!   function. Wasm functions have no replicas: every request instantiates the component, so
//!   the warm p50 at concurrency 1 is the latency of a request "from zero" with everything
//!   cached in memory.
//!
//! A second peer from the same build isolates the gateway's own cost: the bare shim server,
//! [`WasmtimeHttp`](wharf_shim_wasmtime::WasmtimeHttp) behind hyper in the benchmark process,
//! without routing, counters or logs.
//!
//! Processes started here are stopped by their PIDs; all traffic is on 127.0.0.1.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Server, percentile, progress, table};

const BODY: &str = "hello from wasm\n";
/// Longest wait for a deployed function's first 200, or for `wasmtime serve` to listen.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// Concurrency levels measured.
const LEVELS: [usize; 3] = [1, 10, 50];
/// Targets: requests/s at least this share of `wasmtime serve`'s; first-request p50s.
const PEER_RATIO: f64 = 0.8;

#[derive(clap::Args)]
pub struct FunctionsArgs {
    /// The component both servers run.
    #[arg(long, default_value = "samples/out/http-hello.wasm")]
    component: PathBuf,
    /// The wasmtime CLI, the peer (default: $WASMTIME, then `wasmtime` on PATH).
    #[arg(long, env = "WASMTIME")]
    wasmtime: Option<PathBuf>,
    /// Requests per concurrency level and server.
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    /// Where the temporary data dirs go (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Level {
    concurrency: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

pub(super) async fn run(args: FunctionsArgs) -> Result<()> {
    let component = std::fs::canonicalize(&args.component)
        .with_context(|| format!("{}: not found (build it with samples/build)", args.component.display()))?;
    let wasmtime = args
        .wasmtime
        .clone()
        .or_else(|| {
            std::env::var_os("PATH")
                .and_then(|p| std::env::split_paths(&p).map(|d| d.join("wasmtime")).find(|f| f.is_file()))
        })
        .context("the wasmtime CLI (the peer) is not on PATH and neither --wasmtime nor $WASMTIME is set")?;
    let exe = std::env::current_exe()?;
    let base = super::bench_dir(args.dir.clone())?;
    let data_dir = base.path().join("server");
    let client = crate::functions::http_client()?;

    let port = free_port()?;
    let gateway_flag = format!("127.0.0.1:{port}");
    let url = format!("http://127.0.0.1:{port}/hello");
    progress("starting a server");
    let server = Server::start_with(&exe, &data_dir, &["--gateway-listen", &gateway_flag]).await?;
    progress("deploying the function");
    let deploy = tokio::process::Command::new(&exe)
        .args(["fn", "deploy", "hello", "--path", "/hello", "--wasm"])
        .arg(&component)
        .env("KUBECONFIG", data_dir.join("kubeconfig.yaml"))
        .stdout(Stdio::null())
        .output()
        .await?;
    if !deploy.status.success() {
        bail!("wharf fn deploy failed: {}", String::from_utf8_lossy(&deploy.stderr));
    }
    let compiled = first_answer(&client, &url).await?;
    let mut ours = Vec::new();
    for concurrency in LEVELS {
        progress(&format!("gateway: {} requests from {concurrency} clients", args.requests));
        ours.push(load(&client, &url, concurrency, args.requests).await?);
    }
    server.stop().await?;
    progress("restarting the server on the same data dir");
    let server = Server::start_with(&exe, &data_dir, &["--gateway-listen", &gateway_flag]).await?;
    let cached = first_answer(&client, &url).await?;
    server.stop().await?;

    progress("starting the bare shim server (in this process)");
    let bare_url = bare_server(&component, &base.path().join("bare-cache")).await?;
    first_answer(&client, &bare_url).await?;
    let mut bare = Vec::new();
    for concurrency in LEVELS {
        progress(&format!("bare shim server: {} requests from {concurrency} clients", args.requests));
        bare.push(load(&client, &bare_url, concurrency, args.requests).await?);
    }

    let peer_port = free_port()?;
    progress("starting wasmtime serve");
    let mut peer = tokio::process::Command::new(&wasmtime)
        .arg("serve")
        .arg("--addr")
        .arg(format!("127.0.0.1:{peer_port}"))
        .arg(&component)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", wasmtime.display()))?;
    let peer_url = format!("http://127.0.0.1:{peer_port}/hello");
    let peer_first = first_answer(&client, &peer_url).await;
    let mut theirs = Vec::new();
    if peer_first.is_ok() {
        for concurrency in LEVELS {
            progress(&format!("wasmtime serve: {} requests from {concurrency} clients", args.requests));
            theirs.push(load(&client, &peer_url, concurrency, args.requests).await?);
        }
    }
    if let Some(pid) = peer.id() {
        let _ = tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), peer.wait()).await;
    peer_first.context("wasmtime serve never answered 200")?;

    let mut out = String::new();
    let _ = writeln!(out, "## Wasm function: gateway vs `wasmtime serve` ({} requests per level)\n", args.requests);
    let mut rows = Vec::new();
    for (a, b) in ours.iter().zip(&theirs) {
        let ratio = a.per_second / b.per_second;
        rows.push([
            a.concurrency.to_string(),
            format!("{:.0}", a.per_second),
            format!("{:.0}", b.per_second),
            format!("{ratio:.2}× {}", if ratio >= PEER_RATIO { "(met)" } else { "(not met)" }),
            format!("{} / {}", ms(a.p50), ms(a.p99)),
            format!("{} / {}", ms(b.p50), ms(b.p99)),
        ]);
    }
    table(
        &mut out,
        [
            "clients",
            "gateway req/s",
            "wasmtime serve req/s",
            "ratio (target ≥ 0.8×)",
            "gateway p50 / p99",
            "wasmtime p50 / p99",
        ],
        &rows,
    );
    let _ = writeln!(
        out,
        "\n## Same build: gateway vs the bare shim server (WasmtimeHttp behind hyper, no routing or counters, in the benchmark process)\n"
    );
    let rows: Vec<[String; 4]> = ours
        .iter()
        .zip(&bare)
        .map(|(a, b)| {
            [
                a.concurrency.to_string(),
                format!("{:.0}", a.per_second),
                format!("{:.0}", b.per_second),
                format!("{:.2}×", a.per_second / b.per_second),
            ]
        })
        .collect();
    table(&mut out, ["clients", "gateway req/s", "bare shim req/s", "ratio"], &rows);
    let _ = writeln!(out, "\n## First request of a Wasm function\n");
    let warm = ours.first().map(|l| l.p50).unwrap_or_default();
    table(
        &mut out,
        ["case", "latency", "target"],
        &[
            ["compiled (pull + compile + instantiate)".into(), ms(compiled), "≤ 50 ms".into()],
            ["cached on disk (after an agent restart)".into(), ms(cached), "".into()],
            ["warm, p50 at 1 client (instantiate per request)".into(), ms(warm), "p50 ≤ 1 ms".into()],
        ],
    );
    print!("{out}");
    if let Some(path) = &args.out {
        std::fs::write(path, &out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).context("no free loopback port")?.port())
}

/// The round trip of the first request answered 200 (earlier ones fail or answer 404 at once).
async fn first_answer(client: &reqwest::Client, url: &str) -> Result<Duration> {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        let sent = Instant::now();
        if let Ok(response) = client.get(url).send().await {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let took = sent.elapsed();
            if status == 200 && body == BODY {
                return Ok(took);
            }
            if status != 404 {
                bail!("{url} answered {status}: {body}");
            }
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer 200 within {READY_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `total` requests from `concurrency` closed-loop clients.
async fn load(client: &reqwest::Client, url: &str, concurrency: usize, total: usize) -> Result<Level> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, next) = (client.clone(), url.to_string(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let sent = Instant::now();
                let response = client.get(&url).send().await?;
                let status = response.status();
                let body = response.text().await?;
                if status != 200 || body != BODY {
                    bail!("{url} answered {status}: {body}");
                }
                latencies.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok(Level {
        concurrency,
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
    })
}

/// Milliseconds with microsecond resolution (the warm figures are below 1 ms).
fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The shim alone: every request on a loopback port goes straight to [`WasmtimeHttp`], served
/// by hyper on this process's runtime; its URL.
async fn bare_server(component: &std::path::Path, cache: &std::path::Path) -> Result<String> {
    use http_body_util::BodyExt;
    use wharf_shim::http::{BoxError, ProxyHandler, ProxyRequest, RequestLimits};

    let config =
        wharf_shim_wasmtime::WasmtimeConfig { max_instances: 1024, ..wharf_shim_wasmtime::WasmtimeConfig::new(cache) };
    let http = Arc::new(wharf_shim_wasmtime::WasmtimeHttp::new(&config)?);
    let digest = "sha256:00000000000000000000000000000000bbbb".to_string();
    http.prepare(component.to_path_buf(), digest.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hello", listener.local_addr()?);
    let log: Arc<dyn wharf_shim::LogSink> = Arc::new(Discard);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (http, digest, log) = (http.clone(), digest.clone(), log.clone());
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let (http, digest, log) = (http.clone(), digest.clone(), log.clone());
                async move {
                    let request = request.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
                    let limits = RequestLimits { memory_bytes: None, timeout: Duration::from_secs(30) };
                    let answer = http.handle(ProxyRequest { digest, limits, log, request }).await;
                    Ok::<_, std::convert::Infallible>(answer.unwrap_or_else(|e| {
                        let body = http_body_util::Full::new(bytes::Bytes::from(e.to_string()));
                        let mut response = hyper::Response::new(body.map_err(|never| match never {}).boxed_unsync());
                        *response.status_mut() = hyper::StatusCode::from_u16(e.status()).unwrap_or_default();
                        response
                    }))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    Ok(url)
}

/// Guest output the bare server throws away.
struct Discard;

impl wharf_shim::LogSink for Discard {
    fn write(&self, _stream: wharf_shim::Stream, _bytes: &[u8]) {}
}
