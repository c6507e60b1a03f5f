//! The node agent SIGKILLed while 50 pods (30 Wasm, 20 Linux) run on its node, some of them
//! deleted while it is down, then started again on the same data dir and name. Checked as a user
//! would (kubectl: every replica Running and Ready, restart counts, the node Ready, the node's
//! metrics) and on the host (one process tree per Linux container, and nothing left of the
//! deleted pods: processes, cgroups, mounts — the network namespace is one — directories, veths).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Cluster, busybox_layout, cgroups_of_pod, mounts_under, pids_of_pod, wasm_fixture};
use serde_json::Value;

const NODE: &str = "crashy";
const WASM: usize = 30;
const LINUX: usize = 20;

/// `wharf agent` on a data dir that outlives it, so it can be killed and started again.
struct NodeAgent {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl NodeAgent {
    fn start(cluster: &Cluster) -> Self {
        let mut agent = NodeAgent { dir: tempfile::tempdir().expect("temp dir"), child: None };
        agent.restart(cluster);
        agent
    }

    /// Starts the agent (again) on its data dir, under the same node name.
    fn restart(&mut self, cluster: &Cluster) {
        self.kill();
        let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["agent", "--server", &cluster.url, "--token-file"])
            .arg(cluster.data_dir().join("node-token"))
            .args(["--name", NODE, "--data-dir"])
            .arg(self.dir.path())
            .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
            .env("RUST_LOG", std::env::var("WHARF_TEST_LOG").unwrap_or_else(|_| "warn,libcgroups=error".into()))
            .spawn()
            .expect("wharf agent starts");
        self.child = Some(child);
    }

    /// SIGKILL: no chance to stop anything.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the agent");
            child.wait().expect("reap the agent");
        }
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.dir.path().join("pods").join(uid)
    }
}

