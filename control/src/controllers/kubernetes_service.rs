//! The `kubernetes` Service in `default`, as kube-apiserver's bootstrap controller keeps it: its
//! ClusterIP is the first address of `--service-cidr`, its port 443 (`https`) leads to the API
//! server's port, and its Endpoints and EndpointSlice (no selector: written here) name the
//! address of every live API server (from their Leases, see `server_lease`; the ones pods can
//! reach). Run by the leader only, which also deletes the Leases of servers gone for good.
//! Checked every 10 s, so it comes back when deleted and follows servers coming and going.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::endpoint_slice::SERVICE_NAME_LABEL;

const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";
const RESYNC: Duration = Duration::from_secs(10);

/// The address pods reach the API server at: the one it listens on, or for a wildcard listener
/// the host's address toward the default route. None for loopback (unreachable from pods).
pub(crate) fn advertise_address(listen: SocketAddr) -> Option<Ipv4Addr> {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            // A connected UDP socket sends nothing; it only picks the outgoing address.
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            socket.connect("192.0.2.1:9").ok()?;
            match socket.local_addr().ok()?.ip() {
                IpAddr::V4(ip) => ip,
                IpAddr::V6(_) => return None,
            }
        }
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => return None,
    };
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn service(cluster_ip: Ipv4Addr, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP", "clusterIP": cluster_ip.to_string(), "clusterIPs": [cluster_ip.to_string()],
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
        },
    })
}

/// The reachable addresses of the live servers, grouped by port (all servers usually share one).
fn by_port(servers: &[SocketAddr]) -> BTreeMap<u16, Vec<String>> {
    let mut ports: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for server in servers {
        if let IpAddr::V4(ip) = server.ip() {
            ports.entry(server.port()).or_default().push(ip.to_string());
        }
    }
    for ips in ports.values_mut() {
        ips.sort();
        ips.dedup();
    }
    ports
}

fn endpoints(servers: &BTreeMap<u16, Vec<String>>) -> Value {
    let subsets: Vec<Value> = servers
        .iter()
        .map(|(port, ips)| {
            let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
            json!({"addresses": addresses, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": subsets,
    })
}

/// The slice has one port list: it names the servers on the port most of them use.
fn slice(servers: &BTreeMap<u16, Vec<String>>) -> Option<Value> {
    let (port, ips) = servers.iter().max_by_key(|(port, ips)| (ips.len(), std::cmp::Reverse(**port)))?;
    let endpoints: Vec<Value> =
        ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect();
    Some(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SERVICE_NAME_LABEL: NAME}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }))
}

/// Creates `wanted` when missing; otherwise rewrites the fields `owned` names when they differ.
async fn ensure<K>(api: &Api<K>, wanted: &Value, owned: &[&str]) -> kube::Result<()>
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let wanted_obj: K = serde_json::from_value(wanted.clone()).map_err(kube::Error::SerdeError)?;
    let Some(current) = api.get_opt(NAME).await? else {
        api.create(&PostParams::default(), &wanted_obj).await?;
        return Ok(());
    };
    let mut current = serde_json::to_value(&current).map_err(kube::Error::SerdeError)?;
    let mut changed = false;
    for field in owned {
        let (section, key) = field.split_once('.').unwrap_or(("", field));
        let (now, want) = if section.is_empty() {
            (&mut current[*field], &wanted[*field])
        } else {
            (&mut current[section][key], &wanted[section][key])
        };
        if now != want {
            *now = want.clone();
            changed = true;
        }
    }
    if changed {
        let obj: K = serde_json::from_value(current).map_err(kube::Error::SerdeError)?;
        api.replace(NAME, &PostParams::default(), &obj).await?;
    }
    Ok(())
}

