//! Node lifecycle, as kube-controller-manager's node lifecycle controller: a node whose Lease in
//! kube-node-lease has not been renewed within the grace period gets its conditions set to
//! Unknown; a node whose Ready condition is not True is tainted NoExecute and NoSchedule
//! (`node.kubernetes.io/not-ready` for False, `node.kubernetes.io/unreachable` for Unknown),
//! has a NodeNotReady event recorded, and its pods marked Ready=False once when it turns not
//! ready (again on the next pass if that failed); the taints go when the node is Ready again. Evicting the pods the taints no longer tolerate is the taint eviction
//! controller's job.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::workload::{is_ready, is_terminal};
use crate::events::{EventType, Recorder};
use crate::registry::strategy;
use crate::registry::well_known::{NOT_READY_TAINT, UNREACHABLE_TAINT};

/// Whether a lease last renewed at `renewed` is stale at `now`.
fn stale(renewed: Option<jiff::Timestamp>, now: jiff::Timestamp, grace: Duration) -> bool {
    match renewed {
        Some(t) => now.duration_since(t) > jiff::SignedDuration::try_from(grace).expect("grace fits"),
        None => true,
    }
}

/// The status of a node's Ready condition, if it has one.
pub fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str())
}

/// The taints a node should have for its Ready status: the ones it has, with the not-ready
/// and unreachable taints made to match (NoExecute ones stamped `timeAdded`, kept from before
/// when already there). None when nothing changes.
fn wanted_taints(current: &[Taint], ready: Option<&str>, now: jiff::Timestamp) -> Option<Vec<Taint>> {
    let condition_key = match ready {
        Some("False") => Some(NOT_READY_TAINT),
        Some("Unknown") => Some(UNREACHABLE_TAINT),
        // Ready, or not reported yet (the agent registers before it reports).
        _ => None,
    };
    let ours = |t: &Taint| t.key == NOT_READY_TAINT || t.key == UNREACHABLE_TAINT;
    let mut out: Vec<Taint> = current.iter().filter(|t| !ours(t)).cloned().collect();
    if let Some(key) = condition_key {
        for effect in ["NoSchedule", "NoExecute"] {
            let kept = current.iter().find(|t| t.key == key && t.effect == effect).cloned();
            out.push(kept.unwrap_or_else(|| Taint {
                key: key.into(),
                effect: effect.into(),
                time_added: (effect == "NoExecute").then_some(Time(now)),
                value: None,
            }));
        }
    }
    let same = out.len() == current.len() && out.iter().all(|t| current.contains(t));
    (!same).then_some(out)
}

/// Marks the pods on a node that is not Ready as not Ready themselves (their agent cannot).
async fn mark_pods_not_ready(client: &kube::Client, node: &str, stamp: &str) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let on_node = pods.list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await?;
    for pod in on_node.into_iter().filter(|p| is_ready(p) && !is_terminal(p)) {
        let (Some(name), Some(namespace)) = (pod.metadata.name.as_deref(), pod.metadata.namespace.as_deref()) else {
            continue;
        };
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": stamp},
        ]}});
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        match api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch)).await {
            Ok(_) => tracing::info!(pod = %name, node, "marked the pod of a not-ready node not ready"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One look at every node. `marked` holds the not-ready nodes whose pods were marked not ready
/// in this not-ready spell: a node's pods are marked when it turns not ready (or when this
/// controller first sees it not ready), and again on later passes only while that failed.
async fn pass(
    client: &kube::Client,
    recorder: &Recorder,
    grace: Duration,
    marked: &mut HashSet<String>,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = jiff::Timestamp::now();
    let stamp = strategy::now();
    let renewals: HashMap<String, jiff::Timestamp> = leases
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|l| Some((l.metadata.name?, l.spec?.renew_time?.0)))
        .collect();
    let all = nodes.list(&ListParams::default()).await?;
    marked.retain(|name| all.iter().any(|n| n.metadata.name.as_ref() == Some(name)));
    for mut node in all {
        let name = node.metadata.name.clone().unwrap_or_default();
        let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let renewed = renewals.get(&name).copied().or(created);
        if stale(renewed, now, grace) && ready_status(&node) != Some("Unknown") {
            let conditions: Vec<_> = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]
                .iter()
                .map(|t| {
                    json!({"type": t, "status": "Unknown", "reason": "NodeStatusUnknown",
                           "message": "Kubelet stopped posting node status.", "lastTransitionTime": stamp})
                })
                .collect();
            tracing::warn!(node = %name, "node stopped renewing its lease; marking it NotReady");
            node = nodes
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Strategic(json!({"status": {"conditions": conditions}})),
                )
                .await?;
        }
        let ready = ready_status(&node).map(str::to_string);
        let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        if let Some(taints) = wanted_taints(&current, ready.as_deref(), now) {
            let was_tainted = current.iter().any(|t| t.key == NOT_READY_TAINT || t.key == UNREACHABLE_TAINT);
            let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version},
                               "spec": {"taints": taints}});
            match nodes.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
                Ok(_) => {}
                // Someone wrote the node in between: the next pass sees the new one.
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(e),
            }
            let not_ready = ready.as_deref().is_some_and(|r| r != "True");
            if not_ready && !was_tainted {
                tracing::warn!(node = %name, ready = ?ready, "node is not ready; tainted it");
                recorder.record(
                    &node,
                    EventType::Normal,
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                );
            } else if !not_ready {
                tracing::info!(node = %name, "node is ready again; removed its not-ready taints");
            }
        }
        if ready.as_deref().is_none_or(|r| r == "True") {
            marked.remove(&name);
        } else if !marked.contains(&name) {
            mark_pods_not_ready(client, &name, &stamp).await?;
            marked.insert(name);
        }
    }
    Ok(())
}

