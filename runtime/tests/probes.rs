//! Container probes against real servers, sockets, processes and network namespaces: readiness
//! following an HTTP server, redirects, HTTPS, tcpSocket, gRPC health, probes made inside a pod's
//! network namespace, exec probes run as real processes, thresholds, initial delays and the
//! startup probe gating the others. Needs root and util-linux's unshare/nsenter and iproute2.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::header::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wharf_runtime::events::Kind;
use wharf_runtime::probes::{self, Action, Probe, ProbeKind, ProbeUpdate, Probes, Target, Verdict};
use wharf_shim::{BoxFuture, Container, ExecProcess, ExecSpec, Exit, ShimError, Stats};

/// How long any expected update may take on a loaded machine before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running container whose exec runs the command as a real process on the host.
struct HostContainer {
    exec: bool,
}

impl Container for HostContainer {
    fn id(&self) -> &str {
        "test"
    }
    fn wait(&self) -> BoxFuture<'_, Exit> {
        Box::pin(std::future::pending())
    }
    fn stop(&self, _: Duration) -> BoxFuture<'_, Exit> {
        Box::pin(async { Exit::Killed { signal: 9 } })
    }
    fn stats(&self) -> Stats {
        Stats::default()
    }
    fn exec(&self, spec: ExecSpec) -> BoxFuture<'_, Result<ExecProcess, ShimError>> {
        Box::pin(async move {
            if !self.exec {
                return Err(ShimError::Unsupported("exec is not supported by this runtime".into()));
            }
            let mut child = tokio::process::Command::new(&spec.args[0])
                .args(&spec.args[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| ShimError::Runtime(e.to_string()))?;
            let stdout = child.stdout.take().expect("stdout").into_owned_fd().expect("stdout fd");
            let stderr = child.stderr.take().expect("stderr").into_owned_fd().expect("stderr fd");
            Ok(ExecProcess {
                stdin: None,
                stdout: Some(File::from(stdout)),
                stderr: Some(File::from(stderr)),
                resize: Box::new(|_, _| {}),
                exit: Box::pin(async move {
                    let status = child.wait().await.expect("wait for the exec'd process");
                    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
                }),
            })
        })
    }
}

fn target(netns: Option<&Path>) -> Target {
    Target {
        container: Arc::new(HostContainer { exec: true }),
        name: "app".into(),
        netns: netns.map(Path::to_path_buf),
        pod_ip: "127.0.0.1".into(),
        restarts: true,
    }
}

/// A probe with short periods so tests take moments.
fn probe(action: Action) -> Probe {
    Probe {
        action,
        initial_delay: Duration::ZERO,
        period: Duration::from_millis(50),
        timeout: Duration::from_secs(3),
        success_threshold: 1,
        failure_threshold: 1,
        termination_grace: None,
    }
}

fn sh(script: &str) -> Action {
    Action::Exec { command: vec!["sh".into(), "-c".into(), script.into()] }
}

/// A script whose n-th run passes when `plan`'s n-th letter is S and fails (printing "run n")
/// when it is F; runs past the plan repeat its last letter. Runs are counted in `counter`, which
/// is replaced by a rename so the test never reads it half-written.
fn plan(counter: &Path, plan: &str) -> Action {
    let last = &plan[plan.len() - 1..];
    let counter = counter.display();
    sh(&format!(
        "n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}.next; mv {counter}.next {counter}; \
         r=$(echo {plan} | cut -c$n); [ -n \"$r\" ] || r={last}; \
         [ \"$r\" = S ] || {{ echo run $n; exit 1; }}"
    ))
}

fn runs(counter: &Path) -> u32 {
    std::fs::read_to_string(counter).map_or(0, |s| s.trim().parse().expect("counter"))
}

/// `run` driven on its own task, its updates collected as they come.
struct Probing {
    updates: mpsc::UnboundedReceiver<ProbeUpdate>,
    task: Option<JoinHandle<Verdict>>,
}

impl Probing {
    fn start(probes: Probes, target: Target) -> Self {
        let (tx, updates) = mpsc::unbounded_channel();
        let task = tokio::spawn(probes::run(probes, target, move |u| {
            let _ = tx.send(u);
        }));
        Probing { updates, task: Some(task) }
    }

