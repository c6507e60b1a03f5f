//! StatefulSet: pods with stable names NAME-0..N-1, created and deleted in order, as
//! kube-controller-manager's statefulset controller does.
//!
//! OrderedReady creates ordinal i only once 0..i-1 are Running and Ready, and scales down from
//! the highest ordinal one pod at a time, waiting for each to go; Parallel acts on all at once.
//! A deleted or failed pod comes back under the same name. RollingUpdate replaces pods in
//! reverse ordinal order down to the partition, one at a time; OnDelete leaves them to the user.
//! Revisions are `NAME-HASH` (the template's hash) in `controller-revision-hash`. There are no
//! ControllerRevision objects yet, so a pod below the partition that is deleted comes back at the
//! update revision. volumeClaimTemplates are not supported: each claim becomes an emptyDir volume
//! of the pod (a Warning event says so once).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Pod, Volume};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use serde_json::json;

use super::workload::{
    REVISION_LABEL, claim_pods, controller_ref, create_pods, delete_pods, is_available, is_ready, is_terminal,
    next_availability_check, pod_from_template, pod_revision, template_hash,
};
use super::{DEBOUNCE, ReconcileError, retry_soon};
use crate::events::{EventType, Recorder};

/// The label naming a StatefulSet pod (for per-pod Services).
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding a StatefulSet pod's ordinal.
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What one pass does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the pod of this ordinal.
    Create(i32),
    /// Delete this pod.
    Delete(String),
}

fn set_name(sts: &StatefulSet) -> &str {
    sts.metadata.name.as_deref().unwrap_or_default()
}

/// The ordinal of `pod` if it is one of the set's (named `SET-ORDINAL`).
fn ordinal(set: &str, pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    let digits = name.strip_prefix(set)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// The revision name of the set's current template: `NAME-HASH`.
fn revision_name(sts: &StatefulSet) -> String {
    let template = sts.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    format!("{}-{}", set_name(sts), template_hash(&template, sts.status.as_ref().and_then(|s| s.collision_count)))
}

/// The ordinals the set should have: `[start, start + replicas)`.
fn wanted(sts: &StatefulSet) -> std::ops::Range<i32> {
    let spec = sts.spec.as_ref();
    let start = spec.and_then(|s| s.ordinals.as_ref()).and_then(|o| o.start).unwrap_or(0).max(0);
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1).max(0);
    start..start.saturating_add(replicas)
}

fn ordered(sts: &StatefulSet) -> bool {
    sts.spec.as_ref().and_then(|s| s.pod_management_policy.as_deref()) != Some("Parallel")
}

