//! The `wharf server` process itself: durability across SIGKILL, watch resumption, health and
//! authentication, and its command line.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Cluster;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};

fn config_map(name: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.data = Some(BTreeMap::from([("payload".to_string(), "x".repeat(1024))]));
    cm
}

/// SIGKILL during concurrent writes: every acknowledged write survives with its revision, and
/// revisions keep increasing after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let mut cluster = Cluster::start();
    let acked: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().await);
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("crash-{w}-{i}");
                match api.create(&PostParams::default(), &config_map(&name)).await {
                    Ok(created) => {
                        let rv = created.metadata.resource_version.unwrap().parse::<i64>().unwrap();
                        acked.lock().unwrap().push((name, rv));
                    }
                    Err(_) => return, // the server died under us
                }
            }
        }));
    }
    // Let a few hundred writes land, then crash the server mid-stream.
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let highest = acked.iter().map(|(_, rv)| *rv).max().unwrap();

    cluster.restart();
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().await);
    let list = api.list(&ListParams::default()).await.unwrap();
    let stored: BTreeMap<String, i64> = list
        .items
        .iter()
        .map(|cm| (cm.metadata.name.clone().unwrap(), cm.metadata.resource_version.clone().unwrap().parse().unwrap()))
        .collect();
    for (name, rv) in &acked {
        assert_eq!(stored.get(name), Some(rv), "acknowledged write {name} at revision {rv} was lost");
    }
    let list_rv: i64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= highest);
    let after = api.create(&PostParams::default(), &config_map("after-restart")).await.unwrap();
    let after_rv: i64 = after.metadata.resource_version.unwrap().parse().unwrap();
    assert!(after_rv > list_rv, "revision {after_rv} after restart must exceed {list_rv}");
    println!("{} acknowledged writes before SIGKILL, all present after restart", acked.len());
}

/// A watch resumes from a revision kept in the log after a restart, and a compacted revision
/// answers 410 Expired so the client relists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_after_restart_or_expire() {
    let mut cluster = Cluster::start_with(&["--watch-window", "50"]);
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().await);
    let first = api.create(&PostParams::default(), &config_map("one")).await.unwrap();
    let first_rv = first.metadata.resource_version.unwrap();
    api.create(&PostParams::default(), &config_map("two")).await.unwrap();
    cluster.restart();

    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client().await);
    let mut stream = api.watch(&WatchParams::default().timeout(5), &first_rv).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await.unwrap().unwrap() {
        Some(WatchEvent::Added(cm)) => assert_eq!(cm.metadata.name.as_deref(), Some("two")),
        other => panic!("expected ADDED two after the restart, got {other:?}"),
    }

    // Push the first revision out of the 50-revision window.
    drop(stream);
    for i in 0..60 {
        let patch = kube::api::Patch::Merge(serde_json::json!({"data": {"n": i.to_string()}}));
        api.patch("two", &kube::api::PatchParams::default(), &patch).await.unwrap();
    }
    let mut stream = api.watch(&WatchParams::default().timeout(5), &first_rv).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await.unwrap() {
        Ok(Some(WatchEvent::Error(status))) => assert_eq!(status.code, 410, "{status:?}"),
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 410, "{status:?}"),
        other => panic!("expected 410 Expired for a compacted revision, got {other:?}"),
    }
}

#[tokio::test]
async fn health_is_open_and_everything_else_needs_the_token() {
    let cluster = Cluster::start();
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    config.auth_info.token = None;
    let anonymous = kube::Client::try_from(config).unwrap();

    for path in ["/livez", "/readyz"] {
        let request = http::Request::get(path).body(Vec::new()).unwrap();
        assert_eq!(anonymous.request_text(request).await.unwrap(), "ok");
    }
    let request = http::Request::get("/api/v1/namespaces").body(Vec::new()).unwrap();
    match anonymous.request_text(request).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
        }
        other => panic!("expected 401 without a token, got {other:?}"),
    }
}

#[test]
fn bad_flags_and_unwritable_data_dirs_fail_in_one_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wharf")).args(["server", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--bogus"), "{stderr}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["server", "--data-dir", "/proc/wharf-cannot-be-here", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot create data dir /proc/wharf-cannot-be-here"), "{stderr}");
}

#[test]
fn a_restarted_server_reuses_its_credentials_and_data() {
    let mut cluster = Cluster::start();
    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    cluster.ok(&["create", "namespace", "kept"]);
    cluster.restart();
    assert_eq!(std::fs::read_to_string(cluster.kubeconfig()).unwrap(), kubeconfig);
    assert!(cluster.ok(&["get", "ns", "kept", "-o", "name"]).contains("namespace/kept"));
    assert!(cluster.data_dir().join("wharf.db").exists());
}

#[test]
fn events_are_deleted_once_the_event_ttl_has_passed() {
    let cluster = Cluster::start_with(&["--no-agent", "--event-ttl", "5s"]);
    let event = r#"apiVersion: v1
kind: Event
metadata:
  name: hand-made.1
involvedObject:
  kind: ConfigMap
  name: settings
  namespace: default
reason: Tested
message: kept for the TTL only
type: Normal
"#;
    cluster.apply(event);
    let listed = cluster.ok(&["get", "events", "--no-headers"]);
    assert!(listed.contains("kept for the TTL only"), "a fresh event is listed: {listed}");
    let gone = cluster.eventually(Duration::from_secs(30), || {
        !cluster.ok(&["get", "events", "--no-headers"]).contains("kept for the TTL only")
    });
    assert!(gone, "the event outlived --event-ttl 5s by more than 25 s");
}