    async fn next(&mut self) -> ProbeUpdate {
        match tokio::time::timeout(PATIENCE, self.updates.recv()).await {
            Ok(Some(update)) => update,
            Ok(None) => panic!("probing ended without the expected update"),
            Err(_) => panic!("no probe update within {PATIENCE:?}"),
        }
    }

    /// Updates up to and including the first that `stop` accepts.
    async fn until(&mut self, stop: impl Fn(&ProbeUpdate) -> bool) -> Vec<ProbeUpdate> {
        let mut seen = Vec::new();
        loop {
            let update = self.next().await;
            let done = stop(&update);
            seen.push(update);
            if done {
                return seen;
            }
        }
    }

    /// The verdict, and the updates reported before it.
    async fn verdict(&mut self) -> (Verdict, Vec<ProbeUpdate>) {
        let task = self.task.take().expect("verdict asked once");
        let verdict = tokio::time::timeout(PATIENCE, task).await.expect("no verdict in time").expect("probing task");
        let mut updates = Vec::new();
        while let Ok(update) = self.updates.try_recv() {
            updates.push(update);
        }
        (verdict, updates)
    }
}

impl Drop for Probing {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn warning(reason: &'static str, message: impl Into<String>) -> ProbeUpdate {
    ProbeUpdate::Event { kind: Kind::Warning, reason, message: message.into() }
}

fn is_ready(update: &ProbeUpdate) -> bool {
    *update == ProbeUpdate::Ready(true)
}

fn is_unready(update: &ProbeUpdate) -> bool {
    *update == ProbeUpdate::Ready(false)
}

/// An HTTP/1.1 server answering each request with `answer(n, request)` (n counts from 1);
/// returns its port and the requests it saw.
async fn http_server(answer: impl Fn(usize, &str) -> String + Send + Sync + 'static) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let requests = seen.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let request = read_head(&mut stream).await;
            let n = {
                let mut seen = requests.lock().unwrap();
                seen.push(request.clone());
                seen.len()
            };
            let _ = stream.write_all(answer(n, &request).as_bytes()).await;
        }
    });
    (port, seen)
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn response(status: &str, headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}", body.len())
}

fn http_get(port: u16, path: &str) -> Action {
    Action::HttpGet {
        https: false,
        host: None,
        port: Ok(port),
        path: path.into(),
        headers: vec![("X-Probe".into(), "yes".into())],
    }
}

#[tokio::test]
async fn readiness_follows_an_http_server_from_200_to_500() {
    let (port, requests) = http_server(|n, _| {
        if n <= 2 { response("200 OK", "", "fine") } else { response("500 Internal Server Error", "", "broken") }
    })
    .await;
    let readiness = Probe { failure_threshold: 2, ..probe(http_get(port, "/healthz")) };
    let mut probing = Probing::start(Probes { readiness: Some(readiness), ..Default::default() }, target(None));
    let seen = probing.until(is_ready).await;
    assert_eq!(seen, [ProbeUpdate::Started(true), ProbeUpdate::Ready(false), ProbeUpdate::Ready(true)]);
    let seen = probing.until(is_unready).await;
    let failed = warning("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500");
    assert_eq!(seen, [failed.clone(), failed, ProbeUpdate::Ready(false)], "two failures in a row make it unready");
    let first = requests.lock().unwrap()[0].to_lowercase();
    assert!(first.starts_with("get /healthz http/1.1\r\n"), "{first}");
    for header in [format!("host: 127.0.0.1:{port}"), "user-agent: kube-probe/1.33".into(), "x-probe: yes".into()] {
        assert!(first.contains(&header), "request lacks {header:?}: {first}");
    }
}