async fn sync(client: &kube::Client, cluster_ip: Ipv4Addr, own: Option<SocketAddr>, port: u16) -> kube::Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    ensure(&services, &service(cluster_ip, port), &["spec.ports"]).await?;
    let (live, expired) = crate::server_lease::servers(client).await?;
    crate::server_lease::delete_expired(client, &expired).await;
    // This server counts even before its own Lease is written.
    let addresses: Vec<SocketAddr> = live.iter().filter_map(|s| s.advertise).chain(own).collect();
    let servers = by_port(&addresses);
    if let Some(slice) = slice(&servers) {
        let eps: Api<Endpoints> = Api::namespaced(client.clone(), NAMESPACE);
        ensure(&eps, &endpoints(&servers), &["subsets"]).await?;
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
        ensure(&slices, &slice, &["endpoints", "ports"]).await?;
    }
    Ok(())
}

/// Keeps the `kubernetes` Service (and, when API servers are reachable from pods, its
/// Endpoints and EndpointSlice) while this server leads.
pub async fn run(client: kube::Client, service_cidr: ipnet::Ipv4Net, listen: SocketAddr) {
    let cluster_ip = crate::registry::service_alloc::first_address(&service_cidr);
    let own = advertise_address(listen).map(|ip| SocketAddr::new(ip.into(), listen.port()));
    if own.is_none() {
        tracing::info!(%listen, "this API server listens where pods cannot reach it: it is no endpoint of the kubernetes Service");
    }
    loop {
        if let Err(error) = sync(&client, cluster_ip, own, listen.port()).await {
            tracing::warn!(%error, "cannot keep the kubernetes Service");
        }
        tokio::time::sleep(RESYNC).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_takes_the_first_address_and_leads_443_to_the_server_port() {
        let first = crate::registry::service_alloc::first_address(&"10.96.0.0/12".parse().unwrap());
        let svc: Service = serde_json::from_value(service(first, 6443)).unwrap();
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
        assert!(spec.selector.is_none(), "no selector: the endpoints controllers leave it alone");
        let port = &spec.ports.unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("https"), 443));
        let servers = by_port(&["192.168.1.5:6443".parse().unwrap()]);
        let eps: Endpoints = serde_json::from_value(endpoints(&servers)).unwrap();
        assert_eq!(eps.subsets.unwrap()[0].addresses.as_ref().unwrap()[0].ip, "192.168.1.5");
        let slice: EndpointSlice = serde_json::from_value(slice(&servers).unwrap()).unwrap();
        assert_eq!(slice.metadata.labels.unwrap()[SERVICE_NAME_LABEL], NAME);
        assert_eq!(slice.ports.unwrap()[0].port, Some(6443));
    }

    #[test]
    fn every_live_server_is_an_endpoint() {
        let addresses: Vec<SocketAddr> = ["10.0.0.3:6443", "10.0.0.1:6443", "10.0.0.2:7443", "10.0.0.1:6443"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let servers = by_port(&addresses);
        let eps: Endpoints = serde_json::from_value(endpoints(&servers)).unwrap();
        let subsets = eps.subsets.unwrap();
        let ips = |i: usize| subsets[i].addresses.as_ref().unwrap().iter().map(|a| a.ip.clone()).collect::<Vec<_>>();
        assert_eq!(
            (ips(0), subsets[0].ports.as_ref().unwrap()[0].port),
            (vec!["10.0.0.1".into(), "10.0.0.3".into()], 6443)
        );
        assert_eq!((ips(1), subsets[1].ports.as_ref().unwrap()[0].port), (vec!["10.0.0.2".to_string()], 7443));
        let slice: EndpointSlice = serde_json::from_value(slice(&servers).unwrap()).unwrap();
        assert_eq!(slice.endpoints.len(), 2, "the slice names the servers on the common port");
        assert_eq!(slice.ports.unwrap()[0].port, Some(6443));
        assert!(super::slice(&by_port(&[])).is_none(), "no reachable server: no endpoints written");
    }

    #[test]
    fn loopback_listeners_are_not_advertised() {
        assert_eq!(advertise_address("127.0.0.1:6443".parse().unwrap()), None);
        assert_eq!(advertise_address("192.168.1.5:6443".parse().unwrap()), Some("192.168.1.5".parse().unwrap()));
    }
}
