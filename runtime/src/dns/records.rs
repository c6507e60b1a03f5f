//! The cluster DNS record table: what the Service and EndpointSlice watches say, indexed the
//! way names are asked (namespace → Service → EndpointSlice), answered per the Kubernetes DNS
//! specification. Pure: watch events in, answers out, no I/O.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hickory_server::proto::ProtoError;
use hickory_server::proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;

/// TTL of every answer and of negative answers (the SOA minimum). Endpoints move whenever pods
/// are replaced, and a client caches an answer for its TTL: 5 s bounds how long a pod keeps
/// dialling an address that is gone (headless Services, pod names) or misses a Service that was
/// just created, while still sparing the server a query per connection (CoreDNS's default too).
pub const TTL: u32 = 5;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What a name asked inside the cluster domain comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The answer section, and the additional section (addresses of SRV targets).
    Found { answers: Vec<Record>, additionals: Vec<Record> },
    /// The name exists, without records of the asked type (NOERROR, SOA in authority).
    NoData,
    /// No such name (NXDOMAIN, SOA in authority).
    NxDomain,
    /// Inside the domain, but the watches have not listed everything yet: answering NXDOMAIN
    /// now would be cached as a negative answer for a name that may exist (SERVFAIL instead).
    NotReady,
    /// Outside the cluster domain: for the upstream nameservers.
    NotOurs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    name: String,
    /// Lowercase, as in SRV names (`tcp`, `udp`, `sctp`).
    protocol: String,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    ClusterIp(Ipv4Addr),
    Headless,
    ExternalName(Name),
}

#[derive(Debug, Clone)]
struct ServiceEntry {
    kind: Kind,
    ports: Vec<Port>,
    publish_not_ready: bool,
}

#[derive(Debug, Clone)]
struct Endpoint {
    ip: Ipv4Addr,
    /// The name under the Service: the endpoint's hostname, else its address with dashes.
    hostname: String,
    ready: bool,
}

#[derive(Debug, Clone)]
struct SliceEntry {
    endpoints: Vec<Endpoint>,
    ports: Vec<Port>,
}

/// namespace → Service name → entry.
type Services = HashMap<String, HashMap<String, ServiceEntry>>;

#[derive(Debug, Default)]
struct Slices {
    /// namespace → Service name → slice name → entry.
    by_service: HashMap<String, HashMap<String, HashMap<String, SliceEntry>>>,
    /// (namespace, slice name) → Service name, so an update that changes the label or a delete
    /// removes the slice from where it was filed.
    owner: HashMap<(String, String), String>,
}

impl Slices {
    fn insert(&mut self, ns: String, name: String, service: String, entry: SliceEntry) {
        self.remove(&ns, &name);
        self.owner.insert((ns.clone(), name.clone()), service.clone());
        self.by_service.entry(ns).or_default().entry(service).or_default().insert(name, entry);
    }

    fn remove(&mut self, ns: &str, name: &str) {
        let Some(service) = self.owner.remove(&(ns.to_string(), name.to_string())) else { return };
        if let Some(services) = self.by_service.get_mut(ns) {
            if let Some(slices) = services.get_mut(&service) {
                slices.remove(name);
                if slices.is_empty() {
                    services.remove(&service);
                }
            }
            if services.is_empty() {
                self.by_service.remove(ns);
            }
        }
    }

    fn of(&self, ns: &str, service: &str) -> impl Iterator<Item = &SliceEntry> {
        self.by_service.get(ns).and_then(|s| s.get(service)).into_iter().flat_map(|s| s.values())
    }
}

/// The record table of one cluster domain.
#[derive(Debug)]
pub struct Records {
    /// Lowercase, fully qualified.
    domain: Name,
    services: Services,
    slices: Slices,
    /// A relist in progress (watch `Init` .. `InitDone`): built aside, swapped in at the end so
    /// names keep answering meanwhile.
    relisting_services: Option<Services>,
    relisting_slices: Option<Slices>,
    services_synced: bool,
    slices_synced: bool,
    /// SOA serial: bumped by every change.
    serial: u32,
}

