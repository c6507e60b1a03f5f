//! DaemonSet: one pod on every eligible node, rolled when the template changes, as
//! kube-controller-manager's daemonset controller does.
//!
//! A node is eligible when it matches the template's nodeSelector and required node affinity and
//! every NoSchedule/NoExecute taint is tolerated (with the tolerations Kubernetes adds to daemon
//! pods). Each pod is pinned to its node by a required node affinity on `metadata.name` and then
//! bound by the scheduler. Pods carry `controller-revision-hash`, a stable hash of the template;
//! RollingUpdate deletes old pods up to maxUnavailable and the next pass creates new ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec,
    PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::deployment::rolling::scaled_value;
use super::workload::{
    self, REVISION_LABEL, claim_pods, controller_ref, create_pods, delete_pods, is_available, is_ready,
    next_availability_check, pod_from_template, pod_revision, template_hash,
};
use super::{Context, DEBOUNCE, ReconcileError, retry_soon};
use crate::events::EventType;
use crate::placement::{required_affinity_matches, tolerates};

/// The node field a daemon pod's affinity pins it by.
const NAME_FIELD: &str = "metadata.name";

/// The node a daemon pod is for: the one it is bound to or, before binding, the one its
/// required node affinity pins it to.
fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(node);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    let [term] = terms.as_slice() else { return None };
    term.match_fields.iter().flatten().find_map(|r| match r.values.as_deref() {
        Some([one]) if r.key == NAME_FIELD && r.operator == "In" => Some(one.as_str()),
        _ => None,
    })
}

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// The pod spec with the tolerations Kubernetes adds to every daemon pod (not-ready and
/// unreachable without tolerationSeconds, the pressure conditions, unschedulable, and
/// network-unavailable for host-network pods), each unless the pod already has it.
fn with_daemon_tolerations(spec: &PodSpec) -> PodSpec {
    let mut spec = spec.clone();
    let mut wanted = vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(toleration("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for t in wanted {
        // Replaces one of the same key and effect, as AddOrUpdateTolerationInPodSpec does.
        tolerations.retain(|o| !(o.key == t.key && o.effect == t.effect));
        tolerations.push(t);
    }
    spec
}

/// Labels of a node that has none.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Whether `node` matches the pod's nodeName, nodeSelector and required node affinity.
fn node_matches(spec: &PodSpec, node: &Node) -> bool {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty() && n != name) {
        return false;
    }
    required_affinity_matches(spec, name, node.metadata.labels.as_ref().unwrap_or(&NO_LABELS))
}

/// Whether a daemon pod should be started on a node, and whether one already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fit {
    pub should_run: bool,
    pub should_continue_running: bool,
}

/// Where the pod (with the daemon tolerations already added) belongs on `node`: an untolerated
/// NoSchedule taint keeps new pods off, an untolerated NoExecute taint also evicts.
fn node_fit(spec: &PodSpec, node: &Node) -> Fit {
    if !node_matches(spec, node) {
        return Fit { should_run: false, should_continue_running: false };
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let untolerated =
        |effect: &str| taints.iter().any(|t| t.effect == effect && !tolerations.iter().any(|o| tolerates(o, t)));
    let evicts = untolerated("NoExecute");
    Fit { should_run: !evicts && !untolerated("NoSchedule"), should_continue_running: !evicts }
}

/// Where the pod belongs on each of `nodes`, by node name: computed once per pass.
fn node_fits<'a>(spec: &PodSpec, nodes: impl IntoIterator<Item = &'a Node>) -> BTreeMap<&'a str, Fit> {
    nodes.into_iter().map(|n| (n.metadata.name.as_deref().unwrap_or_default(), node_fit(spec, n))).collect()
}

/// Pins `spec` to `node` as Kubernetes does since 1.12: the required node affinity becomes a
/// single term matching the node's name (the node was already checked against the original).
fn pin(spec: &mut PodSpec, node: &str) {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: NAME_FIELD.into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
            match_expressions: None,
        }],
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(selector);
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn created(pod: &Pod) -> Option<jiff::Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// What one pass does: nodes to start a pod on, pods to delete (with why), failed pods found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    pub create: Vec<String>,
    pub delete: Vec<String>,
    /// (pod, node) of failed daemon pods among `delete`, reported as Warning events.
    pub failed: Vec<(String, String)>,
}

