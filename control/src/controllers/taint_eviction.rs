//! Taint eviction, as kube-controller-manager's taint-eviction-controller: a pod bound to a
//! node with NoExecute taints is deleted at once when it does not tolerate one of them, after
//! the shortest `tolerationSeconds` of the tolerations it uses (the first one matching each
//! taint; counted from the taint's `timeAdded`) when they are bounded, and never when it
//! tolerates them forever.
//!
//! Nodes and pods are watched into reflector stores; a pass each second looks at the pods of
//! the nodes that have NoExecute taints, which is none in a healthy cluster, so it costs nothing
//! then however many pods there are.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::events::{EventType, Recorder};
use crate::placement::tolerates;

/// How often tainted nodes' pods are looked at.
const PERIOD: Duration = Duration::from_secs(1);

/// When a pod must leave its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eviction {
    Now,
    At(jiff::Timestamp),
    Never,
}

/// When a pod with `tolerations` must leave a node with `taints` (only NoExecute ones count),
/// as Kubernetes' GetMatchingTolerations and getMinTolerationTime: every taint must be
/// tolerated; each taint uses the first of the pod's tolerations that matches it, and the
/// shortest bound among the tolerations so used counts (one without a bound lasts forever, so
/// a later bounded toleration of the same taint does not count), from the earliest `timeAdded`
/// of the taints. A taint without `timeAdded` counts from `first_seen` (when this controller
/// saw it); Kubernetes counts from when its controller saw the taint.
fn eviction(taints: &[Taint], tolerations: &[Toleration], first_seen: jiff::Timestamp) -> Eviction {
    let taints: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    let mut used: Vec<&Toleration> = Vec::new();
    for taint in &taints {
        let Some(first) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Eviction::Now;
        };
        used.push(first);
    }
    let Some(seconds) = used.iter().filter_map(|t| t.toleration_seconds).min() else {
        return Eviction::Never;
    };
    let since = taints.iter().map(|t| t.time_added.as_ref().map_or(first_seen, |t| t.0)).min().unwrap_or(first_seen);
    Eviction::At(since + jiff::SignedDuration::from_secs(seconds.max(0)))
}

async fn evict(client: &kube::Client, recorder: &Recorder, pod: &Pod) -> Result<(), kube::Error> {
    let (Some(name), Some(namespace)) = (pod.metadata.name.as_deref(), pod.metadata.namespace.as_deref()) else {
        return Ok(());
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let condition = json!({"status": {"conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": crate::registry::strategy::now(),
    }]}});
    match api.patch_status(name, &PatchParams::default(), &Patch::Strategic(condition)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    }
    recorder.record(
        pod,
        EventType::Normal,
        "TaintManagerEviction",
        &format!("Marking for deletion Pod {namespace}/{name}"),
    );
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {
            tracing::info!(pod = %name, namespace, "evicted a pod from a NoExecute-tainted node");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// One look at the pods of NoExecute-tainted nodes. `first_seen` remembers when taints
/// without a timeAdded were first seen, by node and key.
async fn pass(
    client: &kube::Client,
    recorder: &Recorder,
    nodes: &Store<Node>,
    pods: &Store<Pod>,
    first_seen: &mut HashMap<(String, String), jiff::Timestamp>,
) {
    let now = jiff::Timestamp::now();
    let mut tainted: HashMap<String, Vec<Taint>> = HashMap::new();
    for node in nodes.state() {
        let taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == "NoExecute")
            .collect();
        if !taints.is_empty() {
            tainted.insert(node.metadata.name.clone().unwrap_or_default(), taints);
        }
    }
    first_seen.retain(|(node, key), _| tainted.get(node).is_some_and(|t| t.iter().any(|t| &t.key == key)));
    if tainted.is_empty() {
        return;
    }
    for pod in pods.state() {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else { continue };
        let Some(taints) = tainted.get(node) else { continue };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let seen = taints
            .iter()
            .map(|t| *first_seen.entry((node.to_string(), t.key.clone())).or_insert(now))
            .min()
            .unwrap_or(now);
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
        let due = match eviction(taints, &tolerations, seen) {
            Eviction::Now => true,
            Eviction::At(at) => at <= now,
            Eviction::Never => false,
        };
        if due && let Err(e) = evict(client, recorder, &pod).await {
            tracing::warn!(error = %e, "taint eviction failed; retrying");
        }
    }
}

