//! The Services' data path: the agent programs nftables as kube-proxy's nftables mode does.
//!
//! Services and EndpointSlices are watched into reflector stores; on every change (debounced by
//! [`DEBOUNCE`]) the whole table `wharf_<id>_svc` is rendered again ([`rules::render`]) and, when
//! its text changed, replaced in one `nft -f -` transaction (create, delete and define the table
//! again), so a packet sees either the old rules or the new ones. An agent that starts replaces
//! whatever table an earlier agent left; one that stops cleanly (its task dropped) deletes it.
//!
//! - A ClusterIP:port goes to one ready endpoint chosen at random (`numgen random mod N` into a
//!   verdict map of per-endpoint chains that DNAT), both for traffic routed through the node
//!   (prerouting: pods, other hosts) and for connections the node itself opens (output).
//! - A NodePort answers on every local address (`fib daddr type local`), 127.0.0.1 included.
//!   Connections to 127.0.0.1 are DNATed to a pod address in the output hook, leaving the node with
//!   a loopback source the kernel refuses to route off `lo` unless `net.ipv4.conf.all.route_localnet`
//!   is 1, so [`run`] sets it (kube-proxy's iptables mode does the same; it lets packets to and
//!   from 127.0.0.0/8 be routed, which is why kube-proxy's nftables mode leaves localhost NodePorts
//!   out), and masquerade gives them the outgoing interface's address.
//! - All Service traffic is masqueraded (marked in the Service's chain, masqueraded in
//!   postrouting). A pod reaching a Service whose chosen endpoint sits on the same bridge gets its
//!   replies back through the node, where conntrack reverses the DNAT, without `br_netfilter`.
//!   The cost: endpoints see the node's address as the client's, never the client's own
//!   (kube-proxy keeps it unless masquerade is needed; a Service's `externalTrafficPolicy: Local`
//!   is not implemented here). Every masqueraded connection to one endpoint shares the node
//!   address's port space: under thousands of new connections a second, some SYNs meet a port
//!   still in TIME_WAIT at the endpoint and are retransmitted after 1 s (measured, see the
//!   `proxy_datapath` test's setup).
//! - A pod reaching itself through its own Service (hairpin) does not connect: after the DNAT
//!   its packet has equal source and destination and the kernel routes it nowhere (seen on 6.18);
//!   kube-proxy covers that case with `br_netfilter` and hairpin mode on the bridge ports.
//! - A Service without ready endpoints rejects new connections (TCP reset, ICMP port unreachable
//!   for the others) from the filter hooks, as kube-proxy does.
//! - `sessionAffinity: ClientIP`: each endpoint remembers the clients sent to it in a timed set,
//!   checked before the random choice.

pub mod rules;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;

use crate::network::NetworkHandle;

/// How long changes gather before the table is rendered again.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// Wait before trying again after `nft` refused a table.
const RETRY: Duration = Duration::from_secs(1);
const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the Service data path needs the nft command: install Debian's nftables package ({0})")]
    NftMissing(String),
    #[error("nft refused the Services table: {0}")]
    Nft(String),
    #[error("cannot enable {ROUTE_LOCALNET} for NodePorts on 127.0.0.1: {0}")]
    RouteLocalnet(std::io::Error),
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The nftables table (family `ip`) the proxy owns.
    pub table: String,
}

impl ProxyConfig {
    /// The table of node network `id` (the 8 hex digits naming its bridge): `wharf_<id>_svc`.
    pub fn for_node(id: &str) -> Self {
        ProxyConfig { table: format!("wharf_{id}_svc") }
    }
}

/// Fails with a message saying what to install when `nft` cannot run.
pub fn check_nft() -> Result<(), ProxyError> {
    match Command::new("nft").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(ProxyError::NftMissing(format!("nft --version: {status}"))),
        Err(e) => Err(ProxyError::NftMissing(e.to_string())),
    }
}

/// Lets packets from 127.0.0.1 be routed to pods (NodePorts on 127.0.0.1), in this network
/// namespace.
pub fn enable_route_localnet() -> Result<(), ProxyError> {
    std::fs::write(ROUTE_LOCALNET, "1").map_err(ProxyError::RouteLocalnet)
}

