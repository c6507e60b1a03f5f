//! The node agent (what a kubelet does): registers its Node, renews its Lease, watches the pods
//! bound to it and runs each container through a shim, reporting status, events and logs back
//! through the API server.

pub mod api_client;
pub mod backoff;
pub mod dns;
pub mod endpoint;
pub mod env;
pub mod events;
pub mod eviction;
pub mod exec;
pub mod gateway;
pub mod images;
pub mod linux;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod node;
pub mod pods;
pub mod portforward;
pub mod probes;
pub mod proxy;
pub mod pull;
pub mod sandbox;
pub mod service_account;
pub mod sockets;
pub mod status;
pub mod volumes;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use wharf_shim::Shim;

use crate::backoff::BackoffPolicy;
use crate::node::NodeInfo;
use crate::pull::ImagePuller;
use crate::worker::{Context, LogIndex};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Setup(String),
}

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Node's name.
    pub name: String,
    /// Where pod volumes, logs and images live.
    pub data_dir: PathBuf,
    /// The agent's HTTPS endpoint (logs for the API server).
    pub listen: SocketAddr,
    /// The node address reported as InternalIP (and, until pod networking, as pod IPs).
    pub address: String,
    /// The cluster CA (PEM): the endpoint serves only the API server's client certificate
    /// (`wharf:apiserver`) signed by it.
    pub ca_pem: String,
    pub backoff: BackoffPolicy,
    pub max_pods: u32,
    /// Most processes one Linux container may hold (0: no limit).
    pub pids_limit: i64,
    /// `leaseDurationSeconds` of the node's Lease, renewed every quarter of it (kubelet's
    /// `--node-lease-duration-seconds`, default 40).
    pub lease_duration_seconds: u32,
    /// The wasmtime shim's compiled-code cache, counted with the images in node.status.images.
    pub compiled_cache: Option<PathBuf>,
    /// Where the node's HTTP gateway for Functions and routed Services listens.
    pub gateway_listen: SocketAddr,
    /// The cluster's DNS domain (kubelet's `--cluster-domain`), for pods' search paths.
    pub cluster_domain: String,
}

/// The image puller agents use: the node's image store behind the cluster's registry, with the
/// inventory of the images it already holds loaded.
pub async fn images_puller(
    root: &std::path::Path,
    servers: &[&str],
    ca_pem: &str,
    token: &str,
    insecure_registries: &[String],
) -> Result<Arc<dyn ImagePuller>, AgentError> {
    let puller = pull::RegistryPuller::open(root, servers, ca_pem, token, insecure_registries)?;
    puller.load_inventory().await;
    Ok(Arc::new(puller))
}

/// Registers the node and runs its pods until the task is dropped.
pub async fn run(
    config: AgentConfig,
    client: kube::Client,
    shims: Vec<Arc<dyn Shim>>,
    images: Arc<dyn ImagePuller>,
    wasm_http: Option<Arc<dyn wharf_shim::http::ProxyHandler>>,
) -> Result<(), AgentError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| AgentError::Setup(format!("cannot create {}: {e}", config.data_dir.display())))?;
    let logs = Arc::new(LogIndex::new(config.data_dir.join("logs")));
    let running = Arc::new(exec::RunningContainers::default());
    let function_stats = gateway::stats::Stats::default();
    let (addr, serve) = endpoint::bind(
        config.listen,
        &config.name,
        config.data_dir.clone(),
        logs.clone(),
        running.clone(),
        function_stats.clone(),
        &config.ca_pem,
    )
    .await?;
    let info = NodeInfo {
        name: config.name.clone(),
        address: config.address.clone(),
        port: addr.port(),
        runtimes: shims.iter().map(|s| s.name().to_string()).collect(),
        max_pods: config.max_pods,
    };
    let inventory = images.inventory();
    if let (Some(inventory), Some(dir)) = (&inventory, &config.compiled_cache) {
        inventory.set_compiled_cache(dir);
    }
    let held = inventory.as_ref().map(|i| i.list()).unwrap_or_default();
    node::register(&client, &info, &held).await?;
    tracing::info!(node = %info.name, endpoint = %addr, runtimes = ?info.runtimes, images = held.len(), "node registered");
    // The node network: DNS and the Service proxy wait for it with `network.ready().await`.
    let network = network::start(client.clone(), config.name.clone(), config.data_dir.clone());
    let proxy = tokio::spawn(proxy::run_on(client.clone(), network.clone()));
    let _dns = dns::spawn(client.clone(), network.clone(), config.cluster_domain.clone());
    let ctx = Arc::new(Context {
        client: client.clone(),
        node: info.clone(),
        data_dir: config.data_dir.clone(),
        shims,
        images,
        backoff: config.backoff,
        events: events::Recorder::new(client.clone(), info.name.clone()),
        logs,
        running,
        pids_limit: config.pids_limit,
        network: network.clone(),
        cluster_domain: config.cluster_domain.clone(),
    });
    let serving = tokio::spawn(serve);
    let gateway_options = gateway::GatewayOptions {
        node: info.name.clone(),
        address: info.address.clone(),
        listen: config.gateway_listen,
        data_dir: config.data_dir.clone(),
        stats: function_stats,
    };
    let gateway = tokio::spawn(gateway::run(client.clone(), gateway_options, ctx.images.clone(), wasm_http));
    let heartbeat =
        node::Heartbeat { lease_duration_seconds: config.lease_duration_seconds, images: inventory, reported: held };
    let heartbeat = tokio::spawn(node::heartbeat(client, info, heartbeat));
    pods::run(ctx).await;
    serving.abort();
    gateway.abort();
    proxy.abort();
    heartbeat.abort();
    Ok(())
}