/// A RollingUpdate's (maxUnavailable, maxSurge) as counts of `desired` nodes (percentages
/// round up); maxUnavailable is 1 when both are 0, as Kubernetes does.
fn budgets(ds: &DaemonSet, desired: usize) -> (usize, usize) {
    let update = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let count = |value: Option<&IntOrString>, default: i32| {
        let value = value.cloned().unwrap_or(IntOrString::Int(default));
        usize::try_from(scaled_value(&value, i32::try_from(desired).unwrap_or(i32::MAX), true)).unwrap_or(0)
    };
    let unavailable = count(update.and_then(|u| u.max_unavailable.as_ref()), 1);
    let surge = count(update.and_then(|u| u.max_surge.as_ref()), 0);
    if unavailable == 0 && surge == 0 { (1, 0) } else { (unavailable, surge) }
}

fn rolling(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

/// Daemon pods grouped by the node they are for; pods for no node are under "".
fn by_node(pods: &[Pod]) -> BTreeMap<&str, Vec<&Pod>> {
    let mut map: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        map.entry(target_node(pod).unwrap_or_default()).or_default().push(pod);
    }
    for list in map.values_mut() {
        list.sort_by_key(|p| (created(p), p.metadata.name.clone()));
    }
    map
}

/// Decides one pass over `nodes` for the daemon pods `pods` (those the DaemonSet controls):
/// create where a pod should run and none does, delete failed pods, duplicates and pods on
/// nodes where they may not stay, then (RollingUpdate) delete old pods within maxUnavailable.
fn decide(ds: &DaemonSet, fits: &BTreeMap<&str, Fit>, pods: &[Pod], hash: &str, now: jiff::Timestamp) -> Plan {
    let mut plan = Plan::default();
    let grouped = by_node(pods);
    let desired = fits.values().filter(|f| f.should_run).count();
    let (max_unavailable, max_surge) = budgets(ds, desired);
    // While surging a node may hold one old and one new pod.
    let surging = rolling(ds) && max_surge > 0;
    for (&node_name, &fit) in fits {
        let on_node = grouped.get(node_name).map(Vec::as_slice).unwrap_or_default();
        let live: Vec<&Pod> = on_node.iter().copied().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        if !fit.should_continue_running {
            plan.delete.extend(live.iter().map(|p| name(p)));
            continue;
        }
        let mut running = Vec::new();
        for pod in live {
            if phase(pod) == Some("Failed") {
                plan.delete.push(name(pod));
                plan.failed.push((name(pod), node_name.to_string()));
            } else if phase(pod) != Some("Succeeded") {
                running.push(pod);
            }
        }
        if running.is_empty() {
            if fit.should_run {
                plan.create.push(node_name.to_string());
            }
        } else if running.len() > 1 {
            // Keeps the oldest pod of the current revision (if any, else the oldest), and while
            // surging the oldest old pod beside it.
            let new = running.iter().position(|p| pod_revision(p) == Some(hash));
            let old = running.iter().position(|p| pod_revision(p) != Some(hash)).filter(|_| surging);
            let keep = if surging { [new, old] } else { [Some(new.unwrap_or(0)), None] };
            plan.delete
                .extend(running.iter().enumerate().filter(|(i, _)| !keep.contains(&Some(*i))).map(|(_, p)| name(p)));
        }
    }
    // Pods for nodes that are gone (or for no node at all) are deleted.
    for (node_name, on_node) in &grouped {
        if !fits.contains_key(node_name) {
            plan.delete.extend(on_node.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).map(|p| name(p)));
        }
    }
    if rolling(ds) {
        let update = if surging {
            surge_update(&grouped, fits, hash, max_surge, min_ready_seconds(ds), now)
        } else {
            (rolling_update(&grouped, fits, hash, max_unavailable, min_ready_seconds(ds), now), Vec::new())
        };
        for pod in update.0 {
            if !plan.delete.contains(&pod) {
                plan.delete.push(pod);
            }
        }
        for node in update.1 {
            if !plan.create.contains(&node) {
                plan.create.push(node);
            }
        }
    }
    plan
}

/// The new and the old daemon pod on a node (neither being deleted nor finished); None when
/// there are duplicates of either, which the manage step sorts out first.
fn new_and_old<'a>(on_node: Option<&Vec<&'a Pod>>, hash: &str) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let live = on_node.into_iter().flatten().copied().filter(|p| workload::is_active(p));
    let (new, old): (Vec<&Pod>, Vec<&Pod>) = live.partition(|p| pod_revision(p) == Some(hash));
    match (new.as_slice(), old.as_slice()) {
        ([] | [_], [] | [_]) => Some((new.first().copied(), old.first().copied())),
        _ => None,
    }
}

