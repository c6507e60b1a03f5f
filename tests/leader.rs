//! Leader election and fencing on a lone server (SQLite): the server takes the controller
//! manager's Lease `kube-system/wharf-controller-manager` at once and announces itself with its
//! own `wharf-server-*` Lease; a write sent with `Wharf-Fence: H` commits only while the Lease
//! names H (409 Conflict otherwise); after a crash the restarted server (a new identity) takes
//! the Lease at once instead of waiting for the old one to expire, and its controllers act.
//! Several servers on one Postgres database are tests/ha.rs's.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::Value;

const LEASE: &str = "wharf-controller-manager";

fn lease(cluster: &Cluster) -> Value {
    let out = cluster.kubectl(&["get", "lease", "-n", "kube-system", LEASE, "-o", "json"]);
    if !out.status.success() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).expect("kubectl printed JSON")
}

fn holder(cluster: &Cluster) -> String {
    lease(cluster)["spec"]["holderIdentity"].as_str().unwrap_or_default().to_string()
}

/// Waits for a holder other than `previous`; prints how long it took.
fn wait_holder(cluster: &Cluster, previous: &str, what: &str) -> String {
    let start = Instant::now();
    let mut current = String::new();
    let led = cluster.eventually(Duration::from_secs(30), || {
        current = holder(cluster);
        !current.is_empty() && current != previous
    });
    assert!(led, "no server took the controller-manager lease ({what}): {}", lease(cluster));
    println!("{what}: {current} leads after {:?}", start.elapsed());
    current
}

/// Creates ConfigMap `name` as the controllers of `fence` would; the answer's status and body.
fn create_fenced(cluster: &Cluster, fence: &str, name: &str) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (status, body) = runtime.block_on(async {
        let client =
            reqwest::Client::builder().use_preconfigured_tls(cluster.tls_client_config()).build().expect("HTTP client");
        let response = client
            .post(format!("{}/api/v1/namespaces/default/configmaps", cluster.url))
            .bearer_auth(cluster.admin_token())
            .header("Wharf-Fence", fence)
            .header("Content-Type", "application/json")
            .body(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).to_string())
            .send()
            .await
            .expect("the API answers");
        (response.status().as_u16(), response.bytes().await.expect("the answer's body"))
    });
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn a_lone_server_leads_at_once_fences_writes_and_takes_over_after_a_crash() {
    let mut cluster = Cluster::start();
    let first = wait_holder(&cluster, "", "first start");
    let (host, suffix) = first.rsplit_once('_').expect("identity is <hostname>_<hex>");
    assert!(!host.is_empty() && suffix.len() == 8 && suffix.chars().all(|c| c.is_ascii_hexdigit()), "{first}");
    let spec = &lease(&cluster)["spec"];
    assert_eq!(spec["leaseDurationSeconds"], 10, "{spec}");

    // The server's own Lease announces its URL.
    let out = cluster.ok(&["get", "lease", "-n", "kube-system", "-l", "wharf.dev/server=true", "-o", "json"]);
    let servers: Value = serde_json::from_str(&out).expect("kubectl printed JSON");
    let mine: Vec<&Value> =
        servers["items"].as_array().expect("items").iter().filter(|l| l["spec"]["holderIdentity"] == first).collect();
    assert_eq!(mine.len(), 1, "{servers}");
    assert_eq!(mine[0]["metadata"]["annotations"]["wharf.dev/url"], cluster.url.as_str(), "{servers}");

    // Fencing: a holder the Lease does not name writes nothing; the holder does.
    let (status, body) = create_fenced(&cluster, "someone-else_00000000", "fenced-out");
    assert_eq!((status, body["reason"].as_str()), (409, Some("Conflict")), "{body}");
    assert!(!cluster.kubectl(&["get", "configmap", "fenced-out"]).status.success(), "a fenced write committed");
    let (status, body) = create_fenced(&cluster, &first, "fenced-in");
    assert_eq!(status, 201, "{body}");
    cluster.ok(&["get", "configmap", "fenced-in"]);

    // After a crash the new run (a new identity) leads at once; the change of holder is counted.
    let transitions = lease(&cluster)["spec"]["leaseTransitions"].as_i64().unwrap_or(0);
    cluster.restart();
    let second = wait_holder(&cluster, &first, "restart after SIGKILL");
    assert_eq!(lease(&cluster)["spec"]["leaseTransitions"].as_i64(), Some(transitions + 1));
    let (status, body) = create_fenced(&cluster, &first, "from-the-old-run");
    assert_eq!(status, 409, "the crashed run's identity still writes: {body}");

    // Its controllers act: a Deployment gets its ReplicaSet.
    cluster.ok(&["create", "deployment", "web", "--image=registry.invalid/web:1"]);
    let start = Instant::now();
    let has_rs = || {
        let out = cluster.kubectl(&["get", "rs", "-l", "app=web", "-o", "name"]);
        out.status.success() && !out.stdout.is_empty()
    };
    assert!(cluster.eventually(Duration::from_secs(30), has_rs), "the new leader's controllers did not act");
    println!("the Deployment of {second}'s term got its ReplicaSet after {:?}", start.elapsed());
}
