//! ReplicaSet: keeps the number of pods its selector owns at `spec.replicas`, as
//! kube-controller-manager's replicaset controller does: it claims pods (adoption and release
//! by selector), creates the missing ones from the template in slow-start batches, deletes the
//! least useful ones first when there are too many, and reports replicas, fully labeled, ready
//! and available pods in its status.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::watcher;
use serde_json::json;

use super::workload::{
    claim_pods, controller_ref, create_pods, delete_pods, is_active, is_available, is_ready, next_availability_check,
    owners_concerned, pod_from_template, ready_since,
};
use super::{Context, DEBOUNCE, ReconcileError, api_message, retry_soon};

/// At most this many pods are created or deleted by one reconcile (kube-controller-manager's
/// `burstReplicas`); the rest follow on the next one.
const BURST_REPLICAS: usize = 500;
/// The annotation that tells which pods to delete first (lower cost first).
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(DELETION_COST)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn restarts(pod: &Pod) -> i32 {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    statuses.into_iter().flatten().map(|c| c.restart_count).max().unwrap_or(0)
}

/// Orders pods from the least useful to the most, as Kubernetes' `ActivePodsWithRanks`:
/// unassigned before assigned, Pending before Unknown before Running, not ready before ready,
/// lower deletion cost first, pods doubled up on a node (`colocated`) before lone ones, ready
/// for less time before longer, more restarts before fewer, newer before older.
fn less_useful(a: &Pod, b: &Pod, colocated: &HashMap<&str, usize>) -> Ordering {
    let rank = |p: &Pod| node_of(p).map(|n| colocated.get(n).copied().unwrap_or(0)).unwrap_or(0);
    node_of(a)
        .is_some()
        .cmp(&node_of(b).is_some())
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| rank(b).cmp(&rank(a)))
        .then_with(|| match (ready_since(a), ready_since(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The `count` pods to delete when scaling down: the least useful first.
fn pods_to_delete<'a>(pods: &[&'a Pod], count: usize) -> Vec<&'a Pod> {
    let mut colocated: HashMap<&str, usize> = HashMap::new();
    for pod in pods {
        if let Some(node) = node_of(pod) {
            *colocated.entry(node).or_default() += 1;
        }
    }
    let mut ranked = pods.to_vec();
    ranked.sort_by(|a, b| less_useful(a, b, &colocated));
    ranked.truncate(count);
    ranked
}

fn positive(n: usize) -> Option<i32> {
    (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX))
}

/// The status the ReplicaSet should report for its `active` pods at `now`; `create_error` is
/// the last failure to create a pod (a ReplicaFailure condition), if any.
fn compute_status(rs: &ReplicaSet, active: &[&Pod], now: Timestamp, create_error: Option<&str>) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels =
        spec.and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
    let template_labels = template_labels.unwrap_or_default();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let empty = BTreeMap::new();
            let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
            template_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let old = rs.status.as_ref();
    let mut conditions: Vec<ReplicaSetCondition> = old
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "ReplicaFailure")
        .collect();
    if let Some(message) = create_error {
        let previous =
            old.and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "ReplicaFailure"));
        conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some(message.into()),
            last_transition_time: Some(previous.and_then(|p| p.last_transition_time.clone()).unwrap_or(Time(now))),
        });
    }
    ReplicaSetStatus {
        replicas: i32::try_from(active.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: positive(fully_labeled),
        ready_replicas: positive(active.iter().filter(|p| is_ready(p)).count()),
        available_replicas: positive(active.iter().filter(|p| is_available(p, min_ready, now)).count()),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        ..Default::default()
    }
}

/// The status as a merge patch: fields that dropped to zero are removed, as Kubernetes omits them.
fn status_patch(status: &ReplicaSetStatus) -> serde_json::Value {
    json!({"status": {
        "replicas": status.replicas,
        "fullyLabeledReplicas": status.fully_labeled_replicas,
        "readyReplicas": status.ready_replicas,
        "availableReplicas": status.available_replicas,
        "observedGeneration": status.observed_generation,
        "conditions": status.conditions,
    }})
}

