//! What the workload controllers (ReplicaSet, Deployment, Job, DaemonSet, StatefulSet) share:
//! controller references, label selectors, claiming pods (adoption and release, as
//! kube-controller-manager's ControllerRefManager), pods made from a template, and pod
//! readiness and availability.

use std::collections::BTreeMap;
use std::fmt::Debug;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::api_message;
use crate::events::{EventType, Recorder};

/// Pod creations or deletions in flight at once.
const IN_FLIGHT: usize = 32;

/// The controller reference a controller puts on what it creates: `controller` and
/// `blockOwnerDeletion` set, as Kubernetes does.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.iter().flatten().find(|r| r.controller == Some(true))
}

/// Whether `labels` match `selector` (matchLabels and matchExpressions, all must hold). An
/// empty selector matches everything, as in workload specs.
pub fn selector_matches(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let by_label = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    by_label
        && selector.match_expressions.iter().flatten().all(|e| {
            let value = labels.get(&e.key);
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// Whether a selector has neither matchLabels nor matchExpressions (it would select everything).
pub fn is_empty_selector(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// The owners (of kind `O`, in `owners`) a child's change concerns: its controller when that is
/// an `O`, none when another kind controls it, and for an orphan every `O` in its namespace whose
/// non-empty `selector` matches it (which may adopt it). Only orphans cost a scan of the store.
pub fn owners_concerned<O, C>(
    owners: &Store<O>,
    child: &C,
    selector: impl Fn(&O) -> Option<&LabelSelector>,
) -> Vec<ObjectRef<O>>
where
    O: Resource<DynamicType = ()> + Clone + 'static,
    C: Resource,
{
    let meta = child.meta();
    let namespace = meta.namespace.as_deref().unwrap_or("default");
    match controller_of(meta) {
        Some(r) if r.kind == O::kind(&()) => vec![ObjectRef::new(&r.name).within(namespace)],
        Some(_) => Vec::new(),
        None => owners
            .state_filter(|o| {
                o.meta().namespace.as_deref().unwrap_or("default") == namespace
                    && selector(o).is_some_and(|s| !is_empty_selector(s) && selector_matches(s, meta.labels.as_ref()))
            })
            .iter()
            .map(|o| ObjectRef::from_obj(&**o))
            .collect(),
    }
}

/// `selector` as the `labelSelector` query parameter of a list; None when it cannot be written
/// that way (then list everything and filter with [`selector_matches`]).
pub fn selector_query(selector: &LabelSelector) -> Option<String> {
    let mut parts: Vec<String> = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => return None,
        });
    }
    Some(parts.join(","))
}

/// Lists the pods in `namespace` that `owner` controls, adopting orphans and releasing the ones
/// its selector no longer matches: [`claim`] for pods.
pub async fn claim_pods(
    client: &kube::Client,
    owner: &OwnerReference,
    namespace: &str,
    selector: &LabelSelector,
    deleting: bool,
) -> Result<Vec<Pod>, kube::Error> {
    claim(&Api::namespaced(client.clone(), namespace), owner, selector, deleting).await
}

/// Lists the objects of `api` (pods of a controller, ReplicaSets of a Deployment) that `owner`
/// controls, adopting orphans its selector matches and releasing objects it controls that the
/// selector no longer matches, as kube-controller-manager's ControllerRefManager. The list is
/// read from the API (not a watch cache), so what a reconcile just created is always counted.
/// An owner being deleted adopts nothing; an adoption counts only if the patched object names
/// `owner` as its controller.
pub async fn claim<K>(
    api: &Api<K>,
    owner: &OwnerReference,
    selector: &LabelSelector,
    deleting: bool,
) -> Result<Vec<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    // One list of the namespace, filtered here: objects this owner controls that its selector
    // no longer matches must be found too, to be released.
    let mut claimed = Vec::new();
    for obj in api.list(&ListParams::default()).await?.items {
        let meta = obj.meta();
        let name = meta.name.clone().unwrap_or_default();
        let matches = selector_matches(selector, meta.labels.as_ref());
        let patch = match controller_of(meta) {
            Some(r) if r.uid == owner.uid && matches => {
                claimed.push(obj);
                continue;
            }
            Some(r) if r.uid == owner.uid => {
                json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner.uid}], "uid": meta.uid}})
            }
            None if matches && !deleting && meta.deletion_timestamp.is_none() => {
                json!({"metadata": {"ownerReferences": [owner], "uid": meta.uid}})
            }
            _ => continue,
        };
        // A uid precondition: an object that went away or was replaced in between is left alone.
        match api.patch(&name, &PatchParams::default(), &Patch::Strategic(patch)).await {
            Ok(patched) if controller_of(patched.meta()).is_some_and(|r| r.uid == owner.uid) => claimed.push(patched),
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(claimed)
}

