//! Job: runs pods to completion (completions, parallelism, backoffLimit, Indexed mode), as
//! kube-controller-manager's job controller does: pods are counted from the API on every
//! reconcile, failed pods are replaced after an exponential back-off (10 s doubling, at most
//! 10 min), and the Job ends Complete or Failed (BackoffLimitExceeded, DeadlineExceeded), its
//! still-active pods deleted.
//!
//! Counting: terminal pods stay until the Job is deleted, so succeeded and failed are counted
//! from them, never lower than what the status already says (a terminal pod someone deleted
//! stays counted; Kubernetes uses a tracking finalizer for that, Wharf does not yet).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::workload::{
    claim_pods, controller_ref, create_pods, delete_pods, is_active, is_ready, is_terminal, pod_from_template,
};
use super::{Context, DEBOUNCE, ReconcileError, retry_soon};
use crate::events::EventType;

/// The annotation and label holding an Indexed Job pod's index.
const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable every container of an Indexed Job pod gets its index in.
const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Back-off before re-creating failed pods: 10 s, doubling per consecutive failure, at most 10 min.
const BACKOFF_BASE: SignedDuration = SignedDuration::from_secs(10);
const BACKOFF_MAX: SignedDuration = SignedDuration::from_secs(600);
/// At most this many pods are created or deleted per reconcile.
const MAX_BURST: usize = 500;

/// How a finished Job ended: its `Complete` or `Failed` condition (True), and when.
pub fn finished(job: &Job) -> Option<(&str, Option<Timestamp>)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    let at = match c.type_.as_str() {
        "Complete" => job.status.as_ref().and_then(|s| s.completion_time.as_ref()).or(c.last_transition_time.as_ref()),
        _ => c.last_transition_time.as_ref(),
    };
    Some((c.type_.as_str(), at.map(|t| t.0)))
}

/// What one reconcile does.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// The status to write (written only if it differs).
    pub status: JobStatus,
    /// Pods to create: their completion index in Indexed mode, else None.
    pub create: Vec<Option<i32>>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    /// Events about the Job after the status is written (type, reason, message).
    pub events: Vec<(EventType, &'static str, String)>,
    /// When to look again even if nothing changes (back-off, deadline).
    pub requeue: Option<Duration>,
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata.annotations.as_ref()?.get(COMPLETION_INDEX)?.parse().ok()
}

/// When a terminal pod finished: its containers' last finish, else its Ready condition's
/// last change, else its creation.
fn finish_time(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let from_containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0))
        .max();
    let from_ready = || {
        let conditions = status?.conditions.as_ref()?;
        conditions.iter().find(|c| c.type_ == "Ready")?.last_transition_time.as_ref().map(|t| t.0)
    };
    from_containers.or_else(from_ready).or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Container restarts of active pods (what backoffLimit counts with restartPolicy OnFailure).
fn restarts(pods: &[&Pod]) -> i32 {
    pods.iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()))
        .map(|c| c.restart_count)
        .sum()
}

/// How long to wait before creating a replacement: 10 s doubled per failure since the last
/// success, from the last failure; zero when no failure is pending.
fn backoff_remaining(pods: &[Pod], now: Timestamp) -> SignedDuration {
    let last_success = pods.iter().filter(|p| phase(p) == "Succeeded").filter_map(finish_time).max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| phase(p) == "Failed")
        .filter_map(finish_time)
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let Some(last_failure) = failures.iter().max() else { return SignedDuration::ZERO };
    let doublings = (failures.len() - 1).min(16) as i32;
    let delay = BACKOFF_BASE.checked_mul(1 << doublings).unwrap_or(BACKOFF_MAX).min(BACKOFF_MAX);
    let elapsed = now.duration_since(*last_failure);
    (delay - elapsed).max(SignedDuration::ZERO)
}

