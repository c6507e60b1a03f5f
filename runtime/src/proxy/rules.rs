//! The node's Services as one nftables table, rendered whole from Services and EndpointSlices.
//! Pure: [`frontends`] reads the API objects, [`render`] writes the table's text; the caller
//! hands it to `nft -f -`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// kube-proxy's default ClientIP affinity timeout (3 hours).
const DEFAULT_AFFINITY_SECONDS: i32 = 10800;
/// The packet mark asking for masquerade in postrouting.
const MASQUERADE_MARK: &str = "0x4000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// A Service port's protocol (TCP when unset); None for one nftables cannot match.
    fn parse(protocol: Option<&str>) -> Option<Self> {
        match protocol.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One port of one Service as the data path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    pub namespace: String,
    pub service: String,
    pub protocol: Protocol,
    pub port: u16,
    /// None for headless Services.
    pub cluster_ip: Option<Ipv4Addr>,
    /// Set for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// The ready endpoints, sorted, without duplicates.
    pub endpoints: Vec<SocketAddrV4>,
    /// `sessionAffinity: ClientIP`'s timeout in seconds.
    pub affinity_seconds: Option<u32>,
}

impl Frontend {
    /// `NS/NAME/PROTO/PORT`: unique per frontend, and a valid part of an nftables name (namespaces
    /// and Service names are DNS labels).
    fn key(&self) -> String {
        format!("{}/{}/{}/{}", self.namespace, self.service, self.protocol.as_str(), self.port)
    }
}

/// The frontends of `services` with their ready endpoints from `slices`, in a stable order.
pub fn frontends<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<Frontend> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let labels = slice.metadata.labels.as_ref();
        let (Some(namespace), Some(service)) =
            (slice.metadata.namespace.clone(), labels.and_then(|l| l.get(SERVICE_NAME_LABEL)).cloned())
        else {
            continue;
        };
        by_service.entry((namespace, service)).or_default().push(slice);
    }
    let mut out = Vec::new();
    for service in services {
        let (Some(namespace), Some(name), Some(spec)) =
            (service.metadata.namespace.as_ref(), service.metadata.name.as_ref(), service.spec.as_ref())
        else {
            continue;
        };
        let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
        if kind == "ExternalName" {
            continue;
        }
        let cluster_ip = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok());
        let node_ports = matches!(kind, "NodePort" | "LoadBalancer");
        let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS);
            u32::try_from(timeout.max(1)).unwrap_or(1)
        });
        let slices = by_service.get(&(namespace.clone(), name.clone())).map(Vec::as_slice).unwrap_or_default();
        for port in spec.ports.iter().flatten() {
            let (Some(protocol), Ok(number)) = (Protocol::parse(port.protocol.as_deref()), u16::try_from(port.port))
            else {
                continue;
            };
            let node_port = port.node_port.filter(|_| node_ports).and_then(|p| u16::try_from(p).ok());
            if cluster_ip.is_none() && node_port.is_none() {
                continue;
            }
            out.push(Frontend {
                namespace: namespace.clone(),
                service: name.clone(),
                protocol,
                port: number,
                cluster_ip,
                node_port,
                endpoints: ready_endpoints(port, slices),
                affinity_seconds,
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.namespace, &a.service, a.protocol, a.port).cmp(&(&b.namespace, &b.service, b.protocol, b.port))
    });
    out
}

/// The ready `address:port` endpoints of one EndpointSlice on its port named `port_name` with
/// `protocol` (a missing ready condition means ready, as the EndpointSlice API says). The
/// Service proxy and the gateway's routed Services both read endpoints through this.
pub(crate) fn ready_addresses<'a>(
    slice: &'a EndpointSlice,
    port_name: &str,
    protocol: &str,
) -> impl Iterator<Item = SocketAddr> + 'a {
    let port = slice
        .ports
        .iter()
        .flatten()
        .find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name && p.protocol.as_deref().unwrap_or("TCP") == protocol
        })
        .and_then(|p| p.port)
        .and_then(|p| u16::try_from(p).ok());
    port.into_iter().flat_map(move |port| {
        slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .flat_map(|e| e.addresses.iter())
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .map(move |ip| SocketAddr::new(ip, port))
    })
}

