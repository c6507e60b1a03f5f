//! The Deployment's status and its Progressing / Available conditions, as
//! kube-controller-manager computes them (`calculateStatus`, `syncRolloutStatus`,
//! `checkPausedConditions`); what `kubectl rollout status` waits on.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::rolling::{Params, RsState};

pub const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
const RS_UPDATED: &str = "ReplicaSetUpdated";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";

pub fn condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn get_condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// Sets a condition unless one of that type already has this status and reason; the
/// transition time stays when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status.conditions.get_or_insert_with(Vec::new).push(condition);
}

pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).is_some_and(|s| s != i32::MAX)
}

fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// Counts from the ReplicaSets and the Available condition (`calculateStatus`); zero counts
/// are left out as Kubernetes omits them.
pub fn calculate_status(
    d: &Deployment,
    p: &Params,
    all: &[&RsState],
    new: Option<&RsState>,
    now: Timestamp,
) -> DeploymentStatus {
    let old = d.status.clone().unwrap_or_default();
    let available: i32 = all.iter().map(|r| r.available).sum();
    let total: i32 = all.iter().map(|r| r.replicas).sum();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(all.iter().map(|r| r.status_replicas).sum()),
        updated_replicas: nonzero(new.map(|n| n.status_replicas).unwrap_or(0)),
        ready_replicas: nonzero(all.iter().map(|r| r.ready).sum()),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    if available >= p.replicas - p.max_unavailable() {
        let message = "Deployment has minimum availability.".to_string();
        set_condition(&mut status, condition(AVAILABLE, "True", "MinimumReplicasAvailable", message, now));
    } else {
        let message = "Deployment does not have minimum availability.".to_string();
        set_condition(&mut status, condition(AVAILABLE, "False", "MinimumReplicasUnavailable", message, now));
    }
    status
}

fn count(n: Option<i32>) -> i32 {
    n.unwrap_or(0)
}

/// All replicas updated, existing and available, and the spec observed.
pub fn complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    count(status.updated_replicas) == replicas
        && count(status.replicas) == replicas
        && count(status.available_replicas) == replicas
        && status.observed_generation >= d.metadata.generation
}

/// Something moved since the last status: more updated, fewer old, more ready or available.
pub fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = count(old.replicas) - count(old.updated_replicas);
    let new_old = count(new.replicas) - count(new.updated_replicas);
    count(new.updated_replicas) > count(old.updated_replicas)
        || new_old < old_old
        || count(new.ready_replicas) > count(old.ready_replicas)
        || count(new.available_replicas) > count(old.available_replicas)
}

fn deadline(d: &Deployment) -> Option<jiff::SignedDuration> {
    let seconds = d.spec.as_ref()?.progress_deadline_seconds?;
    Some(jiff::SignedDuration::from_secs(seconds.into()))
}

/// No progress within progressDeadlineSeconds of the Progressing condition's last update.
fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = get_condition(status, PROGRESSING) else { return false };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => {
            let from = c.last_update_time.as_ref().map(|t| t.0).unwrap_or(now);
            deadline(d).is_some_and(|limit| from + limit < now)
        }
    }
}

