//! Each server announces itself with a Lease, as kube-apiserver's identity leases do:
//! `kube-system/wharf-server-<identity>`, labelled `wharf.dev/server=true`, its URL in the
//! annotation `wharf.dev/url` (and the address pods reach it at, when it has one, in
//! `wharf.dev/advertise-address`), renewed every [`RENEW`] for [`DURATION`]. The live servers
//! are the ones whose Lease has not expired; the leader deletes expired ones (see
//! `controllers::kubernetes_service`, which also lists the live servers as the `kubernetes`
//! Service's endpoints).

use std::net::SocketAddr;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

pub const NAMESPACE: &str = "kube-system";
pub const LABEL: &str = "wharf.dev/server";
pub const URL_ANNOTATION: &str = "wharf.dev/url";
pub const ADDRESS_ANNOTATION: &str = "wharf.dev/advertise-address";
/// How often a server renews its Lease.
pub const RENEW: Duration = Duration::from_secs(10);
/// How long a server's Lease lasts without renewal.
pub const DURATION: Duration = Duration::from_secs(30);

/// The Lease name of the server `identity`: `wharf-server-<identity>`, made a valid object
/// name (lower case; `_` and anything else outside `[a-z0-9.-]` become `-`).
pub fn lease_name(identity: &str) -> String {
    let cleaned: String = identity
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .collect();
    format!("wharf-server-{}", cleaned.trim_end_matches(['-', '.']))
}

/// The Lease announcing this server, renewed `now`.
pub fn lease(identity: &str, url: &str, advertise: Option<SocketAddr>, now: Timestamp) -> Lease {
    let mut annotations = std::collections::BTreeMap::from([(URL_ANNOTATION.to_string(), url.to_string())]);
    if let Some(address) = advertise {
        annotations.insert(ADDRESS_ANNOTATION.into(), address.to_string());
    }
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(identity)),
            namespace: Some(NAMESPACE.into()),
            labels: Some([(LABEL.to_string(), "true".to_string())].into()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(identity.into()),
            lease_duration_seconds: Some(DURATION.as_secs() as i32),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// A server as its Lease announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub lease: String,
    pub url: String,
    /// Where pods reach it, when they can.
    pub advertise: Option<SocketAddr>,
}

/// The live servers (sorted by URL) and the expired Leases (name and resourceVersion), among
/// `leases`.
pub fn partition(leases: &[Lease], now: Timestamp) -> (Vec<Server>, Vec<(String, Option<String>)>) {
    let (mut live, mut expired) = (Vec::new(), Vec::new());
    for lease in leases {
        let Some(name) = lease.metadata.name.clone() else { continue };
        let alive = lease.spec.as_ref().is_some_and(|spec| !crate::leader::expired(spec, now));
        let annotations = lease.metadata.annotations.as_ref();
        let url = annotations.and_then(|a| a.get(URL_ANNOTATION)).cloned();
        match (alive, url) {
            (true, Some(url)) => live.push(Server {
                lease: name,
                url,
                advertise: annotations.and_then(|a| a.get(ADDRESS_ANNOTATION)).and_then(|a| a.parse().ok()),
            }),
            (true, None) => {}
            (false, _) => expired.push((name, lease.metadata.resource_version.clone())),
        }
    }
    live.sort_by(|a, b| a.url.cmp(&b.url));
    (live, expired)
}

async fn server_leases(client: &kube::Client) -> kube::Result<Vec<Lease>> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    Ok(api.list(&ListParams::default().labels(&format!("{LABEL}=true"))).await?.items)
}

/// The live servers as their Leases announce them.
pub async fn servers(client: &kube::Client) -> kube::Result<(Vec<Server>, Vec<(String, Option<String>)>)> {
    Ok(partition(&server_leases(client).await?, Timestamp::now()))
}

/// The URLs of the live servers (sorted), for the kubeconfig's server list.
pub async fn live_servers(client: &kube::Client) -> kube::Result<Vec<String>> {
    Ok(servers(client).await?.0.into_iter().map(|s| s.url).collect())
}

