//! The ResourceQuota controller: copies each quota's `spec.hard` to `status.hard` and computes
//! `status.used` from the objects in its namespace (with the evaluator the admission plugin
//! charges with, `registry::quota`). Admission charges creates as they come; this controller
//! releases: it recomputes a namespace's quotas when a counted object there is deleted or a pod
//! ends, when a quota's limits change, and every [`RESYNC`] (kube-controller-manager's
//! `--resource-quota-sync-period`), which also corrects charges of writes that then failed.
//!
//! Like Kubernetes, a recompute can undercount a create whose charge is made but whose object is
//! not yet stored; which is why creates alone never trigger one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;

use super::{DEBOUNCE, ReconcileError, api_resource, retry_soon};
use crate::registry::kinds::{RESOURCES, ResourceInfo};
use crate::registry::quota::{self, Usage};

/// How often every quota is recomputed even when nothing said it should be.
pub const RESYNC: Duration = Duration::from_secs(300);

/// The controller's state: the API client and which namespaces saw releases.
pub struct QuotaContext {
    client: kube::Client,
    /// Per namespace, how many releases (deletions, pods ending) were seen.
    releases: Mutex<HashMap<String, u64>>,
    /// Bumped when a watch restarts (it may have missed deletions anywhere).
    restarts: AtomicU64,
    /// Per quota uid: the release mark and time of its last recompute.
    recomputed: Mutex<HashMap<String, (u64, Instant)>>,
}

impl QuotaContext {
    fn mark(&self, namespace: &str) -> u64 {
        let releases = self.releases.lock().expect("quota releases lock");
        releases.get(namespace).copied().unwrap_or(0) + self.restarts.load(Ordering::Relaxed)
    }
}

/// Whether a quota must be recomputed: its limits are not (all) in its status yet, a release
/// happened in its namespace since the last recompute, or the resync period passed.
pub fn stale(quota: &Value, last: Option<(u64, Instant)>, mark: u64, now: Instant) -> bool {
    let hard = &quota["spec"]["hard"];
    let used = quota["status"]["used"].as_object();
    let untracked = hard.as_object().into_iter().flatten().any(|(k, _)| used.is_none_or(|u| !u.contains_key(k)));
    quota["status"]["hard"] != *hard
        || untracked
        || last.is_none_or(|(seen, at)| seen != mark || now.duration_since(at) >= RESYNC)
}

/// The quota's status computed from `objects` (each with its resource): `hard` as the spec
/// says, `used` the sum of what the objects in scope count, for every resource in `hard`.
pub fn status(quota: &Value, objects: &[(&ResourceInfo, Value)], now: jiff::Timestamp) -> Value {
    let hard = &quota["spec"]["hard"];
    let names: BTreeSet<&String> = hard.as_object().into_iter().flatten().map(|(k, _)| k).collect();
    let mut used: Usage = names.iter().map(|k| ((*k).clone(), 0)).collect();
    for (resource, obj) in objects {
        if !quota::in_scope(quota, resource, obj) {
            continue;
        }
        for (k, v) in quota::usage(resource, obj, now) {
            if let Some(total) = used.get_mut(&k) {
                *total = total.saturating_add(v);
            }
        }
    }
    serde_json::json!({"hard": hard, "used": quota::to_json(&used)})
}

/// The resources whose objects the quota's limits count.
fn counted(quota: &Value) -> Vec<&'static ResourceInfo> {
    let keys: BTreeSet<String> =
        quota["spec"]["hard"].as_object().into_iter().flatten().filter_map(|(k, _)| quota::counted_by(k)).collect();
    RESOURCES.iter().filter(|r| r.namespaced && keys.contains(&r.storage_key())).collect()
}

pub async fn reconcile(rq: Arc<ResourceQuota>, ctx: Arc<QuotaContext>) -> Result<Action, ReconcileError> {
    let quota = serde_json::to_value(rq.as_ref()).unwrap_or_default();
    let (Some(namespace), Some(name)) = (rq.metadata.namespace.as_deref(), rq.metadata.name.as_deref()) else {
        return Ok(Action::await_change());
    };
    let uid = rq.metadata.uid.clone().unwrap_or_default();
    let mark = ctx.mark(namespace);
    let last = ctx.recomputed.lock().expect("quota recompute lock").get(&uid).copied();
    if !stale(&quota, last, mark, Instant::now()) {
        return Ok(Action::requeue(RESYNC));
    }
    let mut objects = Vec::new();
    for resource in counted(&quota) {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &api_resource(resource));
        for item in api.list(&ListParams::default()).await?.items {
            objects.push((resource, serde_json::to_value(item).unwrap_or_default()));
        }
    }
    let computed = status(&quota, &objects, jiff::Timestamp::now());
    if quota["status"] != computed {
        let mut updated = rq.as_ref().clone();
        updated.status = serde_json::from_value(computed).ok();
        let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), namespace);
        match api.replace_status(name, &PostParams::default(), &updated).await {
            Ok(_) => {}
            // Admission charged it meanwhile, or it went: look again at the newer state.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::debug!(%namespace, %name, "quota usage recomputed");
    }
    ctx.recomputed.lock().expect("quota recompute lock").insert(uid, (mark, Instant::now()));
    Ok(Action::requeue(RESYNC))
}

