//! Authentication end to end: Wharf tokens from `wharf token create` used by kubectl, their
//! expiry and revocation; client certificates signed by the cluster CA (minted with openssl as a
//! user would, and with Wharf's own issuer); the join token, which only buys node credentials;
//! and a joined agent that runs a pod with its own credential.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Cluster, wasm_fixture};
use serde_json::Value;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs `wharf ARGS` against the cluster.
fn wharf(cluster: &Cluster, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .expect("wharf runs")
}

/// `wharf token create ARGS`: the token, its last line.
fn create_token(cluster: &Cluster, args: &[&str]) -> String {
    let out = wharf(cluster, &[&["token", "create"][..], args].concat());
    assert!(out.status.success(), "wharf token create {args:?} failed:\n{}", text(&out));
    String::from_utf8(out.stdout).unwrap().lines().last().expect("a token line").trim().to_string()
}

/// kubectl as the bearer of `token`.
fn as_token(cluster: &Cluster, token: &str, args: &[&str]) -> Output {
    cluster.kubectl(&[&["--token", token][..], args].concat())
}

/// `kubectl auth whoami -o json` as `token`: (user name, groups).
fn whoami(cluster: &Cluster, args: &[&str]) -> (String, Vec<String>) {
    let out = cluster.kubectl(&[args, &["auth", "whoami", "-o", "json"][..]].concat());
    assert!(out.status.success(), "kubectl auth whoami failed:\n{}", text(&out));
    let review: Value = serde_json::from_slice(&out.stdout).expect("a SelfSubjectReview");
    let info = &review["status"]["userInfo"];
    let groups = info["groups"].as_array().into_iter().flatten().filter_map(|g| g.as_str()).map(String::from).collect();
    (info["username"].as_str().unwrap_or_default().to_string(), groups)
}

fn unauthorized(out: &Output) -> bool {
    !out.status.success() && text(out).contains("Unauthorized")
}

fn forbidden(out: &Output) -> bool {
    !out.status.success() && text(out).contains("Forbidden")
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("openssl runs (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?} failed:\n{}", text(&out));
}

