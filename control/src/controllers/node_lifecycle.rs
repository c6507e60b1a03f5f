//! Node lifecycle: a node whose Lease in kube-node-lease has not been renewed within the grace
//! period gets its Ready condition set to Unknown, as kube-controller-manager does. (Taints and
//! evictions come with the controllers issue.)

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// How long a node may go without renewing its Lease before it is NotReady.
pub const GRACE: Duration = Duration::from_secs(40);

/// Whether a lease last renewed at `renewed` is stale at `now`.
fn stale(renewed: Option<jiff::Timestamp>, now: jiff::Timestamp, grace: Duration) -> bool {
    match renewed {
        Some(t) => now.duration_since(t) > jiff::SignedDuration::try_from(grace).expect("grace fits"),
        None => true,
    }
}

async fn pass(client: &kube::Client, grace: Duration) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = jiff::Timestamp::now();
    let renewals: std::collections::HashMap<String, jiff::Timestamp> = leases
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|l| Some((l.metadata.name?, l.spec?.renew_time?.0)))
        .collect();
    for node in nodes.list(&ListParams::default()).await? {
        let name = node.metadata.name.clone().unwrap_or_default();
        let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let renewed = renewals.get(&name).copied().or(created);
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        if stale(renewed, now, grace) && ready.as_deref() != Some("Unknown") {
            let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let conditions: Vec<_> = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]
                .iter()
                .map(|t| {
                    json!({"type": t, "status": "Unknown", "reason": "NodeStatusUnknown",
                           "message": "Kubelet stopped posting node status.", "lastTransitionTime": stamp})
                })
                .collect();
            tracing::warn!(node = %name, "node stopped renewing its lease; marking it NotReady");
            nodes
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Strategic(json!({"status": {"conditions": conditions}})),
                )
                .await?;
        }
    }
    Ok(())
}

/// How often leases are checked.
const PERIOD: Duration = Duration::from_secs(1);

pub async fn run(client: kube::Client, grace: Duration) {
    loop {
        tokio::time::sleep(PERIOD).await;
        if let Err(e) = pass(&client, grace).await {
            tracing::warn!(error = %e, "node lifecycle pass failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_go_stale_after_the_grace_period() {
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        assert!(!stale(Some("2026-01-01T00:00:30Z".parse().unwrap()), now, GRACE));
        assert!(stale(Some("2026-01-01T00:00:10Z".parse().unwrap()), now, GRACE));
        assert!(stale(None, now, GRACE));
    }
}