/// Deletes the expired server Leases (the leader's job), each only at the resourceVersion seen
/// expired: a server that renewed meanwhile keeps its Lease.
pub async fn delete_expired(client: &kube::Client, expired: &[(String, Option<String>)]) {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    for (name, resource_version) in expired {
        let preconditions =
            kube::api::Preconditions { resource_version: resource_version.clone(), ..Default::default() };
        match api.delete(name, &DeleteParams { preconditions: Some(preconditions), ..Default::default() }).await {
            Ok(_) => tracing::info!(lease = %name, "deleted the lease of a server gone for {DURATION:?}"),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => tracing::warn!(lease = %name, %error, "cannot delete an expired server lease"),
        }
    }
}

async fn renew(api: &Api<Lease>, identity: &str, url: &str, advertise: Option<SocketAddr>) -> kube::Result<()> {
    let mut wanted = lease(identity, url, advertise, Timestamp::now());
    let name = lease_name(identity);
    match api.get_opt(&name).await? {
        None => {
            api.create(&PostParams::default(), &wanted).await?;
        }
        Some(current) => {
            if let (Some(spec), Some(old)) = (wanted.spec.as_mut(), current.spec.as_ref()) {
                spec.acquire_time = old.acquire_time.clone().or(spec.acquire_time.take());
            }
            wanted.metadata.resource_version = current.metadata.resource_version;
            api.replace(&name, &PostParams::default(), &wanted).await?;
        }
    }
    Ok(())
}

/// Announces this server (`url`; pods reach it at the address `listen` is advertised at, if
/// any) until the process ends: at once, then every [`RENEW`]. `client` is unfenced.
pub async fn run(client: kube::Client, identity: String, url: String, listen: SocketAddr) {
    let advertise = crate::controllers::kubernetes_service::advertise_address(listen)
        .map(|ip| SocketAddr::new(ip.into(), listen.port()));
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    loop {
        if let Err(error) = renew(&api, &identity, &url, advertise).await {
            tracing::warn!(%error, "cannot renew this server's lease");
        }
        tokio::time::sleep(RENEW).await;
    }
}

/// Withdraws this server's Lease (on a graceful stop), so it leaves the live set at once.
pub async fn remove(client: kube::Client, identity: &str) {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    if let Err(error) = api.delete(&lease_name(identity), &DeleteParams::default()).await {
        tracing::debug!(%error, "cannot delete this server's lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn lease_names_are_valid_object_names() {
        assert_eq!(lease_name("Host_1.local_0a1b2c3d"), "wharf-server-host-1.local-0a1b2c3d");
    }

    #[test]
    fn the_lease_is_labelled_and_annotated() {
        let lease = lease("h_0a1b2c3d", "https://10.0.0.1:6443", Some("10.0.0.1:6443".parse().unwrap()), at(0));
        assert_eq!(lease.metadata.labels.unwrap()[LABEL], "true");
        let annotations = lease.metadata.annotations.unwrap();
        assert_eq!(annotations[URL_ANNOTATION], "https://10.0.0.1:6443");
        assert_eq!(annotations[ADDRESS_ANNOTATION], "10.0.0.1:6443");
        let spec = lease.spec.unwrap();
        assert_eq!((spec.holder_identity.as_deref(), spec.lease_duration_seconds), (Some("h_0a1b2c3d"), Some(30)));
        let loopback = super::lease("h_1", "https://127.0.0.1:6443", None, at(0));
        assert!(!loopback.metadata.annotations.unwrap().contains_key(ADDRESS_ANNOTATION));
    }

    #[test]
    fn servers_renewed_within_their_duration_are_live_the_others_expired() {
        let a = lease("a_1", "https://b.example:6443", Some("10.0.0.2:6443".parse().unwrap()), at(0));
        let b = lease("b_2", "https://a.example:6443", None, at(20));
        let c = lease("c_3", "https://c.example:6443", None, at(-40));
        let (live, expired) = partition(&[a, b, c], at(25));
        let urls: Vec<_> = live.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(urls, ["https://a.example:6443", "https://b.example:6443"]);
        assert_eq!(live[1].advertise, Some("10.0.0.2:6443".parse().unwrap()));
        assert_eq!(expired, [("wharf-server-c-3".to_string(), None)]);
        let (live, expired) = partition(&live_and_gone(), at(31));
        assert!(live.is_empty());
        assert_eq!(expired, [("wharf-server-a-1".to_string(), None)]);
    }

    fn live_and_gone() -> Vec<Lease> {
        vec![lease("a_1", "https://a.example:6443", None, at(0))]
    }
}
