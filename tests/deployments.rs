//! Deployments and ReplicaSets driven by the real kubectl, as a user would: create, scale,
//! `set image` with `rollout status`, `rollout history|undo|restart|pause|resume`, and deleting
//! a Deployment with everything it owns. Wasm ticker pods on the local node.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, wasm_fixture};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("kubectl printed JSON")
}

fn items(cluster: &Cluster, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    json(&cluster.ok(&all))["items"].as_array().cloned().unwrap_or_default()
}

/// The web pods that are not being deleted.
fn live_pods(cluster: &Cluster) -> Vec<Value> {
    items(cluster, &["get", "pods", "-l", "app=web"])
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn image(pod: &Value) -> &str {
    pod["spec"]["containers"][0]["image"].as_str().unwrap_or_default()
}

/// Waits until exactly `count` web pods exist and all of them run `image`.
fn wait_running(cluster: &Cluster, count: usize, image_name: &str, timeout: Duration) {
    let start = Instant::now();
    let ok = cluster.eventually(timeout, || {
        let pods = items(cluster, &["get", "pods", "-l", "app=web"]);
        pods.len() == count
            && pods.iter().all(|p| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && p["status"]["phase"] == "Running"
                    && image(p) == image_name
            })
    });
    assert!(ok, "never {count} Running pods of {image_name}:\n{}", cluster.ok(&["get", "pods", "-o", "wide"]));
    println!("{count} pods of {image_name} running after {:?}", start.elapsed());
}

fn rollout_status(cluster: &Cluster) -> String {
    let start = Instant::now();
    let out = cluster.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(out.contains("deployment \"web\" successfully rolled out"), "{out}");
    println!("rollout status finished after {:?}", start.elapsed());
    out
}

fn deployment(cluster: &Cluster) -> Value {
    json(&cluster.ok(&["get", "deployment", "web", "-o", "json"]))
}

fn replica_sets(cluster: &Cluster) -> Vec<Value> {
    items(cluster, &["get", "rs", "-l", "app=web"])
}

fn annotation<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj["metadata"]["annotations"][key].as_str().unwrap_or_default()
}

/// The ReplicaSet whose revision annotation is `revision`.
fn rs_of_revision(cluster: &Cluster, revision: &str) -> Value {
    let sets = replica_sets(cluster);
    sets.iter()
        .find(|r| annotation(r, "deployment.kubernetes.io/revision") == revision)
        .cloned()
        .unwrap_or_else(|| panic!("no ReplicaSet of revision {revision}: {sets:#?}"))
}

fn condition<'a>(d: &'a Value, type_: &str) -> &'a Value {
    d["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == type_)).unwrap_or(&Value::Null)
}

