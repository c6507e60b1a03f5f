//! Wharf's own clients over a control plane of two servers on one PostgreSQL database: a node
//! agent given `--server A,B` keeps its node Ready and runs new pods after server A is killed,
//! another one given the same list joins through B, and `wharf fn|token|image` with a kubeconfig
//! whose `server:` is the dead A reach B through the kubeconfig's `wharf.dev/servers` list.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::postgres::TestDatabase;
use common::{Cluster, wasm_fixture};
use serde_json::Value;

/// The node's Lease lasts this long (renewed every second) and the servers mark a node NotReady
/// after this grace period without renewal: a node whose agent lost its server turns NotReady
/// well within the time the test watches it.
const LEASE_SECONDS: &str = "4";
const GRACE: &str = "10s";
/// How long the node is watched after server A died (more than twice the grace period).
const WATCHED: Duration = Duration::from_secs(25);

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: failover-node\n  containers:\n  \
         - name: tick\n    image: ticker:v1\n    imagePullPolicy: IfNotPresent\n"
    )
}

fn running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
}

/// The node's Ready condition status and its Lease's renewTime, as `server` answers.
fn node_state(server: &Cluster) -> (String, String) {
    let ready = server.ok(&[
        "get",
        "node",
        "failover-node",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    let renewed =
        server.ok(&["get", "lease", "failover-node", "-n", "kube-node-lease", "-o", "jsonpath={.spec.renewTime}"]);
    (ready.trim().to_string(), renewed.trim().to_string())
}

/// `wharf ARGS` with the kubeconfig at `kubeconfig`.
fn wharf(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf")).args(args).env("KUBECONFIG", kubeconfig).output().expect("wharf runs")
}

fn succeeded(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `from`'s kubeconfig with `server:` set to `first` and `wharf.dev/servers` listing `servers`,
/// written into `dir`.
fn kubeconfig_listing(from: &Cluster, dir: &Path, first: &str, servers: &[&str]) -> std::path::PathBuf {
    let text = std::fs::read_to_string(from.kubeconfig()).expect("the kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("the kubeconfig is YAML");
    let cluster = &mut config["clusters"][0]["cluster"];
    cluster["server"] = first.into();
    let extension = serde_json::json!([{"name": "wharf.dev/servers", "extension": {"servers": servers}}]);
    cluster["extensions"] = serde_yaml::to_value(extension).expect("YAML");
    let path = dir.join("listing.yaml");
    std::fs::write(&path, serde_yaml::to_string(&config).expect("YAML")).expect("write the kubeconfig");
    path
}

#[test]
fn an_agent_and_the_cli_fail_over_to_the_surviving_server() {
    let db = TestDatabase::create();
    let mut a = Cluster::start_with(&["--datastore", &db.url, "--no-agent", "--node-monitor-grace-period", GRACE]);
    let token = std::fs::read_to_string(a.data_dir().join("server.token")).expect("server A's server.token");
    let (cluster_cidr, service_cidr, ports) =
        (a.network.cluster_cidr(), a.network.service_cidr(), a.network.node_port_range());
    let b = Cluster::start_with(&[
        "--no-agent",
        "--join",
        &a.url,
        "--token",
        token.trim(),
        "--node-monitor-grace-period",
        GRACE,
        "--cluster-cidr",
        &cluster_cidr,
        "--service-cidr",
        &service_cidr,
        "--service-node-port-range",
        &ports,
    ]);
    let servers = format!("{},{}", a.url, b.url);
    let agent =
        a.join_agent_with("failover-node", &["--server", &b.url, "--node-lease-duration-seconds", LEASE_SECONDS]);
    b.wait_nodes_ready(1, Duration::from_secs(60));
    println!("agent joined with --server {servers}");

    // The image reaches the node while A lives; later pods find it there.
    let dir = tempfile::tempdir().expect("temp dir");
    b.import(&wasm_fixture(dir.path(), "ticker"), "ticker:v1");
    b.apply(&pod("before"));
    b.wait_pod("before", "Running", Duration::from_secs(60), running);

    // The CLI with a kubeconfig naming A first.
    let listing = kubeconfig_listing(&b, dir.path(), &a.url, &[&a.url, &b.url]);
    succeeded(&wharf(&listing, &["fn", "ls"]), "wharf fn ls (A alive)");

    a.kill();
    let killed = Instant::now();
    let (_, renewed_at_kill) = node_state(&b);
    println!("server A killed");

    // The node keeps renewing its Lease through B and stays Ready.
    let mut first_renewal = None;
    let mut not_ready = Vec::new();
    while killed.elapsed() < WATCHED {
        let (ready, renewed) = node_state(&b);
        if renewed != renewed_at_kill && first_renewal.is_none() {
            first_renewal = Some(killed.elapsed());
        }
        if ready != "True" {
            not_ready.push((killed.elapsed(), ready));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let first_renewal = first_renewal
        .unwrap_or_else(|| panic!("the node's Lease was not renewed within {WATCHED:?} of server A's death"));
    println!("first Lease renewal through B {first_renewal:?} after A died");
    assert!(not_ready.is_empty(), "the node was not Ready after A died: {not_ready:?}\n{}", b.ok(&["get", "nodes"]));
    b.wait_nodes_ready(1, Duration::from_secs(1));

    // Its pod watch moved to B: a pod created now runs, and the old one still reports Running.
    b.apply(&pod("after"));
    let created = Instant::now();
    b.wait_pod("after", "Running", Duration::from_secs(60), running);
    println!("a pod created after A died ran {:?} after its creation", created.elapsed());
    assert!(running(&b.pod("before")), "{:#}", b.pod("before"));

    // An agent joining now with the dead A first joins through B (CA, node credential, Node).
    let joining = Instant::now();
    let late = a.join_agent_with("late-node", &["--server", &b.url]);
    b.wait_nodes_ready(2, Duration::from_secs(60));
    println!("an agent given --server {servers} joined {:?} after it started", joining.elapsed());

    // The CLI reaches B with `server:` naming the dead A.
    let listed = Instant::now();
    succeeded(&wharf(&listing, &["fn", "ls"]), "wharf fn ls (A dead)");
    println!("wharf fn ls answered {:?} after trying the dead server first", listed.elapsed());
    let created = succeeded(
        &wharf(&listing, &["token", "create", "--user", "failover-user", "--description", "after A died"]),
        "wharf token create",
    );
    assert!(created.trim().lines().last().is_some_and(|t| t.starts_with("wharf-")), "{created}");
    let tokens = succeeded(&wharf(&listing, &["token", "list"]), "wharf token list");
    assert!(tokens.contains("failover-user"), "{tokens}");
    let images = succeeded(&wharf(&listing, &["image", "ls"]), "wharf image ls");
    assert!(images.contains("ticker"), "{images}");
    let hello = wasm_fixture(dir.path(), "hello");
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["image", "import"])
        .arg(&hello)
        .args(["--name", "hello:v1"])
        .env("KUBECONFIG", &listing)
        .output()
        .expect("wharf runs");
    succeeded(&out, "wharf image import (A dead)");
    let images = succeeded(&wharf(&listing, &["image", "ls"]), "wharf image ls");
    assert!(images.contains("hello"), "{images}");
    drop(late);
    drop(agent);
}
