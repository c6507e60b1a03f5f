//! The pod network end to end, as root: pods get addresses from their node's podCIDR, reach
//! each other by pod IP on one node and across nodes (two network namespaces as hosts, each
//! running `wharf agent`), Wasm pods get an address too, and deleted pods leave no veth behind.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{Hosts, NetnsAgent};
use common::{Cluster, NetworkSlot, busybox_layout, wasm_fixture};
use serde_json::Value;

const START: Duration = Duration::from_secs(90);

/// Whether a link of that name exists in the network namespace `netns` (None: the test's).
fn link_exists(netns: Option<&str>, name: &str) -> bool {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["link", "show", "dev", name]).stderr(Stdio::null()).stdout(Stdio::null());
    cmd.status().is_ok_and(|s| s.success())
}

/// A node network the agents of a test made: its bridge and nft table go when the test ends
/// (agents are killed, not stopped, so they cannot remove them).
struct NodeNetworkGuard {
    netns: Option<String>,
    pod_cidr: String,
}

impl NodeNetworkGuard {
    fn id(&self) -> String {
        let ip: std::net::Ipv4Addr = self.pod_cidr.split('/').next().unwrap().parse().unwrap();
        format!("{:08x}", u32::from(ip))
    }
    fn bridge(&self) -> String {
        format!("wh{}", self.id())
    }
}

impl Drop for NodeNetworkGuard {
    fn drop(&mut self) {
        let mut ip = Command::new("ip");
        let mut nft = Command::new("nft");
        if let Some(ns) = &self.netns {
            ip.args(["-n", ns]);
            nft = Command::new("ip");
            nft.args(["netns", "exec", ns, "nft"]);
        }
        let _ = ip.args(["link", "del", &self.bridge()]).stderr(Stdio::null()).status();
        let table = format!("wharf_{}_net", self.id());
        let _ = nft.args(["delete", "table", "ip", &table]).stderr(Stdio::null()).status();
    }
}

/// The server's own node, once it is Ready.
fn local_node(cluster: &Cluster) -> String {
    cluster.wait_nodes_ready(1, Duration::from_secs(60));
    cluster.ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"])
}

fn pod_cidr_of(cluster: &Cluster, node: &str) -> String {
    let mut cidr = String::new();
    let found = cluster.eventually(Duration::from_secs(30), || {
        cidr = cluster.ok(&["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"]);
        !cidr.is_empty()
    });
    assert!(found, "node {node} never got a podCIDR:\n{}", cluster.ok(&["get", "node", node, "-o", "yaml"]));
    cidr
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let net: ipnet::Ipv4Net = cidr.parse().unwrap();
    ip.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| net.contains(&ip))
}

fn pod_ip(pod: &Value) -> String {
    pod["status"]["podIP"].as_str().unwrap_or_default().to_string()
}

fn running_with_ip(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && !pod_ip(pod).is_empty()
}

fn finished(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// A busybox pod serving `text` over HTTP on port 8080.
fn web_pod(name: &str, node: Option<&str>, text: &str) -> String {
    let node = node.map(|n| format!("  nodeName: {n}\n")).unwrap_or_default();
    let script = format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 8080 -h /www");
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{node}  terminationGracePeriodSeconds: 1\n  \
         containers:\n  - name: main\n    image: busybox:v1\n    command: [sh, -c, {script:?}]\n    \
         ports: [{{containerPort: 8080}}]\n    readinessProbe:\n      tcpSocket: {{port: 8080}}\n      \
         periodSeconds: 1\n"
    )
}

/// A busybox pod that prints its resolv.conf and fetches `url` once.
fn client_pod(name: &str, node: Option<&str>, url: &str) -> String {
    let node = node.map(|n| format!("  nodeName: {n}\n")).unwrap_or_default();
    let script = format!("cat /etc/resolv.conf; wget -qO- {url}");
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{node}  restartPolicy: Never\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:v1\n    \
         command: [sh, -c, {script:?}]\n"
    )
}

fn ipam_files(agent_dir: &Path) -> usize {
    let root = agent_dir.join("network/ipam");
    std::fs::read_dir(root).into_iter().flatten().flatten().flat_map(|d| std::fs::read_dir(d.path())).flatten().count()
}

/// The host end of a pod's veth.
fn host_veth(ip: &str) -> String {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    format!("wv{:08x}", u32::from(ip))
}