/// A kubeconfig for the cluster presenting a client certificate and key (PEM files).
fn cert_kubeconfig(cluster: &Cluster, dir: &Path, name: &str, cert: &str, key: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let ca = std::fs::read_to_string(cluster.data_dir().join("pki/ca.crt")).unwrap();
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": cluster.url, "certificate-authority-data": b64(&ca)}}],
        "users": [{"name": "u", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
    });
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn wharf_tokens_authenticate_until_they_expire_or_are_revoked() {
    let cluster = Cluster::start_with(&["--no-agent"]);
    let token = create_token(&cluster, &["--user", "jane", "--group", "dev", "--description", "e2e"]);
    let (id, secret) = token.strip_prefix("wharf-").and_then(|t| t.split_once('.')).expect("wharf-<id>.<secret>");
    assert!(id.len() == 6 && secret.len() >= 32, "{token}");

    let (user, groups) = whoami(&cluster, &["--token", &token]);
    assert_eq!(user, "jane");
    assert!(groups.contains(&"dev".to_string()) && groups.contains(&"system:authenticated".to_string()), "{groups:?}");
    // A new user may do nothing until bound; its group's binding applies to it.
    assert!(forbidden(&as_token(&cluster, &token, &["get", "pods"])));
    cluster.ok(&["create", "rolebinding", "dev-view", "--clusterrole=view", "--group=dev", "-n", "default"]);
    let listed =
        cluster.eventually(Duration::from_secs(10), || as_token(&cluster, &token, &["get", "pods"]).status.success());
    assert!(listed, "{}", text(&as_token(&cluster, &token, &["get", "pods"])));

    // The list shows the token, never its secret; the Secret holds only the digest.
    let list = String::from_utf8(wharf(&cluster, &["token", "list"]).stdout).unwrap();
    let row = list.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("no row for {id}:\n{list}"));
    assert!(row.contains("jane") && row.contains("dev") && row.contains("<never>"), "{list}");
    assert!(list.lines().next().unwrap().split_whitespace().eq(["ID", "USER", "GROUPS", "EXPIRES"]), "{list}");
    assert!(!list.contains(secret));
    let stored = cluster.ok(&["get", "secret", "-n", "kube-system", &format!("wharf-token-{id}"), "-o", "json"]);
    assert!(stored.contains("wharf.dev/token") && !stored.contains(secret), "{stored}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
    assert!(!stored.contains(&encoded));

    // The right id with a wrong secret.
    let forged = format!("wharf-{id}.{}", "x".repeat(secret.len()));
    assert!(unauthorized(&as_token(&cluster, &forged, &["get", "--raw", "/version"])));

    // Expiry.
    let short = create_token(&cluster, &["--user", "brief", "--ttl", "1s"]);
    let started = Instant::now();
    let expired = cluster.eventually(Duration::from_secs(10), || {
        unauthorized(&as_token(&cluster, &short, &["get", "--raw", "/version"]))
    });
    assert!(expired, "a 1s token still authenticates");
    println!("a --ttl 1s token was refused {:?} after creation", started.elapsed());

    // Revocation, by the CLI or by deleting the Secret.
    let out = wharf(&cluster, &["token", "revoke", id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(unauthorized(&as_token(&cluster, &token, &["get", "pods"])));
    assert!(!String::from_utf8(wharf(&cluster, &["token", "list"]).stdout).unwrap().contains(id));
    let other = create_token(&cluster, &["--user", "joe"]);
    assert_eq!(whoami(&cluster, &["--token", &other]).0, "joe");
    let other_id = &other["wharf-".len().."wharf-".len() + 6];
    cluster.ok(&["delete", "secret", "-n", "kube-system", &format!("wharf-token-{other_id}")]);
    assert!(unauthorized(&as_token(&cluster, &other, &["get", "--raw", "/version"])));

    // Bad flags and ids get clear errors.
    for (args, says) in [
        (&["token", "create"][..], "--user"),
        (&["token", "create", "--user", "x", "--ttl", "soon"][..], "soon"),
        (&["token", "create", "--user", "x", "--group", "a,b"][..], "','"),
        (&["token", "revoke", "NOPE"][..], "not a token id"),
        (&["token", "revoke", id][..], "not found"),
    ] {
        let out = wharf(&cluster, args);
        assert!(!out.status.success() && text(&out).contains(says), "wharf {args:?}:\n{}", text(&out));
    }
}

#[test]
fn client_certificates_and_the_join_token() {
    let cluster = Cluster::start_with(&["--no-agent"]);
    let dir = tempfile::tempdir().unwrap();
    let pki = cluster.data_dir().join("pki");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();

    // A certificate signed by the cluster CA, as a user makes one with openssl.
    openssl(
        &["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", &path("carol.key"), "-out", &path("carol.csr")]
            .into_iter()
            .chain(["-subj", "/CN=carol/O=dev/O=qa"])
            .collect::<Vec<_>>(),
    );
    let (ca_crt, ca_key) = (pki.join("ca.crt"), pki.join("ca.key"));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("carol.csr"),
        "-CA",
        ca_crt.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-set_serial",
        "1001",
        "-days",
        "1",
        "-out",
        &path("carol.crt"),
    ]);
    let read = |name: &str| std::fs::read_to_string(path(name)).unwrap();
    let carol = cert_kubeconfig(&cluster, dir.path(), "carol", &read("carol.crt"), &read("carol.key"));
    let (user, groups) = whoami(&cluster, &["--kubeconfig", &carol]);
    assert_eq!(user, "carol");
    assert!(["dev", "qa", "system:authenticated"].iter().all(|g| groups.contains(&g.to_string())), "{groups:?}");
    let pods = ["--kubeconfig", &carol, "get", "pods"];
    assert!(forbidden(&cluster.kubectl(&pods)));
    cluster.ok(&["create", "rolebinding", "qa-view", "--clusterrole=view", "--group=qa", "-n", "default"]);
    let allowed = cluster.eventually(Duration::from_secs(10), || cluster.kubectl(&pods).status.success());
    assert!(allowed, "{}", text(&cluster.kubectl(&pods)));

    // Wharf's own issuer gives the same kind of certificate.
    let (cert, key) = wharf_control::auth::pki::issue_client_certificate(&pki, "dave", &["ops"]).unwrap();
    let dave = cert_kubeconfig(&cluster, dir.path(), "dave", &cert, &key);
    let (user, groups) = whoami(&cluster, &["--kubeconfig", &dave]);
    assert_eq!(user, "dave");
    assert!(groups.contains(&"ops".to_string()), "{groups:?}");

    // A certificate from another CA, even one claiming system:masters, gets nothing.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=mallory/O=system:masters",
        "-keyout",
        &path("mallory.key"),
        "-out",
        &path("mallory.crt"),
    ]);
    let mallory = cert_kubeconfig(&cluster, dir.path(), "mallory", &read("mallory.crt"), &read("mallory.key"));
    let out = cluster.kubectl(&["--kubeconfig", &mallory, "get", "pods", "-A"]);
    assert!(!out.status.success(), "a foreign certificate was accepted:\n{}", text(&out));
    println!("foreign client certificate: {}", text(&out).trim());

    // The join token lists nothing but buys a node credential.
    let join = std::fs::read_to_string(cluster.data_dir().join("node-token")).unwrap().trim().to_string();
    assert_eq!(whoami(&cluster, &["--token", &join]).0, "system:bootstrap:wharf");
    assert!(forbidden(&as_token(&cluster, &join, &["get", "pods", "-A"])));
    assert!(forbidden(&as_token(&cluster, &join, &["get", "secrets", "-n", "kube-system"])));
    let body = r#"{"nodeName": "edge-1"}"#;
    let out = cluster.kubectl_with(
        &["--token", &join, "create", "--raw", "/wharf/v1/node-credentials", "-f", "-"],
        Some(body),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let node = answer["token"].as_str().expect("a token").to_string();
    let (user, groups) = whoami(&cluster, &["--token", &node]);
    assert_eq!(user, "system:node:edge-1");
    assert!(groups.contains(&"system:nodes".to_string()), "{groups:?}");
    // Other users may not mint node credentials; a bad name is refused.
    let jane = create_token(&cluster, &["--user", "jane"]);
    let out = cluster.kubectl_with(
        &["--token", &jane, "create", "--raw", "/wharf/v1/node-credentials", "-f", "-"],
        Some(body),
        &[],
    );
    assert!(forbidden(&out), "{}", text(&out));
    let out = cluster.kubectl_with(
        &["create", "--raw", "/wharf/v1/node-credentials", "-f", "-"],
        Some(r#"{"nodeName": "Bad_Name"}"#),
        &[],
    );
    assert!(!out.status.success() && text(&out).contains("nodeName"), "{}", text(&out));
}

#[test]
fn a_joined_agent_runs_pods_with_its_own_node_credential() {
    let cluster = Cluster::start_with(&["--no-agent"]);
    let agent = cluster.join_agent("authn-node");
    cluster.wait_nodes_ready(1, Duration::from_secs(60));
    let file = agent.dir.path().join("node.token");
    let credential = std::fs::read_to_string(&file).expect("the agent keeps node.token").trim().to_string();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let join = std::fs::read_to_string(cluster.data_dir().join("node-token")).unwrap().trim().to_string();
    assert_ne!(credential, join);
    let (user, groups) = whoami(&cluster, &["--token", &credential]);
    assert_eq!(user, "system:node:authn-node");
    assert!(groups.contains(&"system:nodes".to_string()), "{groups:?}");
    // Its kubeconfig holds the node credential, not the join token.
    let kubeconfig = std::fs::read_to_string(agent.dir.path().join("kubeconfig.yaml")).unwrap();
    assert!(kubeconfig.contains(&credential) && !kubeconfig.contains(&join));

    // It pulls from the registry and runs a pod with that credential.
    cluster.import(&wasm_fixture(cluster.data_dir(), "hello"), "hello:v1");
    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\nspec:\n  restartPolicy: Never\n  containers:\n  - name: hello\n    image: hello:v1\n    args: [authn]\n",
    );
    let pod = cluster.wait_pod("hello", "succeeded", Duration::from_secs(60), |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(pod["spec"]["nodeName"], "authn-node");

    // Restarted on its data dir, it keeps its credential while it authenticates...
    let mut agent = agent;
    agent.kill();
    let restarted = restart_agent(&cluster, &agent);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), credential);
    drop(restarted);
    // ...and joins again with a new one once it is revoked.
    let id = &credential["wharf-".len().."wharf-".len() + 6];
    cluster.ok(&["delete", "secret", "-n", "kube-system", &format!("wharf-token-{id}")]);
    let _restarted = restart_agent(&cluster, &agent);
    let renewed = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_ne!(renewed, credential);
    assert_eq!(whoami(&cluster, &["--token", &renewed]).0, "system:node:authn-node");
}