#[tokio::test]
async fn http_probes_follow_same_host_redirects_only() {
    let (port, requests) = http_server(|_, request| {
        let path = request.split(' ').nth(1).unwrap_or("");
        match path {
            "/start" => response("302 Found", "Location: /final\r\n", ""),
            "/final" => response("503 Service Unavailable", "", ""),
            "/away" => response("301 Moved Permanently", "Location: http://elsewhere.invalid/\r\n", "moved"),
            _ => response("302 Found", "Location: /loop\r\n", ""),
        }
    })
    .await;
    let check = |path: &str| Probes { readiness: Some(probe(http_get(port, path))), ..Default::default() };

    let mut followed = Probing::start(check("/start"), target(None));
    let seen = followed.until(|u| matches!(u, ProbeUpdate::Event { .. })).await;
    assert_eq!(
        seen.last(),
        Some(&warning("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"))
    );
    drop(followed);

    let mut elsewhere = Probing::start(check("/away"), target(None));
    let seen = elsewhere.until(is_ready).await;
    let terminated =
        warning("ProbeWarning", "Readiness probe warning: Probe terminated redirects, Response body: moved");
    assert!(seen.contains(&terminated), "{seen:?}");
    drop(elsewhere);

    requests.lock().unwrap().clear();
    let mut looping = Probing::start(check("/loop"), target(None));
    let seen = looping.until(|u| matches!(u, ProbeUpdate::Event { .. })).await;
    let stopped = format!("Readiness probe failed: Get \"http://127.0.0.1:{port}/loop\": stopped after 10 redirects");
    assert_eq!(seen.last(), Some(&warning("Unhealthy", stopped)));
    drop(looping);
    let loops = requests.lock().unwrap().iter().filter(|r| r.starts_with("GET /loop ")).count();
    assert!(loops >= 11, "the first run asks once and follows ten redirects, saw {loops} requests");
}

#[tokio::test]
async fn https_probes_accept_a_self_signed_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let Ok(mut tls) = acceptor.accept(stream).await else { continue };
            read_head(&mut tls).await;
            let _ = tls.write_all(response("204 No Content", "", "").as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    let action = Action::HttpGet { https: true, host: None, port: Ok(port), path: "/".into(), headers: vec![] };
    let mut probing = Probing::start(Probes { readiness: Some(probe(action)), ..Default::default() }, target(None));
    let seen = probing.until(is_ready).await;
    assert!(!seen.iter().any(|u| matches!(u, ProbeUpdate::Event { .. })), "{seen:?}");
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn a_closed_port_fails_tcp_liveness_and_kills_the_container() {
    let port = closed_port().await;
    let tcp = Action::TcpSocket { host: None, port: Ok(port) };
    let liveness =
        Probe { failure_threshold: 2, termination_grace: Some(Duration::from_secs(7)), ..probe(tcp.clone()) };
    let mut probing = Probing::start(Probes { liveness: Some(liveness.clone()), ..Default::default() }, target(None));
    let (verdict, updates) = probing.verdict().await;
    assert_eq!(verdict, Verdict { probe: ProbeKind::Liveness, grace: Some(Duration::from_secs(7)) });
    let refused =
        warning("Unhealthy", format!("Liveness probe failed: dial tcp 127.0.0.1:{port}: connect: connection refused"));
    let killing = ProbeUpdate::Event {
        kind: Kind::Normal,
        reason: "Killing",
        message: "Container app failed liveness probe, will be restarted".into(),
    };
    assert_eq!(updates, [ProbeUpdate::Started(true), ProbeUpdate::Ready(true), refused.clone(), refused, killing]);

    let never = Target { restarts: false, ..target(None) };
    let mut probing = Probing::start(Probes { liveness: Some(liveness), ..Default::default() }, never);
    let (_, updates) = probing.verdict().await;
    let killing = ProbeUpdate::Event {
        kind: Kind::Normal,
        reason: "Killing",
        message: "Container app failed liveness probe".into(),
    };
    assert_eq!(updates.last(), Some(&killing), "restartPolicy Never: not restarted");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let open = Action::TcpSocket { host: None, port: Ok(listener.local_addr().expect("addr").port()) };
    let mut probing = Probing::start(Probes { readiness: Some(probe(open)), ..Default::default() }, target(None));
    assert_eq!(probing.until(is_ready).await.len(), 3);
}

/// A gRPC health server answering each Check with the next status of `statuses` (then the last).
async fn grpc_server(statuses: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let calls = Arc::new(Mutex::new(0usize));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let calls = calls.clone();
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let n = {
                    let mut calls = calls.lock().unwrap();
                    *calls += 1;
                    *calls
                };
                let status = statuses[(n - 1).min(statuses.len() - 1)];
                assert_eq!(request.uri().path(), "/grpc.health.v1.Health/Check");
                let mut trailers = hyper::HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                let frames = vec![
                    Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]))),
                    Ok(Frame::trailers(trailers)),
                ];
                let body = StreamBody::new(futures::stream::iter(frames));
                let response =
                    hyper::Response::builder().header("content-type", "application/grpc").body(body).expect("response");
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    port
}

