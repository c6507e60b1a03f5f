//! Services driven by the real kubectl, as a user would: `kubectl expose` of a Deployment gets a
//! ClusterIP in the cluster's Service range and a NodePort in its node-port range; Endpoints and
//! EndpointSlices list the ready pods and follow scaling; taken or out-of-range requests are
//! refused with kube-apiserver's messages; a deleted Service frees its address; concurrent
//! creates never share one; and allocations survive a server restart.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{Cluster, wasm_fixture};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("kubectl printed JSON")
}

fn get(cluster: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json"]);
    json(&cluster.ok(&all))
}

fn cluster_ip(service: &Value) -> Ipv4Addr {
    service["spec"]["clusterIP"].as_str().expect("a clusterIP").parse().expect("an IPv4 clusterIP")
}

fn node_port(service: &Value) -> u16 {
    service["spec"]["ports"][0]["nodePort"].as_u64().expect("a nodePort") as u16
}

fn port_range(cluster: &Cluster) -> std::ops::RangeInclusive<u16> {
    let range = cluster.network.node_port_range();
    let (low, high) = range.split_once('-').unwrap();
    low.parse().unwrap()..=high.parse().unwrap()
}

/// (pod name, podIP) of the web pods that are Running, Ready and not being deleted.
fn ready_pods(cluster: &Cluster) -> BTreeSet<(String, String)> {
    let pods = get(cluster, &["pods", "-l", "app=web"]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .filter_map(|p| Some((p["metadata"]["name"].as_str()?.to_string(), p["status"]["podIP"].as_str()?.to_string())))
        .collect()
}

/// (pod name, ip) of the ready addresses of the Endpoints `name`, and their ports.
fn endpoints(cluster: &Cluster, name: &str) -> (BTreeSet<(String, String)>, BTreeSet<i64>) {
    let out = cluster.kubectl(&["get", "endpoints", name, "-o", "json"]);
    if !out.status.success() {
        return Default::default();
    }
    let ep: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut addresses = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        for a in subset["addresses"].as_array().into_iter().flatten() {
            addresses
                .insert((a["targetRef"]["name"].as_str().unwrap_or("").into(), a["ip"].as_str().unwrap_or("").into()));
        }
        ports.extend(subset["ports"].as_array().into_iter().flatten().filter_map(|p| p["port"].as_i64()));
    }
    (addresses, ports)
}

