//! CronJob: creates Jobs on a cron schedule (with timeZone), keeps its history within limits,
//! as kube-controller-manager's cronjob controller (v2) does: it wakes at each scheduled time,
//! starts the most recent missed run (within startingDeadlineSeconds), applies the concurrency
//! policy, tracks its active Jobs and prunes finished ones beyond the history limits.

pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use serde_json::json;

use super::job::finished;
use super::workload::{controller_of, controller_ref};
use super::{Context, DEBOUNCE, ReconcileError, retry_soon};
use crate::events::EventType;

/// The annotation a scheduled Job carries: its scheduled time (RFC 3339, in the CronJob's zone).
const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed start times than this are reported (and only the latest is started).
const TOO_MANY_MISSED: u64 = 100;

/// What one reconcile does.
#[derive(Debug, Default)]
pub struct Plan {
    /// The Jobs still running, as `status.active` will list them.
    pub active: Vec<ObjectReference>,
    pub last_schedule_time: Option<Timestamp>,
    pub last_successful_time: Option<Timestamp>,
    /// Jobs to delete (Background), with the event reason: replaced or pruned.
    pub delete: Vec<String>,
    /// A Job to create, for this scheduled time.
    pub create: Option<(Job, Timestamp)>,
    pub events: Vec<(EventType, &'static str, String)>,
    pub requeue: Option<Duration>,
}

/// The most recent scheduled time in (earliest, now], and how many there were.
fn most_recent(
    schedule: &schedule::Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, u64) {
    let Some(first) = schedule.next(earliest, tz).filter(|t| *t <= now) else { return (None, 0) };
    let mut latest = first;
    let mut count = 1;
    while let Some(t) = schedule.next(latest, tz).filter(|t| *t <= now) {
        latest = t;
        count += 1;
        if count > TOO_MANY_MISSED {
            // Estimate the rest from the interval, and find the latest from just before now.
            let interval = schedule.next(first, tz).map_or(SignedDuration::ZERO, |second| second.duration_since(first));
            if interval <= SignedDuration::ZERO {
                break;
            }
            let elapsed = now.duration_since(first);
            count = (elapsed.as_secs() / interval.as_secs().max(1)) as u64 + 1;
            let mut t = now.checked_sub(interval.checked_mul(2).unwrap_or(interval)).unwrap_or(latest).max(latest);
            while let Some(next) = schedule.next(t, tz).filter(|n| *n <= now) {
                t = next;
            }
            latest = t;
            break;
        }
    }
    (Some(latest), count)
}

/// `NAME-<scheduled time in minutes since the epoch>`.
fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

/// RFC 3339 as Go writes it (`Z` for UTC).
fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    let zoned = t.to_zoned(tz.clone());
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The Job the CronJob starts for `scheduled`.
fn new_job(cron_job: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    let template = cron_job.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339(scheduled, tz));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, scheduled)),
            namespace: cron_job.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cron_job)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn reference(job: &Job) -> ObjectReference {
    crate::events::reference(job)
}

/// Finished Jobs beyond a history limit, oldest start first (a Job never started counts as newest).
fn over_limit(mut jobs: Vec<&Job>, limit: Option<i32>) -> Vec<&Job> {
    let Some(limit) = limit else { return Vec::new() };
    let limit = limit.max(0) as usize;
    if jobs.len() <= limit {
        return Vec::new();
    }
    jobs.sort_by_key(|j| {
        let start = j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
        (start.is_none(), start, j.metadata.name.clone())
    });
    let surplus = jobs.len() - limit;
    jobs.truncate(surplus);
    jobs
}

