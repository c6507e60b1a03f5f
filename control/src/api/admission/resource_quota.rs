//! The ResourceQuota plugin: a write that would take a namespace past one of its quotas is
//! refused; an admitted one is charged to the quotas' `status.used` before the object is
//! written, each quota by a compare-and-swap on its resourceVersion (retried on conflict), so
//! concurrent creates cannot pass a quota together. The quota controller recomputes `used` from
//! what exists, releasing what objects that went (or writes that failed) were charged.
//!
//! As in Kubernetes, limits are `status.hard` (the controller copies `spec.hard` there): a quota
//! the controller has not yet seen constrains nothing, and one whose `status.used` lacks a
//! tracked resource refuses with "status unknown".

use std::collections::BTreeSet;
use std::fmt::Display;

use jiff::Timestamp;
use serde_json::Value;

use super::{Operation, Request};
use crate::api::ApiState;
use crate::error::{Error, Result};
use crate::registry::kinds::ResourceInfo;
use crate::registry::quota::{self, Usage};
use crate::store::{ObjectKey, Write, WriteError};

/// How often a charge is retried when other writers keep changing the quotas.
const MAX_ATTEMPTS: usize = 200;

/// `pods "p" is forbidden: <reason>`, as admission.NewForbidden words it.
pub(super) fn forbidden(request: &Request<'_>, reason: impl Display) -> Error {
    let r = request.resource;
    let resource = if r.group.is_empty() { r.plural.to_string() } else { format!("{}.{}", r.plural, r.group) };
    let name = if request.name.is_empty() { "Unknown" } else { request.name };
    Error::Forbidden(format!("{resource} \"{name}\" is forbidden: {reason}"))
}

/// `requests.cpu=500m,pods=1`, sorted by name.
fn pretty(usage: &Usage, names: &BTreeSet<String>, shown: impl Fn(&str, i128) -> String) -> String {
    names.iter().filter_map(|k| Some(format!("{k}={}", shown(k, *usage.get(k)?)))).collect::<Vec<_>>().join(",")
}

/// What charging `delta` to one quota does: Ok(None) if the quota does not concern the object,
/// Ok(Some(new status.used)) if it fits, Err(reason) if it is refused.
pub fn decide(quota: &Value, resource: &ResourceInfo, object: &Value, delta: &Usage) -> Result<Option<Value>, String> {
    if !quota::in_scope(quota, resource, object) {
        return Ok(None);
    }
    let name = quota["metadata"]["name"].as_str().unwrap_or_default();
    let storage = resource.storage_key();
    let hard = quota::list(&quota["status"]["hard"]);
    let restricted: BTreeSet<String> =
        hard.keys().filter(|k| quota::counted_by(k).as_deref() == Some(storage.as_str())).cloned().collect();
    if restricted.is_empty() {
        return Ok(None);
    }
    if storage == "pods"
        && let Some(missing) = quota::missing_constraints(object, &restricted)
    {
        return Err(format!("failed quota: {name}: {missing}"));
    }
    let used_json = quota["status"]["used"].as_object();
    if restricted.iter().any(|k| used_json.is_none_or(|u| !u.contains_key(k))) {
        let names: Vec<&str> = restricted.iter().map(String::as_str).collect();
        return Err(format!("status unknown for quota: {name}, resources: {}", names.join(",")));
    }
    let used = quota::list(&quota["status"]["used"]);
    let requested: BTreeSet<String> = restricted.iter().filter(|k| delta.contains_key(*k)).cloned().collect();
    if requested.is_empty() {
        return Ok(None);
    }
    let now_used = |k: &str| used.get(k).copied().unwrap_or(0);
    let exceeded: BTreeSet<String> =
        requested.iter().filter(|k| now_used(k).saturating_add(delta[*k]) > hard[*k]).cloned().collect();
    if !exceeded.is_empty() {
        // Used and hard as the quota states them; the request as Kubernetes prints quantities.
        let stated = |field: &str| {
            let list = &quota["status"][field];
            exceeded
                .iter()
                .map(|k| format!("{k}={}", list[k].as_str().map_or_else(|| list[k].to_string(), str::to_string)))
                .collect::<Vec<_>>()
                .join(",")
        };
        return Err(format!(
            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            pretty(delta, &exceeded, quota::render),
            stated("used"),
            stated("hard"),
        ));
    }
    let mut new_used = quota["status"]["used"].clone();
    for k in &requested {
        new_used[k.as_str()] = quota::render(k, now_used(k).saturating_add(delta[k])).into();
    }
    Ok(Some(new_used))
}

/// What a write adds to usage: everything a new object counts; for an update, what grew.
fn delta(request: &Request<'_>, object: &Value, old: Option<&Value>) -> Usage {
    let now = Timestamp::now();
    let mut delta = quota::usage(request.resource, object, now);
    if let Some(old) = old {
        let before = quota::usage(request.resource, old, now);
        delta.retain(|k, v| {
            *v -= before.get(k).copied().unwrap_or(0);
            *v > 0
        });
    }
    delta
}

