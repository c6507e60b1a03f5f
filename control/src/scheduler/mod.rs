//! A first scheduler: binds each unbound pod to a Ready, schedulable node that matches its
//! nodeSelector, offers the runtime its RuntimeClass asks for, and has room for its requests;
//! among those it picks the node with the fewest pods. A pod that fits nowhere stays Pending
//! with a PodScheduled=False condition saying why, and is retried. (The full filter/score
//! plugin set comes with the scheduler issue.)

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Event, EventSource, Node, ObjectReference, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::registry::validation::Quantity;

/// The label (set to `true`) by which a node offers a runtime handler, e.g.
/// `runtime.wharf.dev/youki`; the node agent sets one per shim it has.
fn runtime_label(handler: &str) -> String {
    format!("runtime.wharf.dev/{handler}")
}

/// Why a node was filtered out, as kube-scheduler words it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    NotReady,
    Unschedulable,
    Selector,
    Runtime(String),
    TooManyPods,
    Insufficient(&'static str),
}

impl Reason {
    fn text(&self) -> String {
        match self {
            Reason::NotReady => "node(s) were not ready".into(),
            Reason::Unschedulable => "node(s) were unschedulable".into(),
            Reason::Selector => "node(s) didn't match Pod's node affinity/selector".into(),
            Reason::Runtime(r) => format!("node(s) didn't offer runtime {r:?}"),
            Reason::TooManyPods => "Too many pods".into(),
            Reason::Insufficient(what) => format!("Insufficient {what}"),
        }
    }
}

fn milli(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> i128 {
    q.and_then(|q| Quantity::parse(&q.0).ok()).map(|q| q.milli_value()).unwrap_or(0)
}

/// A pod's requests of `resource` (sum of app containers, or the largest init container).
fn request(pod: &Pod, resource: &str) -> i128 {
    let Some(spec) = pod.spec.as_ref() else { return 0 };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        milli(c.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get(resource)))
    };
    let app: i128 = spec.containers.iter().map(of).sum();
    let init = spec.init_containers.iter().flatten().map(of).max().unwrap_or(0);
    app.max(init)
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Checks one node for a pod; `placed` are the non-terminal pods already on it.
fn fits(pod: &Pod, node: &Node, placed: &[&Pod], runtime: Option<&str>) -> Result<(), Reason> {
    if !ready(node) {
        return Err(Reason::NotReady);
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        return Err(Reason::Unschedulable);
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector: BTreeMap<String, String> =
        pod.spec.as_ref().and_then(|s| s.node_selector.clone()).unwrap_or_default();
    if selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        return Err(Reason::Selector);
    }
    if let Some(runtime) = runtime
        && labels.get(&runtime_label(runtime)).map(String::as_str) != Some("true")
    {
        return Err(Reason::Runtime(runtime.into()));
    }
    let allocatable = node.status.as_ref().and_then(|s| s.allocatable.clone()).unwrap_or_default();
    let max_pods = milli(allocatable.get("pods")) / 1000;
    if max_pods > 0 && placed.len() as i128 >= max_pods {
        return Err(Reason::TooManyPods);
    }
    for resource in ["cpu", "memory", "ephemeral-storage"] {
        let wanted = request(pod, resource);
        if wanted == 0 {
            continue;
        }
        let used: i128 = placed.iter().map(|p| request(p, resource)).sum();
        if used + wanted > milli(allocatable.get(resource)) {
            return Err(Reason::Insufficient(resource));
        }
    }
    Ok(())
}

/// Picks a node for `pod`, or says why none fits.
fn choose(pod: &Pod, nodes: &[Arc<Node>], pods: &[Arc<Pod>], runtime: Option<&str>) -> Result<String, String> {
    let mut by_node: HashMap<&str, Vec<&Pod>> = HashMap::new();
    for p in pods {
        let terminal = matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|_| !terminal) {
            by_node.entry(node).or_default().push(p);
        }
    }
    let mut reasons: BTreeMap<Reason, usize> = BTreeMap::new();
    let mut best: Option<(usize, &str)> = None;
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let placed = by_node.get(name).map(Vec::as_slice).unwrap_or(&[]);
        match fits(pod, node, placed, runtime) {
            Ok(()) => {
                if best.is_none_or(|(count, n)| (placed.len(), name) < (count, n)) {
                    best = Some((placed.len(), name));
                }
            }
            Err(reason) => *reasons.entry(reason).or_default() += 1,
        }
    }
    match best {
        Some((_, name)) => Ok(name.to_string()),
        None => {
            let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {}", r.text())).collect();
            let detail = if parts.is_empty() { String::new() } else { format!(" {}.", parts.join(", ")) };
            Err(format!("0/{} nodes are available:{detail}", nodes.len()))
        }
    }
}

/// Records an event about `pod` that happened at `now`.
async fn record(client: &kube::Client, pod: &Pod, now: jiff::Timestamp, type_: &str, reason: &str, message: &str) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", pod.metadata.name.as_deref().unwrap_or_default(), now.as_nanosecond())),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.into()),
        source: Some(EventSource { component: Some("default-scheduler".into()), host: None }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        reporting_component: Some("default-scheduler".into()),
        reporting_instance: Some("default-scheduler".into()),
        action: Some(if reason == "Scheduled" { "Binding".into() } else { "Scheduling".into() }),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(error = %e, "cannot record scheduler event");
    }
}