/// A process killed when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `agent`'s `wharf agent` again on its data dir; returns once it has its credential
/// (it writes its kubeconfig after).
fn restart_agent(cluster: &Cluster, agent: &common::Agent) -> Running {
    let kubeconfig = agent.dir.path().join("kubeconfig.yaml");
    let _ = std::fs::remove_file(&kubeconfig);
    let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["agent", "--server", &cluster.url, "--token-file"])
        .arg(cluster.data_dir().join("node-token"))
        .args(["--name", &agent.name, "--data-dir"])
        .arg(agent.dir.path())
        .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("wharf agent starts");
    let running = Running(child);
    assert!(
        cluster.eventually(Duration::from_secs(30), || kubeconfig.exists()),
        "the agent never wrote its kubeconfig"
    );
    running
}

/// The dashboard's watch socket with a Wharf token in the bearer subprotocol: the token's user's
/// permissions apply to each watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wharf_token_opens_the_dashboard_watch_socket() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{ClientRequestBuilder, Message, http::Uri};
    let cluster = Cluster::start_with(&["--no-agent"]);
    let token = create_token(&cluster, &["--user", "viewer", "--group", "watchers"]);
    cluster.ok(&["create", "rolebinding", "watchers", "--clusterrole=view", "--group=watchers", "-n", "default"]);
    cluster.ok(&["create", "configmap", "seen", "-n", "default"]);

    let (stream, address) = cluster.tls_connect().await;
    let bearer = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token);
    let uri: Uri = format!("wss://{address}/dashboard/v1/watch").parse().unwrap();
    let request = ClientRequestBuilder::new(uri)
        .with_sub_protocol("wharf.watch.v1")
        .with_sub_protocol(format!("base64url.bearer.authorization.k8s.io.{bearer}"));
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream).await.expect("the socket opens");
    let watch =
        |id: u64, path: &str| Message::text(serde_json::json!({"op": "watch", "id": id, "path": path}).to_string());
    socket.send(watch(1, "/api/v1/namespaces/default/configmaps?watch=1")).await.unwrap();
    socket.send(watch(2, "/api/v1/namespaces/kube-system/secrets?watch=1")).await.unwrap();
    let (mut seen, mut refused) = (false, false);
    while !(seen && refused) {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("a message within a minute")
            .expect("the socket stays open")
            .expect("a readable message");
        let Message::Text(text) = message else { continue };
        let value: Value = serde_json::from_str(&text).unwrap();
        if value["id"] == 1 && value["event"]["object"]["metadata"]["name"] == "seen" {
            seen = true;
        }
        if value["id"] == 2 {
            assert_eq!(value["error"]["code"], 403, "{value}");
            refused = true;
        }
    }
}
