//! The Services table on a real kernel, without a cluster: a network namespace plays the node
//! (a bridge, route_localnet, forwarding), two more play pods running busybox httpd, each serving
//! its own name. The rendered table is installed in the node namespace and requests go to the
//! ClusterIP and to the NodePort on 127.0.0.1 and the node's address, from the node and from a
//! third pod on the same bridge (replies come back through the node: masquerade). Needs root,
//! iproute2, busybox-static and nftables. (busybox 1.35's `wget -T` crashes: coreutils' timeout
//! bounds each request instead.)

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Command, Output, Stdio};

use nix::sched::{CloneFlags, setns};
use wharf_runtime::proxy::{self, rules};

const BUSYBOX: &str = "/bin/busybox";
const CLUSTER_IP: &str = "10.240.128.10";
const EMPTY_CLUSTER_IP: &str = "10.240.128.11";
const NODE_PORT: u16 = 30999;
const REQUESTS: usize = 30;

/// The namespaces and servers of one test; dropping it kills the servers and deletes the
/// namespaces (and with the node's, its table, bridge and veths).
struct Net {
    node: String,
    pods: Vec<String>,
    servers: Vec<Child>,
    dirs: Vec<tempfile::TempDir>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        for ns in self.pods.iter().chain([&self.node]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        self.dirs.clear();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?} ({e}): the test needs iproute2, busybox-static and nftables"))
}

