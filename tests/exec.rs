//! `kubectl exec` end to end: the real kubectl speaking the remote-command WebSocket protocol to
//! `wharf server`, which relays it to its node agent.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Cluster;

/// A running pod `ticker` whose one container `main` is a Wasm guest.
fn wasm_ticker(cluster: &Cluster) {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ticker.wat");
    let path = cluster.data_dir().join("ticker.wasm");
    std::fs::write(&path, wat::parse_file(&source).expect("ticker.wat assembles")).unwrap();
    cluster.ok_with_bin(&["image", "import", path.to_str().unwrap(), "--name", "ticker:v1"]);
    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ticker\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: ticker:v1\n",
    );
    cluster.ok(&["wait", "--for=condition=Ready", "pod/ticker", "--timeout=60s"]);
}

#[test]
fn exec_into_a_wasm_container_is_refused_clearly() {
    let cluster = Cluster::start();
    wasm_ticker(&cluster);
    let out = cluster.kubectl(&["exec", "ticker", "--", "sh", "-c", "echo hi"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("cannot exec in container \"main\": exec is not supported by this runtime"),
        "stderr: {stderr}"
    );
    assert!(out.stdout.is_empty());

    let stderr = cluster.fails(&["exec", "ticker", "-c", "nope", "--", "ls"], None);
    assert!(stderr.contains("container nope is not valid for pod ticker"), "stderr: {stderr}");
}

#[test]
fn exec_into_a_container_that_is_not_running_names_it() {
    let cluster = Cluster::start();
    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: unpulled\nspec:\n  containers:\n  - name: main\n    image: missing:v1\n",
    );
    assert!(
        cluster
            .eventually(Duration::from_secs(30), || cluster.ok(&["get", "pod", "unpulled"]).contains("ErrImagePull")
                || cluster.ok(&["get", "pod", "unpulled"]).contains("ImagePullBackOff")),
        "the pod never failed to pull"
    );
    let stderr = cluster.fails(&["exec", "unpulled", "--", "ls"], None);
    assert!(stderr.contains("container not found (\"main\")"), "stderr: {stderr}");
}