#[test]
fn deployment_rolls_out_scales_undoes_restarts_and_pauses_with_kubectl() {
    let cluster = Cluster::start();
    let started = Instant::now();
    let ticker = wasm_fixture(cluster.data_dir(), "ticker");
    cluster.import(&ticker, "ticker:v1");
    cluster.import(&ticker, "ticker:v2");

    // Create 5.
    cluster.ok(&["create", "deployment", "web", "--image=ticker:v1", "--replicas=5"]);
    wait_running(&cluster, 5, "ticker:v1", Duration::from_secs(60));
    rollout_status(&cluster);
    let d = deployment(&cluster);
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "1");
    assert_eq!(d["status"]["observedGeneration"], d["metadata"]["generation"]);
    assert_eq!((d["status"]["replicas"].as_i64(), d["status"]["availableReplicas"].as_i64()), (Some(5), Some(5)));
    assert_eq!(condition(&d, "Available")["status"], "True");
    assert_eq!(condition(&d, "Progressing")["reason"], "NewReplicaSetAvailable");
    let sets = replica_sets(&cluster);
    assert_eq!(sets.len(), 1, "{sets:#?}");
    let rs = &sets[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"].as_str().expect("pod-template-hash label");
    let rs_name = rs["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(rs_name, format!("web-{hash}"));
    assert_eq!(rs["spec"]["selector"]["matchLabels"]["pod-template-hash"], hash);
    assert_eq!(rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"], hash);
    assert_eq!(annotation(rs, "deployment.kubernetes.io/revision"), "1");
    assert_eq!(annotation(rs, "deployment.kubernetes.io/desired-replicas"), "5");
    assert_eq!(annotation(rs, "deployment.kubernetes.io/max-replicas"), "7", "5 + 25% surge rounded up");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(rs["status"]["readyReplicas"], 5);
    for pod in live_pods(&cluster) {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with(&format!("{rs_name}-")), "{name}");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], rs_name.as_str());
    }
    let events = cluster.ok(&["get", "events"]);
    assert!(events.contains(&format!("Scaled up replica set {rs_name} from 0 to 5")), "{events}");
    assert!(events.contains("Created pod: web-"), "{events}");
    let table = cluster.ok(&["get", "deployment", "web"]);
    assert!(table.contains("5/5"), "{table}");

    // Scale to 8 and back to 2.
    cluster.ok(&["scale", "deployment", "web", "--replicas=8"]);
    wait_running(&cluster, 8, "ticker:v1", Duration::from_secs(30));
    cluster.ok(&["scale", "deployment", "web", "--replicas=2"]);
    wait_running(&cluster, 2, "ticker:v1", Duration::from_secs(60));
    rollout_status(&cluster);
    let events = cluster.ok(&["get", "events"]);
    assert!(events.contains(&format!("Scaled down replica set {rs_name} from 8 to 2")), "{events}");
    assert!(events.contains("Deleted pod: web-"), "{events}");

    // A new image rolls out; the change cause follows into the history.
    cluster.ok(&["annotate", "deployment/web", "kubernetes.io/change-cause=image v2"]);
    cluster.ok(&["set", "image", "deployment/web", "ticker=ticker:v2"]);
    rollout_status(&cluster);
    wait_running(&cluster, 2, "ticker:v2", Duration::from_secs(60));
    assert_eq!(annotation(&deployment(&cluster), "deployment.kubernetes.io/revision"), "2");
    let v2 = rs_of_revision(&cluster, "2");
    assert_eq!(annotation(&v2, "kubernetes.io/change-cause"), "image v2");
    assert_eq!(rs_of_revision(&cluster, "1")["spec"]["replicas"], 0);
    let history = cluster.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.lines().any(|l| l.starts_with("1 ")), "{history}");
    assert!(history.lines().any(|l| l.starts_with("2 ") && l.contains("image v2")), "{history}");
    let describe = cluster.ok(&["describe", "deployment", "web"]);
    let v2_name = v2["metadata"]["name"].as_str().unwrap();
    for line in [
        format!("NewReplicaSet:   {v2_name} (2/2 replicas created)"),
        format!("OldReplicaSets:  {rs_name} (0/0 replicas created)"),
        "Progressing    True    NewReplicaSetAvailable".to_string(),
        "Available      True    MinimumReplicasAvailable".to_string(),
        format!("Scaled up replica set {v2_name} from 0 to 1"),
    ] {
        assert!(describe.contains(&line), "describe lacks {line:?}:\n{describe}");
    }
    let revision = cluster.ok(&["rollout", "history", "deployment/web", "--revision=2"]);
    assert!(revision.contains("ticker:v2") && revision.contains("pod-template-hash"), "{revision}");

    // Undo returns to v1: the old ReplicaSet comes back as revision 3.
    cluster.ok(&["rollout", "undo", "deployment/web"]);
    rollout_status(&cluster);
    wait_running(&cluster, 2, "ticker:v1", Duration::from_secs(60));
    let d = deployment(&cluster);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "ticker:v1");
    assert_eq!(annotation(&d, "deployment.kubernetes.io/revision"), "3");
    let back = rs_of_revision(&cluster, "3");
    assert_eq!(back["metadata"]["name"], rs_name.as_str(), "the v1 ReplicaSet is reused");
    assert_eq!(annotation(&back, "deployment.kubernetes.io/revision-history"), "1");
    assert_eq!(replica_sets(&cluster).len(), 2);

    // Restart replaces every pod with the same template plus restartedAt.
    let before: Vec<String> = live_pods(&cluster).iter().map(|p| p["metadata"]["name"].to_string()).collect();
    cluster.ok(&["rollout", "restart", "deployment/web"]);
    rollout_status(&cluster);
    wait_running(&cluster, 2, "ticker:v1", Duration::from_secs(60));
    let d = deployment(&cluster);
    assert!(!annotation(&d["spec"]["template"], "kubectl.kubernetes.io/restartedAt").is_empty());
    let after: Vec<String> = live_pods(&cluster).iter().map(|p| p["metadata"]["name"].to_string()).collect();
    assert!(after.iter().all(|name| !before.contains(name)), "{before:?} → {after:?}");
    assert_eq!(replica_sets(&cluster).len(), 3);

    // Paused: a template change waits, scaling still applies; resume rolls it out.
    cluster.ok(&["rollout", "pause", "deployment/web"]);
    cluster.ok(&["set", "image", "deployment/web", "ticker=ticker:v2"]);
    cluster.ok(&["scale", "deployment", "web", "--replicas=3"]);
    wait_running(&cluster, 3, "ticker:v1", Duration::from_secs(30));
    let paused = cluster.eventually(Duration::from_secs(10), || {
        condition(&deployment(&cluster), "Progressing")["reason"] == "DeploymentPaused"
    });
    assert!(paused, "{:#}", deployment(&cluster)["status"]);
    assert_eq!(replica_sets(&cluster).len(), 3, "no new ReplicaSet while paused");
    let undo = cluster.fails(&["rollout", "undo", "deployment/web"], None);
    assert!(undo.contains("paused"), "{undo}");
    cluster.ok(&["rollout", "resume", "deployment/web"]);
    rollout_status(&cluster);
    wait_running(&cluster, 3, "ticker:v2", Duration::from_secs(60));
    // v2 with the restartedAt annotation is a template of its own: revision 5.
    assert_eq!(annotation(&deployment(&cluster), "deployment.kubernetes.io/revision"), "5");
    assert_eq!(replica_sets(&cluster).len(), 4);
    println!("rollouts done after {:?}", started.elapsed());

    // Deleting the Deployment takes its ReplicaSets and pods with it.
    cluster.ok(&["delete", "deployment", "web"]);
    let gone = cluster.eventually(Duration::from_secs(60), || {
        replica_sets(&cluster).is_empty() && items(&cluster, &["get", "pods", "-l", "app=web"]).is_empty()
    });
    assert!(gone, "left behind:\n{}", cluster.ok(&["get", "rs,pods"]));
    println!("whole test took {:?}", started.elapsed());
}