#[tokio::test]
async fn grpc_health_checks_drive_readiness() {
    let port = grpc_server(&[1, 2]).await;
    let grpc = Action::Grpc { port: Ok(port), service: "app".into() };
    let mut probing = Probing::start(Probes { readiness: Some(probe(grpc)), ..Default::default() }, target(None));
    probing.until(is_ready).await;
    let seen = probing.until(is_unready).await;
    assert_eq!(
        seen,
        [
            warning("Unhealthy", "Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")"),
            ProbeUpdate::Ready(false)
        ]
    );
}

/// A network namespace of the test's own, pinned on a file like a pod sandbox's, with lo up.
struct NetNs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl NetNs {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("net");
        File::create(&path).expect("ns file");
        let ns = format!("--net={}", path.display());
        let run = |program: &str, args: &[&str], package: &str| {
            let status = Command::new(program)
                .args(args)
                .status()
                .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install {package} (and run as root)"));
            assert!(status.success(), "{program} {args:?} failed: {status} (these tests need root)");
        };
        run("unshare", &[&ns, "true"], "util-linux");
        let made = NetNs { _dir: dir, path };
        run("nsenter", &[&ns, "ip", "link", "set", "lo", "up"], "iproute2");
        made
    }

    /// A listener on 127.0.0.1 inside the namespace, bound from a thread that entered it.
    fn listen(&self) -> std::net::TcpListener {
        let path = self.path.clone();
        std::thread::spawn(move || {
            let ns = File::open(&path).expect("open ns");
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind inside the namespace")
        })
        .join()
        .expect("listener thread")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test]
