//! Controllers: each compares desired with observed state through the API (never the store)
//! and acts, in the manner of kube-runtime: `reconcile(Arc<Obj>, Arc<Ctx>) -> Result<Action>`.

pub mod clusterrole_aggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoint_slice;
pub mod endpoints;
pub mod event_ttl;
pub mod function;
pub mod garbage_collector;
pub mod job;
pub mod kubernetes_service;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod replicaset;
pub mod resource_quota;
pub mod service_account;
pub mod statefulset;
pub mod taint_eviction;
pub mod ttl_after_finished;
pub mod workload;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::runtime::controller::Action;

use crate::error::{Error, Result};
use crate::events::Recorder;

/// What a controller's reconcile works with: the API client and its Event recorder.
pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
}

impl Context {
    /// The context of the controller that records Events as `component` (`job-controller`, …).
    pub fn new(client: kube::Client, component: &'static str) -> Arc<Self> {
        Arc::new(Context { recorder: Recorder::new(client.clone(), component), client })
    }
}

/// Why a reconcile failed: an API request did.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// How long a controller lets changes to one object settle before it reconciles it, so a burst
/// of pod status updates costs one reconcile, not one each.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The controllers' error policy: log the failure and try again in 2 s.
pub fn retry_soon<K: Resource<DynamicType = ()>, C>(
    obj: Arc<K>,
    error: &impl std::fmt::Display,
    _ctx: Arc<C>,
) -> Action {
    let meta = obj.meta();
    tracing::warn!(kind = %K::kind(&()), namespace = ?meta.namespace, name = ?meta.name, %error, "reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// A served kind as kube-rs names it, for dynamic clients (`Api<DynamicObject>`).
pub fn api_resource(r: &crate::registry::kinds::ResourceInfo) -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: r.group.into(),
        version: r.version.into(),
        api_version: r.api_version(),
        kind: r.kind.into(),
        plural: r.plural.into(),
    }
}

/// What an Event says of a failed request: the API's own message when it gave one.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// The admin kubeconfig the server wrote, as a client configuration.
async fn config(kubeconfig: &Path) -> Result<kube::Config> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| Error::Internal(format!("cannot read {}: {e}", kubeconfig.display())))?;
    kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Internal(format!("bad kubeconfig {}: {e}", kubeconfig.display())))
}

fn build(config: kube::Config) -> Result<kube::Client> {
    kube::Client::try_from(config).map_err(|e| Error::Internal(format!("cannot build an API client: {e}")))
}

/// An API client for in-process work that is not fenced (the leader election, the server's
/// own Lease), from the admin kubeconfig the server wrote.
pub async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    build(config(kubeconfig).await?)
}

/// `config` with the header that makes the API server fence every write against the
/// controller-manager Lease still naming `holder`.
fn fenced(mut config: kube::Config, holder: &str) -> Result<kube::Config> {
    let value = axum::http::HeaderValue::from_str(holder)
        .map_err(|e| Error::Internal(format!("identity {holder:?} is no header value: {e}")))?;
    config.headers.push((axum::http::HeaderName::from_static(crate::leader::FENCE_HEADER), value));
    Ok(config)
}

/// Settings of the controllers, named after kube-controller-manager's flags.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// `--node-monitor-grace-period`: how long a node may go without renewing its Lease before
    /// it is marked NotReady (Unknown).
    pub node_monitor_grace_period: Duration,
    /// `--event-ttl` (kube-apiserver's): how long an Event is kept after it last happened.
    pub event_ttl: Duration,
    /// `--cluster-cidr`: the range each node's `spec.podCIDR` is cut from.
    pub cluster_cidr: ipnet::Ipv4Net,
    /// `--node-cidr-mask-size`: the prefix length of each node's podCIDR.
    pub node_cidr_mask_size: u8,
}

/// Where the API server listens and the Service range, for the `kubernetes` Service.
#[derive(Debug, Clone, Copy)]
pub struct ApiServerAddress {
    pub service_cidr: ipnet::Ipv4Net,
    pub listen: std::net::SocketAddr,
}