/// How often leases are checked.
const PERIOD: Duration = Duration::from_secs(1);

pub async fn run(client: kube::Client, grace: Duration) {
    let recorder = Recorder::new(client.clone(), "node-controller");
    let mut marked = HashSet::new();
    loop {
        tokio::time::sleep(PERIOD).await;
        if let Err(e) = pass(&client, &recorder, grace, &mut marked).await {
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
        const GRACE: Duration = Duration::from_secs(40);
        assert!(!stale(Some("2026-01-01T00:00:30Z".parse().unwrap()), now, GRACE));
        assert!(stale(Some("2026-01-01T00:00:10Z".parse().unwrap()), now, GRACE));
        assert!(stale(None, now, GRACE));
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint { key: key.into(), effect: effect.into(), time_added: None, value: None }
    }

    #[test]
    fn a_node_that_stopped_reporting_is_tainted_unreachable_and_untainted_when_ready() {
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let user = taint("dedicated", "NoSchedule");
        let tainted = wanted_taints(std::slice::from_ref(&user), Some("Unknown"), now).unwrap();
        assert_eq!(tainted.len(), 3);
        assert_eq!(tainted[0], user, "other taints are kept");
        let no_execute = tainted.iter().find(|t| t.effect == "NoExecute").unwrap();
        assert_eq!(
            (no_execute.key.as_str(), no_execute.time_added.as_ref().map(|t| t.0)),
            (UNREACHABLE_TAINT, Some(now))
        );
        assert!(
            tainted.iter().any(|t| t.key == UNREACHABLE_TAINT && t.effect == "NoSchedule" && t.time_added.is_none())
        );
        // A later pass changes nothing (timeAdded stays the first one).
        let later: jiff::Timestamp = "2026-01-01T00:02:00Z".parse().unwrap();
        assert_eq!(wanted_taints(&tainted, Some("Unknown"), later), None);
        // Ready again: only the user's taint is left.
        assert_eq!(wanted_taints(&tainted, Some("True"), later), Some(vec![user.clone()]));
        assert_eq!(wanted_taints(std::slice::from_ref(&user), Some("True"), later), None);
    }

    #[test]
    fn a_node_reporting_not_ready_is_tainted_not_ready_instead() {
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let unreachable = wanted_taints(&[], Some("Unknown"), now).unwrap();
        let not_ready = wanted_taints(&unreachable, Some("False"), now).unwrap();
        assert!(not_ready.iter().all(|t| t.key == NOT_READY_TAINT), "{not_ready:?}");
        assert_eq!(not_ready.len(), 2);
        // Not reported yet: no taint.
        assert_eq!(wanted_taints(&[], None, now), None);
    }
}
