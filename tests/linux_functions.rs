//! Done-when 4 of the functions issue: a Linux-image Function with minReplicas 0 answers its
//! first request from zero (held by the gateway while a pod starts), scales up under load and
//! returns to zero pods after idle. Needs root (youki) and the pod network (pod IPs reachable
//! from the node's gateway).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, busybox_layout};
use serde_json::{Value, json};

const NAME: &str = "slow";
const SELECTOR: &str = "wharf.dev/function=slow";

/// busybox httpd serving two CGI scripts under /cgi-bin: `hello` answers at once, `slow` after
/// 2 s (so concurrent requests stay in flight). TERM ends it at once (sh is pid 1).
const SCRIPT: &str = r#"mkdir -p /www/cgi-bin
cat > /www/cgi-bin/hello <<'EOF'
#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "hello from $(hostname)"
EOF
cat > /www/cgi-bin/slow <<'EOF'
#!/bin/sh
sleep 2
echo "Content-Type: text/plain"
echo
echo "slow from $(hostname)"
EOF
chmod +x /www/cgi-bin/hello /www/cgi-bin/slow
trap 'exit 0' TERM
httpd -p 8080 -h /www || exit 1
while true; do sleep 1; done
"#;

fn function() -> String {
    json!({
        "apiVersion": "wharf.dev/v1", "kind": "Function",
        "metadata": {"name": NAME},
        "spec": {
            "image": "busybox:v1",
            "command": ["sh", "-c", SCRIPT],
            "port": 8080,
            "route": {"path": "/cgi-bin"},
            "scale": {"minReplicas": 0, "maxReplicas": 4, "targetConcurrency": 2, "idleTimeout": "5s"},
        },
    })
    .to_string()
}

/// GET `url` (`http://HOST:PORT/path`) over HTTP/1.1: the status code and the raw response.
fn get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("not an http URL: {url}"));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream =
        TcpStream::connect(authority).unwrap_or_else(|e| panic!("connect to the gateway {authority}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap_or_else(|e| panic!("read the answer to {url}: {e}"));
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response)
}

fn pods(cluster: &Cluster) -> Vec<String> {
    cluster.ok(&["get", "pods", "-l", SELECTOR, "-o", "name"]).lines().map(str::to_string).collect()
}

fn ready_pods(cluster: &Cluster) -> usize {
    let out = cluster.ok(&["get", "pods", "-l", SELECTOR, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
        .count()
}

fn status(cluster: &Cluster) -> Value {
    serde_json::from_str::<Value>(&cluster.ok(&["get", "function", NAME, "-o", "json"])).unwrap()["status"].clone()
}

fn ready_reason(status: &Value) -> String {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_linux_function_answers_from_zero_scales_up_under_load_and_back_to_zero() {
    let cluster = Cluster::start_with(&["--backoff-base-ms", "300"]);
    let layout = busybox_layout(cluster.data_dir());
    assert_eq!(cluster.import(&layout, "busybox:v1"), "busybox:v1");
    cluster.apply(&function());

    // At rest: a Deployment at 0, no pods, Ready because the gateway will start one.
    let mut url = String::new();
    let settled = cluster.eventually(Duration::from_secs(30), || {
        let s = status(&cluster);
        url = s["url"].as_str().unwrap_or_default().to_string();
        !url.is_empty() && ready_reason(&s) == "ScaledToZero"
    });
    assert!(settled, "the Function never reported a URL and ScaledToZero: {}", status(&cluster));
    assert_eq!(cluster.ok(&["get", "deployment", NAME, "-o", "jsonpath={.spec.replicas}"]), "0");
    assert!(pods(&cluster).is_empty(), "pods at minReplicas 0 before any request: {:?}", pods(&cluster));
    println!("function URL: {url}");

    // The first request is held while a pod starts, and succeeds.
    let started = Instant::now();
    let (code, body) = get(&format!("{url}/hello"));
    let held = started.elapsed();
    assert_eq!(code, 200, "first request from zero: {body}");
    assert!(body.contains("hello from"), "{body}");
    println!("first request from zero replicas answered after {held:?} (held while a pod started)");

    // 20 clients sending 2-second requests: more than one replica serves them.
    let stop = Arc::new(AtomicBool::new(false));
    let codes = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let (stop, codes, url) = (stop.clone(), codes.clone(), url.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (code, body) = get(&format!("{url}/slow"));
                    let pod = body.lines().find_map(|l| l.strip_prefix("slow from ")).unwrap_or_default().to_string();
                    codes.lock().unwrap().push((code, pod));
                }
            })
        })
        .collect();
    let load_started = Instant::now();
    let mut most = 0;
    let mut first_above_one = None;
    while load_started.elapsed() < Duration::from_secs(45) {
        let ready = ready_pods(&cluster);
        most = most.max(ready);
        if ready > 1 && first_above_one.is_none() {
            first_above_one = Some(load_started.elapsed());
        }
        if first_above_one.is_some_and(|t| load_started.elapsed() > t + Duration::from_secs(6)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let load_ended = Instant::now();
    let codes = codes.lock().unwrap().clone();
    println!(
        "under 20 concurrent 2 s requests: {} requests, up to {most} ready replicas, more than one after {:?}",
        codes.len(),
        first_above_one
    );
    assert!(most > 1, "replicas never grew above 1 under load");
    assert!(most <= 4, "replicas went above maxReplicas: {most}");
    let failed: Vec<_> = codes.iter().filter(|(c, _)| *c != 200).collect();
    assert!(failed.is_empty(), "requests under load failed: {failed:?} of {}", codes.len());
    let answered_by: std::collections::BTreeSet<_> = codes.iter().map(|(_, pod)| pod.as_str()).collect();
    println!("answered by pods {answered_by:?}");
    assert!(answered_by.len() > 1, "every request was answered by one pod: {answered_by:?}");

    // Idle for idleTimeout (5 s): back to zero pods.
    let gone = cluster.eventually(Duration::from_secs(60), || pods(&cluster).is_empty());
    assert!(gone, "pods left after idle: {:?}", pods(&cluster));
    println!("back to zero pods {:?} after the load stopped (idleTimeout 5s)", load_ended.elapsed());
    // The Function's status follows its Deployment's, which follows the pods: it may lag them.
    let scaled_to_zero =
        cluster.eventually(Duration::from_secs(30), || ready_reason(&status(&cluster)) == "ScaledToZero");
    let s = status(&cluster);
    assert!(scaled_to_zero, "the Function's Ready condition never said ScaledToZero: {s}");
    let invocations = s["invocations"].as_i64().unwrap_or_default();
    assert!(invocations > codes.len() as i64, "invocations {invocations} < {} requests sent", codes.len() + 1);

    // The scaling decisions are Events on the Function.
    let events = cluster.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={NAME}"),
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    for reason in ["Activated", "ScaledUp", "ScaledToZero"] {
        assert!(events.contains(reason), "no {reason} event among {events}");
    }

    // The Deployment belongs to the Function: deleting the Function deletes it.
    cluster.ok(&["delete", "function", NAME]);
    let collected = cluster
        .eventually(Duration::from_secs(30), || cluster.kubectl(&["get", "deployment", NAME]).status.code() == Some(1));
    assert!(collected, "the Function's Deployment outlived it");
}
