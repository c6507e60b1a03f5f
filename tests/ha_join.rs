//! Servers joining one cluster (issue 9): `wharf server --datastore postgres://…` and
//! `wharf server --join URL --token T`, as an operator checks them with kubectl — every server is
//! served with a certificate of the one cluster CA, takes the same admin token, and sees what the
//! others write; a wrong token, a SQLite server and a bad `--datastore` are refused with a clear
//! message.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;
use common::postgres::TestDatabase;

/// Runs `wharf ARGS` to its end (at most a minute), with a data dir of its own.
fn wharf(args: &[&str]) -> Output {
    wharf_with(args, &[])
}

/// Runs `wharf ARGS` with the environment variables `envs` too, as [`wharf`].
fn wharf_with(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .envs(envs.iter().copied())
        .env("WHARF_DATA_DIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wharf runs");
    let started = Instant::now();
    while child.try_wait().expect("wait for wharf").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().expect("kill wharf");
            panic!("wharf {args:?} still runs after a minute");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("wharf's output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The file's content in a server's data dir.
fn read(server: &Cluster, name: &str) -> String {
    std::fs::read_to_string(server.data_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The servers a kubeconfig lists in its `wharf.dev/servers` extension.
fn listed_servers(server: &Cluster) -> Vec<String> {
    let config: serde_yaml::Value = serde_yaml::from_str(&read(server, "kubeconfig.yaml")).expect("kubeconfig YAML");
    let cluster = &config["clusters"][0]["cluster"];
    let extension = cluster["extensions"]
        .as_sequence()
        .and_then(|all| all.iter().find(|e| e["name"].as_str() == Some("wharf.dev/servers")))
        .expect("the kubeconfig has the wharf.dev/servers extension");
    let servers = extension["extension"]["servers"].as_sequence().expect("a server list");
    servers.iter().map(|s| s.as_str().expect("a URL").to_string()).collect()
}

#[test]
fn servers_joined_with_the_server_token_make_one_cluster() {
    let db = TestDatabase::create();
    let first = Cluster::start_with(&["--datastore", &db.url, "--node-name", "ha-join-a"]);
    let token = read(&first, "server.token").trim().to_string();
    assert!(token.starts_with("wharf1."), "the server token pins the CA: {token:.7}…");
    let network = [
        "--cluster-cidr".to_string(),
        first.network.cluster_cidr(),
        "--service-cidr".to_string(),
        first.network.service_cidr(),
        "--service-node-port-range".to_string(),
        first.network.node_port_range(),
    ];
    let joined = |extra: &[&str]| {
        let args: Vec<&str> = ["--join", first.url.as_str(), "--token", token.as_str()]
            .into_iter()
            .chain(network.iter().map(String::as_str))
            .chain(extra.iter().copied())
            .collect();
        Cluster::start_with(&args)
    };
    let second = joined(&["--node-name", "ha-join-b"]);
    let third = joined(&["--no-agent"]);
    let third_started = Instant::now();

    // One CA and one admin token; each server serves with its own certificate, which kubectl
    // verifies against the CA in each kubeconfig.
    for other in [&second, &third] {
        assert_eq!(read(other, "pki/ca.crt"), read(&first, "pki/ca.crt"), "the joined server has the cluster CA");
        assert_eq!(other.admin_token(), first.admin_token());
        assert_eq!(read(other, "node-token"), read(&first, "node-token"));
        assert_ne!(
            read(other, "pki/apiserver-client.crt"),
            read(&first, "pki/apiserver-client.crt"),
            "each server makes its own client certificate toward agents"
        );
        assert_eq!(listed_servers(other)[0], other.url, "each kubeconfig names its own server first");
        for secret in ["pki/ca.key", "pki/sa.key", "pki/apiserver-client.key", "admin.token", "server.token"] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(other.data_dir().join(secret)).expect(secret).permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the downloaded {secret} is readable by its owner only");
        }
    }
    for server in [&first, &second, &third] {
        let version = server.ok(&["version", "-o", "json"]);
        assert!(version.contains("serverVersion"), "kubectl verified {} and got its version", server.url);
        // The first server's kubeconfig reaches every server: one CA signed them all.
        first.ok(&["get", "namespace", "default", "--server", &server.url]);
    }

    // What one server writes, the others serve.
    first.ok(&["create", "configmap", "ha-join", "--from-literal=written=by-first"]);
    for server in [&second, &third] {
        let seen = server.eventually(Duration::from_secs(20), || {
            server.kubectl(&["get", "configmap", "ha-join", "-o", "jsonpath={.data.written}"]).stdout == b"by-first"
        });
        assert!(seen, "{} never served the ConfigMap created through {}", server.url, first.url);
    }
    third.ok(&["create", "namespace", "made-on-third"]);
    assert!(first.eventually(Duration::from_secs(20), || {
        first.kubectl(&["get", "namespace", "made-on-third"]).status.success()
    }));

    // Two servers with their own node agents on one machine: two nodes, no clash.
    third.wait_nodes_ready(2, Duration::from_secs(60));
    let nodes = third.ok(&["get", "nodes", "-o", "name"]);
    assert!(nodes.contains("node/ha-join-a") && nodes.contains("node/ha-join-b"), "nodes: {nodes}");

    // Each kubeconfig comes to list every live server (server Leases are renewed every 10 s,
    // the kubeconfig checked every 10 s).
    let all_listed = first.eventually(Duration::from_secs(60), || {
        let listed = listed_servers(&first);
        [&first, &second, &third].iter().all(|s| listed.contains(&s.url))
    });
    println!("the first kubeconfig listed all three servers {:?} after the third started", third_started.elapsed());
    assert!(all_listed, "the first kubeconfig lists {:?}", listed_servers(&first));

    // A wrong token is refused, and nothing starts.
    let wrong = format!("wharf1.{}.not-the-secret", token.split('.').nth(1).expect("the CA hash"));
    // Given as WHARF_SERVER_TOKEN, as the start hint says (a flag's value shows in the process list).
    let out = wharf_with(
        &["server", "--listen", "127.0.0.1:0", "--no-agent", "--join", &first.url],
        &[("WHARF_SERVER_TOKEN", &wrong)],
    );
    let stderr = text(&out.stderr);
    println!("wrong token: {}", stderr.trim());
    assert!(!out.status.success(), "a server joined with a wrong token");
    assert!(stderr.contains("refused the token"), "the error says the token was refused: {stderr}");
    assert!(!stderr.contains("postgres://"), "nothing of the datastore is told: {stderr}");
}

#[test]
fn a_sqlite_server_cannot_be_joined() {
    let sqlite = Cluster::start_with(&["--no-agent"]);
    let token = read(&sqlite, "server.token");
    let out =
        wharf(&["server", "--listen", "127.0.0.1:0", "--no-agent", "--join", &sqlite.url, "--token", token.trim()]);
    let stderr = text(&out.stderr);
    println!("joining SQLite: {}", stderr.trim());
    assert!(!out.status.success());
    assert!(stderr.contains("datastore is SQLite"), "the error says why: {stderr}");
    assert!(stderr.lines().count() == 1, "one line: {stderr}");

    // The server token is good for joining only: the API refuses it.
    let out = sqlite.kubectl(&["get", "namespaces", "--token", token.trim()]);
    assert!(!out.status.success(), "the server token is not an API credential");
    assert!(text(&out.stderr).contains("must be logged in"), "{}", text(&out.stderr));
}

#[test]
fn a_bad_datastore_is_refused_with_one_line() {
    let out = wharf(&["server", "--datastore", "mysql://root:hunter2secret@db/wharf"]);
    let stderr = text(&out.stderr);
    println!("bad scheme: {}", stderr.trim());
    assert_eq!(out.status.code(), Some(2), "a bad flag value: {stderr}");
    assert!(stderr.contains("--datastore") && stderr.contains("postgres://"), "names the flag and the forms: {stderr}");
    assert!(!stderr.contains("hunter2secret") && stderr.lines().count() == 1, "one line, no password: {stderr}");

    // Nothing listens on port 1: the database is unreachable, and its password never shown.
    let out = wharf(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--no-agent",
        "--datastore",
        "postgres://wharf:hunter2secret@127.0.0.1:1/wharf",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!("unreachable: {}", stderr.trim());
    assert!(!out.status.success(), "a server started without its database");
    assert!(!stdout.contains("hunter2secret") && !stderr.contains("hunter2secret"), "{stdout}{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "the error names the database: {stderr}");

    let out = wharf(&["server", "--join", "https://127.0.0.1:1"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--token"), "{}", text(&out.stderr));
}

#[test]
fn servers_started_together_on_a_new_database_agree_on_one_ca() {
    let db = TestDatabase::create();
    let start = || Cluster::start_with(&["--datastore", &db.url, "--no-agent"]);
    let (one, two) = std::thread::scope(|s| {
        let one = s.spawn(start);
        let two = s.spawn(start);
        (one.join().expect("the first server starts"), two.join().expect("the second server starts"))
    });
    for name in ["pki/ca.crt", "pki/sa.key", "admin.token", "node-token", "server.token"] {
        assert_eq!(read(&one, name), read(&two, name), "both servers have the same {name}");
    }
    // Each serves with a certificate the shared CA signed (kubectl verifies it), and each takes
    // the other's ServiceAccount tokens (one signing key).
    one.ok(&["get", "namespace", "default", "--server", &two.url]);
    two.ok(&["get", "namespace", "default", "--server", &one.url]);
    one.ok(&["create", "serviceaccount", "shared-key"]);
    assert!(two.eventually(Duration::from_secs(20), || {
        two.kubectl(&["get", "serviceaccount", "shared-key"]).status.success()
    }));
    let token = one.ok(&["create", "token", "shared-key"]);
    let out = two.kubectl(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", "--token", token.trim()]);
    assert_eq!(text(&out.stdout), "system:serviceaccount:default:shared-key", "{}", text(&out.stderr));
}