impl Records {
    /// An empty table for `domain` (e.g. `cluster.local`, with or without the trailing dot).
    pub fn new(domain: &str) -> Result<Self, ProtoError> {
        let mut domain = Name::from_ascii(domain)?.to_lowercase();
        domain.set_fqdn(true);
        Ok(Self {
            domain,
            services: Services::new(),
            slices: Slices::default(),
            relisting_services: None,
            relisting_slices: None,
            services_synced: false,
            slices_synced: false,
            serial: 1,
        })
    }

    pub fn domain(&self) -> &Name {
        &self.domain
    }

    /// Both watches have listed everything once.
    pub fn synced(&self) -> bool {
        self.services_synced && self.slices_synced
    }

    /// Applies one event of the Service watch.
    pub fn service_event(&mut self, event: Event<Service>) {
        self.serial = self.serial.wrapping_add(1);
        match event {
            Event::Init => self.relisting_services = Some(Services::new()),
            Event::InitApply(svc) => {
                let target = self.relisting_services.get_or_insert_with(Services::new);
                apply_service(target, &svc);
            }
            Event::InitDone => {
                if let Some(services) = self.relisting_services.take() {
                    self.services = services;
                }
                self.services_synced = true;
            }
            Event::Apply(svc) => apply_service(&mut self.services, &svc),
            Event::Delete(svc) => {
                let (ns, name) = key(&svc.metadata);
                remove_service(&mut self.services, &ns, &name);
            }
        }
    }

    /// Applies one event of the EndpointSlice watch.
    pub fn slice_event(&mut self, event: Event<EndpointSlice>) {
        self.serial = self.serial.wrapping_add(1);
        match event {
            Event::Init => self.relisting_slices = Some(Slices::default()),
            Event::InitApply(slice) => {
                let target = self.relisting_slices.get_or_insert_with(Slices::default);
                apply_slice(target, &slice);
            }
            Event::InitDone => {
                if let Some(slices) = self.relisting_slices.take() {
                    self.slices = slices;
                }
                self.slices_synced = true;
            }
            Event::Apply(slice) => apply_slice(&mut self.slices, &slice),
            Event::Delete(slice) => {
                let (ns, name) = key(&slice.metadata);
                self.slices.remove(&ns, &name);
            }
        }
    }

    /// The zone's SOA record; its minimum (the negative-answer TTL) is [`TTL`].
    pub fn soa(&self) -> Record {
        let child = |label: &str| {
            Name::from_ascii(label).and_then(|n| n.append_domain(&self.domain)).unwrap_or_else(|_| self.domain.clone())
        };
        let soa = SOA::new(child("ns.dns"), child("hostmaster"), self.serial, 7200, 1800, 86400, TTL);
        Record::from_rdata(self.domain.clone(), TTL, RData::SOA(soa))
    }

    /// Answers `qtype` for `name` (any case, with or without the trailing dot). Answer records
    /// carry `name` as it was asked.
    pub fn lookup(&self, name: &Name, qtype: RecordType) -> Lookup {
        let mut lower = name.to_lowercase();
        lower.set_fqdn(true);
        if !self.domain.zone_of(&lower) {
            return Lookup::NotOurs;
        }
        if !self.synced() {
            return Lookup::NotReady;
        }
        let mut owner = name.clone();
        owner.set_fqdn(true);
        let relative = usize::from(lower.num_labels() - self.domain.num_labels());
        let labels: Vec<&str> =
            lower.iter().take(relative).map(|l| std::str::from_utf8(l).unwrap_or_default()).collect();
        match labels.as_slice() {
            [] if qtype == RecordType::SOA => found(vec![self.soa()], Vec::new()),
            [] | ["svc"] | ["pod"] => Lookup::NoData,
            [ns, "svc"] if self.services.contains_key(*ns) => Lookup::NoData,
            [svc, ns, "svc"] => self.service(&owner, ns, svc, qtype),
            [host, svc, ns, "svc"] => self.endpoint(&owner, ns, svc, host, qtype),
            [port, proto, svc, ns, "svc"] => match (port.strip_prefix('_'), proto.strip_prefix('_')) {
                (Some(port), Some(proto)) => self.srv(&owner, ns, svc, port, proto, qtype),
                _ => Lookup::NxDomain,
            },
            [address, ns, "pod"] if !ns.is_empty() => match address.replace('-', ".").parse::<Ipv4Addr>() {
                Ok(ip) if qtype == RecordType::A => found(vec![a(&owner, ip)], Vec::new()),
                Ok(_) => Lookup::NoData,
                Err(_) => Lookup::NxDomain,
            },
            _ => Lookup::NxDomain,
        }
    }