/// Starts every controller and the scheduler on the current runtime (the leader's term's).
pub fn spawn_all(client: kube::Client, options: &ControllerOptions) {
    tokio::spawn(namespace::run(client.clone()));
    tokio::spawn(service_account::run(client.clone()));
    tokio::spawn(node_ipam::run(client.clone(), options.cluster_cidr, options.node_cidr_mask_size));
    tokio::spawn(node_lifecycle::run(client.clone(), options.node_monitor_grace_period));
    tokio::spawn(event_ttl::run(client.clone(), options.event_ttl));
    tokio::spawn(taint_eviction::run(client.clone()));
    tokio::spawn(garbage_collector::run(client.clone()));
    tokio::spawn(replicaset::run(client.clone()));
    tokio::spawn(resource_quota::run(client.clone()));
    tokio::spawn(deployment::run(client.clone()));
    tokio::spawn(job::run(client.clone()));
    tokio::spawn(cronjob::run(client.clone()));
    tokio::spawn(ttl_after_finished::run(client.clone()));
    tokio::spawn(daemonset::run(client.clone()));
    tokio::spawn(statefulset::run(client.clone()));
    tokio::spawn(function::run(client.clone()));
    tokio::spawn(endpoints::run(client.clone()));
    tokio::spawn(endpoint_slice::run(client.clone()));
    tokio::spawn(clusterrole_aggregation::run(client.clone()));
    tokio::spawn(crate::scheduler::run(client));
}

/// One term of leading: the controllers run on a runtime of their own, so ending the term
/// ends every task they started, including the ones they spawned themselves (reflectors,
/// binds, Event writes), not only the top-level ones.
struct Term(Option<tokio::runtime::Runtime>);

impl Term {
    fn start(config: kube::Config, options: ControllerOptions, api: ApiServerAddress) -> Result<Term> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("wharf-controllers")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the controllers' runtime: {e}")))?;
        // Built inside the runtime: the client's own tasks end with the term too.
        runtime.spawn(async move {
            match build(config) {
                Ok(client) => {
                    tokio::spawn(kubernetes_service::run(client.clone(), api.service_cidr, api.listen));
                    spawn_all(client, &options);
                }
                Err(error) => tracing::error!(%error, "the controllers cannot start"),
            }
        });
        Ok(Term(Some(runtime)))
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs the controllers whenever `leading` says this server leads, and stops them as soon as
/// it says otherwise.
async fn run_while_leading(
    config: kube::Config,
    options: ControllerOptions,
    api: ApiServerAddress,
    mut leading: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        let term = match Term::start(config.clone(), options.clone(), api) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(%error, "the controllers cannot start");
                tokio::time::sleep(crate::leader::RETRY_PERIOD).await;
                continue;
            }
        };
        let ended = leading.wait_for(|l| !*l).await.is_err();
        drop(term);
        tracing::info!("stopped the controllers: this server no longer leads");
        if ended {
            return;
        }
    }
}

/// This server's part in running the controllers: campaigning for the controller-manager
/// Lease, and the controllers while it leads.
pub struct Controllers {
    election: crate::leader::Election,
    runner: tokio::task::JoinHandle<()>,
}

impl Controllers {
    /// Campaigns as `identity` with `client` (unfenced) and runs every controller and the
    /// scheduler, with a client fenced by `identity`, whenever this server leads. `exclusive`:
    /// no other server shares the database (SQLite), so the lease is taken at once.
    pub async fn start(
        client: kube::Client,
        kubeconfig: &Path,
        identity: String,
        exclusive: bool,
        options: &ControllerOptions,
        api: ApiServerAddress,
    ) -> Result<Controllers> {
        let config = fenced(config(kubeconfig).await?, &identity)?;
        let election = crate::leader::Election::spawn(client, identity, exclusive);
        let runner = tokio::spawn(run_while_leading(config, options.clone(), api, election.leading()));
        Ok(Controllers { election, runner })
    }

    /// Stops the controllers, then gives the lease up so another server leads at once.
    pub async fn stop(self) {
        self.runner.abort();
        let _ = self.runner.await;
        self.election.release().await;
    }
}
