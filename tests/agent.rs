//! The node agent and the wasmtime shim end to end: `wharf server` with its local node, Wasm
//! images imported with `wharf image import`, pods run, logged, restarted, stopped and reported,
//! as a user would see them through kubectl. Guests are written in WAT (tests/fixtures), so no
//! Wasm toolchain is needed.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, wasm_fixture};
use serde_json::Value;

/// A cluster whose agent retries quickly, so back-off is observable in seconds.
fn cluster() -> Cluster {
    Cluster::start_with(&["--backoff-base-ms", "300"])
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

fn simple_pod(name: &str, image: &str, policy: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 5\n  containers:\n  - name: main\n    image: {image}\n{extra}"
    )
}

#[test]
fn the_local_node_is_ready_with_its_runtimes() {
    let cluster = cluster();
    assert!(cluster.eventually(Duration::from_secs(20), || cluster.ok(&["get", "nodes"]).contains(" Ready ")));
    let wide = cluster.ok(&["get", "nodes", "-o", "wide"]);
    assert!(wide.contains("Ready") && wide.contains("wasmtime://"), "{wide}");
    let label = |handler: &str| {
        let path = format!("jsonpath={{.items[0].metadata.labels.runtime\\.wharf\\.dev/{handler}}}");
        cluster.ok(&["get", "nodes", "-o", &path])
    };
    assert_eq!((label("wasmtime").as_str(), label("youki").as_str()), ("true", "true"));
    let lease = cluster.ok(&["get", "lease", "-n", "kube-node-lease", "-o", "name"]);
    assert!(lease.contains("lease.coordination.k8s.io/"), "{lease}");
}

