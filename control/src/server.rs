//! `wharf server`: prepares the data dir (database, CA, admin token, kubeconfig), seeds the
//! system namespaces and serves the API until asked to stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde_json::json;

use crate::api::{self, ApiState};
use crate::auth::{pki, tokens};
use crate::error::{Error, Result};
use crate::registry::{defaults, kinds, strategy};
use crate::store::{ObjectKey, Store, StoreOptions, Write};

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub store: StoreOptions,
    pub controllers: crate::controllers::ControllerOptions,
    pub admission: AdmissionOptions,
    /// The web dashboard's routes (the binary embeds it); `None` serves the API alone.
    pub dashboard: Option<axum::Router>,
}

/// Admission settings, named after kube-apiserver's flags.
#[derive(Debug, Clone)]
pub struct AdmissionOptions {
    /// `--default-not-ready-toleration-seconds`: tolerationSeconds of the
    /// `node.kubernetes.io/not-ready:NoExecute` toleration added to pods that have none.
    pub default_not_ready_toleration_seconds: i64,
    /// `--default-unreachable-toleration-seconds`: the same for `node.kubernetes.io/unreachable`.
    pub default_unreachable_toleration_seconds: i64,
    /// `--service-cidr`: the range ClusterIPs are allocated from.
    pub service_cidr: ipnet::Ipv4Net,
    /// `--service-node-port-range`: the ports NodePorts are allocated from.
    pub service_node_port_range: std::ops::RangeInclusive<u16>,
}

/// What a started server tells its operator (and the in-process agent).
pub struct Started {
    pub url: String,
    /// The dashboard's URL, when it is served.
    pub dashboard_url: Option<String>,
    /// The file holding the admin token (for signing in to the dashboard).
    pub admin_token_file: PathBuf,
    pub kubeconfig: PathBuf,
    pub node_token: String,
}

/// The URL clients on this machine use to reach `listen`.
pub fn local_url(listen: SocketAddr) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("https://{host}:{}", listen.port())
}

fn write_kubeconfig(path: &Path, url: &str, ca_pem: &str, token: &str) -> Result<()> {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "wharf", "cluster": {
            "server": url,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem),
        }}],
        "users": [{"name": "wharf-admin", "user": {"token": token}}],
        "contexts": [{"name": "wharf", "context": {"cluster": "wharf", "user": "wharf-admin", "namespace": "default"}}],
        "current-context": "wharf",
    });
    let yaml = serde_yaml::to_string(&config).map_err(|e| Error::Internal(format!("kubeconfig: {e}")))?;
    pki::write_private(path, &yaml)
}

async fn seed_namespaces(store: &Store) -> Result<()> {
    let resource = kinds::lookup("", "v1", "namespaces").expect("namespaces are served");
    for name in SYSTEM_NAMESPACES {
        let key = ObjectKey::new(resource.storage_key(), "", *name);
        if store.get(&key).is_some() {
            continue;
        }
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        strategy::prepare_create(resource, &mut ns);
        defaults::apply(resource, &mut ns);
        store
            .write(Write::Create { key, object: ns })
            .await
            .map_err(|e| Error::Internal(format!("cannot create namespace {name}: {e:?}")))?;
    }
    Ok(())
}

/// Prepares everything, binds the listener and serves until `shutdown` completes. `on_ready`
/// is called once the server accepts connections.
pub async fn run(
    config: ServerConfig,
    on_ready: impl FnOnce(&Started),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Internal(format!("cannot create data dir {}: {e}", dir.display())))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"")
        .map_err(|e| Error::Internal(format!("cannot write to data dir {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);

    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if !config.listen.ip().is_unspecified() {
        hosts.push(config.listen.ip().to_string());
    }
    if let Ok(name) = std::fs::read_to_string("/etc/hostname") {
        let name = name.trim();
        if !name.is_empty() {
            hosts.push(name.to_string());
        }
    }
    let pki = pki::load_or_create(&dir.join("pki"), &hosts)?;
    let token = tokens::load_or_create(&dir.join("admin.token"))?;
    let node_token = tokens::load_or_create_node_token(&dir.join("node-token"), &pki.ca_pem)?;
    let store = Store::open(&dir.join("wharf.db"), config.store.clone())?;
    seed_namespaces(&store).await?;
    crate::auth::bootstrap_policy::reconcile(&store).await?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let listen = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    let url = local_url(listen);
    let kubeconfig = dir.join("kubeconfig.yaml");
    write_kubeconfig(&kubeconfig, &url, &pki.ca_pem, &token)?;

    let sa_key = Arc::new(crate::auth::service_account::SigningKey::load_or_create(&dir.join("pki"))?);
    let auth = tokens::Authenticator::new(&token)
        .with_join_token(&node_token)
        .with_store(store.clone())
        .with_service_account_key(sa_key);
    let registry = crate::oci::Registry::open(dir.join("registry"))?;
    let state = Arc::new(
        ApiState::new(store, auth, pki.ca_pem.clone(), registry, config.admission.clone())
            .with_agent_identity(pki::apiserver_client_identity(&dir.join("pki"))?)?,
    );
    let app = api::router(state, config.dashboard.clone());
    // Clients may present a certificate signed by the cluster CA instead of a token.
    let tls = crate::auth::client_cert::server_config(&pki.server_config, &pki.ca_pem)?;
    let serving = tokio::spawn(api::serve::serve(listener, tls, app, std::future::pending()));
    let client = crate::controllers::client(&kubeconfig).await?;
    tokio::spawn(crate::controllers::kubernetes_service::run(client.clone(), config.admission.service_cidr, listen));
    crate::controllers::spawn_all(client, &config.controllers);
    let dashboard_url = config.dashboard.is_some().then(|| format!("{url}{}", api::DASHBOARD_PATH));
    on_ready(&Started { url, dashboard_url, admin_token_file: dir.join("admin.token"), kubeconfig, node_token });
    tokio::select! {
        _ = shutdown => {}
        _ = serving => {}
    }
    Ok(())
}