    fn entry(&self, ns: &str, svc: &str) -> Option<&ServiceEntry> {
        self.services.get(ns).and_then(|s| s.get(svc))
    }

    /// The endpoints a headless Service's names resolve to (ready ones, or all when the Service
    /// publishes not-ready addresses), each address once, in address order.
    fn endpoints(&self, ns: &str, svc: &str, entry: &ServiceEntry) -> Vec<(&Endpoint, &SliceEntry)> {
        let mut out: Vec<(&Endpoint, &SliceEntry)> = self
            .slices
            .of(ns, svc)
            .flat_map(|slice| slice.endpoints.iter().map(move |e| (e, slice)))
            .filter(|(e, _)| e.ready || entry.publish_not_ready)
            .collect();
        out.sort_by_key(|(e, _)| e.ip);
        out.dedup_by_key(|(e, _)| e.ip);
        out
    }

    fn service(&self, owner: &Name, ns: &str, svc: &str, qtype: RecordType) -> Lookup {
        let Some(entry) = self.entry(ns, svc) else { return Lookup::NxDomain };
        match (&entry.kind, qtype) {
            (Kind::ExternalName(target), _) => {
                found(vec![Record::from_rdata(owner.clone(), TTL, RData::CNAME(CNAME(target.clone())))], Vec::new())
            }
            (Kind::ClusterIp(ip), RecordType::A) => found(vec![a(owner, *ip)], Vec::new()),
            (Kind::Headless, RecordType::A) => {
                let answers: Vec<Record> = self.endpoints(ns, svc, entry).iter().map(|(e, _)| a(owner, e.ip)).collect();
                if answers.is_empty() { Lookup::NoData } else { found(answers, Vec::new()) }
            }
            _ => Lookup::NoData,
        }
    }

    fn endpoint(&self, owner: &Name, ns: &str, svc: &str, host: &str, qtype: RecordType) -> Lookup {
        let Some(entry) = self.entry(ns, svc).filter(|e| e.kind == Kind::Headless) else { return Lookup::NxDomain };
        let answers: Vec<Record> = self
            .endpoints(ns, svc, entry)
            .iter()
            .filter(|(e, _)| e.hostname.eq_ignore_ascii_case(host))
            .map(|(e, _)| a(owner, e.ip))
            .collect();
        match (answers.is_empty(), qtype) {
            (true, _) => Lookup::NxDomain,
            (false, RecordType::A) => found(answers, Vec::new()),
            (false, _) => Lookup::NoData,
        }
    }

    fn srv(&self, owner: &Name, ns: &str, svc: &str, port: &str, proto: &str, qtype: RecordType) -> Lookup {
        let Some(entry) = self.entry(ns, svc) else { return Lookup::NxDomain };
        let named = |p: &&Port| !p.name.is_empty() && p.name.eq_ignore_ascii_case(port) && p.protocol == proto;
        let service_name = |suffix: &[&str]| -> Option<Name> {
            let labels = suffix.iter().copied().chain([svc, ns, "svc"]);
            Name::from_labels(labels).ok()?.append_domain(&self.domain).ok()
        };
        let mut targets: Vec<(Name, Ipv4Addr, u16)> = Vec::new();
        match &entry.kind {
            Kind::ClusterIp(ip) => {
                if let (Some(p), Some(target)) = (entry.ports.iter().find(named), service_name(&[])) {
                    targets.push((target, *ip, p.port));
                }
            }
            Kind::Headless => {
                for (e, slice) in self.endpoints(ns, svc, entry) {
                    if let (Some(p), Some(target)) =
                        (slice.ports.iter().find(named), service_name(&[e.hostname.as_str()]))
                    {
                        targets.push((target, e.ip, p.port));
                    }
                }
            }
            Kind::ExternalName(_) => {}
        }
        if targets.is_empty() {
            return Lookup::NxDomain;
        }
        if qtype != RecordType::SRV {
            return Lookup::NoData;
        }
        let weight = u16::try_from(100 / targets.len()).unwrap_or(1).max(1);
        let answers = targets
            .iter()
            .map(|(target, _, port)| {
                Record::from_rdata(owner.clone(), TTL, RData::SRV(SRV::new(0, weight, *port, target.clone())))
            })
            .collect();
        let additionals = targets.iter().map(|(target, ip, _)| a(target, *ip)).collect();
        found(answers, additionals)
    }
}