pub async fn validate(state: &ApiState, request: &Request<'_>, object: &Value, old: Option<&Value>) -> Result<()> {
    let r = request.resource;
    let concerned = request.subresource.is_none()
        && !request.namespace.is_empty()
        && match request.operation {
            Operation::Create => true,
            // What an update can grow: a pod's resources, a Service's ports, a claim's size.
            Operation::Update => {
                r.group.is_empty() && matches!(r.plural, "pods" | "services" | "persistentvolumeclaims")
            }
            Operation::Delete => false,
        };
    if !concerned {
        return Ok(());
    }
    let quotas =
        |state: &ApiState| state.store.list("resourcequotas", Some(request.namespace), None, 0, |_| true).items;
    if quotas(state).is_empty() {
        return Ok(());
    }
    let delta = delta(request, object, old.filter(|_| request.operation == Operation::Update));
    if delta.is_empty() {
        return Ok(());
    }
    // A create of a name that exists fails at the write: nothing to charge.
    let key = ObjectKey::new(r.storage_key(), request.namespace, request.name);
    if request.operation == Operation::Create && state.store.get(&key).is_some() {
        return Ok(());
    }
    let mut charged: BTreeSet<String> = BTreeSet::new();
    for _ in 0..MAX_ATTEMPTS {
        let quotas = quotas(state);
        let mut plan = Vec::new();
        for stored in quotas.iter().filter(|q| !charged.contains(&q.key.name)) {
            match decide(&stored.object, r, object, &delta) {
                Ok(Some(used)) => plan.push((stored, used)),
                Ok(None) => {}
                Err(reason) => return Err(forbidden(request, reason)),
            }
        }
        if request.dry_run {
            return Ok(());
        }
        let mut conflict = false;
        for (stored, used) in plan {
            let mut updated = stored.object.clone();
            updated["status"]["used"] = used;
            let write = Write::Update { key: stored.key.clone(), object: updated, expected_rev: Some(stored.rev) };
            match state.store.write(write).await {
                Ok(_) => {
                    charged.insert(stored.key.name.clone());
                }
                Err(WriteError::Conflict | WriteError::NotFound) => conflict = true,
                Err(e) => return Err(Error::Internal(format!("charging quota {}: {e:?}", stored.key.name))),
            }
        }
        if !conflict {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
    Err(Error::Conflict {
        group: String::new(),
        kind: "resourcequotas".into(),
        name: request.namespace.into(),
        message: "the quotas of the namespace kept changing; please try again".into(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::kinds::lookup;

    fn pods() -> &'static ResourceInfo {
        lookup("", "v1", "pods").unwrap()
    }

    fn quota(hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": "compute"}, "spec": {"hard": hard}, "status": {"hard": hard, "used": used}})
    }

    fn pod(cpu: &str) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
            "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}}]}})
    }

    fn usage_of(obj: &Value) -> Usage {
        quota::usage(pods(), obj, Timestamp::now())
    }

    #[test]
    fn a_pod_within_the_quota_is_charged() {
        let q = quota(json!({"pods": "2", "requests.cpu": "1"}), json!({"pods": "1", "requests.cpu": "500m"}));
        let p = pod("500m");
        let used = decide(&q, pods(), &p, &usage_of(&p)).unwrap().unwrap();
        assert_eq!(used, json!({"pods": "2", "requests.cpu": "1"}));
    }

    #[test]
    fn a_pod_past_the_quota_is_refused_with_kubernetes_message() {
        let q = quota(json!({"pods": "5", "requests.cpu": "1"}), json!({"pods": "1", "requests.cpu": "1"}));
        let p = pod("500m");
        let reason = decide(&q, pods(), &p, &usage_of(&p)).unwrap_err();
        assert_eq!(
            reason,
            "exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=1, limited: requests.cpu=1"
        );
    }

    #[test]
    fn a_pod_without_tracked_requests_is_refused() {
        let q = quota(json!({"limits.cpu": "2"}), json!({"limits.cpu": "0"}));
        let p = json!({"spec": {"containers": [{"name": "c"}]}});
        let reason = decide(&q, pods(), &p, &usage_of(&p)).unwrap_err();
        assert_eq!(reason, "failed quota: compute: must specify limits.cpu for: c");
    }

    #[test]
    fn quotas_without_status_constrain_nothing_and_missing_usage_is_unknown() {
        let p = pod("1");
        let fresh = json!({"metadata": {"name": "compute"}, "spec": {"hard": {"pods": "1"}}});
        assert_eq!(decide(&fresh, pods(), &p, &usage_of(&p)), Ok(None));
        let half = json!({"metadata": {"name": "compute"}, "status": {"hard": {"pods": "1"}}});
        assert_eq!(
            decide(&half, pods(), &p, &usage_of(&p)).unwrap_err(),
            "status unknown for quota: compute, resources: pods"
        );
    }

    #[test]
    fn quotas_of_other_resources_are_left_alone() {
        let q = quota(json!({"count/configmaps": "1"}), json!({"count/configmaps": "1"}));
        let p = pod("1");
        assert_eq!(decide(&q, pods(), &p, &usage_of(&p)), Ok(None));
        let cm = lookup("", "v1", "configmaps").unwrap();
        let delta = quota::usage(cm, &json!({}), Timestamp::now());
        assert_eq!(
            decide(&q, cm, &json!({}), &delta).unwrap_err(),
            "exceeded quota: compute, requested: count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1"
        );
    }
}
