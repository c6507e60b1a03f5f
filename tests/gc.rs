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