async fn network_probes_connect_inside_the_pods_namespace() {
    let ns = NetNs::new();
    let listener = ns.listen();
    listener.set_nonblocking(true).expect("nonblocking");
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.expect("accept");
            read_head(&mut stream).await;
            let _ = stream.write_all(response("200 OK", "", "ok").as_bytes()).await;
        }
    });
    // Built from a container spec, naming its port.
    let named = IntOrString::String("web".into());
    let spec = core::Container {
        name: "app".into(),
        ports: Some(vec![core::ContainerPort {
            name: Some("web".into()),
            container_port: port.into(),
            ..Default::default()
        }]),
        readiness_probe: Some(core::Probe {
            http_get: Some(core::HTTPGetAction { port: named.clone(), path: Some("/".into()), ..Default::default() }),
            period_seconds: Some(1),
            failure_threshold: Some(1),
            ..Default::default()
        }),
        liveness_probe: Some(core::Probe {
            tcp_socket: Some(core::TCPSocketAction { port: named, ..Default::default() }),
            failure_threshold: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut inside = Probing::start(Probes::new(&spec), target(Some(&ns.path)));
    let seen = inside.until(is_ready).await;
    assert!(!seen.iter().any(|u| matches!(u, ProbeUpdate::Event { .. })), "{seen:?}");
    drop(inside);

    // From the agent's namespace nothing listens on that port.
    let mut outside = Probing::start(Probes::new(&spec), target(None));
    let (verdict, updates) = outside.verdict().await;
    assert_eq!(verdict.probe, ProbeKind::Liveness);
    let refused = format!("dial tcp 127.0.0.1:{port}: connect: connection refused");
    assert!(updates.contains(&warning("Unhealthy", format!("Liveness probe failed: {refused}"))), "{updates:?}");
    assert!(!updates.contains(&ProbeUpdate::Ready(true)));

    let gone = Target { netns: Some(ns.path.with_file_name("missing")), ..target(None) };
    let mut errored = Probing::start(Probes::new(&spec), gone);
    let seen = errored.until(|u| matches!(u, ProbeUpdate::Event { .. })).await;
    let ProbeUpdate::Event { message, .. } = seen.last().expect("event") else { unreachable!() };
    assert!(message.contains("probe errored: cannot open network namespace"), "{message}");
}

#[tokio::test]
async fn exec_probes_pass_on_exit_zero_and_report_output_and_timeouts() {
    let mut failing = Probing::start(
        Probes { readiness: Some(probe(sh("echo not yet; echo oops >&2; exit 3"))), ..Default::default() },
        target(None),
    );
    let seen = failing.until(|u| matches!(u, ProbeUpdate::Event { .. })).await;
    assert_eq!(seen.last(), Some(&warning("Unhealthy", "Readiness probe failed: not yet\noops\n")));
    drop(failing);

    let mut passing =
        Probing::start(Probes { readiness: Some(probe(sh("echo fine"))), ..Default::default() }, target(None));
    assert_eq!(passing.until(is_ready).await.len(), 3);
    drop(passing);

    let slow = Probe { timeout: Duration::from_millis(300), ..probe(sh("sleep 5")) };
    let mut timing_out = Probing::start(Probes { readiness: Some(slow), ..Default::default() }, target(None));
    let seen = timing_out.until(|u| matches!(u, ProbeUpdate::Event { .. })).await;
    assert_eq!(seen.last(), Some(&warning("Unhealthy", "Readiness probe failed: command \"sh -c sleep 5\" timed out")));
}

#[tokio::test]
async fn readiness_needs_its_thresholds_in_a_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let counter = dir.path().join("runs");
    let readiness = Probe { success_threshold: 2, failure_threshold: 2, ..probe(plan(&counter, "FSFSSFF")) };
    let mut probing = Probing::start(Probes { readiness: Some(readiness), ..Default::default() }, target(None));
    let failed = |n: u32| warning("Unhealthy", format!("Readiness probe failed: run {n}\n"));
    assert_eq!(
        probing.until(is_ready).await,
        [ProbeUpdate::Started(true), ProbeUpdate::Ready(false), failed(1), failed(3), ProbeUpdate::Ready(true)],
        "ready after the 4th and 5th runs pass in a row"
    );
    assert_eq!(probing.until(is_unready).await, [failed(6), failed(7), ProbeUpdate::Ready(false)]);
}

#[tokio::test]
async fn liveness_kills_after_its_failure_threshold_in_a_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let counter = dir.path().join("runs");
    let liveness = Probe { failure_threshold: 3, ..probe(plan(&counter, "FSFFF")) };
    let mut probing = Probing::start(Probes { liveness: Some(liveness), ..Default::default() }, target(None));
    let (verdict, updates) = probing.verdict().await;
    assert_eq!(verdict, Verdict { probe: ProbeKind::Liveness, grace: None });
    let failed = |n: u32| warning("Unhealthy", format!("Liveness probe failed: run {n}\n"));
    let killing = ProbeUpdate::Event {
        kind: Kind::Normal,
        reason: "Killing",
        message: "Container app failed liveness probe, will be restarted".into(),
    };
    assert_eq!(
        updates,
        [ProbeUpdate::Started(true), ProbeUpdate::Ready(true), failed(1), failed(3), failed(4), failed(5), killing]
    );
    assert_eq!(runs(&counter), 5, "probing stops at the verdict");
}

#[tokio::test]
async fn probes_wait_for_their_initial_delay() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (delayed, prompt) = (dir.path().join("delayed"), dir.path().join("prompt"));
    let readiness = Probe { initial_delay: Duration::from_secs(3600), ..probe(plan(&delayed, "S")) };
    let liveness = probe(plan(&prompt, "S"));
    let probes = Probes { readiness: Some(readiness), liveness: Some(liveness), ..Default::default() };
    let mut probing = Probing::start(probes, target(None));
    assert_eq!(probing.until(is_unready).await, [ProbeUpdate::Started(true), ProbeUpdate::Ready(false)]);
    let five_runs = async {
        while runs(&prompt) < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, five_runs).await.expect("the undelayed probe runs");
    assert_eq!(runs(&delayed), 0, "the delayed probe has not run while the other ran 5 times");
    assert!(probing.updates.try_recv().is_err(), "no readiness change during the delay");
}

