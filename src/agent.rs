//! `wharf agent` and the agent `wharf server` runs in-process: both join the cluster the same way
//! (server URLs + node join token, the cluster CA fetched from `/cacerts` and checked against the
//! hash the token pins, the join token exchanged for the node's own credential, kept in the data
//! dir as `node.token`), then run the node agent with the shims this binary has. Given several
//! servers of one control plane, every API request fails over between them
//! ([`wharf_runtime::api_client`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use wharf_runtime::backoff::BackoffPolicy;
use wharf_runtime::{AgentConfig, images_puller};
use wharf_shim::Shim;
use wharf_shim::http::ProxyHandler;

/// How an agent joins and runs.
pub struct JoinOptions {
    /// The API servers of one control plane (at least one), tried in this order.
    pub servers: Vec<String>,
    pub token: String,
    pub name: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub node_ip: Option<String>,
    pub backoff_base: Duration,
    pub max_pods: u32,
    pub pids_limit: i64,
    pub insecure_registries: Vec<String>,
    /// `leaseDurationSeconds` of the node's Lease (renewed every quarter of it).
    pub node_lease_duration_seconds: u32,
    /// Where the node's HTTP gateway listens.
    pub gateway_listen: SocketAddr,
    /// The cluster's DNS domain.
    pub cluster_domain: String,
}

/// The machine's host name, the default node name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "wharf-node".into())
}

/// Fetches the cluster CA from the first of `servers` that answers and checks it against the
/// hash pinned in the join token; returns it and the server it came from.
async fn fetch_ca<'a>(servers: &'a [String], token: &str) -> anyhow::Result<(String, &'a str)> {
    let pinned = wharf_control::auth::tokens::node_token_ca_hash(token)
        .context("the node token is not a Wharf join token (expected wharf1.<ca hash>.<secret>)")?;
    let client = wharf_control::api::agent_client();
    let mut unreachable = Vec::new();
    for server in servers {
        let url = format!("{}/cacerts", server.trim_end_matches('/'));
        let pem = match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => {
                response.text().await.with_context(|| format!("{url}: cannot read the answer"))?
            }
            Ok(response) => {
                let status = response.status();
                tracing::warn!(server = %server, %status, "the server cannot serve its CA; trying the next");
                unreachable.push(format!("{url}: {status}"));
                continue;
            }
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "cannot reach the server; trying the next");
                unreachable.push(format!("{url}: {e}"));
                continue;
            }
        };
        if wharf_control::auth::tokens::ca_hash(&pem) != pinned {
            bail!("the CA served by {server} does not match the join token; refusing to trust it");
        }
        return Ok((pem, server));
    }
    bail!("cannot reach any API server: {}", unreachable.join("; "))
}

/// A kubeconfig for `servers` (the first as `server`, all in the `wharf.dev/servers` extension),
/// trusting `ca_pem`, with a bearer `token`.
fn kubeconfig(servers: &[String], ca_pem: &str, token: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "wharf", "cluster": {
            "server": servers.first(),
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            "extensions": [wharf_runtime::api_client::servers_extension(servers)],
        }}],
        "users": [{"name": "node", "user": {"token": token}}],
        "contexts": [{"name": "wharf", "context": {"cluster": "wharf", "user": "node"}}],
        "current-context": "wharf",
    })
}

/// A client of the API at `servers` (failing over between them) presenting `token`.
async fn client_with(servers: &[String], ca_pem: &str, token: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig: kube::config::Kubeconfig = serde_json::from_value(kubeconfig(servers, ca_pem, token))?;
    Ok(wharf_runtime::api_client::from_kubeconfig(kubeconfig).await?)
}

/// Writes the agent's kubeconfig (servers, CA, node credential) and builds a client from it.
async fn client(dir: &Path, servers: &[String], ca_pem: &str, token: &str) -> anyhow::Result<kube::Client> {
    let path = dir.join("kubeconfig.yaml");
    wharf_control::auth::pki::write_private(&path, &serde_yaml::to_string(&kubeconfig(servers, ca_pem, token))?)?;
    client_with(servers, ca_pem, token).await
}

/// Where the agent keeps its node credential.
const NODE_CREDENTIAL_FILE: &str = "node.token";

/// The node's own credential (a token for `system:node:NAME`): the one kept in the data dir
/// while it still authenticates as this node, else a new one the join token is exchanged for
/// (`POST /wharf/v1/node-credentials`), kept for the next start.
async fn node_credential(options: &JoinOptions, ca_pem: &str) -> anyhow::Result<String> {
    let path = options.data_dir.join(NODE_CREDENTIAL_FILE);
    if let Ok(kept) = std::fs::read_to_string(&path) {
        let kept = kept.trim();
        if !kept.is_empty() && still_valid(&options.servers, ca_pem, kept, &options.name).await {
            return Ok(kept.to_string());
        }
        tracing::info!("the kept node credential no longer authenticates this node; joining again");
    }
    // A POST: sent again to the next server only when the previous one could not be reached.
    let bootstrap = client_with(&options.servers, ca_pem, &options.token).await?;
    let body = serde_json::to_vec(&serde_json::json!({"nodeName": options.name}))?;
    let request = http::Request::post(NODE_CREDENTIALS_PATH).header("content-type", "application/json").body(body)?;
    let answer: serde_json::Value = bootstrap
        .request(request)
        .await
        .with_context(|| format!("cannot get a node credential for {} with the join token", options.name))?;
    let token = answer["token"].as_str().context("the node credential answer has no token")?.to_string();
    wharf_control::auth::pki::write_private(&path, &format!("{token}\n"))?;
    tracing::info!(node = %options.name, "joined with a node credential of its own");
    Ok(token)
}