#[test]
fn pods_on_one_node_reach_each_other_by_pod_ip() {
    let mut cluster = Cluster::start_with(&["--backoff-base-ms", "300"]);
    let layout = busybox_layout(cluster.data_dir());
    cluster.import(&layout, "busybox:v1");
    let ticker = wasm_fixture(cluster.data_dir(), "ticker");
    cluster.import(&ticker, "ticker:v1");
    let node = local_node(&cluster);
    let pod_cidr = pod_cidr_of(&cluster, &node);
    let _guard = NodeNetworkGuard { netns: None, pod_cidr: pod_cidr.clone() };
    let gateway = {
        let net: ipnet::Ipv4Net = pod_cidr.parse().unwrap();
        net.hosts().next().unwrap().to_string()
    };
    println!("node {node}: podCIDR {pod_cidr}, gateway {gateway}");

    let started = Instant::now();
    cluster.apply(&web_pod("web", None, "hello-from-web"));
    let web = cluster.wait_pod("web", "ran with a pod IP and ready", START, |p| {
        running_with_ip(p) && p["status"]["containerStatuses"][0]["ready"] == true
    });
    println!("web pod ready after {:?}", started.elapsed());
    let web_ip = pod_ip(&web);
    assert!(in_cidr(&web_ip, &pod_cidr), "web's IP {web_ip} is not in the node's podCIDR {pod_cidr}");
    assert_eq!(web["status"]["podIPs"][0]["ip"], web_ip);
    assert!(link_exists(None, &host_veth(&web_ip)), "no host veth for {web_ip}");

    cluster.apply(&client_pod("client", None, &format!("http://{web_ip}:8080/")));
    let client = cluster.wait_pod("client", "finished", START, finished);
    let logs = cluster.ok(&["logs", "client"]);
    println!("client logs:\n{logs}");
    assert_eq!(client["status"]["phase"], "Succeeded", "the client could not fetch from {web_ip}:\n{logs}");
    assert!(logs.contains("hello-from-web"), "{logs}");
    assert!(logs.contains(&format!("nameserver {gateway}")), "{logs}");
    assert!(logs.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{logs}");
    assert!(logs.contains("options ndots:5"), "{logs}");
    let client_ip = pod_ip(&client);
    assert!(in_cidr(&client_ip, &pod_cidr) && client_ip != web_ip, "client IP {client_ip}");

    // The node's agent is killed and comes back: the web pod keeps its address and its veth,
    // a new pod gets another one and still reaches it.
    cluster.restart();
    cluster.apply(&client_pod("again", None, &format!("http://{web_ip}:8080/")));
    let again = cluster.wait_pod("again", "finished", START, finished);
    let logs = cluster.ok(&["logs", "again"]);
    assert_eq!(again["status"]["phase"], "Succeeded", "after the restart, no answer from {web_ip}:\n{logs}");
    assert!(logs.contains("hello-from-web"), "{logs}");
    let again_ip = pod_ip(&again);
    assert_ne!(again_ip, web_ip, "the running web pod's address was given again");
    assert_eq!(pod_ip(&cluster.pod("web")), web_ip, "the web pod's address changed over the restart");
    assert!(link_exists(None, &host_veth(&web_ip)), "the web pod's veth is gone after the restart");
    cluster.ok(&["delete", "pod", "again", "--wait=true", "--timeout=60s"]);

    // A hostNetwork pod has the node's address, reaches pods from the host and, asking for it,
    // uses the cluster DNS server.
    let host_pod = client_pod("on-host", None, &format!("http://{web_ip}:8080/")).replace(
        "  restartPolicy: Never\n",
        "  restartPolicy: Never\n  hostNetwork: true\n  dnsPolicy: ClusterFirstWithHostNet\n",
    );
    cluster.apply(&host_pod);
    let on_host = cluster.wait_pod("on-host", "finished", START, finished);
    let logs = cluster.ok(&["logs", "on-host"]);
    assert_eq!(on_host["status"]["phase"], "Succeeded", "the hostNetwork pod could not fetch from {web_ip}:\n{logs}");
    assert_eq!(on_host["status"]["podIP"], on_host["status"]["hostIP"], "a hostNetwork pod has the node's address");
    assert!(logs.contains(&format!("nameserver {gateway}")) && logs.contains("hello-from-web"), "{logs}");
    cluster.ok(&["delete", "pod", "on-host", "--wait=true", "--timeout=60s"]);

    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: wasm\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         containers:\n  - name: main\n    image: ticker:v1\n",
    );
    let wasm = cluster.wait_pod("wasm", "ran with a pod IP", START, running_with_ip);
    let wasm_ip = pod_ip(&wasm);
    assert!(in_cidr(&wasm_ip, &pod_cidr), "the Wasm pod's IP {wasm_ip} is not in {pod_cidr}");
    assert_ne!(wasm_ip, web_ip, "pod IPs are unique");

    let agent_dir = cluster.data_dir().join("agent");
    assert_eq!(ipam_files(&agent_dir), 2, "the running pods hold an address each, the finished ones none");
    cluster.ok(&["delete", "pod", "web", "client", "wasm", "--wait=true", "--timeout=60s"]);
    for ip in [&web_ip, &client_ip, &wasm_ip] {
        assert!(!link_exists(None, &host_veth(ip)), "the veth of {ip} outlived its pod");
    }
    assert_eq!(ipam_files(&agent_dir), 0, "deleted pods free their addresses");
}

