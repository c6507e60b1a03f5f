//! ResourceQuota and LimitRange as a user meets them with the real kubectl: a pod count quota
//! refusing the third pod and freeing a place when one goes; a LimitRange giving pods without
//! resources their defaults, counted by a cpu quota; a LimitRange maximum refusing a big
//! container; a quota a pod must state its limits for; a Deployment held to its namespace's
//! pod quota (FailedCreate on its ReplicaSet); and 20 concurrent creates against
//! `count/configmaps: 10` leaving exactly 10.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, kubectl_path, wasm_fixture};
use serde_json::Value;

/// `kubectl get quota NAME -n NS` (the table kubectl prints).
fn quota_table(cluster: &Cluster, ns: &str, name: &str) -> String {
    cluster.ok(&["get", "quota", name, "-n", ns])
}

/// Waits until `kubectl get quota` shows `expected` in the quota's row.
fn wait_quota(cluster: &Cluster, ns: &str, name: &str, expected: &str) {
    let start = Instant::now();
    let shown = cluster.eventually(Duration::from_secs(30), || quota_table(cluster, ns, name).contains(expected));
    assert!(shown, "quota {ns}/{name} never showed {expected:?}:\n{}", quota_table(cluster, ns, name));
    println!("quota {ns}/{name} showed {expected:?} after {:?}", start.elapsed());
}

fn run_pod(cluster: &Cluster, ns: &str, name: &str) -> std::process::Output {
    cluster.kubectl(&["run", name, "-n", ns, "--image=ticker:v1", "--restart=Never"])
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("kubectl printed JSON")
}

fn pod_quota_refuses_the_third_pod_and_frees_a_place(cluster: &Cluster) {
    cluster.ok(&["create", "namespace", "q-pods"]);
    let invalid = cluster.fails(&["create", "quota", "bad", "--hard=cpus=1,pods=1.5", "-n", "q-pods"], None);
    assert!(
        invalid.contains(
            "ResourceQuota \"bad\" is invalid: [spec.hard[cpus]: Invalid value: \"cpus\": must be a standard \
             resource for quota, spec.hard[pods]: Invalid value: \"1500m\": must be an integer]"
        ),
        "{invalid}"
    );
    cluster.ok(&["create", "quota", "pods", "--hard=pods=2", "-n", "q-pods"]);
    wait_quota(cluster, "q-pods", "pods", "pods: 0/2");
    let dry = cluster.ok(&["run", "dry", "-n", "q-pods", "--image=ticker:v1", "--restart=Never", "--dry-run=server"]);
    assert!(dry.contains("pod/dry created (server dry run)"), "{dry}");
    wait_quota(cluster, "q-pods", "pods", "pods: 0/2");
    for name in ["p1", "p2"] {
        let out = run_pod(cluster, "q-pods", name);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = run_pod(cluster, "q-pods", "p3");
    assert!(!out.status.success(), "a third pod was admitted under pods: 2");
    let refused = stderr(&out);
    assert!(
        refused.contains(
            "Error from server (Forbidden): pods \"p3\" is forbidden: exceeded quota: pods, requested: pods=1, used: \
             pods=2, limited: pods=2"
        ),
        "{refused}"
    );
    let dry = cluster.fails(&["run", "p3", "-n", "q-pods", "--image=ticker:v1", "--dry-run=server"], None);
    assert!(dry.contains("exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2"), "{dry}");
    let table = quota_table(cluster, "q-pods", "pods");
    assert!(table.contains("NAME") && table.contains("REQUEST") && table.contains("LIMIT"), "{table}");
    assert!(table.contains("pods: 2/2"), "{table}");
    let described = cluster.ok(&["describe", "quota", "pods", "-n", "q-pods"]);
    assert!(described.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "2", "2"]), "{described}");

    let start = Instant::now();
    cluster.ok(&["delete", "pod", "p1", "-n", "q-pods"]);
    wait_quota(cluster, "q-pods", "pods", "pods: 1/2");
    println!("deleting a pod freed its place after {:?}", start.elapsed());
    // A pod that ran to completion holds no place either.
    let out = cluster.kubectl(&["run", "done", "-n", "q-pods", "--image=hello:v1", "--restart=Never"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let start = Instant::now();
    let finished = cluster.eventually(Duration::from_secs(60), || {
        cluster.ok(&["get", "pod", "done", "-n", "q-pods", "-o", "jsonpath={.status.phase}"]) == "Succeeded"
    });
    assert!(finished, "the hello pod never succeeded");
    println!("the hello pod succeeded after {:?}", start.elapsed());
    wait_quota(cluster, "q-pods", "pods", "pods: 1/2");
    let out = run_pod(cluster, "q-pods", "p3");
    assert!(out.status.success(), "{}", stderr(&out));
    wait_quota(cluster, "q-pods", "pods", "pods: 2/2");
}

const LIMITS: &str = r#"
apiVersion: v1
kind: LimitRange
metadata: {name: limits, namespace: q-cpu}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 64Mi}
    defaultRequest: {cpu: 250m, memory: 32Mi}
    max: {cpu: "1"}
