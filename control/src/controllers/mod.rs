//! Controllers: each compares desired with observed state through the API (never the store)
//! and acts, in the manner of kube-runtime: `reconcile(Arc<Obj>, Arc<Ctx>) -> Result<Action>`.

pub mod namespace;
pub mod node_lifecycle;

use std::path::Path;

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

/// Starts every controller; they run until the process ends.
pub fn spawn_all(client: kube::Client) {
    tokio::spawn(namespace::run(client.clone()));
    tokio::spawn(node_lifecycle::run(client.clone()));
    tokio::spawn(crate::scheduler::run(client));
}
