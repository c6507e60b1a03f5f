//! The scheduler end to end with the real kubectl and a second agent: a pod that fits nowhere
//! stays Pending with kube-scheduler's explanation and runs as soon as a node with room joins;
//! a Deployment's replicas spread over the nodes; required anti-affinity on the hostname keeps
//! replicas apart and leaves the one too many Pending, saying why.

mod common;

use std::time::Duration;

use common::{Cluster, wasm_fixture};
use serde_json::Value;

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: ticker:v1\n"
    )
}

fn scheduled_condition(pod: &Value) -> Value {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "PodScheduled")
        .cloned()
        .unwrap_or(Value::Null)
}

fn nodes_of(cluster: &Cluster, selector: &str) -> Vec<String> {
    let out = cluster.ok(&["get", "pods", "-l", selector, "-o", "jsonpath={.items[*].spec.nodeName}"]);
    out.split_whitespace().map(str::to_string).collect()
}

#[test]
fn a_pod_that_fits_nowhere_waits_with_the_reason_and_runs_when_a_node_with_room_joins() {
    // The local node takes two pods; the third has nowhere to go until "second" joins.
    let cluster = Cluster::start_with(&["--max-pods", "2"]);
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    cluster.wait_nodes_ready(1, Duration::from_secs(30));
    for name in ["one", "two"] {
        cluster.apply(&pod(name));
        cluster.wait_pod(name, "ran", Duration::from_secs(60), |p| p["status"]["phase"] == "Running");
    }
    cluster.apply(&pod("three"));
    let pending = cluster.wait_pod("three", "was found unschedulable", Duration::from_secs(30), |p| {
        scheduled_condition(p)["status"] == "False"
    });
    let condition = scheduled_condition(&pending);
    assert_eq!(condition["reason"], "Unschedulable");
    assert_eq!(condition["message"], "0/1 nodes are available: 1 Too many pods.");
    assert_eq!(pending["status"]["phase"], "Pending");
    let described = cluster.ok(&["describe", "pod", "three"]);
    assert!(
        described.contains("FailedScheduling") && described.contains("0/1 nodes are available: 1 Too many pods."),
        "kubectl describe shows the FailedScheduling event:\n{described}"
    );

    let _second = cluster.join_agent("second");
    let running = cluster
        .wait_pod("three", "ran on the new node", Duration::from_secs(60), |p| p["status"]["phase"] == "Running");
    assert_eq!(running["spec"]["nodeName"], "second");
    assert_eq!(scheduled_condition(&running)["status"], "True");
    let events = cluster.ok(&["get", "events", "--field-selector", "involvedObject.name=three"]);
    assert!(events.contains("Successfully assigned default/three to second"), "{events}");
}

#[test]
fn replicas_spread_over_nodes_and_anti_affinity_keeps_them_apart() {
    let cluster = Cluster::start();
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    let _second = cluster.join_agent("second");
    cluster.wait_nodes_ready(2, Duration::from_secs(30));

    cluster.ok(&["create", "deployment", "web", "--image=ticker:v1", "--replicas=6"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let nodes = nodes_of(&cluster, "app=web");
    let on_second = nodes.iter().filter(|n| *n == "second").count();
    println!("web's 6 replicas by node: {nodes:?}");
    assert_eq!(nodes.len(), 6);
    // The default spread (maxSkew 3 on the hostname) and LeastAllocated keep both nodes in use.
    assert!((1..=5).contains(&on_second), "6 replicas were not spread over 2 nodes: {nodes:?}");

    let apart = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: apart
spec:
  replicas: 3
  selector:
    matchLabels: {app: apart}
  template:
    metadata:
      labels: {app: apart}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector:
              matchLabels: {app: apart}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: main
        image: ticker:v1
"#;
    cluster.apply(apart);
    let mut last = String::new();
    let settled = cluster.eventually(Duration::from_secs(60), || {
        let pods: Value = serde_json::from_str(&cluster.ok(&["get", "pods", "-l", "app=apart", "-o", "json"])).unwrap();
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        let mut placed: Vec<&str> = items.iter().filter_map(|p| p["spec"]["nodeName"].as_str()).collect();
        placed.sort();
        let messages: Vec<String> = items
            .iter()
            .map(scheduled_condition)
            .filter(|c| c["status"] == "False")
            .map(|c| c["message"].as_str().unwrap_or_default().to_string())
            .collect();
        last = format!("{placed:?} {messages:?}");
        items.len() == 3 && placed.len() == 2 && placed[0] != placed[1] && messages.len() == 1 && {
            assert_eq!(
                messages[0], "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules.",
                "the Pending replica says why"
            );
            true
        }
    });
    assert!(settled, "two replicas never ran apart with the third Pending: {last}");
}