#[test]
fn a_pod_reaches_a_pod_on_another_host_by_pod_ip() {
    // A slot of its own gives the test host addresses no other test uses.
    let slot = NetworkSlot::take();
    let hosts = Hosts::make('t', slot.octet);
    let server = format!("172.16.{}.1:0", slot.octet);
    let cluster = Cluster::start_with(&["--backoff-base-ms", "300", "--listen", &server]);
    let layout = busybox_layout(cluster.data_dir());
    cluster.import(&layout, "busybox:v1");
    let local = local_node(&cluster);
    let _local_net = NodeNetworkGuard { netns: None, pod_cidr: pod_cidr_of(&cluster, &local) };

    let (a, b) = (format!("net-a-{}", slot.octet), format!("net-b-{}", slot.octet));
    let mut guards = Vec::new();
    let agents: Vec<NetnsAgent> = [('a', &a), ('b', &b)]
        .iter()
        .map(|(host, name)| NetnsAgent::start(&cluster, &hosts, *host, name, &[]))
        .collect();
    cluster.wait_nodes_ready(3, Duration::from_secs(60));
    for (host, name) in [('a', &a), ('b', &b)] {
        let cidr = pod_cidr_of(&cluster, name);
        println!("node {name} in {}: {} podCIDR {cidr}", hosts.netns(host), hosts.address(host));
        guards.push(NodeNetworkGuard { netns: Some(hosts.netns(host)), pod_cidr: cidr });
    }

    let started = Instant::now();
    cluster.apply(&web_pod("web-b", Some(&b), "hello-from-host-b"));
    let web = cluster.wait_pod("web-b", "ran with a pod IP and ready", START, |p| {
        running_with_ip(p) && p["status"]["containerStatuses"][0]["ready"] == true
    });
    println!("web-b ready after {:?}", started.elapsed());
    let web_ip = pod_ip(&web);
    assert!(in_cidr(&web_ip, &guards[1].pod_cidr), "{web_ip} is not in {b}'s podCIDR {}", guards[1].pod_cidr);
    assert!(link_exists(Some(&hosts.netns('b')), &guards[1].bridge()), "no bridge on host b");

    cluster.apply(&client_pod("client-a", Some(&a), &format!("http://{web_ip}:8080/")));
    let client = cluster.wait_pod("client-a", "finished", START, finished);
    let logs = cluster.kubectl(&["logs", "client-a"]);
    let logs = String::from_utf8_lossy(&logs.stdout).into_owned();
    println!("client-a logs:\n{logs}");
    assert!(in_cidr(&pod_ip(&client), &guards[0].pod_cidr), "client-a's IP {}", pod_ip(&client));
    assert_eq!(
        client["status"]["phase"], "Succeeded",
        "the pod on host a could not fetch from {web_ip} on host b:\n{logs}"
    );
    cluster.ok(&["delete", "pod", "web-b", "client-a", "--wait=true", "--timeout=60s"]);
    assert!(!link_exists(Some(&hosts.netns('b')), &host_veth(&web_ip)), "web-b's veth outlived it");
    drop(agents);
    drop(guards);
}

#[test]
fn without_a_free_pod_range_a_node_says_so_and_its_pods_wait() {
    // One node-sized range in the whole cluster range: the server's own node takes it.
    let cluster = Cluster::start_with(&["--backoff-base-ms", "300", "--node-cidr-mask-size", "17"]);
    let local = local_node(&cluster);
    let _local_net = NodeNetworkGuard { netns: None, pod_cidr: pod_cidr_of(&cluster, &local) };
    let _agent = cluster.join_agent("starved");
    cluster.wait_nodes_ready(2, Duration::from_secs(60));
    let events = || cluster.ok(&["get", "events", "-A", "-o", "json"]);
    let told = |json: &str, reason: &str, name: &str| {
        let all: Value = serde_json::from_str(json).unwrap();
        all["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["reason"] == reason && e["involvedObject"]["name"] == name)
    };
    let said = cluster.eventually(Duration::from_secs(30), || told(&events(), "CIDRNotAvailable", "starved"));
    assert!(said, "no CIDRNotAvailable event on node starved:\n{}", events());
    assert_eq!(cluster.ok(&["get", "node", "starved", "-o", "jsonpath={.spec.podCIDR}"]), "");

    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: waiting\nspec:\n  nodeName: starved\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:v1\n",
    );
    let pod = cluster.wait_pod("waiting", "said it waits for the network", START, |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("network is not ready"))
    });
    println!("{}", pod["status"]["containerStatuses"][0]["state"]["waiting"]);
    assert!(pod["status"]["podIP"].is_null(), "a pod without a network has no IP: {}", pod["status"]);
    assert!(told(&events(), "NetworkNotReady", "waiting"), "no NetworkNotReady event:\n{}", events());
    cluster.ok(&["delete", "pod", "waiting", "--wait=true", "--timeout=30s"]);
}