pub async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = rs.metadata.name.clone().unwrap_or_default();
    let namespace = rs.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let Some(spec) = rs.spec.as_ref() else { return Ok(Action::await_change()) };
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let pods = claim_pods(&ctx.client, &controller_ref(&*rs), &namespace, &spec.selector, deleting).await?;
    let active: Vec<&Pod> = pods.iter().filter(|p| is_active(p)).collect();
    let wanted = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let mut create_error = None;
    let mut delete_error = None;
    let mut more = false;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    if !deleting {
        if active.len() < wanted {
            let missing = wanted - active.len();
            more = missing > BURST_REPLICAS;
            tracing::debug!(replicaset = %name, missing, "creating pods");
            match spec.template.as_ref() {
                Some(template) => {
                    let pod = pod_from_template(template, &namespace, controller_ref(&*rs), None, &format!("{name}-"));
                    let pods = vec![pod; missing.min(BURST_REPLICAS)];
                    create_error = create_pods(&api, &ctx.recorder, &*rs, pods).await.err().map(|e| api_message(&e));
                }
                None => create_error = Some("the ReplicaSet has no pod template".into()),
            }
        } else if active.len() > wanted {
            let extra = (active.len() - wanted).min(BURST_REPLICAS);
            more = active.len() - wanted > BURST_REPLICAS;
            let names = pods_to_delete(&active, extra).iter().filter_map(|p| p.metadata.name.clone()).collect();
            delete_error = delete_pods(&api, &ctx.recorder, &*rs, names).await.err();
        }
    }
    let now = Timestamp::now();
    let status = compute_status(&rs, &active, now, create_error.as_deref());
    if rs.status.as_ref() != Some(&status) {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status_patch(&status))).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(e) = delete_error {
        return Err(e.into());
    }
    if more {
        return Ok(Action::requeue(Duration::from_millis(10)));
    }
    if create_error.is_some() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    Ok(match next_availability_check(&active, min_ready, now) {
        Some(wait) => Action::requeue(wait),
        None => Action::requeue(Duration::from_secs(300)),
    })
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let sets: Api<ReplicaSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let ctx = Context::new(client.clone(), "replicaset-controller");
    let controller = Controller::new(sets, watcher::Config::default());
    let store = controller.store();
    controller
        .watches(pods, watcher::Config::default(), move |pod| {
            owners_concerned(&store, &pod, |rs: &ReplicaSet| rs.spec.as_ref().map(|s| &s.selector))
        })
        .with_config(Config::default().debounce(DEBOUNCE))
        .run(reconcile, retry_soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready_at: Option<&str>, restarts: i32, created: &str) -> Pod {
        let mut conditions = vec![];
        if let Some(at) = ready_at {
            conditions.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": at}));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created, "labels": {"app": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]},
            "status": {"phase": phase, "conditions": conditions,
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready_at.is_some(),
                    "restartCount": restarts}]},
        }))
        .unwrap()
    }

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
    }

    #[test]
    fn orphans_concern_the_replica_sets_that_select_them() {
        let rs = |name: &str, ns: &str, selector: serde_json::Value| -> ReplicaSet {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
                "spec": {"selector": selector}}))
            .unwrap()
        };
        let (store, mut writer) = kube::runtime::reflector::store();
        for set in [
            rs("web", "default", json!({"matchLabels": {"app": "web"}})),
            rs("other", "default", json!({"matchLabels": {"app": "db"}})),
            rs("elsewhere", "prod", json!({"matchLabels": {"app": "web"}})),
            rs("all", "default", json!({})),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(set));
        }
        let interested = |pod: &Pod| {
            owners_concerned(&store, pod, |rs: &ReplicaSet| rs.spec.as_ref().map(|s| &s.selector))
                .into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
        };
        let mut orphan = pod("p", None, "Pending", None, 0, "2026-01-01T00:00:00Z");
        orphan.metadata.namespace = Some("default".into());
        assert_eq!(interested(&orphan), ["web"]);
        orphan.metadata.owner_references = Some(vec![OwnerReference {
            kind: "ReplicaSet".into(),
            name: "mine".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        assert_eq!(interested(&orphan), ["mine"]);
        orphan.metadata.owner_references.as_mut().unwrap()[0].kind = "Job".into();
        assert!(interested(&orphan).is_empty(), "another kind's pod");
    }

    #[test]
    fn scale_down_deletes_the_least_useful_pods_first() {
        let t0 = "2026-01-01T00:00:00Z";
        let t1 = "2026-01-01T00:01:00Z";
        let t2 = "2026-01-01T00:02:00Z";
        let unassigned = pod("unassigned", None, "Pending", None, 0, t0);
        let pending = pod("pending", Some("n1"), "Pending", None, 0, t0);
        let not_ready = pod("not-ready", Some("n1"), "Running", None, 0, t0);
        let ready_recently = pod("ready-recently", Some("n2"), "Running", Some(t2), 0, t0);
        let ready_long = pod("ready-long", Some("n3"), "Running", Some(t0), 0, t0);
        let all = [&ready_long, &ready_recently, &not_ready, &pending, &unassigned];
        assert_eq!(
            names(&pods_to_delete(&all, 5)),
            ["unassigned", "pending", "not-ready", "ready-recently", "ready-long"]
        );
        assert_eq!(names(&pods_to_delete(&all, 2)), ["unassigned", "pending"]);

        // Same readiness time: more restarts first, then newer first.
        let restarted = pod("restarted", Some("a"), "Running", Some(t0), 3, t0);
        let newer = pod("newer", Some("b"), "Running", Some(t0), 0, t1);
        let older = pod("older", Some("c"), "Running", Some(t0), 0, t0);
        assert_eq!(names(&pods_to_delete(&[&older, &newer, &restarted], 3)), ["restarted", "newer", "older"]);

        // Pods doubled up on a node go before a lone one.
        let lone = pod("lone", Some("x"), "Running", Some(t0), 0, t1);
        let double_a = pod("double-a", Some("y"), "Running", Some(t0), 0, t0);
        let double_b = pod("double-b", Some("y"), "Running", Some(t0), 0, t0);
        assert_eq!(names(&pods_to_delete(&[&lone, &double_a, &double_b], 1)), ["double-a"]);
    }

    #[test]
    fn status_counts_labeled_ready_and_available_pods() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 4},
            "spec": {"replicas": 3, "minReadySeconds": 10, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}}},
        }))
        .unwrap();
        let mut labeled = pod("a", Some("n"), "Running", Some("2026-01-01T00:00:00Z"), 0, "2026-01-01T00:00:00Z");
        labeled.metadata.labels.as_mut().unwrap().insert("tier".into(), "front".into());
        let fresh = pod("b", Some("n"), "Running", Some("2026-01-01T00:00:55Z"), 0, "2026-01-01T00:00:00Z");
        let pending = pod("c", None, "Pending", None, 0, "2026-01-01T00:00:00Z");
        let active = [&labeled, &fresh, &pending];
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let status = compute_status(&rs, &active, now, None);
        assert_eq!(status.replicas, 3);
        assert_eq!(status.fully_labeled_replicas, Some(1));
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(1), "b has been ready 5 s of its 10");
        assert_eq!(status.observed_generation, Some(4));
        assert!(status.conditions.is_none());
        let wait = next_availability_check(&active, 10, now).unwrap();
        assert!(wait > Duration::from_secs(4) && wait < Duration::from_secs(6), "{wait:?}");

        let failed = compute_status(&rs, &[], now, Some("quota exceeded"));
        let condition = &failed.conditions.unwrap()[0];
        assert_eq!((condition.type_.as_str(), condition.reason.as_deref()), ("ReplicaFailure", Some("FailedCreate")));
        assert_eq!(failed.ready_replicas, None, "zero counts are omitted as Kubernetes does");
    }
}