fn ok(args: &[&str]) {
    let output = run(args);
    assert!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

fn setup() -> Net {
    let id = std::process::id() % 100_000;
    let node = format!("wpx{id}n");
    let mut net = Net { node: node.clone(), pods: Vec::new(), servers: Vec::new(), dirs: Vec::new() };
    ok(&["ip", "netns", "add", &node]);
    ok(&["ip", "-n", &node, "link", "set", "lo", "up"]);
    ok(&["ip", "-n", &node, "link", "add", "br0", "type", "bridge"]);
    ok(&["ip", "-n", &node, "addr", "add", "10.240.0.1/24", "dev", "br0"]);
    ok(&["ip", "-n", &node, "link", "set", "br0", "up"]);
    ok(&["ip", "netns", "exec", &node, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // An uplink with the default route, as a real node has: ClusterIPs are routed there until
    // the DNAT.
    ok(&["ip", "-n", &node, "link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
    ok(&["ip", "-n", &node, "link", "set", "up1", "up"]);
    ok(&["ip", "-n", &node, "addr", "add", "192.0.2.1/24", "dev", "up0"]);
    ok(&["ip", "-n", &node, "link", "set", "up0", "up"]);
    ok(&["ip", "-n", &node, "route", "add", "default", "via", "192.0.2.254"]);
    for (i, name) in ["pod-a", "pod-b", "client"].iter().enumerate() {
        let pod = format!("wpx{id}{}", ["a", "b", "c"][i]);
        net.pods.push(pod.clone());
        let veth = format!("v{i}");
        let address = format!("10.240.0.{}/24", i + 2);
        ok(&["ip", "netns", "add", &pod]);
        ok(&["ip", "-n", &node, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &pod]);
        ok(&["ip", "-n", &node, "link", "set", &veth, "master", "br0", "up"]);
        ok(&["ip", "-n", &pod, "link", "set", "lo", "up"]);
        ok(&["ip", "-n", &pod, "addr", "add", &address, "dev", "eth0"]);
        ok(&["ip", "-n", &pod, "link", "set", "eth0", "up"]);
        ok(&["ip", "-n", &pod, "route", "add", "default", "via", "10.240.0.1"]);
        if *name == "client" {
            continue;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("index.html"), name).expect("write index.html");
        let server = Command::new("ip")
            .args(["netns", "exec", &pod, BUSYBOX, "httpd", "-f", "-p", "8080", "-h"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("start busybox httpd");
        net.servers.push(server);
        net.dirs.push(dir);
    }
    net
}

/// Bodies seen in `REQUESTS` GETs of `url` from the namespace `netns` (None: the caller's).
fn spread(netns: Option<&str>, url: &str) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..REQUESTS {
        let output = match netns {
            Some(ns) => run(&["ip", "netns", "exec", ns, "timeout", "10", BUSYBOX, "wget", "-qO-", url]),
            None => run(&["timeout", "10", BUSYBOX, "wget", "-qO-", url]),
        };
        let body = if output.status.success() {
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        } else {
            format!("error: {}", String::from_utf8_lossy(&output.stderr).trim())
        };
        *seen.entry(body).or_insert(0) += 1;
    }
    println!("{url} from {}: {seen:?}", netns.unwrap_or("the node"));
    seen
}

fn frontends() -> Vec<rules::Frontend> {
    let web = rules::Frontend {
        namespace: "default".into(),
        service: "web".into(),
        protocol: rules::Protocol::Tcp,
        port: 80,
        cluster_ip: Some(CLUSTER_IP.parse().unwrap()),
        node_port: Some(NODE_PORT),
        endpoints: vec![
            SocketAddrV4::new(Ipv4Addr::new(10, 240, 0, 2), 8080),
            SocketAddrV4::new(Ipv4Addr::new(10, 240, 0, 3), 8080),
        ],
        affinity_seconds: None,
    };
    let empty = rules::Frontend {
        service: "empty".into(),
        cluster_ip: Some(EMPTY_CLUSTER_IP.parse().unwrap()),
        node_port: None,
        endpoints: Vec::new(),
        ..web.clone()
    };
    vec![empty, web]
}

#[test]
fn cluster_ip_and_node_ports_spread_over_endpoints() {
    proxy::check_nft().expect("nft");
    let net = setup();
    // Waits for both servers.
    for pod in ["10.240.0.2", "10.240.0.3"] {
        let url = format!("http://{pod}:8080/");
        let up = (0..50).any(|_| {
            let ok = run(&["ip", "netns", "exec", &net.node, "timeout", "10", BUSYBOX, "wget", "-qO-", &url])
                .status
                .success();
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            ok
        });
        assert!(up, "busybox httpd at {url} never answered");
    }
    let node = net.node.clone();
    let client = net.pods[2].clone();
    // This thread joins the node's namespace: the proxy's functions and the commands it starts
    // act there.
    let checks = std::thread::spawn(move || {
        let ns = File::open(format!("/run/netns/{node}")).expect("open the node namespace");
        setns(ns, CloneFlags::CLONE_NEWNET).expect("join the node namespace");
        proxy::enable_route_localnet().expect("route_localnet");
        let table = "wharf_test_svc";
        proxy::install(table, &rules::render(table, &frontends())).expect("install the table");
        // Installing again replaces the table.
        proxy::install(table, &rules::render(table, &frontends())).expect("install the table again");
        let cluster_ip = spread(None, &format!("http://{CLUSTER_IP}/"));
        let localhost = spread(None, &format!("http://127.0.0.1:{NODE_PORT}/"));
        let node_address = spread(None, &format!("http://10.240.0.1:{NODE_PORT}/"));
        let from_pod = spread(Some(&client), &format!("http://{CLUSTER_IP}/"));
        let refused = run(&["timeout", "10", BUSYBOX, "wget", "-qO-", &format!("http://{EMPTY_CLUSTER_IP}/")]);
        let refused = String::from_utf8_lossy(&refused.stderr).to_string();
        println!("no endpoints: {refused}");
        proxy::remove(table).expect("remove the table");
        let listed = run(&["nft", "list", "tables"]);
        let after = String::from_utf8_lossy(&listed.stdout).to_string();
        (cluster_ip, localhost, node_address, from_pod, refused, after)
    });
    let (cluster_ip, localhost, node_address, from_pod, refused, after) = checks.join().expect("checks");
    assert!(both(&cluster_ip), "ClusterIP from the node reached {cluster_ip:?}");
    assert!(both(&localhost), "127.0.0.1:{NODE_PORT} reached {localhost:?}");
    assert!(both(&node_address), "the node address's NodePort reached {node_address:?}");
    assert!(both(&from_pod), "ClusterIP from the client pod reached {from_pod:?}");
    assert!(refused.contains("refused"), "a Service without endpoints should refuse: {refused}");
    assert!(!after.contains("wharf_test_svc"), "the table is still there after remove: {after}");
    drop(net);
}

fn both(seen: &BTreeMap<String, usize>) -> bool {
    seen.keys().map(String::as_str).collect::<Vec<_>>() == ["pod-a", "pod-b"]
}
