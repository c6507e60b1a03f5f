//! DaemonSets and StatefulSets end to end with the real kubectl and Wasm ticker pods: one daemon
//! pod per node (also on a node that joins later, only on nodes its nodeSelector matches), a
//! DaemonSet rollout, and a StatefulSet that starts in order, scales down from the top and
//! brings a lost pod back under its own name.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Cluster, wasm_fixture};
use serde_json::Value;

/// What a test checks of one pod.
#[derive(Debug, Clone)]
struct PodView {
    node: String,
    phase: String,
    ready: bool,
    terminating: bool,
    revision: String,
    uid: String,
}

/// The pods labelled `selector`, by name.
fn pods(cluster: &Cluster, selector: &str) -> BTreeMap<String, PodView> {
    let list: Value = serde_json::from_str(&cluster.ok(&["get", "pods", "-l", selector, "-o", "json"])).unwrap();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let view = PodView {
                node: text(&p["spec"]["nodeName"]),
                phase: text(&p["status"]["phase"]),
                ready,
                terminating: !p["metadata"]["deletionTimestamp"].is_null(),
                revision: text(&p["metadata"]["labels"]["controller-revision-hash"]),
                uid: text(&p["metadata"]["uid"]),
            };
            (text(&p["metadata"]["name"]), view)
        })
        .collect()
}

/// Live (not terminating) pods per node.
fn per_node(pods: &BTreeMap<String, PodView>) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for pod in pods.values().filter(|p| !p.terminating) {
        *count.entry(pod.node.clone()).or_default() += 1;
    }
    count
}

fn all_running(pods: &BTreeMap<String, PodView>) -> bool {
    pods.values().all(|p| p.phase == "Running" && p.ready && !p.terminating)
}

fn rollout(cluster: &Cluster, what: &str) -> String {
    let start = Instant::now();
    let out = cluster.ok(&["rollout", "status", what, "--timeout=90s"]);
    println!("rollout status {what} finished in {:?}: {}", start.elapsed(), out.trim());
    out
}