fn rolling(sts: &StatefulSet) -> bool {
    sts.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

fn partition(sts: &StatefulSet) -> i32 {
    sts.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
}

fn min_ready_seconds(sts: &StatefulSet) -> i32 {
    sts.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Running, Ready (for minReadySeconds) and not being deleted.
fn healthy(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    !terminating(pod) && phase(pod) == Some("Running") && is_available(pod, min_ready_seconds, now)
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Decides one pass over the set's pods: create missing ordinals, replace failed pods, delete
/// ordinals beyond the replicas from the highest, then roll old pods in reverse ordinal order
/// down to the partition. OrderedReady stops at the first step or at a pod not yet healthy.
pub fn decide(sts: &StatefulSet, pods: &[Pod], update_revision: &str, now: jiff::Timestamp) -> Vec<Step> {
    let set = set_name(sts);
    let ordered = ordered(sts);
    let min_ready = min_ready_seconds(sts);
    let range = wanted(sts);
    let by_ordinal: BTreeMap<i32, &Pod> = pods.iter().filter_map(|p| Some((ordinal(set, p)?, p))).collect();
    let mut steps = Vec::new();

    for i in range.clone() {
        match by_ordinal.get(&i) {
            None => {
                steps.push(Step::Create(i));
                if ordered {
                    return steps;
                }
            }
            Some(pod) if !terminating(pod) && is_terminal(pod) => {
                // Deleted now, created again under the same name once it is gone.
                steps.push(Step::Delete(name(pod)));
                if ordered {
                    return steps;
                }
            }
            Some(pod) if ordered && !healthy(pod, min_ready, now) => return steps,
            Some(_) => {}
        }
    }

    // Beyond the replicas: the highest ordinal first.
    for (_, pod) in by_ordinal.iter().rev().filter(|(i, _)| !range.contains(i)) {
        if terminating(pod) {
            if ordered {
                return steps;
            }
            continue;
        }
        steps.push(Step::Delete(name(pod)));
        if ordered {
            return steps;
        }
    }

    if !rolling(sts) {
        return steps;
    }
    let floor = range.start.saturating_add(partition(sts).max(0));
    for i in range.rev().filter(|i| *i >= floor) {
        let Some(pod) = by_ordinal.get(&i) else { return steps };
        let delete = Step::Delete(name(pod));
        if steps.contains(&delete) {
            return steps;
        }
        if pod_revision(pod) != Some(update_revision) && !terminating(pod) {
            steps.push(delete);
            return steps;
        }
        if !healthy(pod, min_ready, now) {
            return steps;
        }
    }
    steps
}

/// The status of the set given its pods, as computed before this pass acts.
pub fn status(sts: &StatefulSet, pods: &[Pod], update_revision: &str, now: jiff::Timestamp) -> StatefulSetStatus {
    let set = set_name(sts);
    let previous = sts.status.as_ref();
    let mut current_revision = previous
        .and_then(|s| s.current_revision.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update_revision.to_string());
    let min_ready = min_ready_seconds(sts);
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for pod in pods.iter().filter(|p| ordinal(set, p).is_some()) {
        replicas += 1;
        if phase(pod) == Some("Running") && is_ready(pod) {
            ready += 1;
            if is_available(pod, min_ready, now) {
                available += 1;
            }
        }
        if !terminating(pod) {
            let revision = pod_revision(pod);
            if revision == Some(current_revision.as_str()) {
                current += 1;
            }
            if revision == Some(update_revision) {
                updated += 1;
            }
        }
    }
    if rolling(sts) && updated == replicas && ready == replicas {
        current_revision = update_revision.to_string();
        current = updated;
    }
    StatefulSetStatus {
        observed_generation: sts.metadata.generation,
        replicas,
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        current_replicas: Some(current),
        updated_replicas: Some(updated),
        current_revision: Some(current_revision),
        update_revision: Some(update_revision.to_string()),
        collision_count: previous.and_then(|s| s.collision_count),
        conditions: previous.and_then(|s| s.conditions.clone()),
    }
}

/// The pod of ordinal `i`: stable name, hostname and subdomain, identity labels, and an
/// emptyDir in place of each volume claim template the pod does not already have a volume for.
fn stateful_pod(sts: &StatefulSet, i: i32, revision: &str) -> Pod {
    let set = set_name(sts);
    let spec = sts.spec.clone().unwrap_or_default();
    let namespace = sts.metadata.namespace.as_deref().unwrap_or("default");
    let pod_name = format!("{set}-{i}");
    let mut pod = pod_from_template(&spec.template, namespace, controller_ref(sts), Some(pod_name.clone()), "");
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), pod_name.clone());
    labels.insert(POD_INDEX_LABEL.into(), i.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let pod_spec = pod.spec.get_or_insert_with(Default::default);
    pod_spec.hostname = Some(pod_name);
    if let Some(service) = spec.service_name.filter(|s| !s.is_empty()) {
        pod_spec.subdomain = Some(service);
    }
    for claim in spec.volume_claim_templates.iter().flatten() {
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
        if !claim_name.is_empty() && !volumes.iter().any(|v| v.name == claim_name) {
            volumes.push(Volume {
                name: claim_name,
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
        }
    }
    pod
}

pub struct Context {
    client: kube::Client,
    recorder: Recorder,
    /// Sets (by uid) already warned that their volumeClaimTemplates are not supported.
    warned: Mutex<HashSet<String>>,
}

/// Records once per set that its claim templates became emptyDir volumes.
fn warn_claims_once(sts: &StatefulSet, ctx: &Context) {
    let claims: Vec<String> = sts
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let uid = sts.metadata.uid.clone().unwrap_or_default();
    if claims.is_empty() || !ctx.warned.lock().map(|mut w| w.insert(uid)).unwrap_or(false) {
        return;
    }
    let message = format!(
        "volumeClaimTemplates are not supported yet: no PersistentVolumeClaims are made; pods get an emptyDir \
         volume in place of each claim ({}), whose data does not outlive the pod",
        claims.join(", ")
    );
    ctx.recorder.record(sts, EventType::Warning, "VolumeClaimTemplatesNotSupported", &message);
}

pub async fn reconcile(sts: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let Some(spec) = sts.spec.as_ref() else { return Ok(Action::await_change()) };
    let namespace = sts.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let deleting = sts.metadata.deletion_timestamp.is_some();
    let pods = claim_pods(&ctx.client, &controller_ref(&*sts), &namespace, &spec.selector, deleting).await?;
    if deleting {
        return Ok(Action::await_change());
    }
    warn_claims_once(&sts, &ctx);
    let set = set_name(&sts).to_string();
    let revision = revision_name(&sts);
    let now = jiff::Timestamp::now();
    let steps = decide(&sts, &pods, &revision, now);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let (mut deletes, mut creates) = (Vec::new(), Vec::new());
    for step in &steps {
        match step {
            Step::Create(i) => creates.push(stateful_pod(&sts, *i, &revision)),
            Step::Delete(pod) => deletes.push(pod.clone()),
        }
    }
    delete_pods(&api, &ctx.recorder, &*sts, deletes).await?;
    // A name held by a pod this set does not control blocks that ordinal until it goes.
    let blocked = match create_pods(&api, &ctx.recorder, &*sts, creates).await {
        Err(kube::Error::Api(e)) if e.code == 409 => true,
        other => {
            other?;
            false
        }
    };

    let next = status(&sts, &pods, &revision, now);
    if sts.status.as_ref() != Some(&next) {
        let sts_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
        match sts_api.patch_status(&set, &PatchParams::default(), &Patch::Merge(json!({"status": next}))).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    // A pod ready but not yet available for minReadySeconds becomes so without an event.
    let live: Vec<&Pod> = pods.iter().filter(|p| !terminating(p)).collect();
    let wait = next_availability_check(&live, min_ready_seconds(&sts), now).unwrap_or(Duration::from_secs(300));
    Ok(Action::requeue(if blocked { wait.min(Duration::from_secs(10)) } else { wait }))
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), "statefulset-controller"),
        client: client.clone(),
        warned: Mutex::new(HashSet::new()),
    });
    Controller::new(Api::<StatefulSet>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default())
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .run(reconcile, retry_soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(replicas: i32, extra: serde_json::Value) -> StatefulSet {
        let mut spec = json!({
            "replicas": replicas,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "ticker:v1"}]}},
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default", "uid": "s1", "generation": 3}, "spec": spec}),
        )
        .unwrap()
    }

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    /// Pod `i` of `sts` at `revision`: "ready", "pending", "failed" or "terminating".
    fn pod(sts: &StatefulSet, i: i32, revision: &str, state: &str) -> Pod {
        let mut pod = stateful_pod(sts, i, revision);
        let (phase, ready) = match state {
            "ready" | "terminating" => ("Running", true),
            "failed" => ("Failed", false),
            _ => ("Pending", false),
        };
        pod.status = Some(
            serde_json::from_value(json!({"phase": phase, "conditions": [{"type": "Ready",
                "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
            .unwrap(),
        );
        if state == "terminating" {
            pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        }
        pod
    }

    fn pods(sts: &StatefulSet, states: &[(i32, &str)], revision: &str) -> Vec<Pod> {
        states.iter().map(|(i, s)| pod(sts, *i, revision, s)).collect()
    }

    fn delete(name: &str) -> Step {
        Step::Delete(name.into())
    }

    #[test]
    fn ordered_ready_creates_one_ordinal_at_a_time() {
        let sts = set(3, json!({}));
        let rev = revision_name(&sts);
        assert_eq!(decide(&sts, &[], &rev, now()), [Step::Create(0)]);
        assert_eq!(decide(&sts, &pods(&sts, &[(0, "pending")], &rev), &rev, now()), [], "waits for web-0 to be Ready");
        assert_eq!(decide(&sts, &pods(&sts, &[(0, "ready")], &rev), &rev, now()), [Step::Create(1)]);
        assert_eq!(decide(&sts, &pods(&sts, &[(0, "ready"), (1, "ready")], &rev), &rev, now()), [Step::Create(2)]);
        let all = pods(&sts, &[(0, "ready"), (1, "ready"), (2, "ready")], &rev);
        assert_eq!(decide(&sts, &all, &rev, now()), []);
        // A lost web-0 comes back first, under its own name.
        assert_eq!(decide(&sts, &all[1..], &rev, now()), [Step::Create(0)]);
    }

    #[test]
    fn parallel_creates_everything_at_once() {
        let sts = set(3, json!({"podManagementPolicy": "Parallel"}));
        let rev = revision_name(&sts);
        assert_eq!(decide(&sts, &[], &rev, now()), [Step::Create(0), Step::Create(1), Step::Create(2)]);
        let some = pods(&sts, &[(1, "pending")], &rev);
        assert_eq!(decide(&sts, &some, &rev, now()), [Step::Create(0), Step::Create(2)]);
    }

    #[test]
    fn scale_down_goes_from_the_highest_ordinal_one_at_a_time() {
        let sts = set(1, json!({}));
        let rev = revision_name(&sts);
        let three = pods(&sts, &[(0, "ready"), (1, "ready"), (2, "ready")], &rev);
        assert_eq!(decide(&sts, &three, &rev, now()), [delete("web-2")]);
        let going = pods(&sts, &[(0, "ready"), (1, "ready"), (2, "terminating")], &rev);
        assert_eq!(decide(&sts, &going, &rev, now()), [], "waits for web-2 to go");
        assert_eq!(decide(&sts, &three[..2], &rev, now()), [delete("web-1")]);
        let parallel = set(1, json!({"podManagementPolicy": "Parallel"}));
        assert_eq!(decide(&parallel, &three, &rev, now()), [delete("web-2"), delete("web-1")]);
    }

    #[test]
    fn failed_pods_are_replaced_under_the_same_name() {
        let sts = set(2, json!({}));
        let rev = revision_name(&sts);
        let failed = pods(&sts, &[(0, "failed"), (1, "ready")], &rev);
        assert_eq!(decide(&sts, &failed, &rev, now()), [delete("web-0")]);
        let gone = pods(&sts, &[(0, "terminating"), (1, "ready")], &rev);
        assert_eq!(decide(&sts, &gone, &rev, now()), []);
    }

    #[test]
    fn rolling_update_goes_in_reverse_order_down_to_the_partition() {
        let sts = set(3, json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}));
        let new = revision_name(&sts);
        let mut all = pods(&sts, &[(0, "ready"), (1, "ready"), (2, "ready")], "web-old");
        assert_eq!(decide(&sts, &all, &new, now()), [delete("web-2")]);
        all[2] = pod(&sts, 2, &new, "pending");
        assert_eq!(decide(&sts, &all, &new, now()), [], "waits for the new web-2 to be Ready");
        all[2] = pod(&sts, 2, &new, "ready");
        assert_eq!(decide(&sts, &all, &new, now()), [delete("web-1")]);
        all[1] = pod(&sts, 1, &new, "ready");
        assert_eq!(decide(&sts, &all, &new, now()), [], "web-0 is below the partition");
        let mut sts = sts;
        sts.status = Some(StatefulSetStatus { current_revision: Some("web-old".into()), ..Default::default() });
        let s = status(&sts, &all, &new, now());
        assert_eq!((s.updated_replicas, s.current_replicas, s.ready_replicas), (Some(2), Some(1), Some(3)));
        assert_eq!(s.current_revision.as_deref(), Some("web-old"), "a partitioned rollout is not complete");
        let on_delete = set(3, json!({"updateStrategy": {"type": "OnDelete"}}));
        let old = pods(&on_delete, &[(0, "ready"), (1, "ready"), (2, "ready")], "web-old");
        assert_eq!(decide(&on_delete, &old, &revision_name(&on_delete), now()), []);
    }

    #[test]
    fn status_completes_the_rollout_when_all_pods_are_updated_and_ready() {
        let mut sts = set(2, json!({}));
        let new = revision_name(&sts);
        sts.status = Some(StatefulSetStatus { current_revision: Some("web-old".into()), ..Default::default() });
        let mixed = vec![pod(&sts, 0, "web-old", "ready"), pod(&sts, 1, &new, "ready")];
        let s = status(&sts, &mixed, &new, now());
        assert_eq!(s.current_revision.as_deref(), Some("web-old"));
        assert_eq!((s.replicas, s.current_replicas, s.updated_replicas), (2, Some(1), Some(1)));
        let done = pods(&sts, &[(0, "ready"), (1, "ready")], &new);
        let s = status(&sts, &done, &new, now());
        assert_eq!(s.current_revision.as_deref(), Some(new.as_str()));
        assert_eq!((s.current_replicas, s.available_replicas, s.observed_generation), (Some(2), Some(2), Some(3)));
    }

    #[test]
    fn pods_have_stable_identities() {
        let sts = set(
            1,
            json!({"volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}),
        );
        let p = stateful_pod(&sts, 4, "web-abc");
        assert_eq!(p.metadata.name.as_deref(), Some("web-4"));
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-4");
        assert_eq!(labels[POD_INDEX_LABEL], "4");
        assert_eq!(labels[REVISION_LABEL], "web-abc");
        let spec = p.spec.as_ref().unwrap();
        assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-4"), Some("web")));
        assert!(spec.volumes.as_ref().unwrap().iter().any(|v| v.name == "www" && v.empty_dir.is_some()));
        assert_eq!(ordinal("web", &p), Some(4));
        let mut other = p.clone();
        other.metadata.name = Some("web-04".into());
        assert_eq!(ordinal("web", &other), None);
        other.metadata.name = Some("webby-1".into());
        assert_eq!(ordinal("web", &other), None);
    }
}
