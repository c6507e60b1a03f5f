//! The API server's additions the dashboard relies on, as a user checks them: `kubectl top`
//! (metrics.k8s.io from the agents' metrics), a node's metrics through `nodes/NAME/proxy`, a
//! function invoked through `functions/NAME/proxy` and its log through `functions/NAME/log`,
//! and an exec WebSocket that authenticates
//! with the bearer subprotocol as the browser's does.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Cluster, busybox_layout, wasm_fixture};
use futures::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, ClientRequestBuilder, Message};

/// `curl` against the API server with the admin token: (status, body).
fn curl(cluster: &Cluster, method: &str, path: &str, body: Option<&str>, headers: &[&str]) -> (u16, String) {
    let mut command = Command::new("curl");
    command
        .args(["-sk", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .args(["-H", &format!("Authorization: Bearer {}", cluster.admin_token())]);
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(body) = body {
        command.args(["--data-binary", body]);
    }
    let out: Output = command.arg(format!("{}{path}", cluster.url)).output().expect("curl runs (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl printed the status");
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// A cluster with a running busybox pod `box` and a running Wasm pod `tick`.
fn cluster_with_pods() -> Cluster {
    let cluster = Cluster::start();
    assert_eq!(cluster.import(&busybox_layout(cluster.data_dir()), "busybox:v1"), "busybox:v1");
    let ticker = wasm_fixture(cluster.data_dir(), "ticker");
    cluster.import(&ticker, "ticker:v1");
    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: box\n  labels: {app: box}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:v1\n    command: [sleep, '3600']\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: tick\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: tick\n    image: ticker:v1\n",
    );
    cluster.ok(&["wait", "--for=condition=Ready", "pod/box", "pod/tick", "--timeout=60s"]);
    cluster
}

#[test]
fn kubectl_top_and_node_metrics_come_from_the_agents() {
    let cluster = cluster_with_pods();
    let node = cluster.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);

    let raw = cluster.ok(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/metrics")]);
    for family in
        ["node_cpu_usage_seconds_total ", "node_memory_working_set_bytes ", "container_cpu_usage_seconds_total{"]
    {
        assert!(raw.lines().any(|l| l.starts_with(family)), "no {family} in the node's metrics:\n{raw}");
    }
    assert!(raw.contains(r#"pod="box""#) && raw.contains(r#"pod="tick""#), "{raw}");
    let resource = cluster.ok(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/metrics/resource")]);
    assert!(resource.contains("node_cpu_usage_seconds_total") && !resource.contains("wharf_function"), "{resource}");
    let missing = cluster.fails(&["get", "--raw", "/api/v1/nodes/nope/proxy/metrics"], None);
    assert!(missing.contains("NotFound") || missing.contains("not found"), "{missing}");

    let started = Instant::now();
    let top = cluster.ok(&["top", "nodes"]);
    println!("kubectl top nodes (first, samples twice) took {:?}:\n{top}", started.elapsed());
    let row = top.lines().find(|l| l.starts_with(&node)).unwrap_or_else(|| panic!("no row for {node}:\n{top}"));
    assert!(top.starts_with("NAME") && row.contains('%') && !row.contains("<unknown>"), "{top}");

    let started = Instant::now();
    let pods = cluster.ok(&["top", "pods", "-A"]);
    println!("kubectl top pods -A took {:?}:\n{pods}", started.elapsed());
    for pod in ["box", "tick"] {
        assert!(pods.lines().any(|l| l.split_whitespace().nth(1) == Some(pod)), "no row for {pod}:\n{pods}");
    }
    let selected = cluster.ok(&["top", "pods", "-l", "app=box", "--containers"]);
    assert!(selected.contains("box") && selected.contains("main") && !selected.contains("tick"), "{selected}");

    let one: Value = serde_json::from_str(&cluster.ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/tick",
    ]))
    .expect("PodMetrics JSON");
    assert_eq!(one["kind"], "PodMetrics");
    assert_eq!(one["containers"][0]["name"], "tick");
    let cpu = one["containers"][0]["usage"]["cpu"].as_str().unwrap_or_default();
    let memory = one["containers"][0]["usage"]["memory"].as_str().unwrap_or_default();
    assert!(cpu.ends_with('n') && memory.ends_with("Ki"), "{one}");
    assert!(one["window"].as_str().is_some_and(|w| w.ends_with('s')) && one["timestamp"].is_string(), "{one}");
    let gone = cluster.fails(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope"], None);
    assert!(gone.contains("NotFound") || gone.contains("not found"), "{gone}");
}

/// Opens an exec WebSocket to `box` running `echo hi`, offering `protocols`.
async fn exec_socket(
    cluster: &Cluster,
    protocols: &[String],
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>,
        tungstenite::handshake::client::Response,
    ),
    tungstenite::Error,
> {
    let (stream, address) = cluster.tls_connect().await;
    let uri: tungstenite::http::Uri =
        format!("wss://{address}/api/v1/namespaces/default/pods/box/exec?command=echo&command=hi&stdout=true")
            .parse()
            .unwrap();
    let mut request = ClientRequestBuilder::new(uri);
    for protocol in protocols {
        request = request.with_sub_protocol(protocol.clone());
    }
    tokio_tungstenite::client_async(request, stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_over_websocket_authenticates_with_the_bearer_subprotocol() {
    let cluster = tokio::task::spawn_blocking(cluster_with_pods).await.unwrap();
    let bearer = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cluster.admin_token());
    let protocols = vec!["v5.channel.k8s.io".to_string(), format!("base64url.bearer.authorization.k8s.io.{bearer}")];
    let (mut socket, response) = exec_socket(&cluster, &protocols).await.expect("the exec WebSocket opens");
    assert_eq!(response.headers()["sec-websocket-protocol"], "v5.channel.k8s.io", "never the token protocol");
    let (mut stdout, mut status) = (Vec::new(), Value::Null);
    while let Some(message) = tokio::time::timeout(Duration::from_secs(30), socket.next()).await.expect("exec ends") {
        match message.expect("a readable message") {
            Message::Binary(data) if data.first() == Some(&1) => stdout.extend_from_slice(&data[1..]),
            Message::Binary(data) if data.first() == Some(&3) => status = serde_json::from_slice(&data[1..]).unwrap(),
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert_eq!(String::from_utf8_lossy(&stdout), "hi\n");
    assert_eq!(status["status"], "Success", "{status}");

    let wrong = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("wrong");
    let refused = exec_socket(
        &cluster,
        &["v5.channel.k8s.io".to_string(), format!("base64url.bearer.authorization.k8s.io.{wrong}")],
    )
    .await;
    match refused {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a wrong token must be refused with 401, got {:?}", other.map(|(_, r)| r.status())),
    }
}

#[test]
fn a_function_is_invoked_through_the_api_server() {
    let cluster = Cluster::start();
    let hello = common::samples_out().join("http-hello.wasm");
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["fn", "deploy", "hello", "--wasm", hello.to_str().unwrap(), "--path", "/hello"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .expect("wharf runs");
    assert!(out.status.success(), "wharf fn deploy failed: {}", String::from_utf8_lossy(&out.stderr));

    let path = "/apis/wharf.dev/v1/namespaces/default/functions/hello/proxy/sub?x=1";
    let started = Instant::now();
    let mut last = (0, String::new());
    let answered = cluster.eventually(Duration::from_secs(60), || {
        last = curl(&cluster, "POST", path, Some("ping"), &["Content-Type: text/plain"]);
        last.0 == 200
    });
    assert!(answered, "the function never answered through the API server; last: {last:?}");
    println!("first answer through functions/hello/proxy after deploy: {:?}", started.elapsed());
    assert_eq!(last.1, "hello from wasm\n");
    // kubectl reaches it too, and the guest saw the path under the route.
    let via_kubectl = cluster.ok(&["get", "--raw", "/apis/wharf.dev/v1/namespaces/default/functions/hello/proxy"]);
    assert_eq!(via_kubectl, "hello from wasm\n");
    // The function's log through the API: each line names the node whose gateway served it.
    let node = cluster.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let log_path = "/apis/wharf.dev/v1/namespaces/default/functions/hello/log";
    let log = cluster.ok(&["get", "--raw", log_path]);
    let line = format!("[{node}] ");
    assert!(log.lines().all(|l| l.starts_with(&line)), "every line starts with {line}:\n{log}");
    assert!(log.contains("stderr POST /hello/sub?x=1"), "the guest logged the proxied request:\n{log}");
    let last = cluster.ok(&["get", "--raw", &format!("{log_path}?tailLines=1")]);
    assert_eq!(last.lines().count(), 1, "{last}");
    // Followed, a later request's line arrives on the open stream.
    let follow = {
        let (url, token) = (format!("{}{log_path}?follow=true", cluster.url), cluster.admin_token());
        std::thread::spawn(move || {
            let out = Command::new("curl")
                .args(["-skN", "--max-time", "6", "-H", &format!("Authorization: Bearer {token}")])
                .arg(url)
                .output()
                .expect("curl runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let (status, _) =
        curl(&cluster, "GET", "/apis/wharf.dev/v1/namespaces/default/functions/hello/proxy/followed", None, &[]);
    assert_eq!(status, 200);
    let followed = follow.join().unwrap();
    assert!(followed.contains(&line) && followed.contains("GET /hello/followed"), "{followed}");
    let missing = cluster.fails(&["get", "--raw", "/apis/wharf.dev/v1/namespaces/default/functions/nope/log"], None);
    assert!(missing.contains("NotFound") || missing.contains("not found"), "{missing}");

    let (status, body) = curl(&cluster, "GET", "/apis/wharf.dev/v1/namespaces/default/functions/nope/proxy", None, &[]);
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("a Status: {body}"));
    assert_eq!((status, body["kind"].as_str(), body["reason"].as_str()), (404, Some("Status"), Some("NotFound")));
}

#[test]
fn a_function_without_a_ready_gateway_is_unavailable() {
    let cluster = Cluster::start_with(&["--no-agent"]);
    cluster
        .apply("apiVersion: wharf.dev/v1\nkind: Function\nmetadata:\n  name: lonely\nspec:\n  image: fn-lonely:v1\n");
    let (status, body) =
        curl(&cluster, "GET", "/apis/wharf.dev/v1/namespaces/default/functions/lonely/proxy/", None, &[]);
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("a Status: {body}"));
    assert_eq!((status, body["reason"].as_str()), (503, Some("ServiceUnavailable")), "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("no ready node"), "{body}");
}
