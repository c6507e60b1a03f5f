//! The node's pod network: once the control plane gives the Node a `spec.podCIDR`, a bridge
//! `wh<8 hex digits of the podCIDR's network>` holding the podCIDR's first host (the pods'
//! gateway, where the node's DNS listens), IPv4 forwarding on, an nftables table
//! `wharf_<id>_net` and a route to every other Node's podCIDR via its InternalIP. Each pod gets
//! a veth pair: the pod end is `eth0` in its sandbox's network namespace with the pod's address
//! and a default route via the gateway, the host end (`wv<8 hex digits of the pod address>`) is
//! a port of the bridge. Pod addresses come from [`ipam`], persisted under `DATA/network`.
//!
//! Links are programmed with the `ip` command of iproute2 (and `nft` for the table), not
//! netlink from Rust: the sandbox already needs `ip`, every step is one readable command whose
//! error text is iproute2's own (it goes into the pod's events), there is no new dependency, and
//! the namespace switch for the pod end happens in a child process (`nsenter --net=PATH ip …`),
//! never on an agent thread. It costs a few process starts per pod (milliseconds), next to
//! image and container start-up.
//!
//! The table accepts forwarding to and from the bridge and masquerades pod traffic that leaves
//! the bridge for an address outside the cluster's pod network. The agent does not know
//! `--cluster-cidr` (a server flag), so the pod network is the set of every Node's podCIDR as
//! the Node watch sees them (the set is rewritten when Nodes come and go): pod-to-pod traffic
//! keeps its source address across nodes, anything else leaves with the node's.
//!
//! Routes to other Nodes are added (`ip route replace`) and removed as the watch sees them;
//! a Node whose podCIDR is on a bridge of this host (several agents in one network namespace,
//! as in tests) or whose InternalIP is this host's needs no route and gets none. Routes of
//! Nodes deleted while the agent was down stay until the next boot (they point to nothing).

pub mod ipam;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::process::Command;
use tokio::sync::watch;

use self::ipam::Ipam;

/// The node's pod network, once set up.
#[derive(Debug)]
pub struct NodeNetwork {
    /// The bridge's name, `wh` + [`NodeNetwork::id`].
    pub bridge: String,
    pub pod_cidr: Ipv4Net,
    /// The podCIDR's first host, on the bridge: the pods' default gateway and DNS server.
    pub gateway: Ipv4Addr,
    /// The cluster's pod range, when known (the agent does not learn `--cluster-cidr`: None).
    pub cluster_cidr: Option<Ipv4Net>,
    /// 8 lowercase hex digits of the podCIDR's network address.
    pub id: String,
    /// The nftables table of the node network, `wharf_<id>_net` (family `ip`).
    pub table: String,
    ipam: Ipam,
    /// `DATA/pods`: a pod's address is held while its directory there exists.
    pods_dir: PathBuf,
    /// The MTU of the node's way out (its default route's link), given to pods' veths so
    /// traffic to other nodes fits.
    mtu: Option<u32>,
}

/// Where the node network is: waiting (and why), or up.
#[derive(Debug, Clone)]
pub enum NetworkState {
    Waiting(String),
    Ready(Arc<NodeNetwork>),
}

/// A view of the node network's state, for pod workers and the agent tasks that need it.
#[derive(Debug, Clone)]
pub struct NetworkHandle(watch::Receiver<NetworkState>);

impl NetworkHandle {
    /// The node network if it is up.
    pub fn current(&self) -> Result<Arc<NodeNetwork>, String> {
        match &*self.0.borrow() {
            NetworkState::Ready(net) => Ok(net.clone()),
            NetworkState::Waiting(why) => Err(why.clone()),
        }
    }

