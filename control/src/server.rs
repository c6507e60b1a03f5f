//! `wharf server`: prepares the data dir (database, CA, admin token, kubeconfig), seeds the
//! system namespaces and serves the API until asked to stop.
//!
//! On a shared datastore (Postgres) several servers make one cluster: at start each downloads
//! the cluster's shared files (CA, service-account key, admin, node and server tokens; see
//! [`SHARED`]) into its data dir, and uploads those it made when the database has none yet (the
//! first upload wins a race; the losers take the winner's). Each server signs its own serving
//! certificate, with its own addresses, and its own client certificate toward agents
//! (`wharf:apiserver`, renewed by each on its own), by the shared CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde_json::json;

use crate::api::{self, ApiState};
use crate::auth::{pki, tokens};
use crate::error::{Error, Result};
use crate::registry::{defaults, kinds, strategy};
use crate::store::{Datastore, ObjectKey, SharedFiles, Store, StoreOptions, Write, WriteError};

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Where objects live (`--datastore`); SQLite in the data dir by default.
    pub datastore: Datastore,
    /// The CA (PEM) the cluster this server joins has (`--join`): the shared CA must be it.
    pub joined_ca: Option<String>,
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
    /// The file holding the server token, which lets another server join (`--join`).
    pub server_token_file: PathBuf,
    pub datastore: Datastore,
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

/// Writes the kubeconfig at `path` (atomically: readers never see half of it): cluster `wharf`
/// at `servers[0]` (this server), with the extension `wharf.dev/servers` listing every live
/// server, which Wharf's own clients fail over across.
fn write_kubeconfig(path: &Path, servers: &[String], ca_pem: &str, token: &str) -> Result<()> {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "wharf", "cluster": {
            "server": servers[0],
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            "extensions": [{"name": SERVERS_EXTENSION, "extension": {"servers": servers}}],
        }}],
        "users": [{"name": "wharf-admin", "user": {"token": token}}],
        "contexts": [{"name": "wharf", "context": {"cluster": "wharf", "user": "wharf-admin", "namespace": "default"}}],
        "current-context": "wharf",
    });
    let yaml = serde_yaml::to_string(&config).map_err(|e| Error::Internal(format!("kubeconfig: {e}")))?;
    let partial = path.with_extension("yaml.partial");
    pki::write_private(&partial, &yaml)?;
    std::fs::rename(&partial, path).map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))
}

/// The kubeconfig cluster extension listing the cluster's live servers.
pub const SERVERS_EXTENSION: &str = "wharf.dev/servers";

/// How often the kubeconfig's server list is checked.
const KUBECONFIG_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// Keeps the kubeconfig's server list current: this server first, then the other live ones
/// (from their identity Leases, see `server_lease`), rewritten when the set changes.
async fn refresh_kubeconfig(client: kube::Client, path: PathBuf, url: String, ca_pem: String, token: String) {
    let mut written = vec![url.clone()];
    loop {
        tokio::time::sleep(KUBECONFIG_REFRESH).await;
        let live = match crate::server_lease::live_servers(&client).await {
            Ok(live) => live,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the live servers");
                continue;
            }
        };
        let servers: Vec<String> = std::iter::once(url.clone()).chain(live.into_iter().filter(|u| *u != url)).collect();
        if servers != written {
            match write_kubeconfig(&path, &servers, &ca_pem, &token) {
                Ok(()) => written = servers,
                Err(e) => tracing::warn!(error = %e, "cannot rewrite the kubeconfig"),
            }
        }
    }
}

/// How often the system namespaces are checked for and made again if deleted.
const SYSTEM_NAMESPACES_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Makes the system namespaces again once deleted, as kube-apiserver's system namespaces
/// controller does (`kube-node-lease` may be deleted; without it no node could renew its lease).
/// Every server runs it: a namespace two servers make at once is made once.
async fn keep_system_namespaces(store: Store) {
    loop {
        tokio::time::sleep(SYSTEM_NAMESPACES_CHECK).await;
        if let Err(e) = seed_namespaces(&store).await {
            tracing::warn!(error = %e, "cannot make the system namespaces again");
        }
    }
}