/// Messages of the events about `kind`/`name`, oldest first.
fn events(cluster: &Cluster, kind: &str, name: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(&cluster.ok(&["get", "events", "-o", "json"])).unwrap();
    let mut items: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
        .collect();
    items.sort_by_key(|e| e["eventTime"].as_str().unwrap_or_default().to_string());
    items
        .iter()
        .map(|e| format!("{} {}", e["reason"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
        .collect()
}

fn daemonset(name: &str, image: &str, node_selector: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  \
         template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 2\n{node_selector}      \
         containers:\n      - name: ticker\n        image: {image}\n"
    )
}

#[test]
fn a_daemonset_runs_one_pod_per_node_also_on_nodes_that_join_and_rolls_out() {
    let cluster = Cluster::start();
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    cluster.wait_nodes_ready(1, Duration::from_secs(30));
    let local = cluster.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);

    cluster.apply(&daemonset("agent", "ticker:v1", ""));
    cluster.apply(&daemonset("ssd", "ticker:v1", "      nodeSelector: {disk: ssd}\n"));
    rollout(&cluster, "ds/agent");
    let on_one = pods(&cluster, "app=agent");
    assert_eq!(per_node(&on_one), BTreeMap::from([(local.clone(), 1)]), "{on_one:#?}");
    assert!(all_running(&on_one), "{on_one:#?}");
    let status =
        cluster.ok(&["get", "ds", "agent", "-o", "jsonpath={.status.desiredNumberScheduled} {.status.numberReady}"]);
    assert_eq!(status, "1 1");

    // A node that joins gets its own pod.
    let mut second = cluster.join_agent("second");
    cluster.wait_nodes_ready(2, Duration::from_secs(60));
    let joined = Instant::now();
    let spread = cluster.eventually(Duration::from_secs(60), || {
        let now = pods(&cluster, "app=agent");
        per_node(&now) == BTreeMap::from([(local.clone(), 1), ("second".into(), 1)]) && all_running(&now)
    });
    assert!(spread, "no daemon pod running on each node: {:#?}", pods(&cluster, "app=agent"));
    println!("daemon pod running on the joined node {:?} after it was Ready", joined.elapsed());
    rollout(&cluster, "ds/agent");
    let table = cluster.ok(&["get", "ds", "agent"]);
    assert!(table.lines().nth(1).unwrap().split_whitespace().take(6).eq(["agent", "2", "2", "2", "2", "2"]), "{table}");

    // The nodeSelector matches no node, then one once it is labelled.
    assert!(pods(&cluster, "app=ssd").is_empty());
    cluster.ok(&["label", "node", "second", "disk=ssd"]);
    let placed = cluster.eventually(Duration::from_secs(30), || {
        let now = pods(&cluster, "app=ssd");
        per_node(&now) == BTreeMap::from([("second".into(), 1)]) && all_running(&now)
    });
    assert!(placed, "no ssd pod on second: {:#?}", pods(&cluster, "app=ssd"));
    // Unlabelled, the node is no longer eligible and its pod goes.
    cluster.ok(&["label", "node", "second", "disk-"]);
    let removed = cluster.eventually(Duration::from_secs(30), || per_node(&pods(&cluster, "app=ssd")).is_empty());
    assert!(removed, "the ssd pod stayed: {:#?}", pods(&cluster, "app=ssd"));

    // A template change rolls out to every node.
    let before = pods(&cluster, "app=agent");
    let old_revision = before.values().next().unwrap().revision.clone();
    assert!(!old_revision.is_empty() && before.values().all(|p| p.revision == old_revision), "{before:#?}");
    cluster.ok(&["set", "env", "ds/agent", "VERSION=2"]);
    rollout(&cluster, "ds/agent");
    let settled = cluster.eventually(Duration::from_secs(30), || {
        let now = pods(&cluster, "app=agent");
        now.len() == 2 && all_running(&now)
    });
    let after = pods(&cluster, "app=agent");
    assert!(settled, "old pods linger: {after:#?}");
    assert_eq!(per_node(&after), BTreeMap::from([(local.clone(), 1), ("second".into(), 1)]));
    assert!(after.values().all(|p| p.revision != old_revision && !p.revision.is_empty()), "{after:#?}");
    assert!(after.keys().all(|name| !before.contains_key(name)), "every pod was replaced: {after:#?}");

    // A node that goes away takes its daemon pod with it.
    second.kill();
    cluster.ok(&["delete", "node", "second"]);
    let shrunk = cluster.eventually(Duration::from_secs(30), || {
        let desired = cluster.ok(&["get", "ds", "agent", "-o", "jsonpath={.status.desiredNumberScheduled}"]);
        per_node(&pods(&cluster, "app=agent")) == BTreeMap::from([(local.clone(), 1)]) && desired == "1"
    });
    assert!(shrunk, "{:#?}\n{}", pods(&cluster, "app=agent"), cluster.ok(&["get", "ds", "agent"]));

    let messages = events(&cluster, "DaemonSet", "agent");
    assert!(messages.iter().any(|m| m.starts_with("SuccessfulCreate Created pod: agent-")), "{messages:#?}");
    assert!(messages.iter().any(|m| m.starts_with("SuccessfulDelete Deleted pod: agent-")), "{messages:#?}");
}

const STATEFULSET: &str = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\nspec:\n  serviceName: web\n  \
    replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      \
    terminationGracePeriodSeconds: 2\n      containers:\n      - name: ticker\n        image: ticker:v1\n";

fn ordinal(name: &str) -> usize {
    name.trim_start_matches("web-").parse().unwrap()
}

#[test]
fn a_statefulset_starts_in_order_scales_down_from_the_top_and_brings_pods_back() {
    let cluster = Cluster::start();
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    cluster.wait_nodes_ready(1, Duration::from_secs(30));

    // Every pod seen while it comes up has all lower ordinals Running and Ready.
    cluster.apply(STATEFULSET);
    let start = Instant::now();
    let mut first_seen: BTreeMap<String, Duration> = BTreeMap::new();
    let up = cluster.eventually(Duration::from_secs(90), || {
        let now = pods(&cluster, "app=web");
        for name in now.keys() {
            first_seen.entry(name.clone()).or_insert(start.elapsed());
            for lower in 0..ordinal(name) {
                let before = now.get(&format!("web-{lower}"));
                assert!(before.is_some_and(|p| p.ready), "{name} exists while web-{lower} is not Ready: {now:#?}");
            }
        }
        now.len() == 3 && all_running(&now)
    });
    assert!(up, "web-0..2 never all ran: {:#?}", pods(&cluster, "app=web"));
    println!("pods first seen at {first_seen:?}");
    assert_eq!(first_seen.keys().collect::<Vec<_>>(), ["web-0", "web-1", "web-2"]);
    for i in 1..3 {
        let created = cluster.pod(&format!("web-{i}"))["metadata"]["creationTimestamp"].as_str().unwrap().to_string();
        let before = cluster.pod(&format!("web-{}", i - 1));
        let ready = before["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        let ready_at = ready["lastTransitionTime"].as_str().unwrap();
        assert!(
            created.as_str() >= ready_at,
            "web-{i} created at {created}, before web-{} was Ready at {ready_at}",
            i - 1
        );
    }
    rollout(&cluster, "sts/web");
    let table = cluster.ok(&["get", "sts", "web"]);
    assert!(table.lines().nth(1).unwrap().split_whitespace().take(2).eq(["web", "3/3"]), "{table}");
    let web1 = cluster.pod("web-1");
    assert_eq!(web1["spec"]["hostname"], "web-1");
    assert_eq!(web1["spec"]["subdomain"], "web");
    assert_eq!(web1["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"], "web-1");
    assert_eq!(web1["metadata"]["labels"]["apps.kubernetes.io/pod-index"], "1");
    let update_revision = cluster.ok(&["get", "sts", "web", "-o", "jsonpath={.status.updateRevision}"]);
    assert_eq!(web1["metadata"]["labels"]["controller-revision-hash"], update_revision.as_str());
    let messages = events(&cluster, "StatefulSet", "web");
    let creates: Vec<&String> = messages.iter().filter(|m| m.starts_with("SuccessfulCreate")).collect();
    assert_eq!(
        creates,
        [0, 1, 2]
            .map(|i| format!("SuccessfulCreate create Pod web-{i} in StatefulSet web successful"))
            .iter()
            .collect::<Vec<_>>(),
        "{messages:#?}"
    );

    // Scaling to 1 removes web-2 first, then web-1, one at a time.
    cluster.ok(&["scale", "sts", "web", "--replicas=1"]);
    let down = cluster.eventually(Duration::from_secs(60), || {
        let now = pods(&cluster, "app=web");
        if now.contains_key("web-2") {
            assert!(!now["web-1"].terminating, "web-1 is going before web-2 is gone: {now:#?}");
        }
        now.keys().eq(["web-0"])
    });
    assert!(down, "did not scale down to web-0: {:#?}", pods(&cluster, "app=web"));
    rollout(&cluster, "sts/web");
    let messages = events(&cluster, "StatefulSet", "web");
    let deletes: Vec<&String> = messages.iter().filter(|m| m.starts_with("SuccessfulDelete")).collect();
    assert_eq!(
        deletes,
        [2, 1]
            .map(|i| format!("SuccessfulDelete delete Pod web-{i} in StatefulSet web successful"))
            .iter()
            .collect::<Vec<_>>(),
        "{messages:#?}"
    );

    // A deleted pod comes back under its own name.
    let old_uid = pods(&cluster, "app=web")["web-0"].uid.clone();
    cluster.ok(&["delete", "pod", "web-0", "--wait=false"]);
    let deleted = Instant::now();
    let back = cluster.eventually(Duration::from_secs(60), || {
        let now = pods(&cluster, "app=web");
        now.get("web-0").is_some_and(|p| p.uid != old_uid && p.ready && p.phase == "Running")
    });
    assert!(back, "web-0 did not come back: {:#?}", pods(&cluster, "app=web"));
    println!("web-0 back and Ready {:?} after its deletion", deleted.elapsed());

    // A template change rolls web-0 to the new revision.
    cluster.ok(&["set", "env", "sts/web", "VERSION=2"]);
    rollout(&cluster, "sts/web");
    let status =
        cluster.ok(&["get", "sts", "web", "-o", "jsonpath={.status.currentRevision} {.status.updateRevision}"]);
    let (current, update) = status.split_once(' ').unwrap();
    assert_eq!(current, update);
    assert_ne!(update, update_revision, "the template changed");
    let rolled = cluster.eventually(Duration::from_secs(30), || {
        pods(&cluster, "app=web").get("web-0").is_some_and(|p| p.revision == update && p.ready)
    });
    assert!(rolled, "web-0 not at {update}: {:#?}", pods(&cluster, "app=web"));

    // volumeClaimTemplates are not supported yet: the claim becomes an emptyDir, and a Warning says so.
    cluster.apply(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n  replicas: 1\n  \
         selector:\n    matchLabels: {app: db}\n  template:\n    metadata:\n      labels: {app: db}\n    spec:\n      \
         containers:\n      - name: ticker\n        image: ticker:v1\n        volumeMounts:\n        - {name: data, mountPath: /data}\n  \
         volumeClaimTemplates:\n  - metadata:\n      name: data\n    spec:\n      accessModes: [ReadWriteOnce]\n      \
         resources:\n        requests:\n          storage: 1Gi\n",
    );
    let db = cluster.wait_pod("db-0", "ran", Duration::from_secs(60), |p| p["status"]["phase"] == "Running");
    let volumes = db["spec"]["volumes"].as_array().unwrap();
    assert!(volumes.iter().any(|v| v["name"] == "data" && v["emptyDir"].is_object()), "{volumes:#?}");
    let warned = cluster.eventually(Duration::from_secs(10), || {
        events(&cluster, "StatefulSet", "db").iter().any(|m| m.starts_with("VolumeClaimTemplatesNotSupported "))
    });
    assert!(warned, "{:#?}", events(&cluster, "StatefulSet", "db"));
}