"#;

const BIG: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: big, namespace: q-cpu}
spec:
  containers:
  - name: c
    image: ticker:v1
    resources: {limits: {cpu: "2"}}
"#;

fn limit_range_defaults_count_toward_a_cpu_quota(cluster: &Cluster) {
    cluster.ok(&["create", "namespace", "q-cpu"]);
    cluster.apply(LIMITS);
    let ranges = cluster.ok(&["get", "limitranges", "-n", "q-cpu"]);
    assert!(ranges.contains("CREATED AT") && ranges.contains("limits"), "{ranges}");
    cluster.ok(&["create", "quota", "compute", "--hard=requests.cpu=500m,limits.cpu=2", "-n", "q-cpu"]);
    wait_quota(cluster, "q-cpu", "compute", "requests.cpu: 0/500m");

    for name in ["a", "b"] {
        let out = run_pod(cluster, "q-cpu", name);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let resources = cluster.ok(&["get", "pod", "a", "-n", "q-cpu", "-o", "jsonpath={.spec.containers[0].resources}"]);
    assert_eq!(
        json(&resources),
        serde_json::json!({"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m", "memory": "32Mi"}}),
        "the LimitRange's defaults"
    );
    let annotation = cluster.ok(&[
        "get",
        "pod",
        "a",
        "-n",
        "q-cpu",
        "-o",
        "jsonpath={.metadata.annotations.kubernetes\\.io/limit-ranger}",
    ]);
    assert_eq!(
        annotation,
        "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a"
    );
    let table = quota_table(cluster, "q-cpu", "compute");
    assert!(table.contains("requests.cpu: 500m/500m") && table.contains("limits.cpu: 1/2"), "{table}");

    let out = run_pod(cluster, "q-cpu", "c");
    assert!(!out.status.success(), "a pod past requests.cpu was admitted");
    assert!(
        stderr(&out).contains(
            "pods \"c\" is forbidden: exceeded quota: compute, requested: requests.cpu=250m, used: \
             requests.cpu=500m, limited: requests.cpu=500m"
        ),
        "{}",
        stderr(&out)
    );

    let refused = cluster.fails(&["apply", "-f", "-"], Some(BIG));
    assert!(
        refused.contains("pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"),
        "{refused}"
    );
}

fn a_quota_on_limits_needs_every_container_to_state_them(cluster: &Cluster) {
    cluster.ok(&["create", "namespace", "q-strict"]);
    cluster.ok(&["create", "quota", "compute", "--hard=limits.cpu=1", "-n", "q-strict"]);
    wait_quota(cluster, "q-strict", "compute", "limits.cpu: 0/1");
    let out = run_pod(cluster, "q-strict", "bare");
    assert!(!out.status.success(), "a pod without limits was admitted under a limits.cpu quota");
    assert!(
        stderr(&out).contains("pods \"bare\" is forbidden: failed quota: compute: must specify limits.cpu for: bare"),
        "{}",
        stderr(&out)
    );
}

