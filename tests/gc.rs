//! Garbage collection end to end with the real kubectl: ownerReferences between objects,
//! `kubectl delete` with `--cascade=background|orphan|foreground`, and dependents of owners
//! that never existed.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, wasm_fixture};
use serde_json::Value;

fn json(cluster: &Cluster, args: &[&str]) -> Value {
    let out = cluster.kubectl(&[args, &["-o", "json"]].concat());
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn uid(cluster: &Cluster, kind: &str, name: &str) -> String {
    cluster.ok(&["get", kind, name, "-o", "jsonpath={.metadata.uid}"])
}

fn exists(cluster: &Cluster, kind: &str, name: &str) -> bool {
    cluster.kubectl(&["get", kind, name]).status.success()
}

fn config_map(name: &str, owner: Option<(&str, &str)>, extra_meta: &str) -> String {
    let owners = match owner {
        Some((owner, uid)) => format!(
            "  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n    blockOwnerDeletion: true\n"
        ),
        None => String::new(),
    };
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{owners}{extra_meta}data:\n  k: v\n")
}

fn wait_gone(cluster: &Cluster, kind: &str, name: &str, what: &str) {
    let started = Instant::now();
    assert!(cluster.eventually(Duration::from_secs(30), || !exists(cluster, kind, name)), "{kind} {name} {what}");
    println!("{kind} {name} gone after {:?}", started.elapsed());
}

#[test]
fn dependents_follow_their_owners_by_the_cascade_asked_for() {
    let cluster = Cluster::start();
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");

    // Background (kubectl's default): owner → config map → pod, all go.
    cluster.apply(&config_map("root", None, ""));
    let root = uid(&cluster, "cm", "root");
    cluster.apply(&config_map("middle", Some(("root", &root)), ""));
    let middle = uid(&cluster, "cm", "middle");
    cluster.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: leaf\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: middle\n    uid: {middle}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: ticker:v1\n"
    ));
    cluster.wait_pod("leaf", "ran", Duration::from_secs(30), |p| p["status"]["phase"] == "Running");
    cluster.ok(&["delete", "cm", "root"]);
    wait_gone(&cluster, "cm", "middle", "was not collected after its owner went");
    wait_gone(&cluster, "pod", "leaf", "was not collected after its owner went");

    // Orphan: the dependent stays, without its reference to the owner.
    cluster.apply(&config_map("parent", None, ""));
    let parent = uid(&cluster, "cm", "parent");
    cluster.apply(&config_map("kept", Some(("parent", &parent)), ""));
    cluster.ok(&["delete", "cm", "parent", "--cascade=orphan"]);
    assert!(!exists(&cluster, "cm", "parent"), "kubectl delete waits for the orphan finalizer to be done");
    let kept = json(&cluster, &["get", "cm", "kept"]);
    assert!(kept["metadata"].get("deletionTimestamp").is_none(), "{kept:#}");
    assert!(kept["metadata"]["ownerReferences"].as_array().is_none_or(Vec::is_empty), "{kept:#}");

    // Foreground: the owner waits, marked, until its blocking dependent is gone.
    cluster.apply(&config_map("boss", None, ""));
    let boss = uid(&cluster, "cm", "boss");
    cluster.apply(&config_map("held", Some(("boss", &boss)), "  finalizers:\n  - example.com/hold\n"));
    cluster.ok(&["delete", "cm", "boss", "--cascade=foreground", "--wait=false"]);
    let held = cluster.eventually(Duration::from_secs(20), || {
        json(&cluster, &["get", "cm", "held"])["metadata"].get("deletionTimestamp").is_some()
    });
    assert!(held, "the dependent was never deleted");
    let waiting = json(&cluster, &["get", "cm", "boss"]);
    assert_eq!(waiting["metadata"]["finalizers"], serde_json::json!(["foregroundDeletion"]), "{waiting:#}");
    assert!(waiting["metadata"].get("deletionTimestamp").is_some(), "{waiting:#}");
    cluster.ok(&["patch", "cm", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    wait_gone(&cluster, "cm", "held", "stayed after its finalizer was removed");
    wait_gone(&cluster, "cm", "boss", "stayed after its dependents were gone");

    // A dependent of an owner that never existed is collected; one of a live owner is not.
    cluster.apply(&config_map("stray", Some(("nobody", "00000000-0000-0000-0000-000000000000")), ""));
    cluster.apply(&config_map("anchor", None, ""));
    let anchor = uid(&cluster, "cm", "anchor");
    cluster.apply(&config_map("anchored", Some(("anchor", &anchor)), ""));
    wait_gone(&cluster, "cm", "stray", "was not collected though its owner does not exist");
    assert!(exists(&cluster, "cm", "anchored"));
}

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      terminationGracePeriodSeconds: 2\n      containers:\n      - name: main\n        image: ticker:v1\n"
    )
}

fn items(cluster: &Cluster, kind: &str, app: &str) -> Vec<Value> {
    json(cluster, &["get", kind, "-l", &format!("app={app}")])["items"].as_array().cloned().unwrap_or_default()
}