/// A pod to create from `template`: its labels, annotations and spec, controlled by `owner`,
/// named `name` or (when None) generated from `generate_name`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner: OwnerReference,
    name: Option<String>,
    generate_name: &str,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name: name.clone(),
            generate_name: name.is_none().then(|| generate_name.to_string()),
            namespace: Some(namespace.into()),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Sizes of the batches in which `count` pods are created: 1, 2, 4, … (kube-controller-manager's
/// slow start, so a template the API refuses costs one failed request, not hundreds).
fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut left, mut size) = (count, 1);
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size *= 2;
    }
    batches
}

/// The Event messages of a pod created or deleted for `owner`, in its controller's words: a
/// StatefulSet's name the pod and verb ("create Pod web-0 in StatefulSet web successful"),
/// the others' say "Created pod: web-abc12" / "Error creating: …".
fn pod_message<K: Resource<DynamicType = ()>>(owner: &K, verb: &str, pod: &str, error: Option<&str>) -> String {
    if K::kind(&()) == "StatefulSet" {
        let set = owner.meta().name.as_deref().unwrap_or_default();
        return match error {
            None => format!("{verb} Pod {pod} in StatefulSet {set} successful"),
            Some(error) => format!("{verb} Pod {pod} in StatefulSet {set} failed error: {error}"),
        };
    }
    match (verb, error) {
        ("create", None) => format!("Created pod: {pod}"),
        ("create", Some(error)) => format!("Error creating: {error}"),
        (_, None) => format!("Deleted pod: {pod}"),
        (_, Some(error)) => format!("Error deleting: {error}"),
    }
}