/// Decides what to do about `cron_job` given the Jobs in its namespace, at `now`.
pub fn decide(cron_job: &CronJob, jobs: &[Job], now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let uid = cron_job.metadata.uid.clone().unwrap_or_default();
    let spec = cron_job.spec.clone().unwrap_or_default();
    let status = cron_job.status.clone().unwrap_or_default();
    let children: Vec<&Job> =
        jobs.iter().filter(|j| controller_of(&j.metadata).is_some_and(|r| r.uid == uid)).collect();
    plan.last_schedule_time = status.last_schedule_time.as_ref().map(|t| t.0);
    plan.last_successful_time = status.last_successful_time.as_ref().map(|t| t.0);

    // Active Jobs: those it listed that still run; finished ones are reported once.
    for listed in status.active.iter().flatten() {
        let child = children.iter().find(|j| j.metadata.uid.is_some() && j.metadata.uid == listed.uid);
        let listed_name = listed.name.clone().unwrap_or_default();
        match child.map(|j| (j, finished(j))) {
            None => {
                plan.events.push((EventType::Normal, "MissingJob", format!("Active job went missing: {listed_name}")))
            }
            Some((_, Some((condition, _)))) => plan.events.push((
                EventType::Normal,
                "SawCompletedJob",
                format!("Saw completed job: {listed_name}, condition: {condition}"),
            )),
            Some((j, None)) => plan.active.push(reference(j)),
        }
    }
    for child in &children {
        if let Some(("Complete", Some(at))) = finished(child) {
            plan.last_successful_time = Some(plan.last_successful_time.map_or(at, |t| t.max(at)));
        }
    }

    // History: finished Jobs beyond the limits go.
    let with = |kind: &str| children.iter().copied().filter(|j| finished(j).is_some_and(|(c, _)| c == kind)).collect();
    let mut prune = over_limit(with("Complete"), spec.successful_jobs_history_limit);
    prune.extend(over_limit(with("Failed"), spec.failed_jobs_history_limit));
    plan.delete = prune.iter().filter_map(|j| j.metadata.name.clone()).collect();

    if cron_job.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let schedule = match schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            let message = format!("unparseable schedule: {:?} : {e}", spec.schedule);
            plan.events.push((EventType::Warning, "UnparseableSchedule", message));
            return plan;
        }
    };
    let tz = match spec.time_zone.as_deref() {
        Some(name) => match TimeZone::get(name) {
            Ok(tz) => tz,
            Err(e) => {
                plan.events.push((EventType::Warning, "UnknownTimeZone", format!("invalid timeZone: {name:?}: {e}")));
                return plan;
            }
        },
        None => schedule.zone().cloned().unwrap_or_else(TimeZone::system),
    };
    if spec.suspend == Some(true) {
        return plan;
    }
    let next_wake = |plan: &mut Plan| {
        plan.requeue = schedule
            .next(now, &tz)
            .map(|t| Duration::try_from(t.duration_since(now)).unwrap_or_default() + Duration::from_millis(100));
    };
    next_wake(&mut plan);

    let created = cron_job.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let mut earliest = plan.last_schedule_time.unwrap_or(created);
    let deadline = spec.starting_deadline_seconds.map(SignedDuration::from_secs);
    if let Some(deadline) = deadline {
        earliest = earliest.max(now.checked_sub(deadline).unwrap_or(earliest));
    }
    let (Some(scheduled), missed) = most_recent(&schedule, &tz, earliest, now) else { return plan };
    if missed > TOO_MANY_MISSED {
        plan.events.push((
            EventType::Warning,
            "TooManyMissedTimes",
            format!(
                "too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
            ),
        ));
    }
    if deadline.is_some_and(|d| scheduled.checked_add(d).is_ok_and(|limit| limit < now)) {
        let at = scheduled.to_zoned(tz.clone()).strftime("%a, %d %b %Y %H:%M:%S %z").to_string();
        plan.events.push((EventType::Warning, "MissSchedule", format!("Missed scheduled time to start a job: {at}")));
        return plan;
    }
    let name = job_name(cron_job.metadata.name.as_deref().unwrap_or_default(), scheduled);
    if plan.active.iter().any(|r| r.name.as_deref() == Some(name.as_str()))
        || plan.last_schedule_time == Some(scheduled)
    {
        return plan;
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !plan.active.is_empty() => {
            plan.events.push((
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return plan;
        }
        Some("Replace") => {
            plan.delete.extend(plan.active.drain(..).filter_map(|r| r.name));
        }
        _ => {}
    }
    plan.create = Some((new_job(cron_job, scheduled, &tz), scheduled));
    plan
}

pub async fn reconcile(cron_job: Arc<CronJob>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    let namespace = cron_job.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let jobs = job_api.list(&ListParams::default()).await?.items;
    let mut plan = decide(&cron_job, &jobs, Timestamp::now());

    for job_name in &plan.delete {
        match job_api.delete(job_name, &DeleteParams::background()).await {
            Ok(_) => ctx.recorder.record(
                cron_job.as_ref(),
                EventType::Normal,
                "SuccessfulDelete",
                &format!("Deleted job {job_name}"),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some((job, scheduled)) = plan.create.take() {
        let job_name = job.metadata.name.clone().unwrap_or_default();
        match job_api.create(&PostParams::default(), &job).await {
            Ok(created) => {
                ctx.recorder.record(
                    cron_job.as_ref(),
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created job {job_name}"),
                );
                plan.active.push(reference(&created));
            }
            // Created before (a status write was lost): it is ours if it names us.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = job_api.get(&job_name).await?;
                let ours =
                    controller_of(&existing.metadata).is_some_and(|r| Some(&r.uid) == cron_job.metadata.uid.as_ref());
                if ours && finished(&existing).is_none() && !plan.active.iter().any(|r| r.uid == existing.metadata.uid)
                {
                    plan.active.push(reference(&existing));
                }
            }
            Err(e) => return Err(e.into()),
        }
        plan.last_schedule_time = Some(scheduled);
    }
    let old = cron_job.status.clone().unwrap_or_default();
    let time = |t: Option<Timestamp>| t.map(|t| json!(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t)));
    let same_active =
        old.active.as_deref().unwrap_or_default().iter().map(|r| &r.uid).eq(plan.active.iter().map(|r| &r.uid));
    if !same_active
        || old.last_schedule_time.map(|t| t.0) != plan.last_schedule_time
        || old.last_successful_time.map(|t| t.0) != plan.last_successful_time
    {
        let active = (!plan.active.is_empty()).then(|| json!(plan.active));
        let patch = json!({"status": {
            "active": active,
            "lastScheduleTime": time(plan.last_schedule_time),
            "lastSuccessfulTime": time(plan.last_successful_time),
        }});
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
    }
    for (type_, reason, message) in &plan.events {
        ctx.recorder.record(cron_job.as_ref(), *type_, reason, message);
    }
    Ok(plan.requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let cron_jobs: Api<CronJob> = Api::all(client.clone());
    let jobs: Api<Job> = Api::all(client.clone());
    let ctx = Context::new(client, "cronjob-controller");
    Controller::new(cron_jobs, watcher::Config::default())
        .owns(jobs, watcher::Config::default())
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .run(reconcile, retry_soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn cron_job(spec: Value, status: Value) -> CronJob {
        let mut full = json!({
            "concurrencyPolicy": "Allow", "suspend": false,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"team": "a"}},
                            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "hello:v1"}]}}}},
        });
        full.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj-1", "creationTimestamp": "2026-01-01T10:00:30Z"},
            "spec": full,
            "status": status,
        }))
        .unwrap()
    }

    fn child(name: &str, start: &str, condition: Option<(&str, &str)>) -> Job {
        let conditions = condition
            .map_or(json!([]), |(type_, at)| json!([{"type": type_, "status": "True", "lastTransitionTime": at}]));
        let completion = condition.filter(|(t, _)| *t == "Complete").map(|(_, at)| json!(at));
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick", "uid": "cj-1", "controller": true}]},
            "status": {"startTime": start, "conditions": conditions, "completionTime": completion},
        }))
        .unwrap()
    }

    fn active(names: &[&str]) -> Value {
        json!({"active": names.iter().map(|n| json!({"kind": "Job", "name": n, "namespace": "default", "uid": format!("uid-{n}")})).collect::<Vec<_>>()})
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn reasons(plan: &Plan) -> Vec<&str> {
        plan.events.iter().map(|e| e.1).collect()
    }

    #[test]
    fn starts_the_due_run_and_wakes_for_the_next() {
        let cj = cron_job(json!({"schedule": "*/1 * * * *"}), json!({}));
        let plan = decide(&cj, &[], at("2026-01-01T10:01:05Z"));
        let (job, scheduled) = plan.create.expect("a job for 10:01");
        assert_eq!(scheduled, at("2026-01-01T10:01:00Z"));
        assert_eq!(job.metadata.name.as_deref(), Some(format!("tick-{}", scheduled.as_second() / 60).as_str()));
        assert_eq!(job.metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP], "2026-01-01T10:01:00Z");
        assert_eq!(job.metadata.labels.as_ref().unwrap()["team"], "a");
        assert_eq!(controller_of(&job.metadata).unwrap().uid, "cj-1");
        assert_eq!(plan.requeue, Some(Duration::from_millis(55_100)));
        // That run is done: nothing until 10:02.
        let cj = cron_job(json!({"schedule": "*/1 * * * *"}), json!({"lastScheduleTime": "2026-01-01T10:01:00Z"}));
        assert!(decide(&cj, &[], at("2026-01-01T10:01:30Z")).create.is_none());
        // Not yet due at all.
        let cj = cron_job(json!({"schedule": "0 12 * * *"}), json!({}));
        assert!(decide(&cj, &[], at("2026-01-01T11:00:00Z")).create.is_none());
    }

    #[test]
    fn too_many_missed_runs_start_only_the_latest() {
        let cj = cron_job(json!({"schedule": "* * * * *"}), json!({}));
        let plan = decide(&cj, &[], at("2026-01-03T10:01:30Z"));
        assert_eq!(plan.create.as_ref().unwrap().1, at("2026-01-03T10:01:00Z"));
        assert_eq!(reasons(&plan), ["TooManyMissedTimes"]);
        assert!(plan.events[0].2.starts_with("too many missed start times: 2881."), "{}", plan.events[0].2);
        // A starting deadline bounds how far back it looks: the 10:01 run is past it.
        let cj = cron_job(json!({"schedule": "* * * * *", "startingDeadlineSeconds": 10}), json!({}));
        let plan = decide(&cj, &[], at("2026-01-03T10:01:30Z"));
        assert!(plan.create.is_none() && plan.events.is_empty());
    }

    #[test]
    fn concurrency_policies() {
        let running = [child("tick-1", "2026-01-01T10:00:00Z", None)];
        let now = at("2026-01-01T10:01:05Z");
        let allow = decide(&cron_job(json!({"schedule": "* * * * *"}), active(&["tick-1"])), &running, now);
        assert!(allow.create.is_some() && allow.delete.is_empty());
        assert_eq!(allow.active.len(), 1);

        let forbid = cron_job(json!({"schedule": "* * * * *", "concurrencyPolicy": "Forbid"}), active(&["tick-1"]));
        let plan = decide(&forbid, &running, now);
        assert!(plan.create.is_none());
        assert_eq!(reasons(&plan), ["JobAlreadyActive"]);

        let replace = cron_job(json!({"schedule": "* * * * *", "concurrencyPolicy": "Replace"}), active(&["tick-1"]));
        let plan = decide(&replace, &running, now);
        assert_eq!(plan.delete, ["tick-1"]);
        assert!(plan.create.is_some() && plan.active.is_empty());
    }

    #[test]
    fn finished_jobs_leave_the_active_list_and_old_ones_are_pruned() {
        let jobs = [
            child("tick-1", "2026-01-01T10:00:00Z", Some(("Complete", "2026-01-01T10:00:10Z"))),
            child("tick-2", "2026-01-01T10:01:00Z", Some(("Complete", "2026-01-01T10:01:10Z"))),
            child("tick-3", "2026-01-01T10:02:00Z", Some(("Complete", "2026-01-01T10:02:10Z"))),
            child("tick-4", "2026-01-01T10:03:00Z", Some(("Failed", "2026-01-01T10:03:10Z"))),
            child("tick-5", "2026-01-01T10:04:00Z", Some(("Failed", "2026-01-01T10:04:10Z"))),
        ];
        let cj = cron_job(
            json!({"schedule": "@hourly", "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1}),
            active(&["tick-3"]),
        );
        let plan = decide(&cj, &jobs, at("2026-01-01T10:05:00Z"));
        assert!(plan.active.is_empty());
        assert_eq!(reasons(&plan), ["SawCompletedJob"]);
        assert_eq!(plan.events[0].2, "Saw completed job: tick-3, condition: Complete");
        assert_eq!(plan.last_successful_time, Some(at("2026-01-01T10:02:10Z")));
        assert_eq!(plan.delete, ["tick-1", "tick-2", "tick-4"]);
    }

    #[test]
    fn suspended_and_broken_cron_jobs_start_nothing() {
        let suspended = cron_job(json!({"schedule": "* * * * *", "suspend": true}), json!({}));
        let plan = decide(&suspended, &[], at("2026-01-01T10:05:00Z"));
        assert!(plan.create.is_none() && plan.requeue.is_none());
        let broken = cron_job(json!({"schedule": "* * *"}), json!({}));
        assert_eq!(reasons(&decide(&broken, &[], at("2026-01-01T10:05:00Z"))), ["UnparseableSchedule"]);
        let zone = cron_job(json!({"schedule": "* * * * *", "timeZone": "Mars/Olympus"}), json!({}));
        assert_eq!(reasons(&decide(&zone, &[], at("2026-01-01T10:05:00Z"))), ["UnknownTimeZone"]);
    }

    #[test]
    fn time_zones_set_the_wall_clock_and_the_annotation() {
        let cj = cron_job(json!({"schedule": "0 9 * * *", "timeZone": "Europe/Berlin"}), json!({}));
        // 09:00 in Berlin is 08:00 UTC in January.
        assert!(decide(&cj, &[], at("2026-01-02T07:59:00Z")).create.is_none());
        let (job, scheduled) = decide(&cj, &[], at("2026-01-02T08:00:30Z")).create.unwrap();
        assert_eq!(scheduled, at("2026-01-02T08:00:00Z"));
        assert_eq!(job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP], "2026-01-02T09:00:00+01:00");
    }
}
