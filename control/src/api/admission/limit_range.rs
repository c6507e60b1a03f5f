//! The LimitRanger plugin: a namespace's LimitRanges fill containers' default requests and
//! limits (Container items' `default` and `defaultRequest`) and refuse pods and claims outside
//! their minimums, maximums and limit/request ratios, with Kubernetes' messages. Pods are
//! checked when created (their resources do not change afterwards), claims too.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::resource_quota::forbidden;
use super::{Operation, Request};
use crate::api::ApiState;
use crate::error::Result;
use crate::registry::quota::milli;
use crate::registry::strategy::qos_class;
use crate::registry::validation::Quantity;
use crate::store::Stored;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The LimitRanges of the request's namespace, when the request is one LimitRanger looks at:
/// the create of a pod or of a PersistentVolumeClaim.
fn limit_ranges(state: &ApiState, request: &Request<'_>, plural: &str) -> Vec<std::sync::Arc<Stored>> {
    let r = request.resource;
    if request.operation != Operation::Create || !request.is("", r.kind) || r.plural != plural {
        return Vec::new();
    }
    state.store.list("limitranges", Some(request.namespace), None, 0, |_| true).items
}

/// The items of one type of a LimitRange.
fn items<'a>(range: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    range["spec"]["limits"].as_array().into_iter().flatten().filter(move |i| i["type"] == kind)
}

/// A quantity as kube-apiserver stores it in a resource list.
fn canonical(v: &Value) -> Value {
    Quantity::from_json(v).map(|q| q.round_up(-3).canonical().into()).unwrap_or_else(|_| v.clone())
}

/// Fills `field` of the container's resources from `defaults`; the names it set.
fn fill(container: &mut Map<String, Value>, field: &str, defaults: &Map<String, Value>) -> Vec<String> {
    if defaults.is_empty() {
        return Vec::new();
    }
    let resources = container.entry("resources").or_insert_with(|| json!({}));
    if !resources.is_object() {
        *resources = json!({});
    }
    let list = resources.as_object_mut().expect("an object").entry(field).or_insert_with(|| json!({}));
    if !list.is_object() {
        *list = json!({});
    }
    let list = list.as_object_mut().expect("an object");
    let mut set = Vec::new();
    for (k, v) in defaults {
        if !list.contains_key(k) {
            list.insert(k.clone(), canonical(v));
            set.push(k.clone());
        }
    }
    set
}

/// Applies the Container defaults of `ranges` to a pod; the annotation's phrases.
fn default_pod(ranges: &[&Value], pod: &mut Value) -> Vec<String> {
    let mut notes = Vec::new();
    for range in ranges {
        let (mut limits, mut requests) = (Map::new(), Map::new());
        for item in items(range, "Container") {
            limits.extend(item["default"].as_object().cloned().unwrap_or_default());
            requests.extend(item["defaultRequest"].as_object().cloned().unwrap_or_default());
        }
        for (field, prefix) in [("containers", "container"), ("initContainers", "init container")] {
            let Some(list) = pod["spec"][field].as_array_mut() else { continue };
            for c in list.iter_mut().filter_map(Value::as_object_mut) {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                let mut set_limits = fill(c, "limits", &limits);
                let mut set_requests = fill(c, "requests", &requests);
                set_requests.sort();
                set_limits.sort();
                if !set_requests.is_empty() {
                    notes.push(format!("{} request for {prefix} {name}", set_requests.join(", ")));
                }
                if !set_limits.is_empty() {
                    notes.push(format!("{} limit for {prefix} {name}", set_limits.join(", ")));
                }
            }
        }
    }
    notes
}

pub fn mutate(
    state: &ApiState,
    request: &Request<'_>,
    object: &mut Value,
    _old: Option<&Value>,
    _warnings: &mut Vec<String>,
) -> Result<()> {
    let ranges = limit_ranges(state, request, "pods");
    if ranges.is_empty() {
        return Ok(());
    }
    let ranges: Vec<&Value> = ranges.iter().map(|r| &r.object).collect();
    let notes = default_pod(&ranges, object);
    if notes.is_empty() {
        return Ok(());
    }
    if !object["metadata"]["annotations"].is_object() {
        object["metadata"]["annotations"] = json!({});
    }
    object["metadata"]["annotations"][ANNOTATION] = format!("LimitRanger plugin set: {}", notes.join("; ")).into();
    // The QoS class was computed before the defaults came in.
    if object["status"].is_object() {
        object["status"]["qosClass"] = qos_class(object).into();
    }
    Ok(())
}