impl Drop for NodeAgent {
    /// Kills the agent and whatever its Linux containers left (they outlive a killed agent).
    fn drop(&mut self) {
        self.kill();
        for uid in std::fs::read_dir(self.dir.path().join("pods")).into_iter().flatten().flatten() {
            let uid = uid.file_name().to_string_lossy().into_owned();
            for pid in pids_of_pod(&uid) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
        for mount in mounts_under(self.dir.path()) {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
        for uid in std::fs::read_dir(self.dir.path().join("pods")).into_iter().flatten().flatten() {
            let mut cgroups = cgroups_of_pod(&uid.file_name().to_string_lossy());
            cgroups.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for cgroup in cgroups {
                let _ = std::fs::remove_dir(cgroup);
            }
        }
    }
}

fn deployment(name: &str, replicas: usize, container: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  \
         selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        \
         app: {name}\n    spec:\n      nodeSelector:\n        kubernetes.io/hostname: {NODE}\n      \
         terminationGracePeriodSeconds: 2\n      containers:\n      - name: main\n{container}"
    )
}

/// What a user sees of one pod.
#[derive(Debug, Clone)]
struct PodView {
    name: String,
    uid: String,
    ip: String,
    app: String,
    ready: bool,
    running: bool,
    deleting: bool,
    restarts: i64,
    container_id: String,
}

fn pods(cluster: &Cluster) -> Vec<PodView> {
    let out = cluster.kubectl(&["get", "pods", "-l", "app in (wasm,linux)", "-o", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let status = &p["status"]["containerStatuses"][0];
            PodView {
                name: p["metadata"]["name"].as_str().unwrap_or_default().into(),
                uid: p["metadata"]["uid"].as_str().unwrap_or_default().into(),
                ip: p["status"]["podIP"].as_str().unwrap_or_default().into(),
                app: p["metadata"]["labels"]["app"].as_str().unwrap_or_default().into(),
                ready: p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True"),
                running: p["status"]["phase"] == "Running" && status["state"].get("running").is_some(),
                deleting: p["metadata"].get("deletionTimestamp").is_some(),
                restarts: status["restartCount"].as_i64().unwrap_or(0),
                container_id: status["containerID"].as_str().unwrap_or_default().into(),
            }
        })
        .collect()
}

/// All 50 replicas Running and Ready, none being deleted, and nothing else left.
fn all_ready(pods: &[PodView]) -> bool {
    pods.len() == WASM + LINUX && pods.iter().all(|p| p.ready && p.running && !p.deleting)
}

fn node_ready(cluster: &Cluster) -> bool {
    cluster.ok(&["get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]) == "True"
}

fn veths() -> BTreeSet<String> {
    let out = Command::new("ip").args(["-o", "link", "show", "type", "veth"]).output().expect("ip runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|n| n.trim_end_matches(':').split('@').next().unwrap_or_default().to_string())
        .collect()
}

/// The node's Wasm instances, as its metrics report them: (pod, container) pairs.
fn wasm_instances(cluster: &Cluster) -> BTreeMap<String, usize> {
    let text = cluster.ok(&["get", "--raw", &format!("/api/v1/nodes/{NODE}/proxy/metrics/resource")]);
    let mut per_pod = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("container_memory_working_set_bytes{")) {
        let Some(pod) = line.split("pod=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        if pod.starts_with("wasm-") {
            *per_pod.entry(pod.to_string()).or_insert(0) += 1;
        }
    }
    per_pod
}

/// What is left on the host of a pod that is gone: a list of findings (empty: nothing).
fn leftovers(agent: &NodeAgent, pod: &PodView) -> Vec<String> {
    let mut found = Vec::new();
    let pids = pids_of_pod(&pod.uid);
    if !pids.is_empty() {
        found.push(format!("{}: processes {pids:?}", pod.name));
    }
    let cgroups = cgroups_of_pod(&pod.uid);
    if !cgroups.is_empty() {
        found.push(format!("{}: cgroups {cgroups:?}", pod.name));
    }
    let dir = agent.pod_dir(&pod.uid);
    let mounts = mounts_under(&dir);
    if !mounts.is_empty() {
        found.push(format!("{}: mounts (network namespace, volumes, rootfs) {mounts:?}", pod.name));
    }
    if dir.exists() {
        found.push(format!("{}: directory {}", pod.name, dir.display()));
    }
    // (Its veth is checked with the node's: its address may already be a new pod's.)
    found
}

/// The pod veths on the host (`wv` + the pod IP in hex) whose address is in `cidr`, by address.
fn pod_veths(cidr: &str) -> BTreeSet<String> {
    let net: ipnet::Ipv4Net = cidr.parse().expect("a podCIDR");
    veths()
        .iter()
        .filter_map(|name| u32::from_str_radix(name.strip_prefix("wv")?, 16).ok())
        .map(std::net::Ipv4Addr::from)
        .filter(|ip| net.contains(ip))
        .map(|ip| ip.to_string())
        .collect()
}

#[test]
fn a_killed_agent_restarts_without_duplicates_or_orphans() {
    let started = Instant::now();
    let cluster = Cluster::start_with(&["--backoff-base-ms", "300"]);
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    cluster.import(&busybox_layout(cluster.data_dir()), "busybox:v1");
    let mut agent = NodeAgent::start(&cluster);
    cluster.wait_nodes_ready(2, Duration::from_secs(60));

    cluster.apply(&deployment("wasm", WASM, "        image: ticker:v1\n"));
    cluster.apply(&deployment("linux", LINUX, "        image: busybox:v1\n        command: [sleep, '3600']\n"));
    let up = cluster.eventually(Duration::from_secs(90), || all_ready(&pods(&cluster)));
    assert!(up, "the 50 pods never all ran:\n{}", cluster.ok(&["get", "pods", "-o", "wide"]));
    println!("{WASM} Wasm + {LINUX} Linux pods Running and Ready after {:?}", started.elapsed());
    let before = pods(&cluster);
    let linux_pids: BTreeMap<String, Vec<u32>> =
        before.iter().filter(|p| p.app == "linux").map(|p| (p.uid.clone(), pids_of_pod(&p.uid))).collect();
    for (uid, pids) in &linux_pids {
        assert!(!pids.is_empty(), "the Linux pod {uid} has no process in its cgroup");
    }
    assert_eq!(wasm_instances(&cluster).len(), WASM, "the node's metrics before the crash");

    // Crash; while the agent is down, delete a few pods (gracefully, and one by force).
    agent.kill();
    let killed = Instant::now();
    let doomed: Vec<PodView> = [("wasm", 3), ("linux", 3)]
        .iter()
        .flat_map(|(app, n)| before.iter().filter(|p| p.app == *app).take(*n).cloned().collect::<Vec<_>>())
        .collect();
    let (forced, graceful) = doomed.split_at(2);
    let names = |pods: &[PodView]| pods.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    let graceful_names = names(graceful);
    let forced_names = names(forced);
    cluster.ok(&[
        &["delete", "pod", "--wait=false"],
        &graceful_names.iter().map(String::as_str).collect::<Vec<_>>()[..],
    ]
    .concat());
    let mut force = vec!["delete", "pod", "--grace-period=0", "--force"];
    force.extend(forced_names.iter().map(String::as_str));
    let _ = cluster.kubectl(&force);
    println!("agent killed; deleted {graceful_names:?} and force-deleted {forced_names:?} while it was down");

    std::thread::sleep(Duration::from_secs(2));
    agent.restart(&cluster);
    let restarted = Instant::now();
    println!("agent restarted {:?} after it was killed", killed.elapsed());

    let recovered = cluster.eventually(Duration::from_secs(90), || all_ready(&pods(&cluster)) && node_ready(&cluster));
    assert!(recovered, "the pods never all ran again:\n{}", cluster.ok(&["get", "pods", "-o", "wide"]));
    let ready_after = restarted.elapsed();
    let after = pods(&cluster);

    // Survivors: re-adopted (same container, same processes, no restart) or restarted (counted).
    let (mut adopted, mut restarted_count) = (0, 0);
    let mut report = Vec::new();
    for old in before.iter().filter(|p| !doomed.iter().any(|d| d.uid == p.uid)) {
        let now = after.iter().find(|p| p.uid == old.uid).unwrap_or_else(|| panic!("{} is gone", old.name));
        if now.container_id == old.container_id {
            assert_eq!(now.restarts, old.restarts, "{}: same container, yet its restartCount changed", now.name);
            adopted += 1;
        } else {
            assert_eq!(
                now.restarts,
                old.restarts + 1,
                "{}: a new container ({} after {}) must count one restart",
                now.name,
                now.container_id,
                old.container_id
            );
            restarted_count += 1;
        }
        report.push(format!("{} {} restarts {}", now.app, now.name, now.restarts));
        if now.app == "linux" {
            let pids = pids_of_pod(&now.uid);
            assert_eq!(
                &pids, &linux_pids[&now.uid],
                "{}: its processes changed over the agent restart (duplicate or restarted container)",
                now.name
            );
        }
    }
    let linux_adopted = before
        .iter()
        .filter(|p| p.app == "linux" && !doomed.iter().any(|d| d.uid == p.uid))
        .all(|p| after.iter().any(|a| a.uid == p.uid && a.container_id == p.container_id));
    assert!(linux_adopted, "Linux containers outlive the agent and must be re-adopted:\n{}", report.join("\n"));

    // No duplicates: one process tree per Linux pod (its own cgroup only), one Wasm instance per
    // Wasm pod in the node's metrics.
    for pod in after.iter().filter(|p| p.app == "linux") {
        let pids = pids_of_pod(&pod.uid);
        assert!(!pids.is_empty(), "{}: Running with no process", pod.name);
    }
    let instances = wasm_instances(&cluster);
    let wasm_now: BTreeSet<String> = after.iter().filter(|p| p.app == "wasm").map(|p| p.name.clone()).collect();
    assert_eq!(instances.keys().cloned().collect::<BTreeSet<_>>(), wasm_now, "the node's Wasm instances");
    assert!(instances.values().all(|n| *n == 1), "a Wasm pod runs twice: {instances:?}");

    // No orphans of the deleted pods, which are gone from the API too.
    let mut orphans = Vec::new();
    let gone = cluster.eventually(Duration::from_secs(30), || {
        orphans = doomed.iter().flat_map(|p| leftovers(&agent, p)).collect();
        orphans.is_empty()
    });
    let names_now: Vec<&str> = after.iter().map(|p| p.name.as_str()).collect();
    for pod in &doomed {
        assert!(!names_now.contains(&pod.name.as_str()), "{} is still listed", pod.name);
    }
    // Nothing else either: the node holds veths and pod directories exactly for its pods.
    let cidr = cluster.ok(&["get", "node", NODE, "-o", "jsonpath={.spec.podCIDR}"]);
    let addresses: BTreeSet<String> = after.iter().map(|p| p.ip.clone()).collect();
    let stray_veths: Vec<String> = pod_veths(&cidr).difference(&addresses).cloned().collect();
    if !stray_veths.is_empty() {
        orphans.push(format!("veths of addresses no pod has: {stray_veths:?}"));
    }
    let dirs: BTreeSet<String> = std::fs::read_dir(agent.dir.path().join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let live: BTreeSet<String> = after.iter().map(|p| p.uid.clone()).collect();
    let strays: Vec<&String> = dirs.difference(&live).collect();
    if !strays.is_empty() {
        orphans.push(format!("pod directories of no pod: {strays:?}"));
    }
    println!(
        "after the restart: all {} pods Ready and node Ready {ready_after:?} after it; containers re-adopted: {adopted}, \
         restarted: {restarted_count} (Wasm instances die with the agent); orphans found: {}",
        after.len(),
        orphans.len()
    );
    assert!(
        gone && orphans.is_empty(),
        "orphans of the pods deleted while the agent was down:\n{}",
        orphans.join("\n")
    );
    println!("total {:?}", started.elapsed());
}