#[test]
fn recreate_replaces_all_pods_at_once_and_adopts_orphans() {
    let cluster = Cluster::start();
    let ticker = wasm_fixture(cluster.data_dir(), "ticker");
    cluster.import(&ticker, "ticker:v1");
    cluster.import(&ticker, "ticker:v2");

    // An orphan pod with the app's labels is adopted by the ReplicaSet and counted.
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  strategy:\n    type: Recreate\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: ticker\n        image: ticker:v1\n";
    cluster.apply(manifest);
    rollout_status(&cluster);
    wait_running(&cluster, 3, "ticker:v1", Duration::from_secs(60));
    let rs = replica_sets(&cluster)[0].clone();
    let hash = rs["metadata"]["labels"]["pod-template-hash"].as_str().unwrap().to_string();
    let orphan = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: stray\n  labels:\n    app: web\n    pod-template-hash: {hash}\nspec:\n  containers:\n  - name: ticker\n    image: ticker:v1\n"
    );
    cluster.apply(&orphan);
    let settled = cluster.eventually(Duration::from_secs(30), || {
        let pods = live_pods(&cluster);
        pods.len() == 3 && pods.iter().all(|p| p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet")
    });
    assert!(settled, "{}", cluster.ok(&["get", "pods", "--show-labels"]));

    // Recreate: every old pod goes before a new one starts.
    cluster.ok(&["set", "image", "deployment/web", "ticker=ticker:v2"]);
    rollout_status(&cluster);
    wait_running(&cluster, 3, "ticker:v2", Duration::from_secs(60));
    let old = rs["metadata"]["name"].as_str().unwrap().to_string();
    let new = rs_of_revision(&cluster, "2")["metadata"]["name"].as_str().unwrap().to_string();
    let mut events = items(
        &cluster,
        &["get", "events", "--field-selector", "involvedObject.kind=Deployment,involvedObject.name=web"],
    );
    events.sort_by_key(|e| e["eventTime"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()));
    let messages: Vec<&str> = events.iter().filter_map(|e| e["message"].as_str()).collect();
    let at = |message: &str| messages.iter().position(|m| *m == message);
    let down = at(&format!("Scaled down replica set {old} from 3 to 0"));
    let up = at(&format!("Scaled up replica set {new} from 0 to 3"));
    assert!(
        down.is_some() && up.is_some() && down < up,
        "{old} scaled down to 0 before {new} scaled up from 0 to 3:\n{messages:#?}"
    );
    let partial = format!("Scaled up replica set {new} from ");
    let stepwise: Vec<&&str> =
        messages.iter().filter(|m| m.starts_with(&partial) && !m.ends_with("from 0 to 3")).collect();
    assert!(stepwise.is_empty(), "Recreate scaled the new ReplicaSet up in steps: {stepwise:?}");

    // maxSurge and maxUnavailable may not both be 0.
    let frozen = manifest.replace("name: web", "name: frozen").replace(
        "    type: Recreate\n",
        "    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 0\n      maxUnavailable: 0%\n",
    );
    let refused = cluster.fails(&["apply", "-f", "-"], Some(&frozen));
    assert!(refused.contains("spec.strategy.rollingUpdate.maxUnavailable"), "{refused}");

    // A rollout that cannot progress fails `rollout status` at its progress deadline.
    cluster.ok(&["create", "deployment", "stuck", "--image=missing:v1", "--replicas=1"]);
    cluster.ok(&["patch", "deployment", "stuck", "-p", r#"{"spec":{"progressDeadlineSeconds":2}}"#]);
    let start = Instant::now();
    let failed = cluster.fails(&["rollout", "status", "deployment/stuck", "--timeout=60s"], None);
    assert!(failed.contains("deployment \"stuck\" exceeded its progress deadline"), "{failed}");
    println!("progress deadline reported after {:?}", start.elapsed());
    let d = json(&cluster.ok(&["get", "deployment", "stuck", "-o", "json"]));
    let progressing = condition(&d, "Progressing");
    assert_eq!(
        (progressing["status"].as_str(), progressing["reason"].as_str()),
        (Some("False"), Some("ProgressDeadlineExceeded"))
    );
    assert_eq!(condition(&d, "Available")["reason"], "MinimumReplicasUnavailable");
}