fn found(answers: Vec<Record>, additionals: Vec<Record>) -> Lookup {
    Lookup::Found { answers, additionals }
}

fn a(owner: &Name, ip: Ipv4Addr) -> Record {
    Record::from_rdata(owner.clone(), TTL, RData::A(A(ip)))
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

fn protocol(p: Option<&String>) -> String {
    p.map(|p| p.to_ascii_lowercase()).unwrap_or_else(|| "tcp".to_string())
}

fn apply_service(services: &mut Services, svc: &Service) {
    let (ns, name) = key(&svc.metadata);
    let Some(entry) = service_entry(svc) else {
        // Not (yet) addressable: no ClusterIP allocated, IPv6 only, or a bad externalName.
        remove_service(services, &ns, &name);
        return;
    };
    services.entry(ns).or_default().insert(name, entry);
}

fn remove_service(services: &mut Services, ns: &str, name: &str) {
    if let Some(in_ns) = services.get_mut(ns) {
        in_ns.remove(name);
        if in_ns.is_empty() {
            services.remove(ns);
        }
    }
}

fn service_entry(svc: &Service) -> Option<ServiceEntry> {
    let spec = svc.spec.as_ref()?;
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let mut target = Name::from_ascii(spec.external_name.as_deref()?).ok()?;
        target.set_fqdn(true);
        Kind::ExternalName(target)
    } else {
        match spec.cluster_ip.as_deref()? {
            "None" => Kind::Headless,
            ip => Kind::ClusterIp(ip.parse().ok()?),
        }
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(Port {
                name: p.name.clone().unwrap_or_default(),
                protocol: protocol(p.protocol.as_ref()),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect();
    Some(ServiceEntry { kind, ports, publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false) })
}

fn apply_slice(slices: &mut Slices, slice: &EndpointSlice) {
    let (ns, name) = key(&slice.metadata);
    let service = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
    let (Some(service), "IPv4") = (service, slice.address_type.as_str()) else {
        slices.remove(&ns, &name);
        return;
    };
    let endpoints = slice
        .endpoints
        .iter()
        .flat_map(|e| {
            // An unknown readiness counts as ready (EndpointConditions.ready).
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            e.addresses.iter().filter_map(move |addr| {
                let ip: Ipv4Addr = addr.parse().ok()?;
                let hostname = e.hostname.clone().unwrap_or_else(|| addr.replace('.', "-"));
                Some(Endpoint { ip, hostname: hostname.to_ascii_lowercase(), ready })
            })
        })
        .collect();
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(Port {
                name: p.name.clone().unwrap_or_default(),
                protocol: protocol(p.protocol.as_ref()),
                port: u16::try_from(p.port?).ok()?,
            })
        })
        .collect();
    slices.insert(ns, name, service.clone(), SliceEntry { endpoints, ports });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub(crate) fn service(ns: &str, name: &str, cluster_ip: &str, ports: &[(&str, i32)]) -> Service {
        Service {
            metadata: ObjectMeta { namespace: Some(ns.into()), name: Some(name.into()), ..Default::default() },
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ServicePort {
                            name: (!n.is_empty()).then(|| n.to_string()),
                            port: *p,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `endpoints`: (address, hostname, ready).
    pub(crate) fn slice(
        ns: &str,
        name: &str,
        service: &str,
        endpoints: &[(&str, Option<&str>, bool)],
        ports: &[(&str, i32)],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), service.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: endpoints
                .iter()
                .map(|(ip, host, ready)| SliceEndpoint {
                    addresses: vec![ip.to_string()],
                    hostname: host.map(str::to_string),
                    conditions: Some(EndpointConditions { ready: Some(*ready), ..Default::default() }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| EndpointPort {
                        name: Some(n.to_string()),
                        port: Some(*p),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    /// A synced table of `cluster.local` holding `services` and `slices`.
    pub(crate) fn table(
        services: impl IntoIterator<Item = Service>,
        slices: impl IntoIterator<Item = EndpointSlice>,
    ) -> Records {
        table_in("cluster.local", services, slices)
    }

    pub(crate) fn table_in(
        domain: &str,
        services: impl IntoIterator<Item = Service>,
        slices: impl IntoIterator<Item = EndpointSlice>,
    ) -> Records {
        let mut records = Records::new(domain).unwrap();
        records.service_event(Event::Init);
        for s in services {
            records.service_event(Event::InitApply(s));
        }
        records.service_event(Event::InitDone);
        records.slice_event(Event::Init);
        for s in slices {
            records.slice_event(Event::InitApply(s));
        }
        records.slice_event(Event::InitDone);
        records
    }

    fn sample() -> Records {
        let headless = service("default", "db", "None", &[("pg", 5432)]);
        table(
            vec![service("default", "web", "10.96.0.10", &[("http", 80), ("", 81)]), headless],
            vec![
                slice(
                    "default",
                    "db-a",
                    "db",
                    &[("10.244.1.5", Some("db-0"), true), ("10.244.1.6", None, true)],
                    &[("pg", 15432)],
                ),
                slice("default", "db-b", "db", &[("10.244.2.7", Some("db-2"), false)], &[("pg", 15432)]),
            ],
        )
    }

    fn ask(records: &Records, name: &str, qtype: RecordType) -> Lookup {
        records.lookup(&Name::from_ascii(name).unwrap(), qtype)
    }

    fn addresses(lookup: &Lookup) -> Vec<String> {
        match lookup {
            Lookup::Found { answers, .. } => answers
                .iter()
                .map(|r| match &r.data {
                    RData::A(a) => a.0.to_string(),
                    RData::SRV(srv) => format!("{} {}", srv.port, srv.target),
                    RData::CNAME(c) => c.0.to_string(),
                    other => format!("{other:?}"),
                })
                .collect(),
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[test]
    fn service_a_is_its_cluster_ip() {
        let records = sample();
        let lookup = ask(&records, "web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(addresses(&lookup), ["10.96.0.10"]);
        let Lookup::Found { answers, .. } = lookup else { unreachable!() };
        assert_eq!(answers[0].ttl, TTL);
        assert_eq!(answers[0].name.to_string(), "web.default.svc.cluster.local.");
    }

    #[test]
    fn names_are_case_insensitive_and_the_trailing_dot_optional() {
        let records = sample();
        for name in ["WEB.Default.SVC.cluster.LOCAL.", "web.default.svc.cluster.local", "Web.default.svc.Cluster.local"]
        {
            let lookup = ask(&records, name, RecordType::A);
            assert_eq!(addresses(&lookup), ["10.96.0.10"], "{name}");
            // The answer carries the name as it was asked.
            let Lookup::Found { answers, .. } = lookup else { unreachable!() };
            assert!(answers[0].name.to_string().trim_end_matches('.').eq(name.trim_end_matches('.')), "{name}");
        }
    }

    #[test]
    fn headless_service_is_its_ready_endpoints() {
        let records = sample();
        assert_eq!(
            addresses(&ask(&records, "db.default.svc.cluster.local", RecordType::A)),
            ["10.244.1.5", "10.244.1.6"]
        );
        assert_eq!(addresses(&ask(&records, "db-0.db.default.svc.cluster.local", RecordType::A)), ["10.244.1.5"]);
        // Without a hostname an endpoint is named by its dashed address.
        assert_eq!(addresses(&ask(&records, "10-244-1-6.db.default.svc.cluster.local", RecordType::A)), ["10.244.1.6"]);
        // Not ready: not published.
        assert_eq!(ask(&records, "db-2.db.default.svc.cluster.local", RecordType::A), Lookup::NxDomain);
    }

    #[test]
    fn publish_not_ready_addresses_includes_every_endpoint() {
        let mut svc = service("default", "db", "None", &[("pg", 5432)]);
        svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let records = table(vec![svc], vec![slice("default", "s", "db", &[("10.244.2.7", None, false)], &[])]);
        assert_eq!(addresses(&ask(&records, "db.default.svc.cluster.local", RecordType::A)), ["10.244.2.7"]);
    }

    #[test]
    fn srv_for_named_ports() {
        let records = sample();
        let lookup = ask(&records, "_http._tcp.web.default.svc.cluster.local", RecordType::SRV);
        assert_eq!(addresses(&lookup), ["80 web.default.svc.cluster.local."]);
        let Lookup::Found { additionals, .. } = lookup else { unreachable!() };
        assert_eq!(additionals.len(), 1);
        assert_eq!(additionals[0].data, RData::A(A("10.96.0.10".parse().unwrap())));
        // Headless: one SRV per ready endpoint, its port from the slice.
        assert_eq!(
            addresses(&ask(&records, "_pg._tcp.db.default.svc.cluster.local", RecordType::SRV)),
            ["15432 db-0.db.default.svc.cluster.local.", "15432 10-244-1-6.db.default.svc.cluster.local."]
        );
        assert_eq!(ask(&records, "_http._udp.web.default.svc.cluster.local", RecordType::SRV), Lookup::NxDomain);
        assert_eq!(ask(&records, "_nope._tcp.web.default.svc.cluster.local", RecordType::SRV), Lookup::NxDomain);
        assert_eq!(ask(&records, "_http._tcp.web.default.svc.cluster.local", RecordType::A), Lookup::NoData);
    }

    #[test]
    fn pod_names_are_dashed_addresses() {
        let records = sample();
        assert_eq!(addresses(&ask(&records, "10-244-3-9.any.pod.cluster.local", RecordType::A)), ["10.244.3.9"]);
        assert_eq!(ask(&records, "10-244-3.any.pod.cluster.local", RecordType::A), Lookup::NxDomain);
    }

    #[test]
    fn unknown_names_and_other_types() {
        let records = sample();
        assert_eq!(ask(&records, "nope.default.svc.cluster.local", RecordType::A), Lookup::NxDomain);
        assert_eq!(ask(&records, "web.other.svc.cluster.local", RecordType::A), Lookup::NxDomain);
        assert_eq!(ask(&records, "a.b.c.d.e.f.cluster.local", RecordType::A), Lookup::NxDomain);
        assert_eq!(ask(&records, "other.svc.cluster.local", RecordType::A), Lookup::NxDomain);
        // The name exists: AAAA (asked beside A by every resolver) is empty, not NXDOMAIN.
        assert_eq!(ask(&records, "web.default.svc.cluster.local", RecordType::AAAA), Lookup::NoData);
        assert_eq!(ask(&records, "default.svc.cluster.local", RecordType::A), Lookup::NoData);
        assert_eq!(ask(&records, "cluster.local", RecordType::A), Lookup::NoData);
        assert_eq!(addresses(&ask(&records, "cluster.local", RecordType::SOA)).len(), 1);
        assert_eq!(ask(&records, "example.com", RecordType::A), Lookup::NotOurs);
        assert_eq!(ask(&records, "local", RecordType::A), Lookup::NotOurs);
    }

    #[test]
    fn external_name_is_a_cname() {
        let mut svc = service("default", "ext", "", &[]);
        let spec = svc.spec.as_mut().unwrap();
        spec.type_ = Some("ExternalName".into());
        spec.external_name = Some("db.example.com".into());
        let records = table(vec![svc], vec![]);
        assert_eq!(addresses(&ask(&records, "ext.default.svc.cluster.local", RecordType::A)), ["db.example.com."]);
    }

    #[test]
    fn events_update_and_delete() {
        let mut records = sample();
        records.service_event(Event::Apply(service("default", "web", "10.96.0.11", &[])));
        assert_eq!(addresses(&ask(&records, "web.default.svc.cluster.local", RecordType::A)), ["10.96.0.11"]);
        records.service_event(Event::Delete(service("default", "web", "10.96.0.11", &[])));
        assert_eq!(ask(&records, "web.default.svc.cluster.local", RecordType::A), Lookup::NxDomain);

        records.slice_event(Event::Apply(slice("default", "db-b", "db", &[("10.244.2.7", Some("db-2"), true)], &[])));
        assert_eq!(addresses(&ask(&records, "db-2.db.default.svc.cluster.local", RecordType::A)), ["10.244.2.7"]);
        records.slice_event(Event::Delete(slice("default", "db-a", "db", &[], &[])));
        assert_eq!(addresses(&ask(&records, "db.default.svc.cluster.local", RecordType::A)), ["10.244.2.7"]);
        records.slice_event(Event::Delete(slice("default", "db-b", "db", &[], &[])));
        assert_eq!(ask(&records, "db.default.svc.cluster.local", RecordType::A), Lookup::NoData);
    }

    #[test]
    fn not_ready_until_both_watches_listed_and_a_relist_replaces_the_table() {
        let mut records = Records::new("cluster.local.").unwrap();
        assert_eq!(ask(&records, "web.default.svc.cluster.local", RecordType::A), Lookup::NotReady);
        assert_eq!(ask(&records, "example.com", RecordType::A), Lookup::NotOurs);
        records.service_event(Event::Init);
        records.service_event(Event::InitApply(service("default", "web", "10.96.0.10", &[])));
        records.service_event(Event::InitDone);
        assert_eq!(ask(&records, "web.default.svc.cluster.local", RecordType::A), Lookup::NotReady);
        records.slice_event(Event::Init);
        records.slice_event(Event::InitDone);
        assert_eq!(addresses(&ask(&records, "web.default.svc.cluster.local", RecordType::A)), ["10.96.0.10"]);

        // A relist (after the watch lost its place): old names answer until it is done.
        records.service_event(Event::Init);
        records.service_event(Event::InitApply(service("default", "api", "10.96.0.12", &[])));
        assert_eq!(addresses(&ask(&records, "web.default.svc.cluster.local", RecordType::A)), ["10.96.0.10"]);
        records.service_event(Event::InitDone);
        assert_eq!(ask(&records, "web.default.svc.cluster.local", RecordType::A), Lookup::NxDomain);
        assert_eq!(addresses(&ask(&records, "api.default.svc.cluster.local", RecordType::A)), ["10.96.0.12"]);
    }

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// 1,000 Services (ClusterIP, two named ports) and their EndpointSlices (three endpoints,
    /// two ports each), made and dropped one event at a time as from a watch.
    fn thousand_services(domain: &str) -> Records {
        let services = (0..1000).map(|i| {
            service(
                &format!("ns{}", i % 20),
                &format!("svc{i}"),
                &format!("10.96.{}.{}", i / 250, i % 250),
                &[("http", 80), ("grpc", 9090)],
            )
        });
        let slices = (0..1000).map(|i| {
            let eps: Vec<String> = (0..3).map(|j| format!("10.244.{}.{}", i / 80, (i % 80) * 3 + j)).collect();
            let eps: Vec<(&str, Option<&str>, bool)> = eps.iter().map(|e| (e.as_str(), None, true)).collect();
            slice(
                &format!("ns{}", i % 20),
                &format!("svc{i}-x1"),
                &format!("svc{i}"),
                &eps,
                &[("http", 8080), ("grpc", 9090)],
            )
        });
        table_in(domain, services, slices)
    }

    /// Prints the resident memory a table of 1,000 Services takes: the growth from a second
    /// table once a first one warmed the allocator. Run alone for a clean figure:
    /// `cargo test -p wharf-runtime --lib dns::records::tests::memory -- --nocapture --test-threads=1`.
    #[test]
    fn memory_for_a_thousand_services() {
        let start = rss_kib();
        let first = thousand_services("cluster.local");
        let warmed = rss_kib();
        let second = thousand_services("cluster.example");
        let after = rss_kib();
        assert_eq!(addresses(&ask(&first, "svc999.ns19.svc.cluster.local", RecordType::A)), ["10.96.3.249"]);
        assert_eq!(addresses(&ask(&second, "svc999.ns19.svc.cluster.example", RecordType::A)), ["10.96.3.249"]);
        println!(
            "dns table of 1000 Services + 1000 EndpointSlices (3 endpoints each): RSS +{} KiB (first, cold allocator +{} KiB)",
            after.saturating_sub(warmed),
            warmed.saturating_sub(start),
        );
    }
}