/// Whether a change releases quota: a deletion, or a pod that ended or is being deleted.
fn releases(event: &watcher::Event<DynamicObject>) -> Option<String> {
    match event {
        watcher::Event::Delete(obj) => obj.metadata.namespace.clone(),
        watcher::Event::Apply(obj)
            if obj.metadata.deletion_timestamp.is_some()
                || matches!(obj.data["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) =>
        {
            obj.metadata.namespace.clone()
        }
        _ => None,
    }
}

/// One trigger per release seen in any of the counted kinds (not Events, Leases and endpoints,
/// whose churn would cost more than their count quotas are worth: those release on resync).
fn release_triggers(ctx: Arc<QuotaContext>) -> impl Stream<Item = ()> + Send {
    let kinds = RESOURCES.iter().filter(|r| {
        r.namespaced
            && !matches!(r.kind, "Event" | "Lease" | "Endpoints" | "EndpointSlice")
            && !r.is_review()
            && r.plural != "resourcequotas"
    });
    let streams = kinds.map(|r| {
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &api_resource(r));
        let ctx = ctx.clone();
        watcher(api, watcher::Config::default())
            .default_backoff()
            .filter_map(move |event| {
                let ctx = ctx.clone();
                async move {
                    match event {
                        Ok(watcher::Event::InitDone) => {
                            ctx.restarts.fetch_add(1, Ordering::Relaxed);
                            Some(())
                        }
                        Ok(event) => {
                            let namespace = releases(&event)?;
                            *ctx.releases.lock().expect("quota releases lock").entry(namespace).or_default() += 1;
                            Some(())
                        }
                        Err(_) => None,
                    }
                }
            })
            .boxed()
    });
    futures::stream::select_all(streams)
}

pub async fn run(client: kube::Client) {
    let quotas: Api<ResourceQuota> = Api::all(client.clone());
    let ctx = Arc::new(QuotaContext {
        client,
        releases: Mutex::new(HashMap::new()),
        restarts: AtomicU64::new(0),
        recomputed: Mutex::new(HashMap::new()),
    });
    Controller::new(quotas, watcher::Config::default())
        .reconcile_all_on(release_triggers(ctx.clone()))
        .with_config(Config::default().debounce(DEBOUNCE))
        .run(reconcile, retry_soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::kinds::lookup;

    #[test]
    fn status_counts_what_is_in_scope_for_every_limit() {
        let quota = json!({"spec": {"hard": {"pods": "3", "requests.cpu": "2", "count/configmaps": "5"}}});
        let pods = lookup("", "v1", "pods").unwrap();
        let cms = lookup("", "v1", "configmaps").unwrap();
        let pod = |cpu: &str, phase: &str| {
            json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
                "status": {"phase": phase}})
        };
        let objects = vec![
            (pods, pod("500m", "Running")),
            (pods, pod("1", "Succeeded")),
            (pods, pod("250m", "Pending")),
            (cms, json!({"data": {}})),
        ];
        let got = status(&quota, &objects, jiff::Timestamp::now());
        assert_eq!(got["used"], json!({"pods": "2", "requests.cpu": "750m", "count/configmaps": "1"}));
        assert_eq!(got["hard"], quota["spec"]["hard"]);
        let names: Vec<&str> = counted(&quota).iter().map(|r| r.plural).collect();
        assert_eq!(names, ["pods", "configmaps"].iter().copied().filter(|p| names.contains(p)).collect::<Vec<_>>());
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn a_quota_is_recomputed_on_new_limits_releases_and_resync() {
        let now = Instant::now();
        let settled =
            json!({"spec": {"hard": {"pods": "2"}}, "status": {"hard": {"pods": "2"}, "used": {"pods": "1"}}});
        assert!(!stale(&settled, Some((3, now)), 3, now), "a charge alone does not recompute");
        assert!(stale(&settled, Some((3, now)), 4, now), "a release does");
        assert!(stale(&settled, None, 0, now), "so does a quota never computed here");
        assert!(stale(&settled, Some((3, now)), 3, now + RESYNC));
        let raised = json!({"spec": {"hard": {"pods": "5"}}, "status": settled["status"]});
        assert!(stale(&raised, Some((3, now)), 3, now));
    }

    #[test]
    fn deletions_and_ended_pods_release() {
        let obj = |v: Value| -> DynamicObject { serde_json::from_value(v).unwrap() };
        let running = obj(json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}}));
        let done = obj(json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Failed"}}));
        assert_eq!(releases(&watcher::Event::Apply(running.clone())), None);
        assert_eq!(releases(&watcher::Event::Apply(done)).as_deref(), Some("ns"));
        assert_eq!(releases(&watcher::Event::Delete(running)).as_deref(), Some("ns"));
    }
}
