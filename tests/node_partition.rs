//! A node cut off from the cluster: two agents, each in a network namespace of its own wired to
//! the host by a veth; a Deployment's Linux pods run on both. Node B's link goes down, so B can
//! neither reach the API nor be reached: B goes NotReady, its pods are marked for deletion and
//! replaced on A. As with the kubelet, B's agent does not stop its pods while it is cut off (it
//! cannot tell a partition from a slow API server); when its link comes back it sees they were
//! deleted (also the one force-deleted, gone from its new list after the API server restarted)
//! and stops them — in the end each replica runs exactly once, on the host as in kubectl.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::netns::{Hosts, NetnsAgent};
use common::{Cluster, NetworkSlot, QUICK_LEASE, QUICK_NODE_FAILURE, busybox_layout, pids_of_pod};
use serde_json::Value;

const REPLICAS: usize = 4;

fn deployment() -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {REPLICAS}\n  \
         selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    \
         spec:\n      nodeSelector:\n        wharf-test: partition\n      terminationGracePeriodSeconds: 2\n      \
         containers:\n      - name: main\n        image: busybox:v1\n        \
         command: [sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 1; done']\n"
    )
}

#[derive(Debug, Clone)]
struct PodView {
    name: String,
    uid: String,
    node: String,
    ready: bool,
    deleting: bool,
}