/// Drives a reflector for `api` in the background and returns its store.
fn reflect<K>(api: Api<K>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
    tokio::spawn(stream.for_each(|_| async {}));
    reader
}

pub async fn run(client: kube::Client) {
    let recorder = Recorder::new(client.clone(), "taint-eviction-controller");
    let nodes = reflect(Api::<Node>::all(client.clone()));
    let pods = reflect(Api::<Pod>::all(client.clone()));
    if nodes.wait_until_ready().await.is_err() || pods.wait_until_ready().await.is_err() {
        return;
    }
    let mut first_seen = HashMap::new();
    loop {
        tokio::time::sleep(PERIOD).await;
        pass(&client, &recorder, &nodes, &pods, &mut first_seen).await;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn unreachable_since(added: &str) -> Taint {
        Taint {
            key: "node.kubernetes.io/unreachable".into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(ts(added))),
            value: None,
        }
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    #[test]
    fn a_pod_that_does_not_tolerate_the_taint_goes_at_once() {
        let taints = [unreachable_since("2026-01-01T00:00:00Z")];
        let seen = ts("2026-01-01T00:00:00Z");
        assert_eq!(eviction(&taints, &[], seen), Eviction::Now);
        let other = toleration("node.kubernetes.io/not-ready", Some(300));
        assert_eq!(eviction(&taints, &[other], seen), Eviction::Now);
    }

    #[test]
    fn bounded_tolerations_count_from_the_time_the_taint_was_added() {
        let taints = [unreachable_since("2026-01-01T00:00:10Z")];
        let seen = ts("2026-01-01T00:05:00Z");
        let bounded = toleration("node.kubernetes.io/unreachable", Some(3));
        assert_eq!(eviction(&taints, std::slice::from_ref(&bounded), seen), Eviction::At(ts("2026-01-01T00:00:13Z")));
        // A negative bound means now (from timeAdded).
        let negative = toleration("node.kubernetes.io/unreachable", Some(-5));
        assert_eq!(eviction(&taints, &[negative], seen), Eviction::At(ts("2026-01-01T00:00:10Z")));
        // Without timeAdded, from when the taint was first seen.
        let mut untimed = taints[0].clone();
        untimed.time_added = None;
        assert_eq!(eviction(&[untimed], &[bounded], seen), Eviction::At(ts("2026-01-01T00:05:03Z")));
    }

    #[test]
    fn a_pod_tolerating_forever_stays_and_other_effects_do_not_count() {
        let taints = [unreachable_since("2026-01-01T00:00:00Z")];
        let seen = ts("2026-01-01T00:00:00Z");
        let forever = toleration("node.kubernetes.io/unreachable", None);
        let bounded = toleration("node.kubernetes.io/unreachable", Some(3));
        assert_eq!(eviction(&taints, std::slice::from_ref(&forever), seen), Eviction::Never);
        // Of two matching the same taint, only the first is used, as in Kubernetes.
        assert_eq!(eviction(&taints, &[forever.clone(), bounded.clone()], seen), Eviction::Never);
        assert_eq!(eviction(&taints, &[bounded, forever], seen), Eviction::At(ts("2026-01-01T00:00:03Z")));
        let everything = Toleration { operator: Some("Exists".into()), ..Default::default() };
        assert_eq!(eviction(&taints, &[everything], seen), Eviction::Never);
        let no_schedule = Taint { effect: "NoSchedule".into(), ..taints[0].clone() };
        assert_eq!(eviction(&[no_schedule], &[], seen), Eviction::Never);
    }

    #[test]
    fn of_several_taints_the_shortest_bound_counts_from_the_earliest_taint() {
        let a = unreachable_since("2026-01-01T00:00:00Z");
        let b = Taint { key: "example.com/b".into(), ..unreachable_since("2026-01-01T00:00:20Z") };
        let tolerations =
            [toleration("node.kubernetes.io/unreachable", Some(60)), toleration("example.com/b", Some(5))];
        let seen = ts("2026-01-01T00:00:00Z");
        assert_eq!(eviction(&[a.clone(), b.clone()], &tolerations, seen), Eviction::At(ts("2026-01-01T00:00:05Z")));
        // One taint not tolerated: now.
        assert_eq!(eviction(&[a, b], &tolerations[..1], seen), Eviction::Now);
    }
}
