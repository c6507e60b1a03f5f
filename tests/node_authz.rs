//! What a node may do, end to end with the real kubectl acting with a node's own credential
//! (`POST /wharf/v1/node-credentials` with the join token, as an agent joins): it reads a Secret
//! a pod bound to it uses but not one a pod on another node uses, lists pods only with its
//! `spec.nodeName` field selector, cannot change another Node nor the status of a pod bound
//! elsewhere; and the agent's endpoint serves only the API server (`kubectl logs` goes through,
//! a direct call without the API server's certificate is refused).

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Cluster, wasm_fixture};
use serde_json::Value;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// kubectl as the bearer of `token`.
fn as_token(cluster: &Cluster, token: &str, args: &[&str]) -> Output {
    cluster.kubectl(&[&["--token", token][..], args].concat())
}

fn forbidden(out: &Output, says: &str) {
    assert!(!out.status.success(), "allowed, expected Forbidden:\n{}", text(out));
    let said = text(out);
    assert!(said.contains("Forbidden") || said.contains("forbidden"), "{said}");
    assert!(said.contains(says), "expected {says:?} in:\n{said}");
}

/// A pod on `node` (bound by name, as the scheduler binds) using Secret `secret` through envFrom.
fn pod(name: &str, node: &str, secret: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  restartPolicy: Never\n  \
         containers:\n  - name: hello\n    image: hello:v1\n    args: [node-authz]\n    envFrom:\n    - secretRef:\n        \
         name: {secret}\n"
    )
}

/// `curl -k` to the agent's endpoint with extra arguments: (exit code, output).
fn curl_agent(port: &str, path: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs (apt-get install curl)");
    (out.status.code().unwrap_or(-1), text(&out))
}