/// Parses `status.completedIndexes` ("0-2,4").
fn parse_indexes(text: &str) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(first), Ok(last)) = (first.parse::<i32>(), last.parse::<i32>()) {
            set.extend(first..=last);
        }
    }
    set
}

/// Formats indexes as `status.completedIndexes` does: ascending, runs as "first-last".
fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last = iter.next().unwrap_or(last);
        }
        parts.push(if first == last { first.to_string() } else { format!("{first}-{last}") });
    }
    parts.join(",")
}

fn condition(type_: &str, status: bool, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition, keeping its transition time when its status does not change.
fn set_condition(conditions: &mut Vec<JobCondition>, new: JobCondition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) if old.status == new.status => {
            old.reason = new.reason;
            old.message = new.message;
        }
        Some(old) => *old = new,
        None => conditions.push(new),
    }
}

fn is_true(status: &JobStatus, type_: &str) -> bool {
    status.conditions.iter().flatten().any(|c| c.type_ == type_ && c.status == "True")
}

fn nonzero(n: usize) -> Option<i32> {
    (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX))
}

fn to_std(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or_default()
}

/// Active pods to delete first when there are too many: not ready before ready, then newest.
fn deletion_order(pods: &mut [&Pod]) {
    pods.sort_by_key(|p| (is_ready(p), std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0))));
}