fn pods(cluster: &Cluster) -> Vec<PodView> {
    let out = cluster.kubectl(&["get", "pods", "-l", "app=web", "-o", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| PodView {
            name: p["metadata"]["name"].as_str().unwrap_or_default().into(),
            uid: p["metadata"]["uid"].as_str().unwrap_or_default().into(),
            node: p["spec"]["nodeName"].as_str().unwrap_or_default().into(),
            ready: p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"),
            deleting: p["metadata"].get("deletionTimestamp").is_some(),
        })
        .collect()
}

fn ready_on(pods: &[PodView], node: &str) -> usize {
    pods.iter().filter(|p| p.node == node && p.ready && !p.deleting).count()
}

fn node_ready(cluster: &Cluster, node: &str) -> String {
    cluster.ok(&["get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])
}

/// Pod uid → its processes on the host, for every pod uid in `uids`.
fn processes(uids: &[String]) -> BTreeMap<String, usize> {
    uids.iter().map(|uid| (uid.clone(), pids_of_pod(uid).len())).collect()
}

#[test]
fn a_cut_off_node_is_replaced_and_stops_its_stale_pods_when_it_returns() {
    let slot = NetworkSlot::take();
    let hosts = Hosts::make('p', slot.octet);
    let server = format!("172.16.{}.1:0", slot.octet);
    let flags = [["--listen", &server, "--backoff-base-ms", "300"].as_slice(), &QUICK_NODE_FAILURE].concat();
    let mut cluster = Cluster::start_with(&flags);
    cluster.import(&busybox_layout(cluster.data_dir()), "busybox:v1");
    let (a, b) = (format!("part-a-{}", slot.octet), format!("part-b-{}", slot.octet));
    let _agent_a = NetnsAgent::start(&cluster, &hosts, 'a', &a, &QUICK_LEASE);
    let _agent_b = NetnsAgent::start(&cluster, &hosts, 'b', &b, &QUICK_LEASE);
    cluster.wait_nodes_ready(3, Duration::from_secs(60));
    cluster.ok(&["label", "node", &a, &b, "wharf-test=partition"]);

    cluster.apply(&deployment());
    let spread = cluster.eventually(Duration::from_secs(60), || {
        let pods = pods(&cluster);
        let (on_a, on_b) = (ready_on(&pods, &a), ready_on(&pods, &b));
        on_a + on_b == REPLICAS && on_a > 0 && on_b > 0
    });
    assert!(spread, "{REPLICAS} pods never ran on both nodes:\n{}", cluster.ok(&["get", "pods", "-o", "wide"]));
    let stale: Vec<PodView> = pods(&cluster).into_iter().filter(|p| p.node == b).collect();
    let stale_uids: Vec<String> = stale.iter().map(|p| p.uid.clone()).collect();
    assert!(processes(&stale_uids).values().all(|n| *n > 0), "B's pods run no process");
    println!("{REPLICAS} pods Ready, {} of them on {b}", stale.len());

    hosts.link('b', false);
    let cut = Instant::now();
    let not_ready = cluster.eventually(Duration::from_secs(60), || node_ready(&cluster, &b) != "True");
    assert!(not_ready, "{b} stayed Ready with its link down:\n{}", cluster.ok(&["get", "nodes"]));
    let not_ready_after = cut.elapsed();
    println!("{b} NotReady ({}) {not_ready_after:?} after its link went down", node_ready(&cluster, &b));

    let replaced = cluster.eventually(Duration::from_secs(60), || {
        let pods = pods(&cluster);
        ready_on(&pods, &a) == REPLICAS
            && stale.iter().all(|s| pods.iter().find(|p| p.uid == s.uid).is_none_or(|p| p.deleting))
    });
    assert!(replaced, "B's pods were never replaced on A:\n{}", cluster.ok(&["get", "pods", "-o", "wide"]));
    let replaced_after = cut.elapsed();
    println!("all {REPLICAS} replicas Ready on {a} {replaced_after:?} after the cut, B's marked for deletion");
    // Cut off, B keeps running what it had (as a kubelet does: a partition is not a deletion).
    let while_cut = processes(&stale_uids);
    println!("while cut off, B's stale pods' processes: {while_cut:?}");
    // A user force-deletes one of the pods stuck Terminating, and the API server restarts: B's
    // watch cannot carry on where it was, so B learns what happened from a new list — in which
    // the force-deleted pod is simply missing.
    let forced = stale[0].name.clone();
    let _ = cluster.kubectl(&["delete", "pod", &forced, "--grace-period=0", "--force"]);
    cluster.restart();
    println!("force-deleted {forced} and restarted the API server while {b} was cut off");

    hosts.link('b', true);
    let reconnected = Instant::now();
    let mut left = BTreeMap::new();
    let stopped = cluster.eventually(Duration::from_secs(60), || {
        left = processes(&stale_uids);
        let listed = pods(&cluster);
        left.values().all(|n| *n == 0) && !listed.iter().any(|p| stale_uids.contains(&p.uid))
    });
    let stopped_after = reconnected.elapsed();
    assert!(
        stopped,
        "B's stale pods still run or are still listed {stopped_after:?} after it came back: {left:?}\n{}",
        cluster.ok(&["get", "pods", "-o", "wide"])
    );
    println!("B's stale pods stopped and gone {stopped_after:?} after its link came back");
    let back = cluster.eventually(Duration::from_secs(30), || node_ready(&cluster, &b) == "True");
    assert!(back, "{b} never came back Ready:\n{}", cluster.ok(&["get", "nodes"]));
    println!("{b} Ready again {:?} after its link came back", reconnected.elapsed());

    // Each replica exactly once: kubectl's view and the host's processes.
    let final_pods = pods(&cluster);
    assert_eq!(final_pods.len(), REPLICAS, "{}", cluster.ok(&["get", "pods", "-o", "wide"]));
    assert!(final_pods.iter().all(|p| p.ready && !p.deleting && p.node == a), "{final_pods:?}");
    let uids: Vec<String> = final_pods.iter().map(|p| p.uid.clone()).collect();
    let running = processes(&uids);
    assert!(running.values().all(|n| *n > 0), "a replica runs no process: {running:?}");
    let stale_running = processes(&stale_uids);
    assert!(stale_running.values().all(|n| *n == 0), "stale copies still run: {stale_running:?}");
    println!(
        "figures: NotReady after {not_ready_after:?}, replaced on A after {replaced_after:?}, stale pods stopped \
         {stopped_after:?} after reconnect; replicas running once each: {}",
        running.len()
    );
}