fn running_pods(cluster: &Cluster, app: &str) -> usize {
    items(cluster, "pods", app)
        .iter()
        .filter(|p| p["status"]["phase"] == "Running" && p["metadata"].get("deletionTimestamp").is_none())
        .count()
}

fn deploy_and_wait(cluster: &Cluster, name: &str) {
    cluster.apply(&deployment(name));
    let up = cluster.eventually(Duration::from_secs(60), || running_pods(cluster, name) == 2);
    assert!(up, "deployment {name} never ran 2 pods:\n{}", cluster.ok(&["get", "pods", "-o", "wide"]));
}

fn no_owners(obj: &Value) -> bool {
    obj["metadata"]["ownerReferences"].as_array().is_none_or(Vec::is_empty)
}

#[test]
fn deleting_a_deployment_cascades_to_its_replica_sets_and_pods() {
    let cluster = Cluster::start();
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");

    // Background: the Deployment goes at once, its ReplicaSet and pods after it.
    deploy_and_wait(&cluster, "bg");
    let started = Instant::now();
    cluster.ok(&["delete", "deploy", "bg"]);
    let collected = cluster.eventually(Duration::from_secs(60), || {
        items(&cluster, "rs", "bg").is_empty() && items(&cluster, "pods", "bg").is_empty()
    });
    assert!(collected, "{}", cluster.ok(&["get", "rs,pods"]));
    println!("background: ReplicaSet and pods gone {:?} after the delete", started.elapsed());

    // Orphan: the ReplicaSet stays and keeps its pods; orphaning it in turn frees the pods.
    deploy_and_wait(&cluster, "orph");
    cluster.ok(&["delete", "deploy", "orph", "--cascade=orphan"]);
    assert!(!cluster.kubectl(&["get", "deploy", "orph"]).status.success());
    let sets = items(&cluster, "rs", "orph");
    assert_eq!(sets.len(), 1, "{sets:#?}");
    assert!(no_owners(&sets[0]), "{:#}", sets[0]);
    let rs = sets[0]["metadata"]["name"].as_str().unwrap().to_string();
    let uids = |pods: &[Value]| {
        let mut uids: Vec<String> =
            pods.iter().filter_map(|p| p["metadata"]["uid"].as_str().map(String::from)).collect();
        uids.sort();
        uids
    };
    let owned = uids(&items(&cluster, "pods", "orph"));
    // kubectl waits until the ReplicaSet is gone, which is after its pods were orphaned.
    cluster.ok(&["delete", "rs", &rs, "--cascade=orphan"]);
    let pods = items(&cluster, "pods", "orph");
    assert_eq!(uids(&pods), owned, "the orphaned pods are the same pods: {pods:#?}");
    assert_eq!(running_pods(&cluster, "orph"), 2, "{pods:#?}");
    assert!(pods.iter().all(no_owners), "{pods:#?}");

    // Foreground: the Deployment stays, marked, until its ReplicaSet and pods are gone. One
    // pod is held by a finalizer of ours, so the wait can be seen.
    deploy_and_wait(&cluster, "fg");
    let held = items(&cluster, "pods", "fg")[0]["metadata"]["name"].as_str().unwrap().to_string();
    let hold = r#"{"metadata":{"finalizers":["example.com/hold"]}}"#;
    cluster.ok(&["patch", "pod", &held, "--type=merge", "-p", hold]);
    let started = Instant::now();
    cluster.ok(&["delete", "deploy", "fg", "--cascade=foreground", "--wait=false"]);
    let waiting = cluster.eventually(Duration::from_secs(30), || {
        let pods = items(&cluster, "pods", "fg");
        pods.len() == 1 && pods[0]["metadata"].get("deletionTimestamp").is_some()
    });
    assert!(waiting, "the pods were not deleted first:\n{}", cluster.ok(&["get", "deploy,rs,pods", "-o", "wide"]));
    let deploy = json(&cluster, &["get", "deploy", "fg"]);
    assert_eq!(deploy["metadata"]["finalizers"], serde_json::json!(["foregroundDeletion"]), "{deploy:#}");
    assert!(deploy["metadata"].get("deletionTimestamp").is_some(), "{deploy:#}");
    let sets = items(&cluster, "rs", "fg");
    assert_eq!(sets.len(), 1, "the ReplicaSet waits for its pod too");
    assert!(sets[0]["metadata"].get("deletionTimestamp").is_some(), "{:#}", sets[0]);
    cluster.ok(&["patch", "pod", &held, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    let gone =
        cluster.eventually(Duration::from_secs(30), || !cluster.kubectl(&["get", "deploy", "fg"]).status.success());
    assert!(gone, "the Deployment was never deleted:\n{}", cluster.ok(&["get", "deploy,rs,pods", "-o", "wide"]));
    assert!(items(&cluster, "rs", "fg").is_empty() && items(&cluster, "pods", "fg").is_empty());
    println!("foreground: Deployment gone {:?} after the delete", started.elapsed());
}
