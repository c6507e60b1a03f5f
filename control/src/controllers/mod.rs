//! Controllers: each compares desired with observed state through the API (never the store)
//! and acts, in the manner of kube-runtime: `reconcile(Arc<Obj>, Arc<Ctx>) -> Result<Action>`.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod event_ttl;
pub mod garbage_collector;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
pub mod replicaset;
pub mod statefulset;
pub mod taint_eviction;
pub mod ttl_after_finished;
pub mod workload;

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// An API client for in-process controllers, from the admin kubeconfig the server wrote.
pub async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| Error::Internal(format!("cannot read {}: {e}", kubeconfig.display())))?;
    let config = kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Internal(format!("bad kubeconfig {}: {e}", kubeconfig.display())))?;
    kube::Client::try_from(config).map_err(|e| Error::Internal(format!("cannot build an API client: {e}")))
}

/// Settings of the controllers, named after kube-controller-manager's flags.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// `--node-monitor-grace-period`: how long a node may go without renewing its Lease before
    /// it is marked NotReady (Unknown).
    pub node_monitor_grace_period: Duration,
    /// `--event-ttl` (kube-apiserver's): how long an Event is kept after it last happened.
    pub event_ttl: Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions { node_monitor_grace_period: Duration::from_secs(40), event_ttl: Duration::from_secs(3600) }
    }
}

/// Starts every controller and the scheduler; they run until the process ends.
pub fn spawn_all(client: kube::Client, options: &ControllerOptions) {
    tokio::spawn(namespace::run(client.clone()));
    tokio::spawn(node_lifecycle::run(client.clone(), options.node_monitor_grace_period));
    tokio::spawn(event_ttl::run(client.clone(), options.event_ttl));
    tokio::spawn(taint_eviction::run(client.clone()));
    tokio::spawn(garbage_collector::run(client.clone()));
    tokio::spawn(replicaset::run(client.clone()));
    tokio::spawn(deployment::run(client.clone()));
    tokio::spawn(job::run(client.clone()));
    tokio::spawn(cronjob::run(client.clone()));
    tokio::spawn(ttl_after_finished::run(client.clone()));
    tokio::spawn(daemonset::run(client.clone()));
    tokio::spawn(statefulset::run(client.clone()));
    tokio::spawn(crate::scheduler::run(client));
}