/// The status after a rollout step (`syncRolloutStatus`): counts, then Progressing as complete,
/// progressing or timed out, and the new ReplicaSet's (or an old one's) ReplicaFailure.
pub fn rollout_status(
    d: &Deployment,
    p: &Params,
    all: &[&RsState],
    new: Option<&RsState>,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(d, p, all, new, now);
    if !has_progress_deadline(d) {
        remove_condition(&mut status, PROGRESSING);
    }
    let old = d.status.clone().unwrap_or_default();
    let current = get_condition(&old, PROGRESSING).cloned();
    let name = d.metadata.name.clone().unwrap_or_default();
    let is_complete = count(status.replicas) == count(status.updated_replicas)
        && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    if has_progress_deadline(d) && !is_complete {
        let subject = match new {
            Some(n) => format!("ReplicaSet {:?}", n.name),
            None => format!("Deployment {name:?}"),
        };
        if complete(d, &status) {
            let message = format!("{subject} has successfully progressed.");
            set_condition(&mut status, condition(PROGRESSING, "True", NEW_RS_AVAILABLE, message, now));
        } else if progressing(d, &status) {
            let mut c = condition(PROGRESSING, "True", RS_UPDATED, format!("{subject} is progressing."), now);
            if let Some(current) = &current {
                if current.status == "True" {
                    c.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, c);
        } else if timed_out(d, &status, now) {
            let message = format!("{subject} has timed out progressing.");
            set_condition(&mut status, condition(PROGRESSING, "False", TIMED_OUT, message, now));
        }
    }
    let failure = new.into_iter().chain(all.iter().copied()).find_map(|r| r.failure.clone());
    match failure {
        Some(f) => {
            let mut c = condition(REPLICA_FAILURE, &f.status, "", f.message.unwrap_or_default(), now);
            c.reason = f.reason;
            set_condition(&mut status, c);
        }
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// When to look again for a rollout that may time out (`requeueStuckDeployment`).
pub fn stuck_requeue(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let c = get_condition(status, PROGRESSING)?;
    if !has_progress_deadline(d) || complete(d, status) || timed_out(d, status, now) {
        return None;
    }
    if matches!(c.reason.as_deref(), Some(NEW_RS_AVAILABLE | PAUSED)) {
        return None;
    }
    let from = c.last_update_time.as_ref().map(|t| t.0)?;
    let wait = (from + deadline(d)?).duration_since(now);
    Some(Duration::try_from(wait).unwrap_or_default() + Duration::from_secs(1))
}

/// The Progressing condition for pausing and resuming (`checkPausedConditions`): the new
/// status when it changes.
pub fn paused_status(d: &Deployment, now: Timestamp) -> Option<DeploymentStatus> {
    if !has_progress_deadline(d) {
        return None;
    }
    let mut status = d.status.clone().unwrap_or_default();
    let reason = get_condition(&status, PROGRESSING).and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let was_paused = reason.as_deref() == Some(PAUSED);
    if paused && !was_paused {
        set_condition(&mut status, condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused".into(), now));
    } else if !paused && was_paused {
        set_condition(&mut status, condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed".into(), now));
    } else {
        return None;
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}, "progressDeadlineSeconds": 600,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}},
            "status": status,
        }))
        .unwrap()
    }

    fn rs(name: &str, replicas: i32, available: i32) -> RsState {
        RsState {
            name: name.into(),
            replicas,
            status_replicas: replicas,
            ready: available,
            available,
            ..Default::default()
        }
    }

    fn reason(status: &DeploymentStatus, type_: &str) -> Option<String> {
        get_condition(status, type_).and_then(|c| c.reason.clone())
    }

    #[test]
    fn counts_and_availability() {
        let d = deployment(4, 2, json!({}));
        let p = Params::of(&d);
        let (old, new) = (rs("old", 2, 2), rs("new", 3, 1));
        let now = Timestamp::now();
        let status = calculate_status(&d, &p, &[&old, &new], Some(&new), now);
        assert_eq!(status.replicas, Some(5));
        assert_eq!(status.updated_replicas, Some(3));
        assert_eq!(status.available_replicas, Some(3));
        assert_eq!(status.unavailable_replicas, Some(2));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(reason(&status, AVAILABLE).as_deref(), Some("MinimumReplicasAvailable"), "3 >= 4 - 1");
        let short = rs("new", 4, 2);
        let status = calculate_status(&d, &p, &[&short], Some(&short), now);
        assert_eq!(reason(&status, AVAILABLE).as_deref(), Some("MinimumReplicasUnavailable"));
        assert_eq!(get_condition(&status, AVAILABLE).unwrap().status, "False");
    }

    #[test]
    fn progressing_goes_updated_then_available_then_stays() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let created = json!({"conditions": [{"type": "Progressing", "status": "True", "reason": NEW_RS_CREATED,
            "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let d = deployment(2, 1, created);
        let p = Params::of(&d);
        let new = rs("web-abc", 2, 1);
        let status = rollout_status(&d, &p, &[&new], Some(&new), t1);
        let c = get_condition(&status, PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(c.message.as_deref(), Some("ReplicaSet \"web-abc\" is progressing."));
        assert_eq!(c.last_transition_time.as_ref().unwrap().0, t0, "still True: transition time kept");
        assert_eq!(c.last_update_time.as_ref().unwrap().0, t1);

        let d = Deployment { status: Some(status), ..d };
        let done = rs("web-abc", 2, 2);
        let status = rollout_status(&d, &p, &[&done], Some(&done), t1);
        assert_eq!(reason(&status, PROGRESSING).as_deref(), Some(NEW_RS_AVAILABLE));
        assert!(complete(&d, &status));
        assert!(stuck_requeue(&d, &status, t1).is_none());
    }

    #[test]
    fn no_progress_past_the_deadline_times_out() {
        let stuck = json!({"replicas": 2, "updatedReplicas": 2, "conditions": [{"type": "Progressing", "status": "True",
            "reason": RS_UPDATED, "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let d = deployment(2, 1, stuck);
        let p = Params::of(&d);
        let new = rs("web-abc", 2, 0);
        let early: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let status = rollout_status(&d, &p, &[&new], Some(&new), early);
        assert_eq!(reason(&status, PROGRESSING).as_deref(), Some(RS_UPDATED));
        let wait = stuck_requeue(&d, &status, early).unwrap();
        assert_eq!(wait.as_secs(), 301);
        let late: Timestamp = "2026-01-01T00:10:01Z".parse().unwrap();
        let status = rollout_status(&d, &p, &[&new], Some(&new), late);
        let c = get_condition(&status, PROGRESSING).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", Some(TIMED_OUT)));
        assert_eq!(c.message.as_deref(), Some("ReplicaSet \"web-abc\" has timed out progressing."));
    }

    #[test]
    fn pause_and_resume_set_progressing_unknown() {
        let mut d = deployment(1, 1, json!({}));
        let now = Timestamp::now();
        assert!(paused_status(&d, now).is_none(), "not paused, never was");
        d.spec.as_mut().unwrap().paused = Some(true);
        let status = paused_status(&d, now).unwrap();
        let c = get_condition(&status, PROGRESSING).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("Unknown", Some(PAUSED)));
        d.status = Some(status);
        assert!(paused_status(&d, now).is_none(), "already paused");
        d.spec.as_mut().unwrap().paused = Some(false);
        assert_eq!(reason(&paused_status(&d, now).unwrap(), PROGRESSING).as_deref(), Some(RESUMED));
    }
}
