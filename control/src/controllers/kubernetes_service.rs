//! The `kubernetes` Service in `default`, as kube-apiserver's bootstrap controller keeps it: its
//! ClusterIP is the first address of `--service-cidr`, its port 443 (`https`) leads to the API
//! server's port, and its Endpoints and EndpointSlice (no selector: written here) name the API
//! server's address. Checked every 10 s, so it comes back when deleted and follows a new port.

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
fn advertise_address(listen: SocketAddr) -> Option<Ipv4Addr> {
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

fn endpoints(address: Ipv4Addr, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    })
}

fn slice(address: Ipv4Addr, port: u16) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SERVICE_NAME_LABEL: NAME}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    })
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

async fn sync(client: &kube::Client, cluster_ip: Ipv4Addr, address: Option<Ipv4Addr>, port: u16) -> kube::Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    ensure(&services, &service(cluster_ip, port), &["spec.ports"]).await?;
    if let Some(address) = address {
        let eps: Api<Endpoints> = Api::namespaced(client.clone(), NAMESPACE);
        ensure(&eps, &endpoints(address, port), &["subsets"]).await?;
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
        ensure(&slices, &slice(address, port), &["endpoints", "ports"]).await?;
    }
    Ok(())
}

/// Keeps the `kubernetes` Service (and, when the API server is reachable from pods, its
/// Endpoints and EndpointSlice) until the process ends.
pub async fn run(client: kube::Client, service_cidr: ipnet::Ipv4Net, listen: SocketAddr) {
    let cluster_ip = crate::registry::service_alloc::first_address(&service_cidr);
    let address = advertise_address(listen);
    if address.is_none() {
        tracing::info!(%listen, "the API server listens where pods cannot reach it: the kubernetes Service gets no endpoints");
    }
    loop {
        if let Err(error) = sync(&client, cluster_ip, address, listen.port()).await {
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
        let eps: Endpoints = serde_json::from_value(endpoints("192.168.1.5".parse().unwrap(), 6443)).unwrap();
        assert_eq!(eps.subsets.unwrap()[0].addresses.as_ref().unwrap()[0].ip, "192.168.1.5");
        let slice: EndpointSlice = serde_json::from_value(slice("192.168.1.5".parse().unwrap(), 6443)).unwrap();
        assert_eq!(slice.metadata.labels.unwrap()[SERVICE_NAME_LABEL], NAME);
        assert_eq!(slice.ports.unwrap()[0].port, Some(6443));
    }

    #[test]
    fn loopback_listeners_are_not_advertised() {
        assert_eq!(advertise_address("127.0.0.1:6443".parse().unwrap()), None);
        assert_eq!(advertise_address("192.168.1.5:6443".parse().unwrap()), Some("192.168.1.5".parse().unwrap()));
    }
}
