//! ClusterIP and NodePort allocation for Services, as kube-apiserver's Service REST storage does
//! it before validation: a Service that needs a cluster IP and names none gets a free one from
//! `--service-cidr`, each port of a NodePort (or LoadBalancer) Service without a `nodePort` gets a
//! free one from `--service-node-port-range`, and requested ones must be in range and free.
//!
//! There is no allocation bitmap: what is taken is read from the Services in the store, so a
//! deleted Service frees its address and ports by being gone, and a restart loses nothing.
//! Writers of Services hold [`lock`]'s guard from the check until their write is committed, so two
//! concurrent creates never pick the same address.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rand::Rng;
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, MutexGuard};

use super::kinds::ResourceInfo;
use crate::error::{Cause, Error};
use crate::server::AdmissionOptions;
use crate::store::Store;

/// Serializes the writes of Services (create and update) with their allocation. It holds within
/// one API server process only: several servers on one database (the HA issue) need the check in
/// the store's transaction instead.
static SERVICES: Mutex<()> = Mutex::const_new(());

/// Held from the allocation until the Service's write is committed.
pub type Guard = MutexGuard<'static, ()>;

/// What other Services hold.
#[derive(Debug, Default)]
struct Taken {
    ips: HashSet<Ipv4Addr>,
    ports: HashSet<u16>,
}

impl Taken {
    fn from<'a>(services: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut taken = Taken::default();
        for service in services {
            let spec = &service["spec"];
            let ips = spec["clusterIPs"].as_array().into_iter().flatten().chain(std::iter::once(&spec["clusterIP"]));
            taken.ips.extend(ips.filter_map(Value::as_str).filter_map(|ip| ip.parse::<Ipv4Addr>().ok()));
            for port in spec["ports"].as_array().into_iter().flatten() {
                if let Some(np) = port["nodePort"].as_u64().and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0) {
                    taken.ports.insert(np);
                }
            }
        }
        taken
    }
}