fn a_deployment_stops_at_the_pod_quota(cluster: &Cluster) {
    cluster.ok(&["create", "namespace", "q-deploy"]);
    cluster.ok(&["create", "quota", "pods", "--hard=pods=3", "-n", "q-deploy"]);
    wait_quota(cluster, "q-deploy", "pods", "pods: 0/3");
    cluster.ok(&["create", "deployment", "web", "-n", "q-deploy", "--image=ticker:v1", "--replicas=5"]);
    let start = Instant::now();
    let refused = cluster.eventually(Duration::from_secs(60), || {
        let events = cluster.ok(&["get", "events", "-n", "q-deploy", "--field-selector", "reason=FailedCreate"]);
        events.contains("exceeded quota: pods, requested: pods=1, used: pods=3, limited: pods=3")
    });
    let events = cluster.ok(&["get", "events", "-n", "q-deploy"]);
    assert!(refused, "no FailedCreate event for the quota:\n{events}");
    println!("FailedCreate recorded after {:?}", start.elapsed());
    let event_list = json(&cluster.ok(&["get", "events", "-n", "q-deploy", "-o", "json"]));
    let failed =
        event_list["items"].as_array().unwrap().iter().find(|e| e["reason"] == "FailedCreate").cloned().unwrap();
    assert_eq!(failed["involvedObject"]["kind"], "ReplicaSet", "{failed:#}");
    assert_eq!(failed["type"], "Warning");
    let pods = json(&cluster.ok(&["get", "pods", "-n", "q-deploy", "-o", "json"]));
    assert_eq!(pods["items"].as_array().unwrap().len(), 3, "{pods:#}");
    wait_quota(cluster, "q-deploy", "pods", "pods: 3/3");
}

fn concurrent_creates_cannot_pass_a_quota(cluster: &Cluster) {
    const HARD: usize = 10;
    cluster.ok(&["create", "namespace", "q-race"]);
    cluster.ok(&["create", "quota", "cms", &format!("--hard=count/configmaps={HARD}"), "-n", "q-race"]);
    wait_quota(cluster, "q-race", "cms", "count/configmaps: ");
    let quota = json(&cluster.ok(&["get", "quota", "cms", "-n", "q-race", "-o", "json"]));
    let used: usize = quota["status"]["used"]["count/configmaps"].as_str().unwrap().parse().unwrap();
    println!("configmaps in the namespace before the race: {used}");
    let kubeconfig = cluster.kubeconfig();
    let start = Instant::now();
    let outcomes: Vec<std::process::Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let kubeconfig = &kubeconfig;
                s.spawn(move || {
                    Command::new(kubectl_path())
                        .args(["create", "configmap", &format!("cm-{i}"), "-n", "q-race", "--from-literal=k=v"])
                        .env("KUBECONFIG", kubeconfig)
                        .output()
                        .expect("kubectl runs")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let created = outcomes.iter().filter(|o| o.status.success()).count();
    println!("20 concurrent creates: {created} created in {:?}", start.elapsed());
    for refused in outcomes.iter().filter(|o| !o.status.success()) {
        let message = stderr(refused);
        assert!(
            message.contains("is forbidden: exceeded quota: cms, requested: count/configmaps=1, used: count/configmaps=10, limited: count/configmaps=10"),
            "{message}"
        );
    }
    let all = json(&cluster.ok(&["get", "configmaps", "-n", "q-race", "-o", "json"]));
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), HARD, "exactly the quota's worth of ConfigMaps exist: {all:#}");
    let others = items.iter().filter(|c| !c["metadata"]["name"].as_str().unwrap().starts_with("cm-")).count();
    assert_eq!(created, HARD - others, "every ConfigMap created was admitted, and no more");
    assert!(quota_table(cluster, "q-race", "cms").contains("count/configmaps: 10/10"));
}

#[test]
fn quotas_and_limit_ranges_with_kubectl() {
    let started = Instant::now();
    let cluster = Cluster::start();
    let ticker = wasm_fixture(cluster.data_dir(), "ticker");
    cluster.import(&ticker, "ticker:v1");
    cluster.import(&wasm_fixture(cluster.data_dir(), "hello"), "hello:v1");
    pod_quota_refuses_the_third_pod_and_frees_a_place(&cluster);
    limit_range_defaults_count_toward_a_cpu_quota(&cluster);
    a_quota_on_limits_needs_every_container_to_state_them(&cluster);
    a_deployment_stops_at_the_pod_quota(&cluster);
    concurrent_creates_cannot_pass_a_quota(&cluster);
    println!("quota tests took {:?}", started.elapsed());
}