/// Where node credentials are issued.
const NODE_CREDENTIALS_PATH: &str = "/wharf/v1/node-credentials";

/// Whether `token` still authenticates as node `name`: a SelfSubjectReview names its user; a
/// server that answers it otherwise than 401 (not served yet, unreachable) keeps the token.
async fn still_valid(servers: &[String], ca_pem: &str, token: &str, name: &str) -> bool {
    let Ok(client) = client_with(servers, ca_pem, token).await else { return false };
    let review = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let Ok(body) = serde_json::to_vec(&review) else { return false };
    let Ok(request) = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header("content-type", "application/json")
        .body(body)
    else {
        return false;
    };
    match client.request::<serde_json::Value>(request).await {
        Ok(answer) => match answer["status"]["userInfo"]["username"].as_str() {
            Some(user) => user == format!("{}{name}", wharf_control::auth::NODE_USER_PREFIX),
            None => true,
        },
        Err(kube::Error::Api(status)) => status.code != 401,
        Err(_) => true,
    }
}

/// Where the wasmtime shim keeps compiled code.
fn wasm_cache(data_dir: &Path) -> PathBuf {
    data_dir.join("wasm-cache")
}

/// Wasm function requests one node's gateway can run at once (its own instance pool).
const GATEWAY_WASM_INSTANCES: u32 = 1024;

/// What serves the gateway's Wasm functions: wasmtime with a pool of its own, sharing the
/// containers' compiled-code cache.
fn wasm_http(data_dir: &Path) -> anyhow::Result<Arc<dyn ProxyHandler>> {
    let config = wharf_shim_wasmtime::WasmtimeConfig {
        max_instances: GATEWAY_WASM_INSTANCES,
        ..wharf_shim_wasmtime::WasmtimeConfig::new(wasm_cache(data_dir))
    };
    let http = wharf_shim_wasmtime::WasmtimeHttp::new(&config).context("cannot start wasmtime for the gateway")?;
    Ok(Arc::new(http))
}

/// The shims this binary runs containers with.
fn shims(data_dir: &Path, max_pods: u32) -> anyhow::Result<Vec<Arc<dyn Shim>>> {
    let config = wharf_shim_wasmtime::WasmtimeConfig {
        max_instances: max_pods.max(16),
        ..wharf_shim_wasmtime::WasmtimeConfig::new(wasm_cache(data_dir))
    };
    let wasmtime = wharf_shim_wasmtime::WasmtimeShim::new(config).context("cannot start the wasmtime shim")?;
    let mut shims: Vec<Arc<dyn Shim>> = vec![Arc::new(wasmtime)];
    // A node without what Linux containers need (root, cgroups) still runs Wasm.
    match wharf_shim_youki::YoukiShim::new(wharf_shim_youki::YoukiConfig::new(data_dir.join("youki"))) {
        Ok(youki) => shims.push(Arc::new(youki)),
        Err(e) => tracing::warn!(error = %e, "Linux containers are not available on this node"),
    }
    Ok(shims)
}

/// Joins the cluster at `options.servers` and runs the agent until the task ends.
pub async fn run(options: JoinOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("cannot create data dir {}", options.data_dir.display()))?;
    let (ca_pem, answered) = fetch_ca(&options.servers, &options.token).await?;
    // The join token only buys the node its own credential, which it uses for everything else.
    let credential = node_credential(&options, &ca_pem).await?;
    let client = client(&options.data_dir, &options.servers, &ca_pem, &credential).await?;
    let address = options.node_ip.clone().unwrap_or_else(|| {
        if options.listen.ip().is_unspecified() { "127.0.0.1".into() } else { options.listen.ip().to_string() }
    });
    // The embedded registry behind image references without a host: a server that answered,
    // then the others (they share its content).
    let registries: Vec<&str> = std::iter::once(answered)
        .chain(options.servers.iter().map(String::as_str).filter(|s| *s != answered))
        .collect();
    let images = images_puller(
        &options.data_dir.join("images"),
        &registries,
        &ca_pem,
        &credential,
        &options.insecure_registries,
    )
    .await?;
    let config = AgentConfig {
        name: options.name.clone(),
        data_dir: options.data_dir.clone(),
        listen: options.listen,
        address,
        ca_pem: ca_pem.clone(),
        backoff: BackoffPolicy::with_base(options.backoff_base),
        max_pods: options.max_pods,
        pids_limit: options.pids_limit,
        lease_duration_seconds: options.node_lease_duration_seconds,
        compiled_cache: Some(wasm_cache(&options.data_dir)),
        gateway_listen: options.gateway_listen,
        cluster_domain: options.cluster_domain.clone(),
    };
    let shims = shims(&options.data_dir, options.max_pods)?;
    let wasm_http = wasm_http(&options.data_dir)?;
    wharf_runtime::run(config, client, shims, images, Some(wasm_http)).await?;
    Ok(())
}