#[tokio::test]
async fn the_startup_probe_gates_liveness_and_readiness() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flag = dir.path().join("started");
    let check = format!("test -f {} || {{ echo waiting; exit 1; }}", flag.display());
    let startup = Probe { failure_threshold: 1000, ..probe(sh(&check)) };
    let probes = Probes {
        startup: Some(startup),
        liveness: Some(probe(sh("echo dead; exit 1"))),
        readiness: Some(probe(sh("true"))),
    };
    let mut probing = Probing::start(probes, target(None));
    let waiting = warning("Unhealthy", "Startup probe failed: waiting\n");
    let mut seen = Vec::new();
    while seen.iter().filter(|u| **u == waiting).count() < 3 {
        seen.push(probing.next().await);
    }
    assert_eq!(seen[..2], [ProbeUpdate::Started(false), ProbeUpdate::Ready(false)]);
    assert!(seen[2..].iter().all(|u| *u == waiting), "nothing but startup failures before it passes: {seen:?}");

    File::create(&flag).expect("flag");
    let (verdict, updates) = probing.verdict().await;
    assert_eq!(verdict.probe, ProbeKind::Liveness);
    let started = updates.iter().position(|u| *u == ProbeUpdate::Started(true)).expect("started");
    let dead =
        updates.iter().position(|u| *u == warning("Unhealthy", "Liveness probe failed: dead\n")).expect("liveness ran");
    assert!(started < dead, "{updates:?}");
}

#[tokio::test]
async fn a_failing_startup_probe_kills_with_its_own_grace() {
    let startup = Probe {
        failure_threshold: 2,
        termination_grace: Some(Duration::from_secs(2)),
        ..probe(sh("echo booting; exit 1"))
    };
    let probes = Probes { startup: Some(startup), readiness: Some(probe(sh("true"))), ..Default::default() };
    let mut probing = Probing::start(probes, target(None));
    let (verdict, updates) = probing.verdict().await;
    assert_eq!(verdict, Verdict { probe: ProbeKind::Startup, grace: Some(Duration::from_secs(2)) });
    let failed = warning("Unhealthy", "Startup probe failed: booting\n");
    let killing = ProbeUpdate::Event {
        kind: Kind::Normal,
        reason: "Killing",
        message: "Container app failed startup probe, will be restarted".into(),
    };
    assert_eq!(
        updates,
        [ProbeUpdate::Started(false), ProbeUpdate::Ready(false), failed.clone(), failed, killing],
        "readiness never ran"
    );
}

#[tokio::test]
async fn without_exec_support_exec_probes_are_ignored_with_a_warning() {
    let wasm = Target { container: Arc::new(HostContainer { exec: false }), ..target(None) };
    let probes =
        Probes { liveness: Some(probe(sh("exit 1"))), readiness: Some(probe(sh("exit 1"))), ..Default::default() };
    let mut probing = Probing::start(probes, wasm);
    let ignored =
        |kind| warning("ProbeNotSupported", format!("{kind} probe ignored: exec is not supported by this runtime"));
    let mut seen = Vec::new();
    let expected = [ignored("Readiness"), ignored("Liveness"), ProbeUpdate::Ready(true)];
    while !expected.iter().all(|u| seen.contains(u)) {
        seen.push(probing.next().await);
    }
    assert!(!seen.iter().any(|u| matches!(u, ProbeUpdate::Event { reason: "Killing", .. })), "{seen:?}");
}

#[tokio::test]
async fn without_probes_a_running_container_is_started_and_ready() {
    let mut probing = Probing::start(Probes::default(), target(None));
    assert_eq!(probing.next().await, ProbeUpdate::Started(true));
    assert_eq!(probing.next().await, ProbeUpdate::Ready(true));
}
