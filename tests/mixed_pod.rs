//! Wasm and Linux containers of one pod share its network, as root: the `http-server` sample
//! (a wasm32-wasip2 command listening with std::net, run by wasmtime) answers HTTP on port 8080,
//! and a busybox sidecar (youki) of the same pod fetches it over 127.0.0.1 and the pod IP — the
//! sample manifest `samples/manifests/mixed-socket-pod.yaml`. A Wasm container that declares no ports, in a pod
//! without the `wharf.dev/wasi-sockets: "allow"` annotation, cannot open a socket; with the
//! annotation it can. The Wasm sample is built by `samples/build` (wasm32-wasip2 Rust target).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Cluster, busybox_layout};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// `samples/out/http-server.wasm`, (re)built by `samples/build`.
fn http_server_sample() -> PathBuf {
    let out = std::process::Command::new(samples().join("build")).output().expect("samples/build runs");
    assert!(
        out.status.success(),
        "samples/build failed (it needs the wasm32-wasip2 Rust target: rustup target add wasm32-wasip2):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    samples().join("out/http-server.wasm")
}

/// kubectl's stdout, whether or not it succeeded (logs of a container not started yet).
fn output(cluster: &Cluster, args: &[&str]) -> String {
    String::from_utf8_lossy(&cluster.kubectl(args).stdout).into_owned()
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

/// A pod of one `http-server` container `app` (no ports), annotated as given.
fn lone_app(name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\nspec:\n  \
         restartPolicy: Never\n  containers:\n  - name: app\n    image: http-server:v1\n"
    )
}

#[test]
fn a_wasm_app_and_a_linux_sidecar_share_the_pod_network() {
    let cluster = Cluster::start_with(&["--backoff-base-ms", "300"]);
    let layout = busybox_layout(cluster.data_dir());
    assert_eq!(cluster.import(&layout, "busybox:v1"), "busybox:v1");
    assert_eq!(cluster.import(&http_server_sample(), "http-server:v1"), "http-server:v1");

    // The mixed pod: the sidecar's log shows the Wasm app's answer, fetched over localhost.
    let manifest = samples().join("manifests/mixed-socket-pod.yaml");
    let applied = Instant::now();
    cluster.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let answered = cluster.eventually(START, || {
        output(&cluster, &["logs", "mixed-socket", "-c", "sidecar"]).contains("hello from wasm socket")
    });
    let sidecar = output(&cluster, &["logs", "mixed-socket", "-c", "sidecar"]);
    assert!(
        answered,
        "the sidecar never got the Wasm app's answer; its log:\n{sidecar}\npod:\n{:#}",
        cluster.pod("mixed-socket")
    );
    println!("apply to the sidecar's first answer: {:.2} s", applied.elapsed().as_secs_f64());
    let app = cluster.ok(&["logs", "mixed-socket", "-c", "app"]);
    assert!(app.contains("listening on 0.0.0.0:8080"), "{app}");
    assert!(app.contains("GET / from 127.0.0.1:"), "{app}");
    // The pod IP is the Wasm app's too.
    let pod_ip = cluster.pod("mixed-socket")["status"]["podIP"].as_str().unwrap_or_default().to_string();
    let url = format!("http://{pod_ip}:8080/");
    let by_ip = cluster.ok(&["exec", "mixed-socket", "-c", "sidecar", "--", "wget", "-qO-", &url]);
    assert_eq!(by_ip, "hello from wasm socket\n", "GET {url} from the sidecar");
    let wide = cluster.ok(&["get", "pod", "mixed-socket", "-o", "wide"]);
    println!("{wide}");

    // No ports, no annotation: the same app cannot listen, and says so.
    cluster.apply(&lone_app("no-sockets", ""));
    let pod = cluster.wait_pod("no-sockets", "failed", START, |p| phase(p) == "Failed");
    let log = cluster.ok(&["logs", "no-sockets"]);
    assert!(log.contains("cannot listen on 0.0.0.0:8080: Permission denied"), "{log}\n{pod:#}");
    println!("no-sockets log: {}", log.trim());

    // No ports but the annotation: it listens.
    cluster.apply(&lone_app("allowed", "wharf.dev/wasi-sockets: allow"));
    let listening =
        cluster.eventually(START, || output(&cluster, &["logs", "allowed"]).contains("listening on 0.0.0.0:8080"));
    assert!(
        listening,
        "annotated pod never listened: {}\n{:#}",
        output(&cluster, &["logs", "allowed"]),
        cluster.pod("allowed")
    );

    let server = server_pid(&cluster);
    assert_eq!(guest_threads(server), 2, "a thread for each Wasm app allowed sockets");
    cluster.ok(&["delete", "pod", "mixed-socket", "no-sockets", "allowed", "--wait=true", "--timeout=60s"]);
    assert!(cluster.eventually(Duration::from_secs(10), || guest_threads(server) == 0), "guest threads left");
}

/// The `wharf server` process of `cluster` (found by its data dir on its command line).
fn server_pid(cluster: &Cluster) -> u32 {
    let dir = cluster.data_dir().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.get(1) == Some(&&b"server"[..]) && args.contains(&dir.as_bytes())
        })
        .expect("the cluster's wharf server process")
}

/// Threads of process `pid` that run a Wasm guest inside a pod's network namespace.
fn guest_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "wasm-netns"))
                .count()
        })
        .unwrap_or(0)
}