fn name_of(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Decides what to do about `job` given the pods it controls, at `now`.
pub fn decide(job: &Job, pods: &[Pod], now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let old = job.status.clone().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let active: Vec<&Pod> = pods.iter().filter(|p| is_active(p)).collect();
    if finished(job).is_some() {
        plan.delete = active.iter().map(|p| name_of(p)).collect();
        plan.status = old;
        return plan;
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let terminating = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_some() && !is_terminal(p)).count();

    // What the pods say, never less than the status already counted.
    let mut completed = parse_indexes(old.completed_indexes.as_deref().unwrap_or(""));
    let succeeded_pods = pods.iter().filter(|p| phase(p) == "Succeeded");
    let succeeded = if indexed {
        let completions = spec.completions.unwrap_or(0);
        completed.extend(succeeded_pods.filter_map(index_of).filter(|i| (0..completions).contains(i)));
        completed.len()
    } else {
        succeeded_pods.count().max(old.succeeded.unwrap_or(0).max(0) as usize)
    };
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count().max(old.failed.unwrap_or(0).max(0) as usize);

    let mut status = JobStatus {
        conditions: old.conditions.clone(),
        start_time: old.start_time.clone(),
        completion_time: old.completion_time.clone(),
        succeeded: nonzero(succeeded),
        failed: nonzero(failed),
        completed_indexes: (indexed && !completed.is_empty()).then(|| format_indexes(&completed)),
        ..Default::default()
    };
    let mut conditions = status.conditions.take().unwrap_or_default();

    if spec.suspend == Some(true) {
        let mut deleting: Vec<&Pod> = active.clone();
        deletion_order(&mut deleting);
        plan.delete = deleting.iter().take(MAX_BURST).map(|p| name_of(p)).collect();
        if !is_true(&old, "Suspended") {
            set_condition(&mut conditions, condition("Suspended", true, "JobSuspended", "Job suspended", now));
            plan.events.push((EventType::Normal, "Suspended", "Job suspended".into()));
        }
        status.terminating = nonzero(terminating + plan.delete.len());
        status.conditions = Some(conditions);
        plan.status = status;
        return plan;
    }
    if is_true(&old, "Suspended") {
        set_condition(&mut conditions, condition("Suspended", false, "JobResumed", "Job resumed", now));
        plan.events.push((EventType::Normal, "Resumed", "Job resumed".into()));
        status.start_time = Some(Time(now));
    }
    let start = status.start_time.get_or_insert(Time(now)).0;

    // Finished?
    let on_failure = spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("OnFailure");
    let restarted = if on_failure { restarts(&active) } else { 0 };
    let past_restarts = on_failure && if backoff_limit == 0 { restarted > 0 } else { restarted >= backoff_limit };
    let deadline = spec.active_deadline_seconds.map(|s| start + SignedDuration::from_secs(s));
    let failure = if failed > backoff_limit.max(0) as usize || past_restarts {
        Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
    } else if deadline.is_some_and(|d| now >= d) {
        Some(("DeadlineExceeded", "Job was active longer than specified deadline"))
    } else {
        None
    };
    let complete = match spec.completions {
        _ if failure.is_some() => false,
        Some(completions) => succeeded >= completions.max(0) as usize,
        None => succeeded > 0 && active.is_empty(),
    };
    if failure.is_some() || complete {
        plan.delete = active.iter().map(|p| name_of(p)).collect();
        if let Some((reason, message)) = failure {
            set_condition(&mut conditions, condition("FailureTarget", true, reason, message, now));
            set_condition(&mut conditions, condition("Failed", true, reason, message, now));
            plan.events.push((EventType::Warning, reason, message.into()));
        } else {
            let message = "Reached expected number of succeeded pods";
            set_condition(&mut conditions, condition("SuccessCriteriaMet", true, "CompletionsReached", message, now));
            set_condition(&mut conditions, condition("Complete", true, "CompletionsReached", message, now));
            status.completion_time = Some(Time(now));
            plan.events.push((EventType::Normal, "Completed", "Job completed".into()));
        }
        status.terminating = nonzero(terminating + plan.delete.len());
        status.conditions = Some(conditions);
        plan.status = status;
        return plan;
    }
    plan.requeue = deadline.map(|d| to_std(d.duration_since(now)) + Duration::from_millis(100));

    // How many should run.
    let remaining = spec.completions.map(|c| (c.max(0) as usize).saturating_sub(succeeded));
    let want = match remaining {
        Some(remaining) => remaining.min(parallelism as usize),
        None if succeeded > 0 => active.len(),
        None => parallelism as usize,
    };
    let mut keep: Vec<&Pod> = Vec::new();
    let mut extra: Vec<&Pod> = Vec::new();
    if indexed {
        // One active pod per index still to complete; others go.
        let completions = spec.completions.unwrap_or(0);
        let mut seen = BTreeSet::new();
        let mut sorted = active.clone();
        sorted.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        for pod in sorted {
            match index_of(pod) {
                Some(i) if (0..completions).contains(&i) && !completed.contains(&i) && seen.insert(i) => keep.push(pod),
                _ => extra.push(pod),
            }
        }
    } else {
        keep = active.clone();
    }
    if keep.len() > want {
        deletion_order(&mut keep);
        let surplus = keep.len() - want;
        extra.extend(keep.drain(..surplus));
    }
    plan.delete = extra.iter().take(MAX_BURST).map(|p| name_of(p)).collect();

    let missing = want.saturating_sub(keep.len()).min(MAX_BURST);
    let wait = backoff_remaining(pods, now);
    if missing > 0 && wait > SignedDuration::ZERO {
        let again = to_std(wait) + Duration::from_millis(100);
        plan.requeue = Some(plan.requeue.map_or(again, |r| r.min(again)));
    } else if missing > 0 {
        plan.create = if indexed {
            let running: BTreeSet<i32> = keep.iter().filter_map(|p| index_of(p)).collect();
            (0..spec.completions.unwrap_or(0))
                .filter(|i| !completed.contains(i) && !running.contains(i))
                .take(missing)
                .map(Some)
                .collect()
        } else {
            vec![None; missing]
        };
    }
    status.active = nonzero(keep.len() + plan.create.len());
    status.ready = Some(keep.iter().filter(|p| is_ready(p)).count() as i32);
    status.terminating = nonzero(terminating + plan.delete.len());
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    plan.status = status;
    plan
}

/// The pod to create for `job` (at `index` in Indexed mode).
fn new_pod(job: &Job, index: Option<i32>) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let namespace = job.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let generate_name = match index {
        Some(i) => format!("{name}-{i}-"),
        None => format!("{name}-"),
    };
    let mut pod = pod_from_template(&template, &namespace, controller_ref(job), None, &generate_name);
    if let Some(i) = index {
        let value = i.to_string();
        pod.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(COMPLETION_INDEX.into(), value.clone());
        pod.metadata.labels.get_or_insert_with(BTreeMap::new).insert(COMPLETION_INDEX.into(), value);
        let spec = pod.spec.get_or_insert_with(Default::default);
        if spec.hostname.as_deref().is_none_or(str::is_empty) {
            spec.hostname = Some(format!("{name}-{i}"));
        }
        let env = EnvVar {
            name: COMPLETION_INDEX_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                }),
                ..Default::default()
            }),
        };
        for container in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
            let vars = container.env.get_or_insert_with(Vec::new);
            if !vars.iter().any(|v| v.name == COMPLETION_INDEX_ENV) {
                vars.push(env.clone());
            }
        }
    }
    pod
}