/// One resource list of an object, as Kubernetes prints its quantities, by name.
fn resource_list(v: &Value) -> BTreeMap<String, (i128, String)> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| {
            let parsed = Quantity::from_json(q).ok()?;
            Some((k.clone(), (parsed.milli_value(), parsed.canonical())))
        })
        .collect()
}

type List = BTreeMap<String, (i128, String)>;

/// The checks of one item's `min`, `max` and `maxLimitRequestRatio` against requests and
/// limits (minConstraint, maxConstraint, limitRequestRatioConstraint).
fn check(item: &Value, kind: &str, requests: &List, limits: &List, errs: &mut Vec<String>) {
    for (name, (enforced, shown)) in resource_list(&item["min"]) {
        let (req, lim) = (requests.get(&name), limits.get(&name));
        match req {
            None => errs.push(format!("minimum {name} usage per {kind} is {shown}.  No request is specified")),
            Some((r, rs)) if *r < enforced => {
                errs.push(format!("minimum {name} usage per {kind} is {shown}, but request is {rs}"))
            }
            _ => match lim {
                Some((l, ls)) if *l < enforced => {
                    errs.push(format!("minimum {name} usage per {kind} is {shown}, but limit is {ls}"))
                }
                _ => {}
            },
        }
    }
    for (name, (enforced, shown)) in resource_list(&item["max"]) {
        if kind == "PersistentVolumeClaim" {
            match requests.get(&name) {
                None => errs.push(format!("maximum {name} usage per {kind} is {shown}.  No request is specified")),
                Some((r, rs)) if *r > enforced => {
                    errs.push(format!("maximum {name} usage per {kind} is {shown}, but request is {rs}"))
                }
                _ => {}
            }
            continue;
        }
        let (req, lim) = (requests.get(&name), limits.get(&name));
        match lim {
            None => errs.push(format!("maximum {name} usage per {kind} is {shown}.  No limit is specified")),
            Some((l, ls)) if *l > enforced => {
                errs.push(format!("maximum {name} usage per {kind} is {shown}, but limit is {ls}"))
            }
            _ => match req {
                Some((r, rs)) if *r > enforced => {
                    errs.push(format!("maximum {name} usage per {kind} is {shown}, but request is {rs}"))
                }
                _ => {}
            },
        }
    }
    if kind == "PersistentVolumeClaim" {
        return;
    }
    for (name, (enforced, shown)) in resource_list(&item["maxLimitRequestRatio"]) {
        let req = requests.get(&name).map(|r| r.0).unwrap_or(0);
        let lim = limits.get(&name).map(|l| l.0).unwrap_or(0);
        if req == 0 {
            errs.push(format!(
                "{name} max limit to request ratio per {kind} is {shown}, but no request is specified or request is 0"
            ));
        } else if lim == 0 {
            errs.push(format!(
                "{name} max limit to request ratio per {kind} is {shown}, but no limit is specified or limit is 0"
            ));
        } else {
            let ratio = lim as f64 / req as f64;
            if ratio * 1000.0 > enforced as f64 {
                errs.push(format!(
                    "{name} max limit to request ratio per {kind} is {shown}, but provided ratio is {ratio:.6}"
                ));
            }
        }
    }
}

/// A pod's aggregate requests or limits: the containers' sum, or the largest init container's
/// when above it.
fn pod_total(pod: &Value, field: &str) -> List {
    let mut sum: BTreeMap<String, i128> = BTreeMap::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        for (k, v) in c["resources"][field].as_object().into_iter().flatten() {
            let total = sum.entry(k.clone()).or_default();
            *total = total.saturating_add(milli(v).unwrap_or(0));
        }
    }
    for c in pod["spec"]["initContainers"].as_array().into_iter().flatten() {
        for (k, v) in c["resources"][field].as_object().into_iter().flatten() {
            let entry = sum.entry(k.clone()).or_default();
            *entry = (*entry).max(milli(v).unwrap_or(0));
        }
    }
    sum.into_iter().map(|(k, v)| (k.clone(), (v, crate::registry::quota::render(&k, v)))).collect()
}

