//! The namespace controller: when a namespace is being deleted, it deletes everything in it,
//! and once nothing is left clears the `kubernetes` finalizer so the API server removes it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use super::api_resource;
use super::{Context, ReconcileError, retry_soon};
use crate::registry::kinds::RESOURCES;

/// Name of the finalizer the namespace controller owns (in `spec.finalizers`).
pub const FINALIZER: &str = "kubernetes";

/// Deletes what is left in `namespace`; returns how many objects still remain.
async fn empty(client: &kube::Client, namespace: &str) -> Result<usize, ReconcileError> {
    let mut remaining = 0;
    for r in RESOURCES.iter().filter(|r| r.namespaced && !r.is_review()) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &api_resource(r));
        let left = api.list_metadata(&ListParams::default()).await?;
        if left.items.is_empty() {
            continue;
        }
        api.delete_collection(&DeleteParams::background(), &ListParams::default()).await?;
        remaining += api.list_metadata(&ListParams::default()).await?.items.len();
    }
    Ok(remaining)
}

/// The namespace without this controller's finalizer (others' stay), for the `finalize` subresource.
fn finalized(ns: &Namespace) -> Namespace {
    let mut finalized = ns.clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers.get_or_insert_with(Vec::new).retain(|f| f != FINALIZER);
    }
    finalized
}

pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let name = ns.metadata.name.clone().unwrap_or_default();
    let remaining = empty(&ctx.client, &name).await?;
    if remaining > 0 {
        tracing::info!(namespace = %name, remaining, "waiting for namespace contents to go");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    api.replace_subresource("finalize", &name, &PostParams::default(), &finalized(&ns)).await?;
    tracing::info!(namespace = %name, "namespace emptied and finalized");
    Ok(Action::await_change())
}

pub async fn run(client: kube::Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .run(reconcile, retry_soon, Context::new(client, "namespace-controller"))
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalizing_removes_only_the_kubernetes_finalizer() {
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"finalizers": ["kubernetes", "example.com/keep"]},
        }))
        .unwrap();
        let done = finalized(&ns);
        assert_eq!(done.spec.unwrap().finalizers.unwrap(), ["example.com/keep"]);
        assert_eq!(done.metadata.name.as_deref(), Some("demo"));
    }
}