/// The ready IPv4 addresses of `slices` on the slice port named as the Service `port`.
fn ready_endpoints(port: &ServicePort, slices: &[&EndpointSlice]) -> Vec<SocketAddrV4> {
    let name = port.name.as_deref().unwrap_or_default();
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    let mut endpoints: Vec<SocketAddrV4> = slices
        .iter()
        .flat_map(|slice| ready_addresses(slice, name, protocol))
        .filter_map(|a| match a {
            SocketAddr::V4(v4) => Some(v4),
            SocketAddr::V6(_) => None,
        })
        .collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// The whole table `name` (family `ip`) for `frontends`, in the manner of kube-proxy's nftables
/// mode: a `service-ips` and a `service-nodeports` verdict map send a new connection to its
/// frontend's chain, which marks it for masquerade and picks one endpoint at random
/// (`numgen random mod N`) whose chain DNATs to it. Frontends without ready endpoints go to the
/// `no-endpoint-*` maps instead, which the filter hooks answer with a reject. A key two frontends
/// share (a conflict the API should have refused) goes to the first.
pub fn render(name: &str, frontends: &[Frontend]) -> String {
    let mut service_ips = Vec::new();
    let mut service_nodeports = Vec::new();
    let mut no_endpoint_ips = Vec::new();
    let mut no_endpoint_nodeports = Vec::new();
    let mut seen_ips = HashSet::new();
    let mut seen_nodeports = HashSet::new();
    let mut chains = String::new();
    for frontend in frontends {
        let key = frontend.key();
        let proto = frontend.protocol.as_str();
        let ip = frontend.cluster_ip.filter(|ip| seen_ips.insert((*ip, frontend.protocol, frontend.port)));
        let node_port = frontend.node_port.filter(|p| seen_nodeports.insert((frontend.protocol, *p)));
        if ip.is_none() && node_port.is_none() {
            continue;
        }
        let (ips, nodeports, verdict) = if frontend.endpoints.is_empty() {
            (&mut no_endpoint_ips, &mut no_endpoint_nodeports, "goto reject-chain".to_string())
        } else {
            (&mut service_ips, &mut service_nodeports, format!("goto svc-{key}"))
        };
        if let Some(ip) = ip {
            ips.push(format!("{ip} . {proto} . {} : {verdict}", frontend.port));
        }
        if let Some(node_port) = node_port {
            nodeports.push(format!("{proto} . {node_port} : {verdict}"));
        }
        if frontend.endpoints.is_empty() {
            continue;
        }
        let endpoint_names: Vec<String> =
            frontend.endpoints.iter().map(|e| format!("{key}__{}/{}", e.ip(), e.port())).collect();
        if let Some(seconds) = frontend.affinity_seconds {
            for endpoint in &endpoint_names {
                let _ = write!(
                    chains,
                    "\n  set aff-{endpoint} {{\n    type ipv4_addr\n    flags dynamic,timeout\n    timeout {seconds}s\n  }}\n"
                );
            }
        }
        let _ = write!(chains, "\n  chain svc-{key} {{\n    jump mark-for-masquerade\n");
        if frontend.affinity_seconds.is_some() {
            for endpoint in &endpoint_names {
                let _ = writeln!(chains, "    ip saddr @aff-{endpoint} goto ep-{endpoint}");
            }
        }
        let choices: Vec<String> =
            endpoint_names.iter().enumerate().map(|(i, endpoint)| format!("{i} : goto ep-{endpoint}")).collect();
        let _ =
            write!(chains, "    numgen random mod {} vmap {{ {} }}\n  }}\n", endpoint_names.len(), choices.join(", "));
        for (endpoint, address) in endpoint_names.iter().zip(&frontend.endpoints) {
            let _ = write!(chains, "\n  chain ep-{endpoint} {{\n");
            if frontend.affinity_seconds.is_some() {
                let _ = writeln!(chains, "    update @aff-{endpoint} {{ ip saddr }}");
            }
            let _ = write!(chains, "    meta l4proto {proto} dnat to {address}\n  }}\n");
        }
    }
    let mut out = format!("table ip {name} {{\n");
    verdict_map(&mut out, "service-ips", "ipv4_addr . inet_proto . inet_service", &service_ips);
    verdict_map(&mut out, "service-nodeports", "inet_proto . inet_service", &service_nodeports);
    verdict_map(&mut out, "no-endpoint-services", "ipv4_addr . inet_proto . inet_service", &no_endpoint_ips);
    verdict_map(&mut out, "no-endpoint-nodeports", "inet_proto . inet_service", &no_endpoint_nodeports);
    out.push_str(&format!(
        r#"
  chain nat-prerouting {{
    type nat hook prerouting priority -100; policy accept;
    jump services
  }}

  chain nat-output {{
    type nat hook output priority -100; policy accept;
    jump services
  }}

  chain nat-postrouting {{
    type nat hook postrouting priority 100; policy accept;
    jump masquerading
  }}

  chain filter-input {{
    type filter hook input priority -10; policy accept;
    ct state new jump no-endpoints
  }}

  chain filter-forward {{
    type filter hook forward priority -10; policy accept;
    ct state new jump no-endpoints
  }}

  chain filter-output {{
    type filter hook output priority -10; policy accept;
    ct state new jump no-endpoints
  }}

  chain services {{
    ip daddr . meta l4proto . th dport vmap @service-ips
    fib daddr type local meta l4proto . th dport vmap @service-nodeports
  }}

  chain no-endpoints {{
    ip daddr . meta l4proto . th dport vmap @no-endpoint-services
    fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports
  }}

  chain reject-chain {{
    meta l4proto tcp reject with tcp reset
    reject
  }}

  chain mark-for-masquerade {{
    meta mark set meta mark | {MASQUERADE_MARK}
  }}

  chain masquerading {{
    meta mark & {MASQUERADE_MARK} == 0 return
    meta mark set meta mark ^ {MASQUERADE_MARK}
    masquerade fully-random
  }}
"#
    ));
    out.push_str(&chains);
    out.push_str("}\n");
    out
}

fn verdict_map(out: &mut String, name: &str, key: &str, elements: &[String]) {
    let _ = write!(out, "  map {name} {{\n    type {key} : verdict\n");
    if !elements.is_empty() {
        let _ = writeln!(out, "    elements = {{ {} }}", elements.join(", "));
    }
    out.push_str("  }\n");
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{ClientIPConfig, ServiceSpec, SessionAffinityConfig};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn frontend(namespace: &str, service: &str, protocol: Protocol, port: u16, ip: &str) -> Frontend {
        Frontend {
            namespace: namespace.into(),
            service: service.into(),
            protocol,
            port,
            cluster_ip: Some(ip.parse().unwrap()),
            node_port: None,
            endpoints: Vec::new(),
            affinity_seconds: None,
        }
    }

    #[test]
    fn renders_the_whole_table() {
        let web = Frontend {
            node_port: Some(30080),
            endpoints: vec!["10.244.1.2:8080".parse().unwrap(), "10.244.1.3:8080".parse().unwrap()],
            ..frontend("default", "web", Protocol::Tcp, 80, "10.96.0.10")
        };
        let dns = frontend("kube-system", "dns", Protocol::Udp, 53, "10.96.0.53");
        let sticky = Frontend {
            endpoints: vec!["10.244.1.4:8443".parse().unwrap()],
            affinity_seconds: Some(60),
            ..frontend("default", "sticky", Protocol::Tcp, 443, "10.96.0.11")
        };
        let expected = r#"table ip wharf_0a650300_svc {
  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = { 10.96.0.10 . tcp . 80 : goto svc-default/web/tcp/80, 10.96.0.11 . tcp . 443 : goto svc-default/sticky/tcp/443 }
  }
  map service-nodeports {
    type inet_proto . inet_service : verdict
    elements = { tcp . 30080 : goto svc-default/web/tcp/80 }
  }
  map no-endpoint-services {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = { 10.96.0.53 . udp . 53 : goto reject-chain }
  }
  map no-endpoint-nodeports {
    type inet_proto . inet_service : verdict
  }

  chain nat-prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump services
  }

  chain nat-output {
    type nat hook output priority -100; policy accept;
    jump services
  }

  chain nat-postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump masquerading
  }

  chain filter-input {
    type filter hook input priority -10; policy accept;
    ct state new jump no-endpoints
  }

  chain filter-forward {
    type filter hook forward priority -10; policy accept;
    ct state new jump no-endpoints
  }

  chain filter-output {
    type filter hook output priority -10; policy accept;
    ct state new jump no-endpoints
  }

  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
    fib daddr type local meta l4proto . th dport vmap @service-nodeports
  }

  chain no-endpoints {
    ip daddr . meta l4proto . th dport vmap @no-endpoint-services
    fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports
  }

  chain reject-chain {
    meta l4proto tcp reject with tcp reset
    reject
  }

  chain mark-for-masquerade {
    meta mark set meta mark | 0x4000
  }

  chain masquerading {
    meta mark & 0x4000 == 0 return
    meta mark set meta mark ^ 0x4000
    masquerade fully-random
  }

  chain svc-default/web/tcp/80 {
    jump mark-for-masquerade
    numgen random mod 2 vmap { 0 : goto ep-default/web/tcp/80__10.244.1.2/8080, 1 : goto ep-default/web/tcp/80__10.244.1.3/8080 }
  }

  chain ep-default/web/tcp/80__10.244.1.2/8080 {
    meta l4proto tcp dnat to 10.244.1.2:8080
  }

  chain ep-default/web/tcp/80__10.244.1.3/8080 {
    meta l4proto tcp dnat to 10.244.1.3:8080
  }

  set aff-default/sticky/tcp/443__10.244.1.4/8443 {
    type ipv4_addr
    flags dynamic,timeout
    timeout 60s
  }

  chain svc-default/sticky/tcp/443 {
    jump mark-for-masquerade
    ip saddr @aff-default/sticky/tcp/443__10.244.1.4/8443 goto ep-default/sticky/tcp/443__10.244.1.4/8443
    numgen random mod 1 vmap { 0 : goto ep-default/sticky/tcp/443__10.244.1.4/8443 }
  }

  chain ep-default/sticky/tcp/443__10.244.1.4/8443 {
    update @aff-default/sticky/tcp/443__10.244.1.4/8443 { ip saddr }
    meta l4proto tcp dnat to 10.244.1.4:8443
  }
}
"#;
        assert_eq!(render("wharf_0a650300_svc", &[web, dns, sticky]), expected);
    }

    #[test]
    fn a_key_two_frontends_share_goes_to_the_first() {
        let first = Frontend {
            endpoints: vec!["10.0.0.1:80".parse().unwrap()],
            ..frontend("a", "one", Protocol::Tcp, 80, "10.96.0.1")
        };
        let second = Frontend {
            endpoints: vec!["10.0.0.2:80".parse().unwrap()],
            ..frontend("b", "two", Protocol::Tcp, 80, "10.96.0.1")
        };
        let text = render("t", &[first, second]);
        assert!(text.contains("10.96.0.1 . tcp . 80 : goto svc-a/one/tcp/80 }"), "{text}");
        assert!(!text.contains("svc-b/two"), "{text}");
    }

    fn service(name: &str, spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta { namespace: Some("ns".into()), name: Some(name.into()), ..Default::default() },
            spec: Some(spec),
            ..Default::default()
        }
    }

    fn port(name: &str, port: i32, node_port: Option<i32>) -> ServicePort {
        ServicePort { name: Some(name.into()), port, node_port, ..Default::default() }
    }

    fn endpoint(address: &str, ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![address.into()],
            conditions: Some(EndpointConditions { ready, ..Default::default() }),
            ..Default::default()
        }
    }

    fn slice(service: &str, address_type: &str, ports: &[(&str, i32)], endpoints: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(format!("{service}-x")),
                labels: Some(BTreeMap::from([(SERVICE_NAME_LABEL.to_string(), service.to_string())])),
                ..Default::default()
            },
            address_type: address_type.into(),
            endpoints,
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port)| EndpointPort {
                        name: Some(name.to_string()),
                        port: Some(*port),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn frontends_take_ready_endpoints_by_port_name() {
        let web = service(
            "web",
            ServiceSpec {
                type_: Some("NodePort".into()),
                cluster_ip: Some("10.96.0.10".into()),
                ports: Some(vec![port("http", 80, Some(30080)), port("metrics", 9090, Some(30090))]),
                session_affinity: Some("ClientIP".into()),
                session_affinity_config: Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig { timeout_seconds: Some(30) }),
                }),
                ..Default::default()
            },
        );
        let headless = service(
            "headless",
            ServiceSpec {
                cluster_ip: Some("None".into()),
                ports: Some(vec![port("http", 80, None)]),
                ..Default::default()
            },
        );
        let external = service(
            "external",
            ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some("example.com".into()),
                ..Default::default()
            },
        );
        let cluster_ip = service(
            "plain",
            ServiceSpec {
                cluster_ip: Some("10.96.0.11".into()),
                // A nodePort left on a ClusterIP Service opens nothing.
                ports: Some(vec![port("", 53, Some(30053))]),
                ..Default::default()
            },
        );
        let slices = [
            slice(
                "web",
                "IPv4",
                &[("http", 8080), ("metrics", 9100)],
                vec![
                    endpoint("10.244.0.3", None),
                    endpoint("10.244.0.2", Some(true)),
                    endpoint("10.244.0.9", Some(false)),
                ],
            ),
            slice(
                "web",
                "IPv4",
                &[("http", 8080)],
                vec![endpoint("10.244.1.2", Some(true)), endpoint("10.244.0.2", None)],
            ),
            slice("web", "IPv6", &[("http", 8080)], vec![endpoint("fd00::1", Some(true))]),
            slice("plain", "IPv4", &[("other", 53)], vec![endpoint("10.244.0.5", Some(true))]),
        ];
        let got = frontends([&web, &headless, &external, &cluster_ip], &slices);
        let addrs = |list: &[&str]| list.iter().map(|a| a.parse().unwrap()).collect::<Vec<SocketAddrV4>>();
        assert_eq!(
            got,
            vec![
                Frontend {
                    namespace: "ns".into(),
                    service: "plain".into(),
                    protocol: Protocol::Tcp,
                    port: 53,
                    cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 11)),
                    node_port: None,
                    endpoints: Vec::new(),
                    affinity_seconds: None,
                },
                Frontend {
                    namespace: "ns".into(),
                    service: "web".into(),
                    protocol: Protocol::Tcp,
                    port: 80,
                    cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
                    node_port: Some(30080),
                    endpoints: addrs(&["10.244.0.2:8080", "10.244.0.3:8080", "10.244.1.2:8080"]),
                    affinity_seconds: Some(30),
                },
                Frontend {
                    namespace: "ns".into(),
                    service: "web".into(),
                    protocol: Protocol::Tcp,
                    port: 9090,
                    cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
                    node_port: Some(30090),
                    endpoints: addrs(&["10.244.0.2:9100", "10.244.0.3:9100"]),
                    affinity_seconds: Some(30),
                },
            ]
        );
    }
}