/// Schedules one pod: the node it was bound to, or why it stays pending.
async fn schedule(client: &kube::Client, pod: &Pod, nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> Result<String, String> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let runtime = match pod.spec.as_ref().and_then(|s| s.runtime_class_name.clone()) {
        Some(class) => match Api::<RuntimeClass>::all(client.clone()).get_opt(&class).await {
            Ok(Some(rc)) => Some(rc.handler),
            _ => return Err(format!("RuntimeClass {class:?} not found")),
        },
        None => None,
    };
    let node = choose(pod, nodes, pods, runtime.as_deref())?;
    let binding = Binding {
        metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace.clone()), ..Default::default() },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.clone()),
            api_version: Some("v1".into()),
            ..Default::default()
        },
    };
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    // Stamped before the bind: the node's agent may record its first event before this one is written.
    let bound_at = jiff::Timestamp::now();
    match pods_api.create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding).await
    {
        Ok(_) => {
            let message = format!("Successfully assigned {namespace}/{name} to {node}");
            record(client, pod, bound_at, "Normal", "Scheduled", &message).await;
            Ok(node)
        }
        Err(e) => Err(format!("binding failed: {e}")),
    }
}

/// Runs the scheduler until the task is dropped.
pub async fn run(client: kube::Client) {
    let (nodes, node_writer) = reflector::store::<Node>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let node_stream =
        reflector::reflector(node_writer, watcher(Api::<Node>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .touched_objects();
    let pod_stream =
        reflector::reflector(pod_writer, watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .touched_objects();
    let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
    let waker = wake.clone();
    tokio::spawn(node_stream.for_each(move |_| {
        let _ = waker.try_send(());
        async {}
    }));
    tokio::spawn(pod_stream.for_each(move |_| {
        let _ = wake.try_send(());
        async {}
    }));
    let _ = nodes.wait_until_ready().await;
    let _ = pods.wait_until_ready().await;
    let mut reported: HashMap<String, String> = HashMap::new();
    loop {
        tokio::select! {
            _ = woken.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        scheduling_pass(&client, &nodes, &pods, &mut reported).await;
    }
}

async fn scheduling_pass(
    client: &kube::Client,
    nodes: &Store<Node>,
    pods: &Store<Pod>,
    reported: &mut HashMap<String, String>,
) {
    let node_list = nodes.state();
    let mut pod_list = pods.state();
    let pending: Vec<Arc<Pod>> = pod_list
        .iter()
        .filter(|p| {
            let spec = p.spec.as_ref();
            spec.is_some_and(|s| s.node_name.as_deref().is_none_or(str::is_empty))
                && spec.and_then(|s| s.scheduler_name.as_deref()).is_none_or(|n| n == "default-scheduler")
                && p.metadata.deletion_timestamp.is_none()
        })
        .cloned()
        .collect();
    for pod in pending {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        match schedule(client, &pod, &node_list, &pod_list).await {
            Ok(node) => {
                reported.remove(&uid);
                // Count the new placement in this pass, before the watch catches up.
                let mut placed = (*pod).clone();
                if let Some(spec) = placed.spec.as_mut() {
                    spec.node_name = Some(node);
                }
                pod_list.push(Arc::new(placed));
            }
            Err(message) if reported.get(&uid) != Some(&message) => {
                let api: Api<Pod> =
                    Api::namespaced(client.clone(), pod.metadata.namespace.as_deref().unwrap_or_default());
                let status = json!({"status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message, "lastProbeTime": null,
                    "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                }]}});
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                let _ = api.patch_status(name, &PatchParams::default(), &Patch::Strategic(status)).await;
                record(client, &pod, jiff::Timestamp::now(), "Warning", "FailedScheduling", &message).await;
                reported.insert(uid, message);
            }
            Err(_) => {}
        }
    }
    reported.retain(|uid, _| pod_list.iter().any(|p| p.metadata.uid.as_deref() == Some(uid)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, labels: serde_json::Value, pods: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "status": {
                    "allocatable": {"cpu": "2", "memory": "1Gi", "pods": pods},
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                },
            }))
            .unwrap(),
        )
    }

    fn pod(name: &str, node: Option<&str>, cpu: &str, selector: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"nodeName": node, "nodeSelector": selector, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn spreads_over_ready_nodes() {
        let nodes =
            vec![node("a", true, json!({}), "10"), node("b", true, json!({}), "10"), node("c", false, json!({}), "10")];
        let pods = vec![pod("p1", Some("a"), "100m", json!({}))];
        assert_eq!(choose(&pod("new", None, "100m", json!({})), &nodes, &pods, None).unwrap(), "b");
    }

    #[test]
    fn explains_why_nothing_fits() {
        let nodes = vec![
            node("a", false, json!({}), "10"),
            node("b", true, json!({"disk": "hdd"}), "10"),
            node("c", true, json!({"disk": "ssd"}), "10"),
        ];
        let err = choose(&pod("new", None, "3", json!({"disk": "ssd"})), &nodes, &[], None).unwrap_err();
        assert_eq!(
            err,
            "0/3 nodes are available: 1 node(s) were not ready, 1 node(s) didn't match Pod's node affinity/selector, 1 Insufficient cpu."
        );
    }

    #[test]
    fn honours_runtimes_and_pod_counts() {
        let nodes = vec![
            node("a", true, json!({runtime_label("wasmtime"): "true"}), "1"),
            node("b", true, json!({runtime_label("wasmtime"): "true", runtime_label("youki"): "true"}), "10"),
        ];
        assert_eq!(choose(&pod("new", None, "0", json!({})), &nodes, &[], Some("youki")).unwrap(), "b");
        let full = vec![pod("p1", Some("a"), "0", json!({}))];
        let err = choose(&pod("new", None, "0", json!({})), &nodes[..1], &full, None).unwrap_err();
        assert!(err.contains("Too many pods"), "{err}");
    }
}