/// (pod name, address) of the ready endpoints of the Service's EndpointSlices, and their ports.
fn slices(cluster: &Cluster, service: &str) -> (BTreeSet<(String, String)>, BTreeSet<i64>) {
    let list = get(cluster, &["endpointslices", "-l", &format!("kubernetes.io/service-name={service}")]);
    let mut endpoints = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for slice in list["items"].as_array().into_iter().flatten() {
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(
            slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
        assert_eq!(slice["metadata"]["ownerReferences"][0]["name"], service);
        for e in slice["endpoints"].as_array().into_iter().flatten() {
            if e["conditions"]["ready"] == true {
                endpoints.insert((
                    e["targetRef"]["name"].as_str().unwrap_or("").into(),
                    e["addresses"][0].as_str().unwrap_or("").into(),
                ));
            }
        }
        ports.extend(slice["ports"].as_array().into_iter().flatten().filter_map(|p| p["port"].as_i64()));
    }
    (endpoints, ports)
}

/// Waits until `count` web pods are ready and the Endpoints and EndpointSlices of `web` list
/// exactly them (by name and podIP) on port 8080.
fn wait_endpoints_follow_pods(cluster: &Cluster, count: usize) {
    let start = Instant::now();
    let mut last = Default::default();
    let ok = cluster.eventually(Duration::from_secs(60), || {
        let pods = ready_pods(cluster);
        let (ep, ep_ports) = endpoints(cluster, "web");
        let (sl, sl_ports) = slices(cluster, "web");
        let done = pods.len() == count
            && ep == pods
            && sl == pods
            && ep_ports == BTreeSet::from([8080])
            && sl_ports == BTreeSet::from([8080]);
        last = (pods, ep, sl);
        done
    });
    assert!(ok, "Endpoints/EndpointSlices never listed the {count} ready pods; (pods, endpoints, slices) = {last:#?}");
    println!("Endpoints and EndpointSlices list the {count} ready pods after {:?}", start.elapsed());
}

#[test]
fn services_get_addresses_and_node_ports_and_endpoints_follow_the_pods() {
    let mut cluster = Cluster::start();
    let service_cidr: ipnet::Ipv4Net = cluster.network.service_cidr().parse().unwrap();
    let ports = port_range(&cluster);
    let ticker = wasm_fixture(cluster.data_dir(), "ticker");
    cluster.import(&ticker, "ticker:v1");

    cluster.ok(&["create", "deployment", "web", "--image=ticker:v1", "--replicas=2"]);
    let out =
        cluster.ok(&["expose", "deployment", "web", "--port", "80", "--target-port", "8080", "--type", "NodePort"]);
    assert!(out.contains("service/web exposed"), "{out}");
    let web = get(&cluster, &["svc", "web"]);
    let web_ip = cluster_ip(&web);
    let web_port = node_port(&web);
    assert!(service_cidr.contains(&web_ip) && web_ip != service_cidr.network(), "{web_ip} not in {service_cidr}");
    assert!(ports.contains(&web_port), "{web_port} not in {ports:?}");
    assert_eq!(web["spec"]["clusterIPs"], serde_json::json!([web_ip.to_string()]));
    assert_eq!(web["spec"]["ipFamilies"], serde_json::json!(["IPv4"]));
    assert_eq!(web["spec"]["ipFamilyPolicy"], "SingleStack");
    let table = cluster.ok(&["get", "svc", "web"]);
    assert!(table.contains(&web_ip.to_string()) && table.contains(&format!("80:{web_port}/TCP")), "{table}");
    println!("web: {web_ip} and node port {web_port}");

    // Endpoints and slices list the ready pods, and follow scaling.
    wait_endpoints_follow_pods(&cluster, 2);
    let table = cluster.ok(&["get", "endpoints", "web"]);
    assert!(table.contains(":8080"), "{table}");
    cluster.ok(&["scale", "deployment", "web", "--replicas=3"]);
    wait_endpoints_follow_pods(&cluster, 3);
    cluster.ok(&["scale", "deployment", "web", "--replicas=1"]);
    wait_endpoints_follow_pods(&cluster, 1);

    // A re-applied Service keeps its address and node port.
    cluster.ok(&["label", "svc", "web", "tier=front"]);
    let relabelled = get(&cluster, &["svc", "web"]);
    assert_eq!((cluster_ip(&relabelled), node_port(&relabelled)), (web_ip, web_port));
    // A replace with a manifest that names neither (as written by hand) keeps both too.
    let mut manifest = relabelled.clone();
    manifest["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    let spec = manifest["spec"].as_object_mut().unwrap();
    spec.remove("clusterIP");
    spec.remove("clusterIPs");
    spec["ports"][0].as_object_mut().unwrap().remove("nodePort");
    let out = cluster.kubectl_with(&["replace", "-f", "-"], Some(&manifest.to_string()), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replaced = get(&cluster, &["svc", "web"]);
    assert_eq!((cluster_ip(&replaced), node_port(&replaced)), (web_ip, web_port));
    // Type changes release and allocate node ports.
    cluster.ok(&["create", "service", "nodeport", "switch", "--tcp=80:80"]);
    let switch_port = node_port(&get(&cluster, &["svc", "switch"]));
    cluster.ok(&["patch", "svc", "switch", "-p", r#"{"spec":{"type":"ClusterIP"}}"#]);
    assert!(get(&cluster, &["svc", "switch"])["spec"]["ports"][0]["nodePort"].is_null());
    cluster.ok(&["create", "service", "nodeport", "took", "--tcp=80:80", &format!("--node-port={switch_port}")]);
    cluster.ok(&["patch", "svc", "switch", "-p", r#"{"spec":{"type":"NodePort"}}"#]);
    let back = node_port(&get(&cluster, &["svc", "switch"]));
    assert!(ports.contains(&back) && back != switch_port && back != web_port, "{back}");
    cluster.ok(&["delete", "svc", "switch", "took"]);
    // The address may not change.
    let err = cluster
        .fails(&["patch", "svc", "web", "-p", r#"{"spec":{"clusterIP":"10.0.0.1","clusterIPs":["10.0.0.1"]}}"#], None);
    assert!(err.contains("may not change once set"), "{err}");

    // Taken and out-of-range requests are refused with kube-apiserver's messages.
    let err = cluster
        .fails(&["create", "service", "clusterip", "taken", "--tcp=80:80", &format!("--clusterip={web_ip}")], None);
    assert!(err.contains(&format!("failed to allocate IP {web_ip}: provided IP is already allocated")), "{err}");
    let outside = "192.0.2.10";
    let err = cluster
        .fails(&["create", "service", "clusterip", "outside", "--tcp=80:80", &format!("--clusterip={outside}")], None);
    assert!(
        err.contains(&format!(
            "the provided IP ({outside}) is not in the valid range. The range of valid IPs is {service_cidr}"
        )),
        "{err}"
    );
    let beyond = ports.end() + 1;
    let err = cluster
        .fails(&["create", "service", "nodeport", "beyond", "--tcp=80:80", &format!("--node-port={beyond}")], None);
    let range = cluster.network.node_port_range();
    assert!(
        err.contains(&format!("spec.ports[0].nodePort: Invalid value: {beyond}: provided port is not in the valid range. The range of valid ports is {range}")),
        "{err}"
    );
    let err = cluster
        .fails(&["create", "service", "nodeport", "same", "--tcp=80:80", &format!("--node-port={web_port}")], None);
    assert!(err.contains(&format!("Invalid value: {web_port}: provided port is already allocated")), "{err}");
    // Headless: no address.
    cluster.ok(&["create", "service", "clusterip", "headless", "--clusterip=None", "--tcp=80:80"]);
    assert_eq!(get(&cluster, &["svc", "headless"])["spec"]["clusterIP"], "None");

    // Deleting the Service frees its address and node port, and its Endpoints and slices go.
    cluster.ok(&["delete", "svc", "web"]);
    let gone = cluster.eventually(Duration::from_secs(30), || {
        !cluster.kubectl(&["get", "endpoints", "web"]).status.success()
            && slices(&cluster, "web").0.is_empty()
            && get(&cluster, &["endpointslices", "-l", "kubernetes.io/service-name=web"])["items"]
                .as_array()
                .is_none_or(Vec::is_empty)
    });
    assert!(gone, "the Endpoints or EndpointSlices of the deleted Service stayed");
    cluster.ok(&["create", "service", "nodeport", "again", "--tcp=80:80", &format!("--node-port={web_port}")]);
    cluster.ok(&["create", "service", "clusterip", "reuse", "--tcp=80:80", &format!("--clusterip={web_ip}")]);
    assert_eq!(cluster_ip(&get(&cluster, &["svc", "reuse"])), web_ip);
    assert_eq!(node_port(&get(&cluster, &["svc", "again"])), web_port);

    // Concurrent creates never share an address or a node port.
    let created: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let cluster = &cluster;
                s.spawn(move || {
                    let name = format!("many-{i}");
                    cluster.ok(&["create", "service", "nodeport", &name, "--tcp=80:80"]);
                    get(cluster, &["svc", &name])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: BTreeSet<Ipv4Addr> = created.iter().map(cluster_ip).collect();
    let mut node_ports: BTreeSet<u16> = created.iter().map(node_port).collect();
    assert_eq!((ips.len(), node_ports.len()), (8, 8), "{ips:?} {node_ports:?}");
    assert!(ips.iter().all(|ip| service_cidr.contains(ip)) && node_ports.iter().all(|p| ports.contains(p)));
    assert!(!ips.contains(&web_ip) && !node_ports.contains(&web_port), "taken by reuse/again");
    ips.insert(web_ip);
    node_ports.insert(web_port);

    // After a restart, what was allocated stays taken and new Services get free ones.
    cluster.restart();
    let err = cluster
        .fails(&["create", "service", "clusterip", "taken", "--tcp=80:80", &format!("--clusterip={web_ip}")], None);
    assert!(err.contains("provided IP is already allocated"), "{err}");
    let taken_port = *node_ports.iter().next().unwrap();
    let err = cluster
        .fails(&["create", "service", "nodeport", "taken", "--tcp=80:80", &format!("--node-port={taken_port}")], None);
    assert!(err.contains("provided port is already allocated"), "{err}");
    cluster.ok(&["create", "service", "nodeport", "after", "--tcp=80:80"]);
    let after = get(&cluster, &["svc", "after"]);
    assert!(!ips.contains(&cluster_ip(&after)) && !node_ports.contains(&node_port(&after)), "{after:#}");
}

/// The `kubernetes` Service keeper against a real server (until the server starts it itself):
/// the Service takes the first address of the range, 443 leads to the server's port, and its
/// Endpoints and EndpointSlice name the advertised address; it comes back when deleted.
#[test]
fn the_kubernetes_service_names_the_api_server() {
    // On every address, so the server advertises the host's address to pods (loopback would
    // leave the Service without endpoints).
    let cluster = Cluster::start_with(&["--listen", "0.0.0.0:0"]);
    let service_cidr: ipnet::Ipv4Net = cluster.network.service_cidr().parse().unwrap();
    let port: u16 = cluster.url.rsplit(':').next().unwrap().parse().unwrap();
    let first = Ipv4Addr::from(u32::from(service_cidr.network()) + 1);
    let found = |cluster: &Cluster| {
        cluster.kubectl(&["get", "svc", "kubernetes"]).status.success()
            && cluster.kubectl(&["get", "endpoints", "kubernetes"]).status.success()
    };
    assert!(cluster.eventually(Duration::from_secs(20), || found(&cluster)), "no kubernetes Service");
    let svc = get(&cluster, &["svc", "kubernetes"]);
    assert_eq!(cluster_ip(&svc), first);
    assert_eq!(
        (svc["spec"]["ports"][0]["port"].as_u64(), svc["spec"]["ports"][0]["targetPort"].as_u64()),
        (Some(443), Some(port.into()))
    );
    let endpoints = get(&cluster, &["endpoints", "kubernetes"]);
    let subset = &endpoints["subsets"][0];
    let address: Ipv4Addr = subset["addresses"][0]["ip"].as_str().unwrap_or_default().parse().unwrap_or_else(|_| {
        panic!("the kubernetes Endpoints name no address (is there a default route?): {endpoints}")
    });
    assert!(!address.is_loopback() && subset["addresses"].as_array().map(Vec::len) == Some(1), "{endpoints}");
    assert_eq!(subset["ports"][0]["port"].as_u64(), Some(port.into()), "{endpoints}");
    let slice = get(&cluster, &["endpointslice", "kubernetes"]);
    assert_eq!(slice["endpoints"][0]["addresses"][0], address.to_string());
    let err = cluster
        .fails(&["create", "service", "clusterip", "mine", "--tcp=80:80", &format!("--clusterip={first}")], None);
    assert!(err.contains("provided IP is already allocated"), "{err}");
    cluster.ok(&["delete", "svc", "kubernetes"]);
    let start = Instant::now();
    assert!(
        cluster.eventually(Duration::from_secs(30), || found(&cluster)),
        "the kubernetes Service did not come back"
    );
    println!("the kubernetes Service came back {:?} after its deletion", start.elapsed());
    assert_eq!(cluster_ip(&get(&cluster, &["svc", "kubernetes"])), first);
}