/// A RollingUpdate step with maxSurge: (old pods to delete, nodes to start a new pod on). A
/// new pod is started beside an available old one while fewer than `max_surge` nodes are
/// surging, at once beside an unavailable one; an old pod goes when the new one is available.
fn surge_update(
    grouped: &BTreeMap<&str, Vec<&Pod>>,
    fits: &BTreeMap<&str, Fit>,
    hash: &str,
    max_surge: usize,
    min_ready_seconds: i32,
    now: jiff::Timestamp,
) -> (Vec<String>, Vec<String>) {
    let (mut surging, mut delete, mut replace_now, mut candidates) = (0, Vec::new(), Vec::new(), Vec::new());
    for (node_name, fit) in fits.iter().filter(|(_, f)| f.should_continue_running) {
        match new_and_old(grouped.get(node_name), hash) {
            None => surging += 1,
            Some((_, None)) => {}
            Some((None, Some(old))) if !is_available(old, min_ready_seconds, now) => {
                if fit.should_run {
                    replace_now.push(node_name.to_string());
                } else {
                    delete.push(name(old));
                }
            }
            Some((None, Some(_))) => {
                if surging < max_surge {
                    candidates.push(node_name.to_string());
                }
            }
            Some((Some(new), Some(old))) => {
                if is_available(new, min_ready_seconds, now) {
                    delete.push(name(old));
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = max_surge.saturating_sub(surging).min(candidates.len());
    replace_now.extend(candidates.into_iter().take(room));
    (delete, replace_now)
}

/// The old pods a RollingUpdate step (maxSurge 0) deletes: every old pod that is not available,
/// and available old pods while fewer than `max_unavailable` daemon pods are unavailable.
fn rolling_update(
    grouped: &BTreeMap<&str, Vec<&Pod>>,
    fits: &BTreeMap<&str, Fit>,
    hash: &str,
    max_unavailable: usize,
    min_ready_seconds: i32,
    now: jiff::Timestamp,
) -> Vec<String> {
    let mut unavailable = 0;
    let mut replace_now = Vec::new();
    let mut candidates = Vec::new();
    for (node_name, fit) in fits {
        if !fit.should_continue_running {
            continue;
        }
        match new_and_old(grouped.get(node_name), hash) {
            Some((None, Some(old))) => {
                if !is_available(old, min_ready_seconds, now) {
                    replace_now.push(name(old));
                } else if unavailable < max_unavailable {
                    candidates.push(name(old));
                }
            }
            Some((Some(new), None)) => {
                if !is_available(new, min_ready_seconds, now) {
                    unavailable += 1;
                }
            }
            // No pod where none should start (e.g. an untolerated NoSchedule taint such as
            // not-ready): nothing is missing there, so it takes no share of the budget.
            Some((None, None)) if !fit.should_run => {}
            // Nothing yet, both, or duplicates: the manage step is at work; count it unavailable.
            _ => unavailable += 1,
        }
    }
    let room = max_unavailable.saturating_sub(unavailable).min(candidates.len());
    replace_now.extend(candidates.into_iter().take(room));
    replace_now
}

/// The status of the DaemonSet given its pods (pods being deleted are not counted).
fn status(
    ds: &DaemonSet,
    fits: &BTreeMap<&str, Fit>,
    pods: &[Pod],
    hash: &str,
    now: jiff::Timestamp,
) -> DaemonSetStatus {
    let live: Vec<Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).cloned().collect();
    let grouped = by_node(&live);
    let min_ready = min_ready_seconds(ds);
    let mut s = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        ..Default::default()
    };
    let (mut available, mut updated) = (0, 0);
    for (node_name, fit) in fits {
        let oldest = grouped.get(node_name).and_then(|p| p.first());
        match (fit.should_run, oldest) {
            (true, Some(pod)) => {
                s.desired_number_scheduled += 1;
                s.current_number_scheduled += 1;
                if is_ready(pod) {
                    s.number_ready += 1;
                    if is_available(pod, min_ready, now) {
                        available += 1;
                    }
                }
                if pod_revision(pod) == Some(hash) {
                    updated += 1;
                }
            }
            (true, None) => s.desired_number_scheduled += 1,
            (false, Some(_)) => s.number_misscheduled += 1,
            (false, None) => {}
        }
    }
    s.number_available = Some(available);
    s.updated_number_scheduled = Some(updated);
    s.number_unavailable = Some(s.desired_number_scheduled - available);
    s
}

/// The pod to start on `node`: the template with the daemon tolerations, pinned to the node.
fn daemon_pod(ds: &DaemonSet, template: &PodTemplateSpec, spec: &PodSpec, node: &str, hash: &str) -> Pod {
    let namespace = ds.metadata.namespace.as_deref().unwrap_or("default");
    let prefix = format!("{}-", ds.metadata.name.as_deref().unwrap_or_default());
    let mut pod = pod_from_template(template, namespace, controller_ref(ds), None, &prefix);
    let mut spec = spec.clone();
    pin(&mut spec, node);
    pod.spec = Some(spec);
    pod.metadata.labels.get_or_insert_with(BTreeMap::new).insert(REVISION_LABEL.into(), hash.into());
    pod
}

/// The DaemonSet controller's context: the shared one and the nodes, from a watch.
pub struct DaemonContext {
    ctx: Arc<Context>,
    nodes: Store<Node>,
}

pub async fn reconcile(ds: Arc<DaemonSet>, daemon_ctx: Arc<DaemonContext>) -> Result<Action, ReconcileError> {
    let ctx = &daemon_ctx.ctx;
    let Some(ds_spec) = ds.spec.as_ref() else { return Ok(Action::await_change()) };
    let namespace = ds.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let deleting = ds.metadata.deletion_timestamp.is_some();
    let pods = claim_pods(&ctx.client, &controller_ref(&*ds), &namespace, &ds_spec.selector, deleting).await?;
    if deleting {
        return Ok(Action::await_change());
    }
    // Until the node watch has listed every node, none would look like all are gone.
    if !matches!(daemon_ctx.nodes.wait_until_ready().now_or_never(), Some(Ok(()))) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let nodes = daemon_ctx.nodes.state();
    let template = &ds_spec.template;
    let hash = template_hash(template, ds.status.as_ref().and_then(|s| s.collision_count));
    let spec = with_daemon_tolerations(&template.spec.clone().unwrap_or_default());
    let now = jiff::Timestamp::now();
    let fits = node_fits(&spec, nodes.iter().map(|n| &**n));
    let plan = decide(&ds, &fits, &pods, &hash, now);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);

    for (pod, node) in &plan.failed {
        let message = format!("Found failed daemon pod {namespace}/{pod} on node {node}, will try to kill it");
        ctx.recorder.record(&*ds, EventType::Warning, "FailedDaemonPod", &message);
    }
    delete_pods(&api, &ctx.recorder, &*ds, plan.delete.clone()).await?;
    let pods_to_create = plan.create.iter().map(|node| daemon_pod(&ds, template, &spec, node, &hash)).collect();
    create_pods(&api, &ctx.recorder, &*ds, pods_to_create).await?;
    if !plan.create.is_empty() || !plan.delete.is_empty() {
        tracing::debug!(daemonset = ?ds.metadata.name, create = ?plan.create, delete = ?plan.delete, "daemonset pass");
    }

    let next = status(&ds, &fits, &pods, &hash, now);
    if ds.status.as_ref() != Some(&next) {
        let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &namespace);
        let name = ds.metadata.name.clone().unwrap_or_default();
        match ds_api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": next}))).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Pods ready but not yet available for minReadySeconds become available without an event.
    let active: Vec<&Pod> = pods.iter().filter(|p| workload::is_active(p)).collect();
    let wait = next_availability_check(&active, min_ready_seconds(&ds), now);
    Ok(Action::requeue(wait.unwrap_or(Duration::from_secs(300))))
}

/// What about a node matters to daemon placement: its labels and taints.
fn node_fingerprint(node: &Node) -> String {
    json!([node.metadata.labels, node.spec.as_ref().map(|s| &s.taints)]).to_string()
}

/// Keeps `nodes` up to date and fires when a node joins, goes, or changes its labels or taints
/// (not on status heartbeats): each of those concerns every DaemonSet.
fn node_changes(client: kube::Client, nodes: Writer<Node>) -> impl futures::Stream<Item = ()> + Send + 'static {
    let mut seen: HashMap<String, String> = HashMap::new();
    let watch = watcher(Api::<Node>::all(client), watcher::Config::default()).default_backoff().reflect(nodes);
    watch.filter_map(move |event| {
        let changed = match event {
            Ok(watcher::Event::Apply(node) | watcher::Event::InitApply(node)) => {
                let print = node_fingerprint(&node);
                seen.insert(node.metadata.name.unwrap_or_default(), print.clone()).as_ref() != Some(&print)
            }
            Ok(watcher::Event::Delete(node)) => seen.remove(&node.metadata.name.unwrap_or_default()).is_some(),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => false,
            Err(e) => {
                tracing::debug!(error = %e, "node watch failed; retrying");
                false
            }
        };
        futures::future::ready(changed.then_some(()))
    })
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let (nodes, writer) = reflector::store();
    let ctx = Arc::new(DaemonContext { ctx: Context::new(client.clone(), "daemonset-controller"), nodes });
    Controller::new(Api::<DaemonSet>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .reconcile_all_on(node_changes(client, writer))
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .run(reconcile, retry_soon, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))
            .unwrap()
    }

    fn daemonset(template_spec: serde_json::Value, strategy: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default", "uid": "ds1", "generation": 2},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": template_spec},
                "updateStrategy": strategy,
            },
        }))
        .unwrap()
    }

    fn plain() -> DaemonSet {
        daemonset(json!({"containers": [{"name": "c", "image": "ticker:v1"}]}), json!({"type": "RollingUpdate"}))
    }

    fn spec_of(ds: &DaemonSet) -> PodSpec {
        with_daemon_tolerations(ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap())
    }

    /// A daemon pod of `ds` for `node` at revision `hash`, in `phase`, Ready if `ready`.
    fn pod(ds: &DaemonSet, name: &str, node: &str, hash: &str, phase: &str, ready: bool, created: &str) -> Pod {
        let mut pod = daemon_pod(ds, &ds.spec.as_ref().unwrap().template, &spec_of(ds), node, hash);
        pod.metadata.name = Some(name.into());
        pod.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created.parse().unwrap()));
        pod.status = Some(
            serde_json::from_value(json!({"phase": phase, "conditions": [{"type": "Ready",
                "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
            .unwrap(),
        );
        pod
    }

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    #[test]
    fn eligibility_follows_selector_affinity_and_taints() {
        let ds = daemonset(
            json!({"containers": [{"name": "c"}], "nodeSelector": {"disk": "ssd"},
                   "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                       {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z9"]}]}]}}},
                   "tolerations": [{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]}),
            json!({}),
        );
        let spec = spec_of(&ds);
        let yes = Fit { should_run: true, should_continue_running: true };
        assert_eq!(node_fit(&spec, &node("a", json!({"disk": "ssd"}), json!([]))), yes);
        assert!(!node_fit(&spec, &node("b", json!({"disk": "hdd"}), json!([]))).should_run, "nodeSelector");
        assert!(!node_fit(&spec, &node("c", json!({"disk": "ssd", "zone": "z9"}), json!([]))).should_run, "affinity");
        let gpu = node("d", json!({"disk": "ssd"}), json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]));
        assert_eq!(node_fit(&spec, &gpu), yes, "tolerated taint");
        let other = node("e", json!({"disk": "ssd"}), json!([{"key": "gpu", "value": "no", "effect": "NoSchedule"}]));
        assert_eq!(
            node_fit(&spec, &other),
            Fit { should_run: false, should_continue_running: true },
            "an untolerated NoSchedule taint keeps new pods off but lets running ones stay"
        );
        let evict = node("f", json!({"disk": "ssd"}), json!([{"key": "dedicated", "effect": "NoExecute"}]));
        assert_eq!(node_fit(&spec, &evict), Fit { should_run: false, should_continue_running: false });
        let system = node(
            "g",
            json!({"disk": "ssd"}),
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                   {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                   {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]),
        );
        assert_eq!(node_fit(&spec, &system), yes, "daemon pods tolerate the node-condition taints");
        let network = node(
            "h",
            json!({"disk": "ssd"}),
            json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
        );
        assert!(!node_fit(&spec, &network).should_run, "network-unavailable is tolerated by host-network pods only");
    }

    #[test]
    fn pods_are_pinned_to_their_node() {
        let ds = daemonset(
            json!({"containers": [{"name": "c"}], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["x", "y"]}]}]}}}}),
            json!({}),
        );
        let p = daemon_pod(&ds, &ds.spec.as_ref().unwrap().template, &spec_of(&ds), "y", "h1");
        let terms = serde_json::to_value(&p.spec.as_ref().unwrap().affinity).unwrap();
        assert_eq!(
            terms["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"],
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["y"]}]}])
        );
        assert_eq!(target_node(&p), Some("y"));
        assert_eq!(pod_revision(&p), Some("h1"));
        assert_eq!(controller_of_uid(&p), Some("ds1"));
        let tolerations = p.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
        let not_ready = tolerations.iter().find(|t| t.key.as_deref() == Some("node.kubernetes.io/not-ready")).unwrap();
        assert_eq!((not_ready.effect.as_deref(), not_ready.toleration_seconds), (Some("NoExecute"), None));
    }

    fn controller_of_uid(pod: &Pod) -> Option<&str> {
        workload::controller_of(&pod.metadata).map(|r| r.uid.as_str())
    }

    #[test]
    fn creates_and_deletes_per_node() {
        let ds = plain();
        let hash = template_hash(&ds.spec.as_ref().unwrap().template, None);
        let nodes = vec![
            node("a", json!({}), json!([])),
            node("b", json!({}), json!([])),
            node("c", json!({}), json!([{"key": "dedicated", "effect": "NoExecute"}])),
            node("d", json!({}), json!([])),
        ];
        let pods = vec![
            pod(&ds, "on-a", "a", &hash, "Running", true, "2026-01-01T00:00:00Z"),
            pod(&ds, "on-c", "c", &hash, "Running", true, "2026-01-01T00:00:00Z"),
            pod(&ds, "failed-d", "d", &hash, "Failed", false, "2026-01-01T00:00:00Z"),
            pod(&ds, "gone", "zz", &hash, "Running", true, "2026-01-01T00:00:00Z"),
            pod(&ds, "extra-a", "a", &hash, "Running", true, "2026-01-01T00:01:00Z"),
        ];
        let plan = decide(&ds, &node_fits(&spec_of(&ds), &nodes), &pods, &hash, now());
        assert_eq!(plan.create, ["b", "d"], "b has none; d's only pod failed");
        assert_eq!(plan.delete, ["extra-a", "on-c", "failed-d", "gone"]);
        assert_eq!(plan.failed, [("failed-d".to_string(), "d".to_string())]);
    }

    #[test]
    fn a_settled_daemonset_does_nothing_and_reports_its_status() {
        let ds = plain();
        let hash = template_hash(&ds.spec.as_ref().unwrap().template, None);
        let nodes = vec![node("a", json!({}), json!([])), node("b", json!({}), json!([]))];
        let pods = vec![
            pod(&ds, "p1", "a", &hash, "Running", true, "2026-01-01T00:00:00Z"),
            pod(&ds, "p2", "b", &hash, "Pending", false, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(decide(&ds, &node_fits(&spec_of(&ds), &nodes), &pods, &hash, now()), Plan::default());
        let s = status(&ds, &node_fits(&spec_of(&ds), &nodes), &pods, &hash, now());
        assert_eq!((s.desired_number_scheduled, s.current_number_scheduled, s.number_ready), (2, 2, 1));
        assert_eq!((s.number_available, s.number_unavailable, s.updated_number_scheduled), (Some(1), Some(1), Some(2)));
        assert_eq!((s.number_misscheduled, s.observed_generation), (0, Some(2)));
    }

    #[test]
    fn rolling_update_replaces_within_max_unavailable() {
        let ds = daemonset(
            json!({"containers": [{"name": "c", "image": "ticker:v2"}]}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}),
        );
        let hash = template_hash(&ds.spec.as_ref().unwrap().template, None);
        let nodes: Vec<Node> = ["a", "b", "c", "d"].iter().map(|n| node(n, json!({}), json!([]))).collect();
        let t = "2026-01-01T00:00:00Z";
        let mut pods = vec![
            pod(&ds, "old-a", "a", "old", "Running", true, t),
            pod(&ds, "old-b", "b", "old", "Running", true, t),
            pod(&ds, "old-c", "c", "old", "Running", true, t),
            pod(&ds, "old-d", "d", "old", "Running", false, t),
        ];
        // d's old pod is unavailable anyway: replaced at no cost; then two available ones.
        let plan = decide(&ds, &node_fits(&spec_of(&ds), &nodes), &pods, &hash, now());
        assert!(plan.create.is_empty());
        assert_eq!(plan.delete, ["old-d", "old-a", "old-b"]);
        // a's new pod is not ready yet and b is being replaced: one more slot is used up.
        pods[0] = pod(&ds, "new-a", "a", &hash, "Running", false, t);
        pods.remove(1);
        pods[2] = pod(&ds, "new-d", "d", &hash, "Running", true, t);
        let plan = decide(&ds, &node_fits(&spec_of(&ds), &nodes), &pods, &hash, now());
        assert_eq!(plan.create, ["b"]);
        assert!(plan.delete.is_empty(), "two already unavailable: {:?}", plan.delete);
        let s = status(&ds, &node_fits(&spec_of(&ds), &nodes), &pods, &hash, now());
        assert_eq!((s.updated_number_scheduled, s.number_available), (Some(2), Some(2)));
        let on_delete = daemonset(json!({"containers": [{"name": "c"}]}), json!({"type": "OnDelete"}));
        let plan = decide(
            &on_delete,
            &node_fits(&spec_of(&on_delete), &nodes[..1]),
            &[pod(&ds, "old-a", "a", "old", "Running", true, t)],
            &hash,
            now(),
        );
        assert_eq!(plan, Plan::default(), "OnDelete leaves old pods alone");
    }

    #[test]
    fn nodes_where_no_pod_should_start_do_not_stall_a_rolling_update() {
        let ds = daemonset(
            json!({"containers": [{"name": "c", "image": "ticker:v2"}]}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
        );
        let hash = template_hash(&ds.spec.as_ref().unwrap().template, None);
        let t = "2026-01-01T00:00:00Z";
        // c went not-ready: node_lifecycle's NoSchedule taint keeps new daemon pods off it.
        let nodes = vec![
            node("a", json!({}), json!([])),
            node("b", json!({}), json!([])),
            node("c", json!({}), json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}])),
        ];
        let pods =
            vec![pod(&ds, "old-a", "a", "old", "Running", true, t), pod(&ds, "old-b", "b", "old", "Running", true, t)];
        let plan = decide(&ds, &node_fits(&spec_of(&ds), &nodes), &pods, &hash, now());
        assert!(plan.create.is_empty(), "{:?}", plan.create);
        assert_eq!(plan.delete, ["old-a"], "the node without a pod takes none of maxUnavailable");
    }

    #[test]
    fn percentages_round_up() {
        let ds = daemonset(json!({}), json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}}));
        assert_eq!(budgets(&ds, 5), (2, 0));
        assert_eq!(budgets(&ds, 0), (1, 0), "both 0: one may be unavailable");
        assert_eq!(budgets(&plain(), 10), (1, 0));
        let surge = daemonset(
            json!({}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}}),
        );
        assert_eq!(budgets(&surge, 15), (0, 2));
    }

    #[test]
    fn surge_starts_new_pods_beside_old_ones_then_deletes_the_old() {
        let ds = daemonset(
            json!({"containers": [{"name": "c", "image": "ticker:v2"}]}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
        );
        let hash = template_hash(&ds.spec.as_ref().unwrap().template, None);
        let nodes: Vec<Node> = ["a", "b", "c"].iter().map(|n| node(n, json!({}), json!([]))).collect();
        let t = "2026-01-01T00:00:00Z";
        let mut pods = vec![
            pod(&ds, "old-a", "a", "old", "Running", true, t),
            pod(&ds, "old-b", "b", "old", "Running", true, t),
            pod(&ds, "old-c", "c", "old", "Running", false, t),
        ];
        // c's old pod is unavailable: replaced at once; one surge slot goes to a.
        let plan = decide(&ds, &node_fits(&spec_of(&ds), &nodes), &pods, &hash, now());
        assert_eq!((plan.create.as_slice(), plan.delete.len()), (&["c".to_string(), "a".to_string()][..], 0));
        // a's new pod is starting: the surge slot is taken; c's new pod is available, its old goes.
        pods.push(pod(&ds, "new-a", "a", &hash, "Running", false, "2026-01-01T00:05:00Z"));
        pods.push(pod(&ds, "new-c", "c", &hash, "Running", true, "2026-01-01T00:05:00Z"));
        let plan = decide(&ds, &node_fits(&spec_of(&ds), &nodes), &pods, &hash, now());
        assert_eq!((plan.create.len(), plan.delete.as_slice()), (0, &["old-c".to_string()][..]));
    }
}