    /// Waits until the node network is up.
    pub async fn ready(&self) -> Arc<NodeNetwork> {
        let mut rx = self.0.clone();
        loop {
            if let NetworkState::Ready(net) = &*rx.borrow_and_update() {
                return net.clone();
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits for the next change of state.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// 8 lowercase hex digits of the range's network address.
pub fn network_id(pod_cidr: Ipv4Net) -> String {
    format!("{:08x}", u32::from(pod_cidr.network()))
}

/// Runs `program args…`; its stdout, or its stderr as the error.
async fn run_cmd(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    cmd.stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() });
    let mut child = cmd.spawn().map_err(|e| match program {
        "nft" => format!("cannot run nft (install nftables): {e}"),
        "ip" => format!("cannot run ip (install iproute2): {e}"),
        _ => format!("cannot run {program}: {e}"),
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.map_err(|e| format!("{program}: cannot write its input: {e}"))?;
    }
    let out = child.wait_with_output().await.map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

async fn ip(args: &[&str]) -> Result<String, String> {
    run_cmd("ip", args, None).await
}

/// The host end of a pod's veth pair.
fn host_link(pod_ip: Ipv4Addr) -> String {
    format!("wv{:08x}", u32::from(pod_ip))
}

/// The nftables script that (re)makes the node network's table at once.
fn nft_script(table: &str, bridge: &str, pod_cidr: Ipv4Net, pod_network: &[Ipv4Net]) -> String {
    let mut ranges: Vec<String> = pod_network.iter().map(|n| n.trunc().to_string()).collect();
    let own = pod_cidr.trunc().to_string();
    if !ranges.contains(&own) {
        ranges.push(own.clone());
    }
    format!(
        "table ip {table} {{}}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tset pod_network {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {ranges} }} }}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tiifname \"{bridge}\" accept\n\
         \t\toifname \"{bridge}\" accept\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {own} ip daddr != @pod_network oifname != \"{bridge}\" masquerade\n\
         \t}}\n\
         }}\n",
        ranges = ranges.join(", "),
    )
}

impl NodeNetwork {
    /// Sets up the bridge, forwarding and the table for `pod_cidr`; idempotent (an agent
    /// restart finds them in place).
    pub async fn setup(pod_cidr: Ipv4Net, data_dir: &Path) -> Result<Self, String> {
        let pod_cidr = pod_cidr.trunc();
        let id = network_id(pod_cidr);
        let bridge = format!("wh{id}");
        let gateway = pod_cidr.hosts().next().ok_or_else(|| format!("podCIDR {pod_cidr} has no host addresses"))?;
        if ip(&["link", "show", "dev", &bridge]).await.is_err() {
            ip(&["link", "add", &bridge, "type", "bridge"]).await?;
            // IPv4 only; see `attach` on why the host gets no more IPv6 addresses than it had.
            ip(&["link", "set", &bridge, "addrgenmode", "none"]).await?;
        }
        ip(&["addr", "replace", &format!("{gateway}/{}", pod_cidr.prefix_len()), "dev", &bridge]).await?;
        ip(&["link", "set", &bridge, "up"]).await?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| format!("cannot turn on IPv4 forwarding (needs root): {e}"))?;
        let table = format!("wharf_{id}_net");
        run_cmd("nft", &["-f", "-"], Some(&nft_script(&table, &bridge, pod_cidr, &[]))).await?;
        let ipam = Ipam::open(&data_dir.join("network").join("ipam"), pod_cidr)?;
        // Pods removed while the agent was down free their addresses.
        let pods = data_dir.join("pods");
        ipam.retain(|uid| pods.join(uid).exists());
        let mtu = uplink_mtu().await;
        Ok(NodeNetwork { bridge, pod_cidr, gateway, cluster_cidr: None, id, table, ipam, pods_dir: pods, mtu })
    }

    /// The pod's address: the one it holds, else a new one. Its directory under `DATA/pods`
    /// is made first: addresses of pods without one (removed while the agent was down) are
    /// free.
    pub fn allocate(&self, uid: &str) -> Result<Ipv4Addr, String> {
        let dir = self.pods_dir.join(uid);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        self.ipam.allocate(uid, |other| self.pods_dir.join(other).exists())
    }

    /// Connects the network namespace at `netns` to the bridge as `eth0` with `pod_ip`;
    /// nothing to do when an earlier agent already did.
    pub async fn attach(&self, pod_ip: Ipv4Addr, netns: &Path) -> Result<(), String> {
        let host = host_link(pod_ip);
        let netns_arg = format!("--net={}", netns.display());
        let inside = |args: &'static [&'static str]| {
            let netns_arg = netns_arg.clone();
            async move {
                let mut all = vec![netns_arg.as_str(), "ip"];
                all.extend_from_slice(args);
                run_cmd("nsenter", &all, None).await
            }
        };
        let cidr = format!("{pod_ip}/{}", self.pod_cidr.prefix_len());
        let present = inside(&["-o", "-4", "addr", "show", "dev", "eth0"]).await.unwrap_or_default();
        if present.contains(&format!("inet {cidr} ")) && ip(&["link", "show", "dev", &host]).await.is_ok() {
            return Ok(());
        }
        let _ = ip(&["link", "del", &host]).await;
        let _ = inside(&["link", "del", "eth0"]).await;
        let peer = format!("wp{:08x}", u32::from(pod_ip));
        let mtu = self.mtu.map(|m| m.to_string());
        let mut add = vec!["link", "add", host.as_str()];
        if let Some(mtu) = &mtu {
            add.extend(["mtu", mtu.as_str()]);
        }
        add.extend(["type", "veth", "peer", "name", peer.as_str()]);
        if let Some(mtu) = &mtu {
            add.extend(["mtu", mtu.as_str()]);
        }
        ip(&add).await?;
        let netns_path = netns.to_string_lossy().into_owned();
        let wired = async {
            ip(&["link", "set", &peer, "netns", &netns_path]).await?;
            // No IPv6 link-local address on the host end (the pod network is IPv4): a new address on
            // the host makes browsers there (the dashboard's) abort every request in flight.
            ip(&["link", "set", &host, "addrgenmode", "none"]).await?;
            ip(&["link", "set", &host, "master", &self.bridge, "up"]).await?;
            let script = format!(
                "link set {peer} name eth0\naddr add {cidr} dev eth0\nlink set eth0 up\n\
                 route replace default via {} dev eth0\n",
                self.gateway
            );
            run_cmd("nsenter", &[&netns_arg, "ip", "-batch", "-"], Some(&script)).await.map(|_| ())
        };
        if let Err(e) = wired.await {
            let _ = ip(&["link", "del", &host]).await;
            return Err(e);
        }
        Ok(())
    }

    /// Removes the pod's veth pair and frees its address.
    pub async fn detach(&self, uid: &str) {
        if let Some(pod_ip) = self.ipam.address_of(uid) {
            let _ = ip(&["link", "del", &host_link(pod_ip)]).await;
        }
        self.ipam.release(uid);
    }

    /// Rewrites the table with `pod_network` as the ranges not to masquerade.
    async fn program_table(&self, pod_network: &[Ipv4Net]) -> Result<(), String> {
        let script = nft_script(&self.table, &self.bridge, self.pod_cidr, pod_network);
        run_cmd("nft", &["-f", "-"], Some(&script)).await.map(|_| ())
    }
}

/// The MTU of the link of the default route, if there is one.
async fn uplink_mtu() -> Option<u32> {
    let route = ip(&["-o", "route", "show", "default"]).await.ok()?;
    let mut words = route.split_whitespace();
    words.find(|w| *w == "dev")?;
    let dev = words.next()?;
    // From ip, not /sys/class/net: sysfs may be another network namespace's.
    let link = ip(&["-o", "link", "show", "dev", dev]).await.ok()?;
    let mut words = link.split_whitespace();
    words.find(|w| *w == "mtu")?;
    words.next()?.parse().ok()
}

/// A Node's podCIDR and InternalIP.
fn node_route(node: &Node) -> Option<(Ipv4Net, Option<Ipv4Addr>)> {
    let cidr = node.spec.as_ref()?.pod_cidr.as_deref()?.parse::<Ipv4Net>().ok()?.trunc();
    let via = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .and_then(|a| a.address.parse().ok());
    Some((cidr, via))
}

/// Whether `addr` is an address of this host's network namespace.
async fn is_local(addr: Ipv4Addr) -> bool {
    addr.is_loopback()
        || ip(&["-o", "route", "get", &addr.to_string()]).await.is_ok_and(|r| r.trim_start().starts_with("local "))
}

/// Routes to other Nodes' podCIDRs, as this agent programmed them.
#[derive(Default)]
struct Routes {
    /// podCIDR → via
    installed: BTreeMap<Ipv4Net, Ipv4Addr>,
}

impl Routes {
    /// Makes the routes match `wanted` (podCIDR → InternalIP of other Nodes).
    /// False if a route could not be added.
    async fn sync(&mut self, wanted: &BTreeMap<Ipv4Net, Ipv4Addr>) -> bool {
        let mut ok = true;
        let gone: Vec<Ipv4Net> = self.installed.keys().filter(|c| !wanted.contains_key(c)).copied().collect();
        for cidr in gone {
            let via = self.installed.remove(&cidr).expect("installed");
            if let Err(e) = ip(&["route", "del", &cidr.to_string(), "via", &via.to_string()]).await {
                tracing::debug!(%cidr, error = %e, "cannot remove a pod route");
            }
        }
        for (cidr, via) in wanted {
            if self.installed.get(cidr) == Some(via) {
                continue;
            }
            // A podCIDR on a bridge of this host, or a node of this host: no route.
            if ip(&["link", "show", "dev", &format!("wh{}", network_id(*cidr))]).await.is_ok() || is_local(*via).await {
                continue;
            }
            match ip(&["route", "replace", &cidr.to_string(), "via", &via.to_string()]).await {
                Ok(_) => {
                    tracing::info!(%cidr, %via, "route to a node's pods");
                    self.installed.insert(*cidr, *via);
                }
                Err(e) => {
                    tracing::warn!(%cidr, %via, error = %e, "cannot route to a node's pods");
                    ok = false;
                }
            }
        }
        ok
    }
}

/// Starts the node network of node `name`: returns the handle at once; a task sets the network
/// up once the Node has a podCIDR and keeps routes and the table up to date from a Node watch.
pub fn start(client: kube::Client, name: String, data_dir: PathBuf) -> NetworkHandle {
    let (tx, rx) = watch::channel(NetworkState::Waiting("the node has no podCIDR yet".into()));
    tokio::spawn(run(client, name, data_dir, tx));
    NetworkHandle(rx)
}

/// The node's pods network as the Node watch describes it: each Node's (podCIDR, InternalIP).
type Nodes = BTreeMap<String, (Ipv4Net, Option<Ipv4Addr>)>;

async fn run(client: kube::Client, name: String, data_dir: PathBuf, tx: watch::Sender<NetworkState>) {
    let api: Api<Node> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut nodes = Nodes::new();
    let mut listing: Option<Nodes> = None;
    let mut keeper = Keeper { name, data_dir, tx, net: None, routes: Routes::default(), programmed: None };
    let mut failed = false;
    loop {
        let event = if failed {
            tokio::select! {
                event = events.next() => Some(event),
                _ = tokio::time::sleep(Duration::from_secs(5)) => None,
            }
        } else {
            Some(events.next().await)
        };
        if let Some(event) = event {
            let Some(event) = event else { return };
            match event {
                Ok(watcher::Event::Init) => {
                    listing = Some(Nodes::new());
                    continue;
                }
                Ok(watcher::Event::InitApply(node)) => {
                    if let (Some(listing), Some(route)) = (listing.as_mut(), node_route(&node)) {
                        listing.insert(node.metadata.name.clone().unwrap_or_default(), route);
                    }
                    continue;
                }
                Ok(watcher::Event::InitDone) => nodes = listing.take().unwrap_or_default(),
                Ok(watcher::Event::Apply(node)) => {
                    let key = node.metadata.name.clone().unwrap_or_default();
                    let route = node_route(&node);
                    if nodes.get(&key) == route.as_ref() && !failed {
                        continue;
                    }
                    match route {
                        Some(route) => nodes.insert(key, route),
                        None => nodes.remove(&key),
                    };
                }
                Ok(watcher::Event::Delete(node)) => {
                    nodes.remove(&node.metadata.name.clone().unwrap_or_default());
                }
                Err(e) => {
                    tracing::debug!(error = %e, "node watch failed; retrying");
                    continue;
                }
            }
        }
        failed = !keeper.apply(&nodes).await;
    }
}

/// What keeps the node network in line with the Nodes.
struct Keeper {
    name: String,
    data_dir: PathBuf,
    tx: watch::Sender<NetworkState>,
    net: Option<Arc<NodeNetwork>>,
    routes: Routes,
    /// The pod network the table was last written with.
    programmed: Option<Vec<Ipv4Net>>,
}

impl Keeper {
    /// Sets the network up (once) and brings routes and the table up to date; false if
    /// something failed and should be tried again.
    async fn apply(&mut self, nodes: &Nodes) -> bool {
        let net = match &self.net {
            Some(net) => net.clone(),
            None => {
                let Some((pod_cidr, _)) = nodes.get(&self.name) else {
                    self.tx.send_replace(NetworkState::Waiting("the node has no podCIDR yet".into()));
                    return true;
                };
                match NodeNetwork::setup(*pod_cidr, &self.data_dir).await {
                    Ok(net) => {
                        tracing::info!(bridge = %net.bridge, pod_cidr = %net.pod_cidr, gateway = %net.gateway, "node network up");
                        let net = Arc::new(net);
                        self.net = Some(net.clone());
                        self.tx.send_replace(NetworkState::Ready(net.clone()));
                        net
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot set up the node network; retrying");
                        self.tx.send_replace(NetworkState::Waiting(format!("cannot set up the node network: {e}")));
                        return false;
                    }
                }
            }
        };
        let wanted: BTreeMap<Ipv4Net, Ipv4Addr> = nodes
            .iter()
            .filter(|(name, _)| **name != self.name)
            .filter_map(|(_, (cidr, via))| Some((*cidr, (*via)?)))
            .collect();
        let routed = self.routes.sync(&wanted).await;
        let mut pod_network: Vec<Ipv4Net> = nodes.values().map(|(cidr, _)| *cidr).collect();
        pod_network.sort();
        pod_network.dedup();
        if self.programmed.as_ref() == Some(&pod_network) {
            return routed;
        }
        match net.program_table(&pod_network).await {
            Ok(()) => {
                self.programmed = Some(pod_network);
                routed
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the node network's nftables table");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_podcidr() {
        let cidr: Ipv4Net = "10.101.3.0/24".parse().unwrap();
        assert_eq!(network_id(cidr), "0a650300");
        assert_eq!(host_link(Ipv4Addr::new(10, 101, 3, 2)), "wv0a650302");
    }

    #[test]
    fn the_table_masquerades_only_traffic_leaving_the_pod_network() {
        let own: Ipv4Net = "10.101.3.0/24".parse().unwrap();
        let other: Ipv4Net = "10.101.4.0/24".parse().unwrap();
        let script = nft_script("wharf_0a650300_net", "wh0a650300", own, &[other]);
        assert!(script.starts_with("table ip wharf_0a650300_net {}\ndelete table ip wharf_0a650300_net\n"));
        assert!(script.contains("elements = { 10.101.4.0/24, 10.101.3.0/24 }"));
        assert!(script.contains("iifname \"wh0a650300\" accept"));
        assert!(
            script.contains("ip saddr 10.101.3.0/24 ip daddr != @pod_network oifname != \"wh0a650300\" masquerade")
        );
    }
}