/// For a write of a Service (other kinds pass through with no guard): takes the Services lock,
/// keeps what `old` had allocated when the client left it out, allocates what is missing and
/// checks what was requested. Hold the returned guard until the write is done.
pub async fn admit(
    store: &Store,
    options: &AdmissionOptions,
    resource: &ResourceInfo,
    service: &mut Value,
    old: Option<&Value>,
) -> Result<Option<Guard>, Error> {
    if resource.kind != "Service" || !resource.group.is_empty() {
        return Ok(None);
    }
    let guard = SERVICES.lock().await;
    let namespace = service["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    let name = service["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let others =
        store.list(&resource.storage_key(), None, None, 0, |s| s.key.namespace != namespace || s.key.name != name);
    let taken = Taken::from(others.items.iter().map(|s| &s.object));
    allocate(&taken, options, service, old, &mut rand::rng()).map_err(|failure| match failure {
        Failure::Invalid(cause) => {
            Error::Invalid { group: String::new(), kind: "Service".into(), name, causes: vec![cause] }
        }
        Failure::Full(what) => Error::Internal(format!("failed to allocate a {what}: range is full")),
    })?;
    Ok(Some(guard))
}

#[derive(Debug, PartialEq)]
enum Failure {
    /// A requested address or port that is taken or out of range.
    Invalid(Cause),
    /// Nothing left: `serviceIP` or `nodePort`.
    Full(&'static str),
}

fn type_of(spec: &Value) -> &str {
    spec["type"].as_str().unwrap_or("ClusterIP")
}

fn cluster_ip(spec: &Value) -> &str {
    spec["clusterIP"].as_str().unwrap_or_default()
}

/// kube's `needsClusterIP`: everything but ExternalName and headless Services.
fn needs_cluster_ip(spec: &Value) -> bool {
    type_of(spec) != "ExternalName" && cluster_ip(spec) != "None"
}

/// kube's `needsNodePort`: NodePort, and LoadBalancer unless it opted out.
fn needs_node_ports(spec: &Value) -> bool {
    match type_of(spec) {
        "NodePort" => true,
        "LoadBalancer" => spec["allocateLoadBalancerNodePorts"].as_bool() != Some(false),
        _ => false,
    }
}

/// Whether the Service is reachable from outside (and so may have an externalTrafficPolicy).
fn is_external(spec: &Value) -> bool {
    matches!(type_of(spec), "NodePort" | "LoadBalancer")
        || (type_of(spec) == "ClusterIP" && spec["externalIPs"].as_array().is_some_and(|a| !a.is_empty()))
}

fn node_port(port: &Value) -> u16 {
    port["nodePort"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(0)
}

fn node_ports(spec: &Value) -> Vec<u16> {
    spec["ports"].as_array().into_iter().flatten().map(node_port).collect()
}

fn ports_mut(spec: &mut Map<String, Value>) -> impl Iterator<Item = &mut Value> {
    spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten()
}

/// kube's `dropTypeDependentFields` and `patchAllocatedValues`: on a type change, what the new
/// type has no use for goes when the client left it as it was; what stays allocated is kept
/// when the client left it out (as `kubectl apply` of a manifest without it does).
fn carry_over(old: &Value, new: &mut Map<String, Value>) {
    let same = |new: &Map<String, Value>, field: &str| new.get(field).unwrap_or(&Value::Null) == &old[field];
    let new_value = Value::Object(new.clone());
    if !needs_cluster_ip(&new_value) && needs_cluster_ip(old) && type_of(&new_value) == "ExternalName" {
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if same(new, field) {
                new.remove(field);
            }
        }
    }
    if !needs_node_ports(&new_value) && needs_node_ports(old) && node_ports(&new_value) == node_ports(old) {
        for port in ports_mut(new) {
            if let Some(p) = port.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    if is_external(old) && !is_external(&new_value) && same(new, "externalTrafficPolicy") {
        new.remove("externalTrafficPolicy");
    }
    if type_of(old) == "LoadBalancer"
        && type_of(&new_value) != "LoadBalancer"
        && !old["allocateLoadBalancerNodePorts"].is_null()
        && same(new, "allocateLoadBalancerNodePorts")
    {
        new.remove("allocateLoadBalancerNodePorts");
    }
    if needs_cluster_ip(old) && needs_cluster_ip(&new_value) {
        if cluster_ip(&new_value).is_empty() && !cluster_ip(old).is_empty() {
            new.insert("clusterIP".into(), old["clusterIP"].clone());
        }
        if new.get("clusterIPs").and_then(Value::as_array).is_none_or(Vec::is_empty)
            && old["clusterIPs"].as_array().is_some_and(|a| !a.is_empty())
        {
            new.insert("clusterIPs".into(), old["clusterIPs"].clone());
            new.insert("ipFamilies".into(), old["ipFamilies"].clone());
        }
    }
    if needs_node_ports(old) && needs_node_ports(&new_value) {
        // Old node ports by port name; those the new spec names itself are not patched in.
        let by_name: HashMap<&str, u16> = old["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (p["name"].as_str().unwrap_or(""), node_port(p)))
            .collect();
        let used: HashSet<u16> = node_ports(&new_value).into_iter().filter(|p| *p != 0).collect();
        for port in ports_mut(new) {
            if node_port(port) == 0
                && let Some(&np) = by_name.get(port["name"].as_str().unwrap_or(""))
                && np != 0
                && !used.contains(&np)
            {
                port["nodePort"] = np.into();
            }
        }
    }
}

/// The usable addresses of a Service range: all but the network and broadcast addresses.
fn usable(cidr: &Ipv4Net) -> (u32, u32) {
    let network = u32::from(cidr.network());
    let size = 1u64 << (32 - cidr.prefix_len());
    if size <= 2 { (network, size as u32) } else { (network + 1, (size - 2) as u32) }
}

/// The first usable address of a Service range: the `kubernetes` Service's.
pub fn first_address(cidr: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(usable(cidr).0)
}

/// Where dynamic allocation starts, as kube's `calculateRangeOffset`: the addresses (ports)
/// below it are left for static requests until the rest is full.
fn range_offset(size: u64, min: u64, max: u64, step: u64) -> u64 {
    if size <= min { 0 } else { (size / step).clamp(min, max) }
}

/// A free index in `0..size`: random in the upper band `offset..size` first (scanning from a
/// random start), then in the lower band.
fn pick(size: u64, offset: u64, rng: &mut impl Rng, free: impl Fn(u64) -> bool) -> Option<u64> {
    for (lo, hi) in [(offset, size), (0, offset)] {
        if lo >= hi {
            continue;
        }
        let start = rng.random_range(lo..hi);
        if let Some(i) = (start..hi).chain(lo..start).find(|i| free(*i)) {
            return Some(i);
        }
    }
    None
}

fn invalid(field: String, rendered: impl std::fmt::Display, detail: impl std::fmt::Display) -> Failure {
    Failure::Invalid(Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {rendered}: {detail}"),
        field,
    })
}

fn allocate_ip(
    taken: &Taken,
    cidr: &Ipv4Net,
    spec: &mut Map<String, Value>,
    old: Option<&Value>,
    rng: &mut impl Rng,
) -> Result<(), Failure> {
    // An update keeps the address it had (validation refuses a change), except that a Service
    // that was ExternalName gets one, as kube's updateClusterIPs does.
    if old.is_some_and(|o| type_of(&o["spec"]) != "ExternalName") {
        return Ok(());
    }
    let requested = spec.get("clusterIP").and_then(Value::as_str).unwrap_or_default().to_string();
    let (base, size) = usable(cidr);
    let ip = if requested.is_empty() {
        let offset = range_offset(1u64 << (32 - cidr.prefix_len()), 16, 256, 16);
        let free = |i: u64| !taken.ips.contains(&Ipv4Addr::from(base + i as u32));
        let i = pick(size.into(), offset, rng, free).ok_or(Failure::Full("serviceIP"))?;
        Ipv4Addr::from(base + i as u32)
    } else {
        // A malformed address is validation's to report.
        let Ok(ip) = requested.parse::<Ipv4Addr>() else { return Ok(()) };
        let rendered = format!("[]string{{{:?}}}", requested);
        let index = u32::from(ip).wrapping_sub(base);
        if !cidr.contains(&ip) || index >= size {
            return Err(invalid(
                "spec.clusterIPs".into(),
                rendered,
                format!(
                    "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. \
                     The range of valid IPs is {cidr}"
                ),
            ));
        }
        if taken.ips.contains(&ip) {
            return Err(invalid(
                "spec.clusterIPs".into(),
                rendered,
                format!("failed to allocate IP {ip}: provided IP is already allocated"),
            ));
        }
        ip
    };
    spec.insert("clusterIP".into(), ip.to_string().into());
    spec.insert("clusterIPs".into(), json!([ip.to_string()]));
    if spec.get("ipFamilies").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
    }
    spec.entry("ipFamilyPolicy").or_insert_with(|| "SingleStack".into());
    Ok(())
}

fn allocate_node_ports(
    taken: &Taken,
    range: &std::ops::RangeInclusive<u16>,
    spec: &mut Map<String, Value>,
    old: Option<&Value>,
    rng: &mut impl Rng,
) -> Result<(), Failure> {
    let auto = needs_node_ports(&Value::Object(spec.clone()));
    let ours: HashSet<u16> = old.map(|o| node_ports(&o["spec"])).unwrap_or_default().into_iter().collect();
    let (low, high) = (*range.start(), *range.end());
    let size = u64::from(high.saturating_sub(low)) + 1;
    let offset = range_offset(size, 16, 128, 32);
    // Ports of one Service with the same port number (TCP and UDP) share their node port.
    let mut by_port: HashMap<i64, u16> = HashMap::new();
    let mut mine: HashSet<u16> = HashSet::new();
    for (i, port) in ports_mut(spec).enumerate() {
        let number = port["port"].as_i64().unwrap_or(0);
        let requested = node_port(port);
        if requested != 0 {
            if !ours.contains(&requested) && by_port.get(&number) != Some(&requested) {
                let field = format!("spec.ports[{i}].nodePort");
                if !range.contains(&requested) {
                    return Err(invalid(
                        field,
                        requested,
                        format!("provided port is not in the valid range. The range of valid ports is {low}-{high}"),
                    ));
                }
                if taken.ports.contains(&requested) || mine.contains(&requested) {
                    return Err(invalid(field, requested, "provided port is already allocated"));
                }
            }
            by_port.insert(number, requested);
            mine.insert(requested);
            continue;
        }
        if !auto {
            continue;
        }
        let np = match by_port.get(&number) {
            Some(&np) => np,
            None => {
                let free = |i: u64| {
                    let p = low + i as u16;
                    !taken.ports.contains(&p) && !mine.contains(&p)
                };
                low + pick(size, offset, rng, free).ok_or(Failure::Full("nodePort"))? as u16
            }
        };
        port["nodePort"] = np.into();
        by_port.insert(number, np);
        mine.insert(np);
    }
    Ok(())
}

/// The pure part of [`admit`]: `taken` holds what every other Service has.
fn allocate(
    taken: &Taken,
    options: &AdmissionOptions,
    service: &mut Value,
    old: Option<&Value>,
    rng: &mut impl Rng,
) -> Result<(), Failure> {
    let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    if let Some(old) = old {
        carry_over(&old["spec"], spec);
    }
    let value = Value::Object(spec.clone());
    if needs_cluster_ip(&value) {
        allocate_ip(taken, &options.service_cidr, spec, old, rng)?;
    }
    if matches!(type_of(&value), "NodePort" | "LoadBalancer") {
        allocate_node_ports(taken, &options.service_node_port_range, spec, old, rng)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> AdmissionOptions {
        AdmissionOptions {
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
            service_cidr: "10.5.128.0/17".parse().unwrap(),
            service_node_port_range: 30100..=30119,
        }
    }

    fn service(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn run(taken: &Taken, svc: &mut Value, old: Option<&Value>) -> Result<(), Failure> {
        allocate(taken, &options(), svc, old, &mut rand::rng())
    }

    fn message(f: Failure) -> (String, String) {
        match f {
            Failure::Invalid(c) => (c.field, c.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_new_service_gets_a_free_address_in_the_upper_band_and_a_node_port_per_port() {
        let mut svc =
            service(json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}));
        run(&Taken::default(), &mut svc, None).unwrap();
        let ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        let cidr = options().service_cidr;
        assert!(cidr.contains(&ip) && ip != cidr.network() && ip != cidr.broadcast());
        assert!(u32::from(ip) - u32::from(cidr.network()) > 256, "dynamic addresses come from above the offset: {ip}");
        assert_eq!(svc["spec"]["clusterIPs"], json!([ip.to_string()]));
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
        let ports = node_ports(&svc["spec"]);
        assert!(ports.iter().all(|p| (30100..=30119).contains(p)) && ports[0] != ports[1], "{ports:?}");
    }

    #[test]
    fn headless_and_external_name_services_get_no_address() {
        let mut headless = service(json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}));
        run(&Taken::default(), &mut headless, None).unwrap();
        assert_eq!(headless["spec"]["clusterIP"], "None");
        let mut external = service(json!({"type": "ExternalName", "externalName": "example.com"}));
        run(&Taken::default(), &mut external, None).unwrap();
        assert!(external["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn requested_addresses_must_be_in_range_and_free() {
        let taken = Taken::from([&service(json!({"clusterIP": "10.5.128.10", "clusterIPs": ["10.5.128.10"]}))]);
        let mut svc = service(json!({"clusterIP": "10.5.128.10", "clusterIPs": ["10.5.128.10"]}));
        let (field, msg) = message(run(&taken, &mut svc, None).unwrap_err());
        assert_eq!(field, "spec.clusterIPs");
        assert_eq!(
            msg,
            r#"Invalid value: []string{"10.5.128.10"}: failed to allocate IP 10.5.128.10: provided IP is already allocated"#
        );
        for outside in ["10.6.0.1", "10.5.128.0", "10.5.255.255"] {
            let mut svc = service(json!({"clusterIP": outside, "clusterIPs": [outside]}));
            let (_, msg) = message(run(&taken, &mut svc, None).unwrap_err());
            assert!(
                msg.ends_with(&format!(
                    "the provided IP ({outside}) is not in the valid range. The range of valid IPs is 10.5.128.0/17"
                )),
                "{msg}"
            );
        }
        let mut free = service(json!({"clusterIP": "10.5.128.11", "clusterIPs": ["10.5.128.11"]}));
        run(&taken, &mut free, None).unwrap();
        assert_eq!(free["spec"]["clusterIP"], "10.5.128.11");
    }

    #[test]
    fn requested_node_ports_must_be_in_range_and_free() {
        let taken = Taken::from([&service(json!({"type": "NodePort", "ports": [{"port": 1, "nodePort": 30105}]}))]);
        let mut svc = service(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30105}]}));
        assert_eq!(
            message(run(&taken, &mut svc, None).unwrap_err()),
            ("spec.ports[0].nodePort".into(), "Invalid value: 30105: provided port is already allocated".into())
        );
        let mut svc =
            service(json!({"type": "NodePort", "ports": [{"port": 80}, {"name": "x", "port": 81, "nodePort": 31000}]}));
        assert_eq!(
            message(run(&taken, &mut svc, None).unwrap_err()).1,
            "Invalid value: 31000: provided port is not in the valid range. The range of valid ports is 30100-30119"
        );
    }

    #[test]
    fn the_range_runs_out_only_when_every_port_is_taken() {
        let mut taken = Taken::default();
        for _ in 0..20 {
            let mut svc = service(json!({"type": "NodePort", "ports": [{"port": 80}]}));
            run(&taken, &mut svc, None).unwrap();
            assert!(taken.ports.insert(node_port(&svc["spec"]["ports"][0])), "a fresh port each time");
        }
        let mut svc = service(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        assert_eq!(run(&taken, &mut svc, None).unwrap_err(), Failure::Full("nodePort"));
    }

    #[test]
    fn updates_keep_what_was_allocated_and_type_changes_allocate_or_release() {
        let mut old = service(json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}));
        run(&Taken::default(), &mut old, None).unwrap();
        // A re-applied manifest without clusterIP and nodePort keeps both (its own, not "taken").
        let mut again = service(json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}));
        let taken = Taken::default();
        run(&taken, &mut again, Some(&old)).unwrap();
        assert_eq!(again["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        assert_eq!(again["spec"]["ports"][0]["nodePort"], old["spec"]["ports"][0]["nodePort"]);
        // NodePort → ClusterIP with the node ports left as they were: they are dropped.
        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = "ClusterIP".into();
        to_cluster_ip["spec"]["externalTrafficPolicy"] = "Cluster".into();
        let mut old = old.clone();
        old["spec"]["externalTrafficPolicy"] = "Cluster".into();
        run(&taken, &mut to_cluster_ip, Some(&old)).unwrap();
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
        assert!(to_cluster_ip["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(to_cluster_ip["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        // ClusterIP → NodePort allocates a node port.
        let mut back = to_cluster_ip.clone();
        back["spec"]["type"] = "NodePort".into();
        run(&taken, &mut back, Some(&to_cluster_ip)).unwrap();
        assert!(node_port(&back["spec"]["ports"][0]) != 0);
        // → ExternalName drops the address.
        let mut external = old.clone();
        external["spec"]["type"] = "ExternalName".into();
        external["spec"]["externalName"] = "example.com".into();
        for p in external["spec"]["ports"].as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("nodePort");
        }
        run(&taken, &mut external, Some(&old)).unwrap();
        assert!(external["spec"].get("clusterIP").is_none() && external["spec"].get("clusterIPs").is_none());
    }

    #[test]
    fn ports_with_the_same_number_share_their_node_port() {
        let mut svc = service(json!({"type": "NodePort", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}));
        run(&Taken::default(), &mut svc, None).unwrap();
        let ports = node_ports(&svc["spec"]);
        assert_eq!(ports[0], ports[1]);
    }
}