/// The status as a merge patch: counters that are zero and fields that are unset are removed.
fn status_patch(status: &JobStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Some(map) = value.as_object_mut() {
        for key in ["active", "ready", "succeeded", "failed", "terminating", "completedIndexes", "completionTime"] {
            map.entry(key).or_insert(Value::Null);
        }
    }
    json!({ "status": value })
}

pub async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = job.metadata.name.clone().unwrap_or_default();
    let namespace = job.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let Some(selector) = job.spec.as_ref().and_then(|s| s.selector.clone()) else {
        return Ok(Action::await_change());
    };
    let pods = claim_pods(&ctx.client, &controller_ref(job.as_ref()), &namespace, &selector, false).await?;
    let plan = decide(&job, &pods, Timestamp::now());

    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    delete_pods(&pod_api, &ctx.recorder, job.as_ref(), plan.delete.clone()).await?;
    let pods = plan.create.iter().map(|index| new_pod(&job, *index)).collect();
    create_pods(&pod_api, &ctx.recorder, job.as_ref(), pods).await?;
    if job.status.as_ref() != Some(&plan.status) {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status_patch(&plan.status))).await?;
    }
    for (type_, reason, message) in &plan.events {
        ctx.recorder.record(job.as_ref(), *type_, reason, message);
    }
    Ok(plan.requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let jobs: Api<Job> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let ctx = Context::new(client, "job-controller");
    Controller::new(jobs, watcher::Config::default())
        .owns(pods, watcher::Config::default())
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .run(reconcile, retry_soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(spec: Value) -> Job {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn base_spec(extra: Value) -> Value {
        let mut spec = json!({
            "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": false,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}},
            "template": {"metadata": {"labels": {"job-name": "pi"}},
                         "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "hello:v1"}]}},
        });
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        spec
    }

    fn with_status(mut job: Job, status: Value) -> Job {
        job.status = Some(serde_json::from_value(status).unwrap());
        job
    }

    fn pod(name: &str, phase: &str, finished: &str, index: Option<i32>) -> Pod {
        let annotations = index.map(|i| json!({COMPLETION_INDEX: i.to_string()})).unwrap_or(json!({}));
        let terminated = if finished.is_empty() {
            json!({"running": {}})
        } else {
            json!({"terminated": {"exitCode": 0, "finishedAt": finished}})
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": terminated}]},
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    #[test]
    fn creates_up_to_parallelism_and_remaining_completions() {
        let j = job(base_spec(json!({"completions": 3, "parallelism": 2})));
        let plan = decide(&j, &[], now());
        assert_eq!(plan.create, vec![None, None]);
        assert_eq!(plan.status.active, Some(2));
        assert!(plan.status.start_time.is_some());

        let pods =
            [pod("a", "Succeeded", "2026-01-01T00:01:00Z", None), pod("b", "Succeeded", "2026-01-01T00:02:00Z", None)];
        let plan = decide(&j, &pods, now());
        assert_eq!(plan.create, vec![None], "one completion left: one pod, not two");
        assert_eq!(plan.status.succeeded, Some(2));

        let pods = [pod("a", "Running", "", None), pod("b", "Running", "", None), pod("c", "Pending", "", None)];
        let plan = decide(&j, &pods, now());
        assert!(plan.create.is_empty());
        assert_eq!(plan.delete.len(), 1, "never more than parallelism active");
    }

    #[test]
    fn completes_when_enough_pods_succeeded() {
        let j = job(base_spec(json!({"completions": 2, "parallelism": 2})));
        let pods =
            [pod("a", "Succeeded", "2026-01-01T00:01:00Z", None), pod("b", "Succeeded", "2026-01-01T00:02:00Z", None)];
        let plan = decide(&j, &pods, now());
        assert!(is_true(&plan.status, "Complete") && is_true(&plan.status, "SuccessCriteriaMet"));
        assert!(plan.status.completion_time.is_some());
        assert_eq!(plan.events, vec![(EventType::Normal, "Completed", "Job completed".to_string())]);
        // Finished: nothing more, but any active pod left is deleted.
        let done = with_status(j, serde_json::to_value(&plan.status).unwrap());
        let plan = decide(&done, &[pod("late", "Running", "", None)], now());
        assert_eq!(plan.delete, vec!["late".to_string()]);
        assert!(plan.create.is_empty() && plan.events.is_empty());
    }

    #[test]
    fn without_completions_one_success_ends_it_once_the_rest_finish() {
        let j = job(base_spec(json!({"parallelism": 2})));
        assert_eq!(decide(&j, &[], now()).create.len(), 2);
        let pods = [pod("a", "Succeeded", "2026-01-01T00:01:00Z", None), pod("b", "Running", "", None)];
        let plan = decide(&j, &pods, now());
        assert!(plan.create.is_empty() && plan.delete.is_empty() && !is_true(&plan.status, "Complete"));
        let pods =
            [pod("a", "Succeeded", "2026-01-01T00:01:00Z", None), pod("b", "Failed", "2026-01-01T00:02:00Z", None)];
        assert!(is_true(&decide(&j, &pods, now()).status, "Complete"));
    }

    #[test]
    fn failed_pods_are_replaced_after_a_doubling_back_off_until_the_limit() {
        let j = job(base_spec(json!({"completions": 1, "backoffLimit": 2})));
        // One failure 5 s ago: 10 s back-off, 5 s left.
        let pods = [pod("a", "Failed", "2026-01-01T00:09:55Z", None)];
        let plan = decide(&j, &pods, now());
        assert!(plan.create.is_empty());
        assert_eq!(plan.requeue, Some(Duration::from_millis(5100)));
        assert_eq!(plan.status.failed, Some(1));
        // Two failures: 20 s after the last one.
        let pods = [pod("a", "Failed", "2026-01-01T00:09:00Z", None), pod("b", "Failed", "2026-01-01T00:09:45Z", None)];
        assert_eq!(backoff_remaining(&pods, now()), SignedDuration::from_secs(5));
        let pods = [pod("a", "Failed", "2026-01-01T00:09:00Z", None), pod("b", "Failed", "2026-01-01T00:09:30Z", None)];
        assert_eq!(decide(&j, &pods, now()).create, vec![None]);
        // A third failure exceeds backoffLimit 2.
        let pods = [
            pod("a", "Failed", "2026-01-01T00:09:00Z", None),
            pod("b", "Failed", "2026-01-01T00:09:30Z", None),
            pod("c", "Failed", "2026-01-01T00:09:50Z", None),
        ];
        let plan = decide(&j, &pods, now());
        assert!(is_true(&plan.status, "Failed") && is_true(&plan.status, "FailureTarget"));
        let failed = plan.status.conditions.iter().flatten().find(|c| c.type_ == "Failed").unwrap();
        assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(plan.events[0].1, "BackoffLimitExceeded");
        assert!(plan.status.completion_time.is_none());
    }

    #[test]
    fn on_failure_counts_container_restarts() {
        let j = job(base_spec(json!({"completions": 1, "backoffLimit": 2})));
        let mut j = j;
        j.spec.as_mut().unwrap().template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
        let mut p = pod("a", "Running", "", None);
        p.status.as_mut().unwrap().container_statuses.as_mut().unwrap()[0].restart_count = 2;
        assert!(is_true(&decide(&j, &[p], now()).status, "Failed"));
    }

    #[test]
    fn active_deadline_fails_the_job() {
        let j = job(base_spec(json!({"activeDeadlineSeconds": 30})));
        let j = with_status(j, json!({"startTime": "2026-01-01T00:09:00Z", "active": 1}));
        let plan = decide(&j, &[pod("a", "Running", "", None)], now());
        let failed = plan.status.conditions.iter().flatten().find(|c| c.type_ == "Failed").unwrap();
        assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(plan.delete, vec!["a".to_string()]);
        // Not yet: look again at the deadline.
        let j = with_status(
            job(base_spec(json!({"activeDeadlineSeconds": 90}))),
            json!({"startTime": "2026-01-01T00:09:00Z"}),
        );
        assert_eq!(decide(&j, &[pod("a", "Running", "", None)], now()).requeue, Some(Duration::from_millis(30100)));
    }

    #[test]
    fn suspend_deletes_active_pods_and_resume_restarts_the_clock() {
        let j = job(base_spec(json!({"suspend": true})));
        let plan = decide(&j, &[pod("a", "Running", "", None)], now());
        assert_eq!(plan.delete, vec!["a".to_string()]);
        assert!(plan.create.is_empty() && is_true(&plan.status, "Suspended"));
        let resumed = with_status(job(base_spec(json!({}))), serde_json::to_value(&plan.status).unwrap());
        let plan = decide(&resumed, &[], now());
        assert!(!is_true(&plan.status, "Suspended"));
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.events[0].1, "Resumed");
    }

    #[test]
    fn indexed_jobs_run_each_missing_index_once() {
        let j = job(base_spec(json!({"completions": 5, "parallelism": 3, "completionMode": "Indexed"})));
        assert_eq!(decide(&j, &[], now()).create, vec![Some(0), Some(1), Some(2)]);
        let pods = [
            pod("a", "Succeeded", "2026-01-01T00:01:00Z", Some(0)),
            pod("b", "Succeeded", "2026-01-01T00:01:00Z", Some(2)),
            pod("c", "Running", "", Some(1)),
            pod("d", "Running", "", Some(1)),
        ];
        let plan = decide(&j, &pods, now());
        assert_eq!(plan.status.completed_indexes.as_deref(), Some("0,2"));
        assert_eq!(plan.status.succeeded, Some(2));
        assert_eq!(plan.delete.len(), 1, "a duplicate index goes");
        assert_eq!(plan.create, vec![Some(3), Some(4)]);
        let new = new_pod(&j, Some(3));
        assert_eq!(new.metadata.generate_name.as_deref(), Some("pi-3-"));
        assert_eq!(new.metadata.annotations.as_ref().unwrap()[COMPLETION_INDEX], "3");
        assert_eq!(new.metadata.labels.as_ref().unwrap()[COMPLETION_INDEX], "3");
        let spec = new.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-3"));
        assert_eq!(spec.containers[0].env.as_ref().unwrap()[0].name, "JOB_COMPLETION_INDEX");
    }

    #[test]
    fn completed_indexes_format_as_ranges() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7"), set);
        assert_eq!(parse_indexes(""), BTreeSet::new());
    }
}