/// Creates `pods` for `owner` in slow-start batches (at most 32 requests in flight), recording
/// SuccessfulCreate or FailedCreate for each. A batch with a failure ends it: the pods of later
/// batches are not tried, and the first error is returned (the reconcile then tries again soon).
pub async fn create_pods<K: Resource<DynamicType = ()>>(
    api: &Api<Pod>,
    recorder: &Recorder,
    owner: &K,
    pods: Vec<Pod>,
) -> Result<(), kube::Error> {
    let mut pods = pods.into_iter();
    for batch in slow_start_batches(pods.len()) {
        let requests = pods.by_ref().take(batch).map(|pod| async move {
            let result = api.create(&PostParams::default(), &pod).await;
            (pod.metadata.name.unwrap_or_default(), result)
        });
        let results: Vec<_> = stream::iter(requests).buffer_unordered(IN_FLIGHT).collect().await;
        let mut failed = None;
        for (name, result) in results {
            match result {
                Ok(created) => {
                    let message = pod_message(owner, "create", created.metadata.name.as_deref().unwrap_or(&name), None);
                    recorder.record(owner, EventType::Normal, "SuccessfulCreate", &message);
                }
                Err(e) => {
                    let message = pod_message(owner, "create", &name, Some(&api_message(&e)));
                    tracing::warn!(kind = %K::kind(&()), owner = ?owner.meta().name, error = %e, "cannot create a pod");
                    recorder.record(owner, EventType::Warning, "FailedCreate", &message);
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

/// Deletes the pods named `names` for `owner` (at most 32 requests in flight), recording
/// SuccessfulDelete or FailedDelete for each; a pod already gone is no error. Every pod is tried;
/// the first error is returned (the reconcile then tries again soon).
pub async fn delete_pods<K: Resource<DynamicType = ()>>(
    api: &Api<Pod>,
    recorder: &Recorder,
    owner: &K,
    names: Vec<String>,
) -> Result<(), kube::Error> {
    let requests = names.into_iter().map(|name| async move {
        let result = api.delete(&name, &DeleteParams::default()).await;
        (name, result)
    });
    let results: Vec<_> = stream::iter(requests).buffer_unordered(IN_FLIGHT).collect().await;
    let mut failed = None;
    for (name, result) in results {
        match result {
            Ok(_) => recorder.record(
                owner,
                EventType::Normal,
                "SuccessfulDelete",
                &pod_message(owner, "delete", &name, None),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                let message = pod_message(owner, "delete", &name, Some(&api_message(&e)));
                recorder.record(owner, EventType::Warning, "FailedDelete", &message);
                failed.get_or_insert(e);
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// The label on a DaemonSet's or StatefulSet's pods naming the template revision they were made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The alphabet of generated names (no vowels, no confusable characters).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits.
fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// The hash of a pod template that names its revision (a Deployment's pod-template-hash, a
/// DaemonSet's or StatefulSet's controller-revision-hash): FNV-1a of the template (and the
/// collision count), its decimal digits spelled in the safe alphabet, as Kubernetes' `ComputeHash`.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(count) = collision_count {
        bytes.extend_from_slice(&(count as u32).to_le_bytes());
    }
    fnv32a(&bytes).to_string().bytes().map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char).collect()
}

/// The revision `pod` was made from (its [`REVISION_LABEL`]).
pub fn pod_revision(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(REVISION_LABEL).map(String::as_str)
}

/// Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Neither terminal nor being deleted: counts toward a controller's replicas.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition last became True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let ready = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (ready.status == "True").then(|| ready.last_transition_time.as_ref().map(|t| t.0).unwrap_or_default())
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    ready_since(pod).is_some_and(|since| {
        min_ready_seconds <= 0 || now.duration_since(since) >= jiff::SignedDuration::from_secs(min_ready_seconds.into())
    })
}

/// When to look again because one of the `active` pods that is ready becomes available
/// (minReadySeconds) later; None when none will.
pub fn next_availability_check(
    active: &[&Pod],
    min_ready_seconds: i32,
    now: jiff::Timestamp,
) -> Option<std::time::Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    active
        .iter()
        .filter_map(|p| ready_since(p))
        .filter_map(|since| {
            let at = since + jiff::SignedDuration::from_secs(min_ready_seconds.into());
            let wait = at.duration_since(now);
            (wait > jiff::SignedDuration::ZERO).then(|| std::time::Duration::try_from(wait).unwrap_or_default())
        })
        .min()
        .map(|d| d + std::time::Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                expression("tier", "In", &["front", "edge"]),
                expression("canary", "DoesNotExist", &[]),
            ]),
        };
        assert!(selector_matches(&selector, Some(&labels(&[("app", "web"), ("tier", "edge")]))));
        assert!(!selector_matches(&selector, Some(&labels(&[("app", "web"), ("tier", "back")]))));
        assert!(!selector_matches(&selector, Some(&labels(&[("app", "web"), ("tier", "front"), ("canary", "1")]))));
        assert!(!selector_matches(&selector, None));
        assert!(selector_matches(&LabelSelector::default(), None), "an empty selector matches everything");
        assert_eq!(selector_query(&selector).unwrap(), "app=web,tier in (front,edge),!canary");
    }

    #[test]
    fn slow_start_doubles_batches() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(1000).len(), 10);
        assert_eq!(slow_start_batches(1000).iter().sum::<usize>(), 1000);
    }

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "ticker", "image": image}]},
        }))
        .unwrap()
    }

    #[test]
    fn template_hash_is_stable_safe_and_moves_with_collisions() {
        let a = template("ticker:v1");
        let hash = template_hash(&a, None);
        assert_eq!(hash, template_hash(&template("ticker:v1"), None));
        assert!(hash.len() <= 10 && hash.len() >= 8, "{hash}");
        assert!(hash.bytes().all(|b| ALPHANUMS.contains(&b)), "{hash}");
        assert_ne!(hash, template_hash(&template("ticker:v2"), None));
        assert_ne!(hash, template_hash(&a, Some(1)));
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        let mut b = a.clone();
        b.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert("v".into(), "2".into());
        assert_ne!(hash, template_hash(&b, None));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap();
        let now: jiff::Timestamp = "2026-01-01T00:00:05Z".parse().unwrap();
        assert!(is_ready(&pod) && is_active(&pod));
        assert!(is_available(&pod, 5, now));
        assert!(!is_available(&pod, 6, now));
    }

    #[test]
    fn template_pods_carry_the_controller_reference() {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "ticker:v1"}]},
        }))
        .unwrap();
        let owner = OwnerReference { uid: "u1".into(), controller: Some(true), ..Default::default() };
        let pod = pod_from_template(&template, "default", owner, None, "web-");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(controller_of(&pod.metadata).unwrap().uid, "u1");
        assert_eq!(pod.metadata.labels.unwrap()["app"], "web");
    }
}