#[test]
fn a_wasm_pod_runs_to_completion_with_its_args_env_config_and_events() {
    let cluster = cluster();
    let reference = cluster.import(&wasm_fixture(cluster.data_dir(), "hello"), "hello:v1");
    assert!(reference.contains("hello:v1"), "{reference}");
    assert!(cluster.ok_with_bin(&["image", "ls"]).contains("hello"));
    cluster.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello-config\ndata:\n  GREETING: hi\n  greeting: hello from a configmap\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\nspec:\n  restartPolicy: Never\n  containers:\n  - name: hello\n    image: hello:v1\n    args: [one, two]\n    env:\n    - name: GREETING\n      valueFrom:\n        configMapKeyRef: {name: hello-config, key: GREETING}\n    volumeMounts:\n    - {name: config, mountPath: /config, readOnly: true}\n  volumes:\n  - name: config\n    configMap: {name: hello-config}\n",
    );
    let pod = cluster.wait_pod("hello", "succeeded", Duration::from_secs(60), |p| phase(p) == "Succeeded");
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["state"]["terminated"]["exitCode"], 0);
    assert!(status["containerID"].as_str().unwrap().starts_with("wasmtime://"), "{status}");
    assert!(status["imageID"].as_str().unwrap().contains("sha256:"), "{status}");

    let logs = cluster.ok(&["logs", "hello"]);
    for line in ["arg: one", "arg: two", "env: GREETING=hi", "file: hello from a configmap"] {
        assert!(logs.contains(line), "logs lack {line:?}:\n{logs}");
    }
    let wide = cluster.ok(&["get", "pod", "hello", "-o", "wide"]);
    assert!(wide.contains("Completed") && wide.contains("wasmtime"), "{wide}");

    let described = cluster.ok(&["describe", "pod", "hello"]);
    let order: Vec<usize> = ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
        .iter()
        .map(|reason| {
            described.find(&format!("  {reason}  ")).unwrap_or_else(|| panic!("no {reason} event:\n{described}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "events out of order:\n{described}");
}

#[test]
fn crashes_back_off_deleted_pods_stop_and_logs_follow() {
    let cluster = cluster();
    cluster.import(&wasm_fixture(cluster.data_dir(), "crasher"), "crasher:v1");
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    cluster.apply(&simple_pod("crasher", "crasher:v1", "Always", ""));
    cluster.apply(&simple_pod("ticker", "ticker:v1", "Always", ""));

    // CrashLoopBackOff, with a back-off that grows (base 300 ms here, 10 s by default).
    let mut delays: Vec<u64> = Vec::new();
    let start = Instant::now();
    let pod = loop {
        let pod = cluster.pod("crasher");
        let status = &pod["status"]["containerStatuses"][0];
        if status["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
            let message = status["state"]["waiting"]["message"].as_str().unwrap_or_default();
            let delay = message.split_whitespace().nth(1).unwrap_or_default();
            let ms = match delay.strip_suffix("ms") {
                Some(ms) => ms.parse().unwrap_or(0),
                None => delay.trim_end_matches('s').parse::<u64>().unwrap_or(0) * 1000,
            };
            if delays.last() != Some(&ms) {
                delays.push(ms);
            }
        }
        if status["restartCount"].as_i64().unwrap_or(0) >= 4 && delays.len() >= 3 {
            break pod;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no growing back-off seen: {delays:?}\n{pod:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(delays.windows(2).all(|w| w[0] < w[1]), "back-off must grow: {delays:?}");
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 1, "{status}");
    let events =
        cluster.ok(&["get", "events", "--field-selector", "involvedObject.name=crasher,reason=BackOff", "-o", "json"]);
    let events: Value = serde_json::from_str(&events).unwrap();
    assert!(events["items"][0]["count"].as_i64().unwrap_or(0) >= 2, "{events:#}");
    assert!(cluster.ok(&["logs", "crasher", "--previous"]).contains("crashing now"));

    // Follow the ticker live.
    cluster.wait_pod("ticker", "ran", Duration::from_secs(30), |p| phase(p) == "Running");
    let mut follow = Command::new(common::kubectl_path())
        .args(["logs", "-f", "ticker"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    follow.kill().unwrap();
    let followed = String::from_utf8(follow.wait_with_output().unwrap().stdout).unwrap();
    assert!(followed.matches("tick").count() >= 3, "{followed}");

    // Deleting stops it promptly (Wasm guests are interrupted, well within the 5 s grace).
    let started = Instant::now();
    cluster.ok(&["delete", "pod", "ticker", "--wait=true", "--timeout=20s"]);
    assert!(started.elapsed() < Duration::from_secs(6), "delete took {:?}", started.elapsed());
    assert_eq!(cluster.kubectl(&["get", "pod", "ticker"]).status.code(), Some(1));
}

#[test]
fn runaway_guests_and_bad_images_are_contained_and_reported() {
    let cluster = cluster();
    cluster.import(&wasm_fixture(cluster.data_dir(), "spinner"), "spinner:v1");
    cluster.import(&wasm_fixture(cluster.data_dir(), "hog"), "hog:v1");
    let garbage = cluster.data_dir().join("broken.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0\xff\xff").unwrap();
    cluster.import(&garbage, "broken:v1");

    cluster.apply(&simple_pod("spinner", "spinner:v1", "Never", ""));
    cluster.apply(&simple_pod("hog", "hog:v1", "Never", "    resources:\n      limits:\n        memory: 4Mi\n"));
    cluster.apply(&simple_pod("broken", "broken:v1", "Never", ""));
    cluster.apply(&simple_pod("missing", "nothing-here:v1", "Never", ""));
    cluster.apply(&simple_pod("unreachable", "127.0.0.1:1/nothing:v1", "Never", ""));

    let hog = cluster.wait_pod("hog", "was OOM killed", Duration::from_secs(60), |p| phase(p) == "Failed");
    assert_eq!(hog["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "OOMKilled", "{hog:#}");

    let waiting = |pod: &str, reasons: &[&str]| {
        let p = cluster.wait_pod(pod, "reported its waiting reason", Duration::from_secs(60), |p| {
            let reason = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].as_str().unwrap_or_default();
            reasons.contains(&reason)
        });
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"].as_str().unwrap_or_default().to_string()
    };
    assert!(!waiting("broken", &["CreateContainerError"]).is_empty());
    assert!(waiting("missing", &["ErrImagePull", "ImagePullBackOff"]).contains("nothing-here"));
    assert!(!waiting("unreachable", &["ErrImagePull", "ImagePullBackOff"]).is_empty());

    cluster.wait_pod("spinner", "ran", Duration::from_secs(30), |p| phase(p) == "Running");
    let started = Instant::now();
    cluster.ok(&["delete", "pod", "spinner", "--timeout=20s"]);
    assert!(started.elapsed() < Duration::from_secs(6), "a spinning guest took {:?} to stop", started.elapsed());

    // The node stayed healthy through all of it.
    assert!(cluster.ok(&["get", "nodes"]).contains(" Ready "));
}

#[test]
fn a_second_agent_joins_shares_the_pods_and_goes_not_ready_when_stopped() {
    // A grace period short enough to wait for, longer than the agent's 10 s Lease renewals.
    let cluster = Cluster::start_with(&["--backoff-base-ms", "300", "--node-monitor-grace-period", "15s"]);
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    let mut agent = cluster.join_agent("second");
    cluster.wait_nodes_ready(2, Duration::from_secs(30));
    for i in 0..4 {
        cluster.apply(&simple_pod(&format!("tick-{i}"), "ticker:v1", "Always", ""));
    }
    assert!(cluster.eventually(Duration::from_secs(30), || {
        let nodes = cluster.ok(&["get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"]);
        nodes.split_whitespace().count() == 4
            && nodes.contains("second")
            && nodes.split_whitespace().any(|n| n != "second")
    }));

    agent.kill();
    let stopped = Instant::now();
    assert!(
        cluster.eventually(Duration::from_secs(60), || { cluster.ok(&["get", "node", "second"]).contains("NotReady") }),
        "the stopped node never went NotReady"
    );
    // The lease was renewed at most 10 s before the stop; NotReady follows 15 s after that.
    println!("node NotReady {:?} after its agent stopped", stopped.elapsed());
}

#[test]
fn init_containers_run_first_and_a_failed_one_fails_the_pod() {
    let cluster = cluster();
    cluster.import(&wasm_fixture(cluster.data_dir(), "hello"), "hello:v1");
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    cluster.import(&wasm_fixture(cluster.data_dir(), "crasher"), "crasher:v1");
    let with_init = |name: &str, init_image: &str, policy: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: {policy}\n  initContainers:\n  - name: setup\n    image: {init_image}\n  containers:\n  - name: main\n    image: ticker:v1\n"
        )
    };
    cluster.apply(&with_init("initialized", "hello:v1", "Always"));
    cluster.apply(&with_init("broken-init", "crasher:v1", "Never"));

    let pod = cluster
        .wait_pod("initialized", "ran after its init container", Duration::from_secs(60), |p| phase(p) == "Running");
    assert_eq!(pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed", "{pod:#}");
    let initialized =
        pod["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Initialized").unwrap().clone();
    assert_eq!(initialized["status"], "True");
    assert!(cluster.ok(&["logs", "initialized", "-c", "setup"]).contains("arg: setup"));

    let failed = cluster.wait_pod("broken-init", "failed", Duration::from_secs(60), |p| phase(p) == "Failed");
    assert_eq!(failed["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 1, "{failed:#}");
    assert!(failed["status"]["containerStatuses"][0]["state"].get("running").is_none(), "the app container never ran");
    assert!(cluster.ok(&["get", "pod", "broken-init"]).contains("Init:Error"));
}

#[test]
fn the_node_lists_its_images_and_renews_its_lease_as_configured() {
    let mut cluster = Cluster::start_with(&[
        "--backoff-base-ms",
        "300",
        "--node-lease-duration-seconds",
        "4",
        "--node-monitor-grace-period",
        "4s",
    ]);
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    cluster.apply(&simple_pod("ticker", "ticker:v1", "Always", ""));
    cluster.wait_pod("ticker", "running", Duration::from_secs(60), |p| phase(p) == "Running");
    let node = cluster.ok(&["get", "pod", "ticker", "-o", "jsonpath={.spec.nodeName}"]);
    let ticker_image = |cluster: &Cluster| -> Option<Value> {
        let images = cluster.ok(&["get", "node", &node, "-o", "jsonpath={.status.images}"]);
        let images: Vec<Value> = serde_json::from_str(&images).unwrap_or_default();
        images.into_iter().find(|i| i["names"].as_array().is_some_and(|n| n.iter().any(|n| n == "ticker:v1")))
    };
    assert!(
        cluster.eventually(Duration::from_secs(30), || ticker_image(&cluster).is_some()),
        "node.status.images never listed ticker:v1:\n{}",
        cluster.ok(&["get", "node", &node, "-o", "jsonpath={.status.images}"])
    );
    let image = ticker_image(&cluster).unwrap();
    println!("{image}");
    assert!(image["sizeBytes"].as_i64().unwrap() > 0, "{image}");
    let names: Vec<&str> = image["names"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(names.iter().any(|n| n.ends_with("/ticker:v1")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("/ticker@sha256:")), "{names:?}");

    // The Lease holds the configured duration and is renewed every quarter of it.
    let lease = |field: &str| {
        cluster.ok(&["get", "lease", "-n", "kube-node-lease", &node, "-o", &format!("jsonpath={{.spec.{field}}}")])
    };
    assert_eq!(lease("leaseDurationSeconds"), "4");
    let renewed = lease("renewTime");
    let since = Instant::now();
    assert!(cluster.eventually(Duration::from_secs(20), || lease("renewTime") != renewed), "the lease was not renewed");
    println!("lease renewed again within {:?}", since.elapsed());
    assert!(cluster.ok(&["get", "node", &node]).contains(" Ready "), "the node stays Ready with a 4 s grace period");

    // A restarted agent lists what its store holds, with no pod pulling it again.
    cluster.ok(&["delete", "pod", "ticker", "--grace-period", "1"]);
    let heartbeat = |cluster: &Cluster| {
        cluster.ok(&[
            "get",
            "node",
            &node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].lastHeartbeatTime}",
        ])
    };
    // Clear the images the running agent reported (it reports them again only when they
    // change), so only the restarted agent can list them again.
    cluster.ok(&[
        "patch",
        "node",
        &node,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"images":null}}"#,
    ]);
    assert!(ticker_image(&cluster).is_none(), "the images were not cleared");
    cluster.kill();
    let killed = jiff::Timestamp::now();
    cluster.restart();
    let refreshed = cluster.eventually(Duration::from_secs(30), || {
        heartbeat(&cluster).parse::<jiff::Timestamp>().is_ok_and(|beat| beat > killed)
    });
    assert!(refreshed, "the restarted agent never refreshed its node (last heartbeat {})", heartbeat(&cluster));
    let relisted = cluster.eventually(Duration::from_secs(30), || {
        ticker_image(&cluster).is_some_and(|i| i["sizeBytes"].as_i64().unwrap_or(0) > 0)
    });
    assert!(
        relisted,
        "the restarted agent never listed ticker:v1 again:\n{}",
        cluster.ok(&["get", "node", &node, "-o", "jsonpath={.status.images}"])
    );
}
