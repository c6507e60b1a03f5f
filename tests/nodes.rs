//! Node failure and maintenance end to end with the real kubectl and a second agent: a
//! SIGKILLed node goes NotReady, is tainted unreachable, its pods are evicted once their
//! default toleration runs out and come back on the living node; cordon keeps new pods off a
//! node, drain evicts its pods (through pods/eviction) and uncordon opens it again.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, QUICK_LEASE, QUICK_NODE_FAILURE, wasm_fixture};
use serde_json::Value;

/// A cluster where a node is NotReady 4 s after its agent stops and pods tolerate that for 3 s.
fn cluster() -> Cluster {
    let cluster = Cluster::start_with(&QUICK_NODE_FAILURE);
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    cluster
}

fn deployment(replicas: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      terminationGracePeriodSeconds: 2\n      containers:\n      - name: main\n        image: ticker:v1\n"
    )
}

fn json(cluster: &Cluster, args: &[&str]) -> Value {
    let out = cluster.kubectl(&[args, &["-o", "json"]].concat());
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn pods(cluster: &Cluster) -> Vec<Value> {
    json(cluster, &["get", "pods", "-l", "app=web"])["items"].as_array().cloned().unwrap_or_default()
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

fn terminating(pod: &Value) -> bool {
    pod["metadata"].get("deletionTimestamp").is_some()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Live (not terminating) ready pods of the Deployment, by node.
fn ready_on(cluster: &Cluster, node_is_second: bool) -> usize {
    pods(cluster).iter().filter(|p| !terminating(p) && ready(p) && (node_of(p) == "second") == node_is_second).count()
}

fn spread_over_both(cluster: &Cluster, replicas: usize) {
    let spread = cluster.eventually(Duration::from_secs(60), || {
        let (first, second) = (ready_on(cluster, false), ready_on(cluster, true));
        first + second == replicas && first > 0 && second > 0
    });
    let nodes: Vec<String> = pods(cluster).iter().map(|p| node_of(p).to_string()).collect();
    assert!(spread, "{replicas} ready pods never spread over both nodes: {nodes:?}");
}

fn events(cluster: &Cluster) -> String {
    cluster.ok(&["get", "events", "-A", "-o", "custom-columns=REASON:.reason,MESSAGE:.message"])
}

#[test]
fn pods_of_a_killed_node_are_evicted_and_replaced_on_the_living_one() {
    let cluster = cluster();
    let mut agent = cluster.join_agent_with("second", &QUICK_LEASE);
    cluster.wait_nodes_ready(2, Duration::from_secs(60));
    cluster.apply(&deployment(4));
    spread_over_both(&cluster, 4);
    let pod = &pods(&cluster)[0];
    let tolerations = pod["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        assert!(
            tolerations.iter().any(|t| t["key"] == key
                && t["effect"] == "NoExecute"
                && t["operator"] == "Exists"
                && t["tolerationSeconds"] == 3),
            "default toleration of {key} missing: {tolerations:#?}"
        );
    }
    let doomed: Vec<String> = pods(&cluster)
        .iter()
        .filter(|p| node_of(p) == "second")
        .map(|p| p["metadata"]["name"].as_str().unwrap_or_default().to_string())
        .collect();

    agent.kill();
    let killed = Instant::now();
    let unreachable = cluster.eventually(Duration::from_secs(60), || {
        let node = json(&cluster, &["get", "node", "second"]);
        node["spec"]["taints"].as_array().into_iter().flatten().any(|t| {
            t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute" && t.get("timeAdded").is_some()
        })
    });
    assert!(
        unreachable,
        "the killed node was never tainted unreachable:\n{:#}",
        json(&cluster, &["get", "node", "second"])
    );
    println!("node tainted unreachable {:?} after its agent was killed", killed.elapsed());
    assert!(cluster.ok(&["get", "node", "second"]).contains("NotReady"));

    // Its pods are marked not ready, then evicted (Terminating: their agent is gone), and the
    // Deployment replaces them on the living node.
    let recovered = cluster.eventually(Duration::from_secs(60), || {
        let all = pods(&cluster);
        let evicted = doomed.iter().all(|name| {
            all.iter().any(|p| p["metadata"]["name"] == name.as_str() && terminating(p) && !ready(p))
                || !all.iter().any(|p| p["metadata"]["name"] == name.as_str())
        });
        evicted && ready_on(&cluster, false) == 4
    });
    assert!(
        recovered,
        "the ReplicaSet never got back to 4 ready pods on the living node:\n{}",
        cluster.ok(&["get", "pods", "-o", "wide"])
    );
    println!("4 pods ready on the living node {:?} after the other node was killed", killed.elapsed());
    assert!(
        cluster.ok(&["get", "pods"]).contains("Terminating"),
        "the evicted pods stay Terminating without their agent"
    );
    let events = events(&cluster);
    assert!(events.contains("NodeNotReady"), "{events}");
    assert!(events.contains(&format!("Marking for deletion Pod default/{}", doomed[0])), "{events}");
}

#[test]
fn cordon_drain_and_uncordon_move_pods_off_a_node_and_back_in() {
    let cluster = cluster();
    let _agent = cluster.join_agent_with("second", &QUICK_LEASE);
    cluster.wait_nodes_ready(2, Duration::from_secs(60));
    cluster.apply(&deployment(4));
    spread_over_both(&cluster, 4);

    cluster.ok(&["cordon", "second"]);
    assert_eq!(cluster.ok(&["get", "node", "second", "-o", "jsonpath={.spec.unschedulable}"]), "true");
    assert!(cluster.ok(&["get", "node", "second"]).contains("SchedulingDisabled"));
    let name = |p: &Value| p["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let before: Vec<String> = pods(&cluster).iter().map(name).collect();
    let on_second_before = pods(&cluster).iter().filter(|p| node_of(p) == "second").count();
    cluster.ok(&["scale", "deploy", "web", "--replicas=6"]);
    let placed =
        cluster.eventually(Duration::from_secs(60), || ready_on(&cluster, false) + ready_on(&cluster, true) == 6);
    assert!(placed, "{}", cluster.ok(&["get", "pods", "-o", "wide"]));
    let after = pods(&cluster);
    let new_on_second: Vec<String> =
        after.iter().filter(|p| !before.contains(&name(p)) && node_of(p) == "second").map(name).collect();
    assert!(new_on_second.is_empty(), "new pods went to the cordoned node: {new_on_second:?}");
    let on_second = after.iter().filter(|p| node_of(p) == "second").count();
    assert!(
        on_second <= on_second_before && ready_on(&cluster, true) > 0,
        "the cordoned node had {on_second_before} pods, now {on_second}; its running pods stay"
    );

    let started = Instant::now();
    let drained = cluster.ok(&["drain", "second", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s"]);
    println!("drain took {:?}:\n{drained}", started.elapsed());
    assert!(drained.contains("evicting pod") || drained.contains("evicted"), "{drained}");
    assert!(drained.contains("drained"), "{drained}");
    let moved = cluster.eventually(Duration::from_secs(60), || {
        ready_on(&cluster, false) == 6 && pods(&cluster).iter().all(|p| node_of(p) != "second")
    });
    assert!(moved, "{}", cluster.ok(&["get", "pods", "-o", "wide"]));

    cluster.ok(&["uncordon", "second"]);
    assert_eq!(cluster.ok(&["get", "node", "second", "-o", "jsonpath={.spec.unschedulable}"]), "");
    assert!(!cluster.ok(&["get", "node", "second"]).contains("SchedulingDisabled"));
}