/// Replaces table `table` (family `ip`) by `ruleset` (its [`rules::render`]ed text) atomically.
pub fn install(table: &str, ruleset: &str) -> Result<(), ProxyError> {
    let script = format!("table ip {table} {{}}\ndelete table ip {table}\n{ruleset}");
    nft(&["-f", "-"], Some(&script))
}

/// Deletes table `table` if it exists.
pub fn remove(table: &str) -> Result<(), ProxyError> {
    nft(&["-f", "-"], Some(&format!("table ip {table} {{}}\ndelete table ip {table}\n")))
}

fn nft(args: &[&str], stdin: Option<&str>) -> Result<(), ProxyError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ProxyError::NftMissing(e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| ProxyError::Nft(e.to_string()))?;
    }
    let output = child.wait_with_output().map_err(|e| ProxyError::Nft(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ProxyError::Nft(String::from_utf8_lossy(&output.stderr).trim().to_string()))
    }
}

/// Deletes the table when the proxy stops.
struct Installed(String);

impl Drop for Installed {
    fn drop(&mut self) {
        match remove(&self.0) {
            Ok(()) => tracing::info!(table = %self.0, "Services table removed"),
            Err(e) => tracing::warn!(table = %self.0, error = %e, "cannot remove the Services table"),
        }
    }
}

/// The agent's proxy: waits for the node network, then [`run`]s on its table until dropped,
/// logging why it stopped if it did.
pub async fn run_on(client: kube::Client, network: NetworkHandle) {
    let config = ProxyConfig::for_node(&network.ready().await.id);
    if let Err(e) = run(client, config).await {
        tracing::error!(error = %e, "the Service data path is not programmed");
    }
}

/// Keeps the node's Services table in step with the cluster's Services and EndpointSlices until
/// the task is dropped (which removes the table).
pub async fn run(client: kube::Client, config: ProxyConfig) -> Result<(), ProxyError> {
    check_nft()?;
    enable_route_localnet()?;
    let changed = Arc::new(Notify::new());
    let (services, services_writer) = reflector::store::<Service>();
    let (slices, slices_writer) = reflector::store::<EndpointSlice>();
    let services_watch = watch(services_writer, Api::<Service>::all(client.clone()), changed.clone());
    let slices_watch = watch(slices_writer, Api::<EndpointSlice>::all(client), changed.clone());
    tokio::select! {
        () = services_watch => Ok(()),
        () = slices_watch => Ok(()),
        () = sync(config.table, services, slices, changed) => Ok(()),
    }
}

/// Keeps `writer`'s store in step with `api`, waking `changed` on every event.
async fn watch<K>(writer: Writer<K>, api: Api<K>, changed: Arc<Notify>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff())
        .for_each(|_| {
            changed.notify_one();
            std::future::ready(())
        })
        .await
}

async fn sync(table: String, services: Store<Service>, slices: Store<EndpointSlice>, changed: Arc<Notify>) {
    if services.wait_until_ready().await.is_err() || slices.wait_until_ready().await.is_err() {
        return;
    }
    let installed = Installed(table);
    let mut applied: Option<String> = None;
    loop {
        let services = services.state();
        let slices = slices.state();
        let frontends = rules::frontends(services.iter().map(|s| s.as_ref()), slices.iter().map(|s| s.as_ref()));
        let ruleset = rules::render(&installed.0, &frontends);
        if applied.as_ref() != Some(&ruleset) {
            let (name, text) = (installed.0.clone(), ruleset.clone());
            match tokio::task::spawn_blocking(move || install(&name, &text)).await {
                Ok(Ok(())) => {
                    tracing::info!(table = %installed.0, frontends = frontends.len(), "Services table applied");
                    applied = Some(ruleset);
                }
                Ok(Err(e)) => {
                    tracing::warn!(table = %installed.0, error = %e, "cannot apply the Services table");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                Err(e) => tracing::warn!(error = %e, "nft task failed"),
            }
        }
        changed.notified().await;
        tokio::time::sleep(DEBOUNCE).await;
    }
}