/// Creates the [`SYSTEM_NAMESPACES`] that do not exist.
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
        match store.write(Write::Create { key, object: ns }).await {
            // Another server starting on the same new database made it first.
            Ok(_) | Err(WriteError::AlreadyExists) => {}
            Err(e) => return Err(Error::Internal(format!("cannot create namespace {name}: {e:?}"))),
        }
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
    let store = Store::connect(&config.datastore, config.store.clone()).await?;
    if let Some(shared) = store.shared_files() {
        sync_shared_files(&shared, dir).await?;
    }
    let pki = pki::load_or_create(&dir.join("pki"), &hosts)?;
    if let Some(joined) = &config.joined_ca
        && *joined != pki.ca_pem
    {
        return Err(Error::Internal(format!(
            "the datastore {} holds another cluster's CA than the server joined",
            config.datastore
        )));
    }
    let token = tokens::load_or_create(&dir.join("admin.token"))?;
    let node_token = tokens::load_or_create_pinned_token(&dir.join("node-token"), &pki.ca_pem)?;
    let server_token = tokens::load_or_create_pinned_token(&dir.join("server.token"), &pki.ca_pem)?;
    seed_namespaces(&store).await?;
    crate::auth::bootstrap_policy::reconcile(&store).await?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let listen = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
    let url = local_url(listen);
    let kubeconfig = dir.join("kubeconfig.yaml");
    write_kubeconfig(&kubeconfig, std::slice::from_ref(&url), &pki.ca_pem, &token)?;

    let sa_key = Arc::new(crate::auth::service_account::SigningKey::load_or_create(&dir.join("pki"))?);
    let auth = tokens::Authenticator::new(&token)
        .with_join_token(&node_token)
        .with_store(store.clone())
        .with_service_account_key(sa_key);
    let registry = crate::oci::Registry::open(dir.join("registry"))?.with_shared(store.shared_files());
    let state = Arc::new(
        ApiState::new(store.clone(), auth, pki.ca_pem.clone(), registry, config.admission.clone())
            .with_agent_identity(pki::apiserver_client_identity(&dir.join("pki"))?)?,
    );
    let join = api::server_join::JoinService {
        token: server_token,
        datastore: config.datastore.clone(),
        ca_pem: pki.ca_pem.clone(),
    };
    let app = api::router(state, config.dashboard.clone()).merge(api::server_join::router(join));
    // Clients may present a certificate signed by the cluster CA instead of a token.
    let tls = crate::auth::client_cert::server_config(&pki.server_config, &pki.ca_pem)?;
    let serving = tokio::spawn(api::serve::serve(listener, tls, app, std::future::pending()));
    let keeping_namespaces = tokio::spawn(keep_system_namespaces(store.clone()));
    let client = crate::controllers::client(&kubeconfig).await?;
    tokio::spawn(refresh_kubeconfig(client.clone(), kubeconfig.clone(), url.clone(), pki.ca_pem.clone(), token));
    // The controllers and the scheduler run on the elected leader only (see `leader`).
    let identity = crate::leader::new_identity();
    tokio::spawn(crate::server_lease::run(client.clone(), identity.clone(), url.clone(), listen));
    let exclusive = matches!(config.datastore, Datastore::Sqlite(_));
    let api_address = crate::controllers::ApiServerAddress { service_cidr: config.admission.service_cidr, listen };
    let controllers = crate::controllers::Controllers::start(
        client.clone(),
        &kubeconfig,
        identity.clone(),
        exclusive,
        &config.controllers,
        api_address,
    )
    .await?;
    let dashboard_url = config.dashboard.is_some().then(|| format!("{url}{}", api::DASHBOARD_PATH));
    on_ready(&Started {
        url,
        dashboard_url,
        admin_token_file: dir.join("admin.token"),
        kubeconfig,
        node_token,
        server_token_file: dir.join("server.token"),
        datastore: config.datastore.clone(),
    });
    tokio::select! {
        _ = shutdown => {}
        _ = serving => {}
    }
    keeping_namespaces.abort();
    controllers.stop().await;
    crate::server_lease::remove(client, &identity).await;
    Ok(())
}

/// The files every server of a cluster shares, by their path under the data dir (their name in
/// [`SharedFiles`]). A certificate follows the key it is made for.
pub const SHARED: &[&str] = &["pki/ca.key", "pki/ca.crt", "pki/sa.key", "admin.token", "node-token", "server.token"];

fn shared_error(name: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("shared file {name}: {e}"))
}

/// Makes the data dir hold the cluster's shared files: those the database has are downloaded;
/// the others are made here and uploaded unless another server uploaded them first, in which
/// case its copies replace ours.
async fn sync_shared_files(shared: &SharedFiles, dir: &Path) -> Result<()> {
    for name in SHARED {
        if let Some(data) = shared.get(name).await? {
            write_shared(dir, name, &data)?;
        }
    }
    let pki_dir = dir.join("pki");
    pki::ensure_ca(&pki_dir)?;
    share_ca(shared, dir).await?;
    crate::auth::service_account::SigningKey::load_or_create(&pki_dir)?;
    share(shared, dir, "pki/sa.key").await?;
    let ca_pem = std::fs::read_to_string(pki_dir.join("ca.crt")).map_err(|e| shared_error("pki/ca.crt", e))?;
    tokens::load_or_create(&dir.join("admin.token"))?;
    share(shared, dir, "admin.token").await?;
    for name in ["node-token", "server.token"] {
        tokens::load_or_create_pinned_token(&dir.join(name), &ca_pem)?;
        share(shared, dir, name).await?;
    }
    Ok(())
}

/// Writes a shared file into the data dir: certificates readable by all, the rest (keys,
/// tokens) by the owner only.
fn write_shared(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let path = dir.join(name);
    if std::fs::read(&path).is_ok_and(|local| local == data) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| shared_error(name, e))?;
    }
    if name.ends_with(".crt") {
        std::fs::write(&path, data).map_err(|e| shared_error(name, e))
    } else {
        let text = std::str::from_utf8(data).map_err(|e| shared_error(name, e))?;
        pki::write_private(&path, text)
    }
}

/// Uploads the local `name` unless the database has one; keeps the database's. Whether the
/// local copy was kept.
async fn share(shared: &SharedFiles, dir: &Path, name: &str) -> Result<bool> {
    let local = std::fs::read(dir.join(name)).map_err(|e| shared_error(name, e))?;
    let winner = shared.put_if_absent(name, &local).await?;
    if winner != local {
        write_shared(dir, name, &winner)?;
    }
    Ok(winner == local)
}

/// [`share`]s the CA key, then its certificate. A server whose key lost signs the winner's key
/// itself; the first certificate uploaded for it is the one every server takes (tokens pin it).
async fn share_ca(shared: &SharedFiles, dir: &Path) -> Result<()> {
    if !share(shared, dir, "pki/ca.key").await? {
        pki::write_ca_certificate(&dir.join("pki"))?;
    }
    share(shared, dir, "pki/ca.crt").await?;
    Ok(())
}