/// Every violation of `ranges` by a pod (PodValidateLimitFunc).
fn pod_violations(ranges: &[&Value], pod: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    for range in ranges {
        for item in items(range, "Container") {
            let all = ["containers", "initContainers"].map(|f| pod["spec"][f].as_array().cloned().unwrap_or_default());
            for c in all.iter().flatten() {
                let requests = resource_list(&c["resources"]["requests"]);
                let limits = resource_list(&c["resources"]["limits"]);
                check(item, "Container", &requests, &limits, &mut errs);
            }
        }
        for item in items(range, "Pod") {
            check(item, "Pod", &pod_total(pod, "requests"), &pod_total(pod, "limits"), &mut errs);
        }
    }
    errs
}

fn claim_violations(ranges: &[&Value], claim: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let requests = resource_list(&claim["spec"]["resources"]["requests"]);
    for range in ranges {
        for item in items(range, "PersistentVolumeClaim") {
            check(item, "PersistentVolumeClaim", &requests, &List::new(), &mut errs);
        }
    }
    errs
}

pub fn validate(state: &ApiState, request: &Request<'_>, object: &Value, _old: Option<&Value>) -> Result<()> {
    let (pods, claims) = (limit_ranges(state, request, "pods"), limit_ranges(state, request, "persistentvolumeclaims"));
    let errs = if !pods.is_empty() {
        pod_violations(&pods.iter().map(|r| &r.object).collect::<Vec<_>>(), object)
    } else if !claims.is_empty() {
        claim_violations(&claims.iter().map(|r| &r.object).collect::<Vec<_>>(), object)
    } else {
        return Ok(());
    };
    match errs.len() {
        0 => Ok(()),
        1 => Err(forbidden(request, &errs[0])),
        _ => Err(forbidden(request, format!("[{}]", errs.join(", ")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        let mut lr = json!({"spec": {"limits": limits}});
        crate::registry::quota::default_limit_range(lr.as_object_mut().unwrap());
        lr
    }

    #[test]
    fn containers_get_the_defaults_they_lack() {
        let lr = range(json!([{"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"},
            "defaultRequest": {"cpu": "0.1"}}]));
        let mut pod = json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}],
            "initContainers": [{"name": "i"}]}});
        let notes = default_pod(&[&lr], &mut pod);
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["spec"]["containers"][1]["resources"],
            json!({"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "1", "memory": "128Mi"}})
        );
        assert_eq!(
            notes,
            [
                "cpu, memory request for container a",
                "cpu, memory limit for container a",
                "memory request for container b",
                "memory limit for container b",
                "cpu, memory request for init container i",
                "cpu, memory limit for init container i",
            ]
        );
    }

    #[test]
    fn violations_read_as_kubernetes_words_them() {
        let lr = range(json!([
            {"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}, "maxLimitRequestRatio": {"cpu": "2"}},
            {"type": "Pod", "max": {"memory": "1Gi"}},
        ]));
        let pod = json!({"spec": {"containers": [{"name": "c",
            "resources": {"limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "500m", "memory": "32Mi"}}}]}});
        assert_eq!(
            pod_violations(&[&lr], &pod),
            [
                "minimum memory usage per Container is 64Mi, but request is 32Mi",
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
                "maximum memory usage per Pod is 1Gi, but limit is 2Gi",
            ]
        );
        let fine = json!({"spec": {"containers": [{"name": "c",
            "resources": {"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "500m", "memory": "64Mi"}}}]}});
        assert!(pod_violations(&[&lr], &fine).is_empty());
    }

    #[test]
    fn claims_are_held_to_their_storage_bounds() {
        let lr =
            range(json!([{"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}, "min": {"storage": "1Gi"}}]));
        let claim = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
        assert_eq!(
            claim_violations(&[&lr], &claim("5Gi")),
            ["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"]
        );
        assert_eq!(
            claim_violations(&[&lr], &claim("500Mi")),
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
        assert!(claim_violations(&[&lr], &claim("1Gi")).is_empty());
    }
}