#[test]
fn a_node_reaches_only_what_its_pods_use_and_only_the_api_server_reaches_its_agent() {
    let cluster = Cluster::start();
    cluster.wait_nodes_ready(1, Duration::from_secs(60));
    let node = cluster.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]).trim().to_string();
    // Another node, registered by the administrator, that runs nothing.
    cluster.apply("apiVersion: v1\nkind: Node\nmetadata:\n  name: node-b\n  labels:\n    team: b\n");
    cluster.import(&wasm_fixture(cluster.data_dir(), "hello"), "hello:v1");
    cluster.ok(&["create", "secret", "generic", "used-here", "--from-literal=A=1"]);
    cluster.ok(&["create", "secret", "generic", "used-there", "--from-literal=B=2"]);
    cluster.ok(&["create", "secret", "generic", "unused", "--from-literal=C=3"]);
    cluster.apply(&pod("here", &node, "used-here"));
    cluster.apply(&pod("there", "node-b", "used-there"));
    cluster.wait_pod("here", "succeeded", Duration::from_secs(60), |p| p["status"]["phase"] == "Succeeded");

    // The node's own credential, as its agent gets it with the join token.
    let join = std::fs::read_to_string(cluster.data_dir().join("node-token")).unwrap().trim().to_string();
    let body = format!(r#"{{"nodeName": "{node}"}}"#);
    let out = cluster.kubectl_with(
        &["--token", &join, "create", "--raw", "/wharf/v1/node-credentials", "-f", "-"],
        Some(&body),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = answer["token"].as_str().expect("a node credential").to_string();

    // Secrets: the one its pod uses, not one a pod on another node uses, nor an unused one.
    let read = as_token(&cluster, &token, &["get", "secret", "used-here", "-o", "jsonpath={.data.A}"]);
    assert!(read.status.success(), "{}", text(&read));
    assert_eq!(String::from_utf8_lossy(&read.stdout), "MQ==");
    let relation = format!("no relationship found between node '{node}' and this object");
    forbidden(&as_token(&cluster, &token, &["get", "secret", "used-there"]), &relation);
    forbidden(&as_token(&cluster, &token, &["get", "secret", "unused"]), &relation);
    forbidden(&as_token(&cluster, &token, &["get", "secrets"]), &relation);

    // Pods: only with its own spec.nodeName field selector.
    forbidden(&as_token(&cluster, &token, &["get", "pods", "-A"]), "spec.nodeName");
    let selector = format!("spec.nodeName={node}");
    let own = as_token(&cluster, &token, &["get", "pods", "-A", "--field-selector", &selector, "-o", "name"]);
    assert!(own.status.success(), "{}", text(&own));
    assert!(String::from_utf8_lossy(&own.stdout).contains("pod/here"), "{}", text(&own));
    forbidden(
        &as_token(&cluster, &token, &["get", "pods", "-A", "--field-selector", "spec.nodeName=node-b"]),
        "spec.nodeName",
    );
    forbidden(&as_token(&cluster, &token, &["get", "pod", "there"]), &relation);

    // Nodes: another node is not its to change; nor its own restricted labels.
    forbidden(
        &as_token(&cluster, &token, &["label", "node", "node-b", "team=a", "--overwrite"]),
        &format!("node \"{node}\" is not allowed to modify node \"node-b\""),
    );
    forbidden(
        &as_token(&cluster, &token, &["label", "node", &node, "node-restriction.kubernetes.io/trusted=yes"]),
        "is not allowed to modify labels: node-restriction.kubernetes.io/trusted",
    );
    let own_label = as_token(&cluster, &token, &["label", "node", &node, "example.com/rack=r1"]);
    assert!(own_label.status.success(), "{}", text(&own_label));

    // Pod status: its own pod's, not one bound elsewhere.
    let status = r#"{"status":{"message":"written by a node"}}"#;
    let patch = |pod: &str| {
        as_token(&cluster, &token, &["patch", "pod", pod, "--subresource=status", "--type=merge", "-p", status])
    };
    let mine = patch("here");
    assert!(mine.status.success(), "{}", text(&mine));
    forbidden(&patch("there"), &relation);
    // Nor RBAC objects, namespaces or anything else.
    forbidden(&as_token(&cluster, &token, &["get", "clusterroles"]), &relation);
    forbidden(&as_token(&cluster, &token, &["get", "namespaces"]), &relation);

    // The agent's endpoint: kubectl logs through the API server works...
    let logs = cluster.ok(&["logs", "here"]);
    assert!(logs.contains("node-authz"), "{logs}");
    // ...while a direct call is refused without the API server's client certificate: none, the
    // join token, a node credential, or a cluster administrator's certificate.
    let port = cluster.ok(&["get", "node", &node, "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}"]);
    let path = "/containerLogs/default/here/hello";
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = wharf_control::auth::pki::issue_client_certificate(
        &cluster.data_dir().join("pki"),
        "root",
        &["system:masters"],
    )
    .unwrap();
    std::fs::write(dir.path().join("admin.crt"), cert).unwrap();
    std::fs::write(dir.path().join("admin.key"), key).unwrap();
    let admin_cert = dir.path().join("admin.crt").to_string_lossy().into_owned();
    let admin_key = dir.path().join("admin.key").to_string_lossy().into_owned();
    let join_header = format!("Authorization: Bearer {join}");
    let node_header = format!("Authorization: Bearer {token}");
    for (who, args) in [
        ("no credential", vec![]),
        ("the join token", vec!["-H", &join_header]),
        ("a node credential", vec!["-H", &node_header]),
        ("an administrator's certificate", vec!["--cert", &admin_cert, "--key", &admin_key]),
    ] {
        let (code, said) = curl_agent(port.trim(), path, &args);
        println!("agent endpoint with {who}: curl exit {code}, {said:?}");
        assert!(code != 0 && !said.starts_with("200"), "the agent served {who}: {said}");
    }
    // The API server's own identity is what the agent serves (here read from its data dir).
    let pki = cluster.data_dir().join("pki");
    let (code, said) = curl_agent(
        port.trim(),
        path,
        &[
            "--cert",
            &pki.join("apiserver-client.crt").to_string_lossy(),
            "--key",
            &pki.join("apiserver-client.key").to_string_lossy(),
        ],
    );
    assert_eq!((code, said.as_str()), (0, "200"), "the API server's certificate was refused");
}
