//! TTL after finished: deletes a finished Job (Complete or Failed) once
//! `ttlSecondsAfterFinished` has passed since it finished, with propagation Background so the
//! garbage collector removes its pods.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use super::job::finished;
use super::{Context, ReconcileError, retry_soon};

/// How long until `job` expires: None if it never does (not finished, no TTL, being deleted),
/// zero if it already has.
fn time_left(job: &Job, now: Timestamp) -> Option<SignedDuration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let (_, finished_at) = finished(job)?;
    let expires = finished_at.unwrap_or(now) + SignedDuration::from_secs(ttl.max(0).into());
    Some(expires.duration_since(now).max(SignedDuration::ZERO))
}

pub async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let Some(left) = time_left(&job, Timestamp::now()) else { return Ok(Action::await_change()) };
    if left > SignedDuration::ZERO {
        return Ok(Action::requeue(Duration::try_from(left).unwrap_or_default() + Duration::from_millis(100)));
    }
    let name = job.metadata.name.clone().unwrap_or_default();
    let namespace = job.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    // Only this Job: not a new one by the same name.
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: job.metadata.uid.clone(), resource_version: None }),
        ..DeleteParams::background()
    };
    match api.delete(&name, &params).await {
        Ok(_) => tracing::info!(job = %name, %namespace, "deleted a finished job after its TTL"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let jobs: Api<Job> = Api::all(client.clone());
    Controller::new(jobs, watcher::Config::default())
        .run(reconcile, retry_soon, Context::new(client, "ttl-after-finished-controller"))
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(ttl: Option<i32>, condition: Option<&str>) -> Job {
        let conditions = condition.map_or(
            json!([]),
            |type_| json!([{"type": type_, "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"}]),
        );
        serde_json::from_value(json!({
            "metadata": {"name": "pi"},
            "spec": {"ttlSecondsAfterFinished": ttl, "template": {}},
            "status": {"conditions": conditions, "completionTime":
                if condition == Some("Complete") { json!("2026-01-01T00:00:05Z") } else { json!(null) }},
        }))
        .unwrap()
    }

    #[test]
    fn finished_jobs_expire_their_ttl_after_finishing() {
        let now: Timestamp = "2026-01-01T00:00:20Z".parse().unwrap();
        assert_eq!(time_left(&job(Some(30), Some("Complete")), now), Some(SignedDuration::from_secs(15)));
        assert_eq!(time_left(&job(Some(30), Some("Failed")), now), Some(SignedDuration::from_secs(20)));
        assert_eq!(time_left(&job(Some(0), Some("Failed")), now), Some(SignedDuration::ZERO));
        assert_eq!(time_left(&job(None, Some("Complete")), now), None);
        assert_eq!(time_left(&job(Some(30), None), now), None);
    }
}
