//! Function: runs a `wharf.dev/v1` Function and scales it with its load. A Wasm image needs no
//! pods (every node's gateway instantiates the component per request); a Linux image runs as a
//! Deployment of the Function's name, owned by it (the garbage collector deletes it with the
//! Function), whose pods carry `wharf.dev/function: NAME`. The autoscaler here is the only writer
//! of that Deployment's replicas: it reads the load every node's gateway reports on the Function
//! (annotations `load.wharf.dev/<node>`) and decides with [`Autoscaler::decide`] (README, "Function
//! autoscaler"). The status carries the URL on a ready node's gateway, the replicas, a Ready
//! condition and the invocations the nodes counted.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Deserialize;
use serde_json::{Value, json};

use super::workload::{controller_of, controller_ref};
use super::{Context, DEBOUNCE, ReconcileError, retry_soon};
use crate::events::EventType;
use crate::registry::function::{Function, FunctionSpec, FunctionStatus};
use crate::scheduler::plugins::runtime_support::{
    ImageRuntime, ImageRuntimes, LINUX_HANDLER, WASM_HANDLER, embedded_reference,
};

impl kube::Resource for Function {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Function".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "wharf.dev".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "functions".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The label on a Linux-image Function's pods (and its Deployment).
pub const FUNCTION_LABEL: &str = "wharf.dev/function";
/// The prefix of the annotations in which each node's gateway reports a Function's load.
pub const LOAD_PREFIX: &str = "load.wharf.dev/";
/// The Node annotation naming the node's gateway (`http://ADDR:PORT`).
pub const GATEWAY_ANNOTATION: &str = "wharf.dev/gateway";
/// The Deployment annotation holding the hash of the pod template this controller last wrote.
const SPEC_HASH: &str = "wharf.dev/function-spec-hash";
/// The container's name in a Linux-image Function's pods.
const CONTAINER: &str = "function";
const DEFAULT_PORT: i32 = 8080;

/// The autoscaler's windows: replicas follow the average concurrency over the stable window;
/// a jump seen over the panic window scales up at once and holds off scaling down.
pub const STABLE_WINDOW: Duration = Duration::from_secs(60);
pub const PANIC_WINDOW: Duration = Duration::from_secs(6);
/// Panic starts when the panic window asks for this many times the current replicas.
const PANIC_THRESHOLD: f64 = 2.0;
/// Defaults when the spec leaves a bound out (the API's defaults are the same).
const DEFAULT_MAX: i32 = 10;
const DEFAULT_TARGET: f64 = 10.0;
const DEFAULT_IDLE: Duration = Duration::from_secs(60);
/// How often an active Function is looked at again (the gateways report every 2 s).
const TICK: Duration = Duration::from_secs(2);

/// One node gateway's load report on a Function (`load.wharf.dev/<node>`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadReport {
    /// Requests in flight now (held by the activator included).
    pub in_flight: i64,
    /// Average requests in flight over the reporter's last window.
    pub concurrency: f64,
    /// Requests since the gateway started.
    pub requests: i64,
    pub errors: i64,
    pub last_request: Option<Timestamp>,
    pub at: Option<Timestamp>,
}

/// The Function's load reports, by node (unreadable ones are skipped).
pub fn load_reports(f: &Function) -> Vec<(String, LoadReport)> {
    f.metadata
        .annotations
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.strip_prefix(LOAD_PREFIX)?.to_string(), serde_json::from_str(v).ok()?)))
        .collect()
}

/// The scaling bounds and targets of a spec, defaulted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min: i32,
    pub max: i32,
    pub target: f64,
    pub idle: Duration,
}

impl Bounds {
    pub fn of(spec: &FunctionSpec) -> Self {
        let scale = spec.scale.clone().unwrap_or_default();
        let min = scale.min_replicas.unwrap_or(0).max(0);
        let max = scale.max_replicas.unwrap_or(DEFAULT_MAX).max(min).max(1);
        let target = scale.target_concurrency.filter(|t| *t >= 1).map_or(DEFAULT_TARGET, f64::from);
        let idle = scale
            .idle_timeout
            .as_deref()
            .and_then(|s| crate::registry::validation::parse_duration(s).ok())
            .filter(|s| *s >= 0.0)
            .map_or(DEFAULT_IDLE, Duration::from_secs_f64);
        Bounds { min, max, target, idle }
    }
}

/// What the autoscaler decided and why (the reason and message of the scaling Event).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub replicas: i32,
    pub reason: &'static str,
    pub message: String,
}

/// One Function's autoscaler: the total concurrency it saw over the stable window and when it
/// last panicked. Time is passed in, so the decision is a pure function of its inputs.
#[derive(Debug, Default)]
pub struct Autoscaler {
    samples: VecDeque<(Timestamp, f64)>,
    panicked_at: Option<Timestamp>,
}

fn ago(now: Timestamp, d: Duration) -> Timestamp {
    now - jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
}

impl Autoscaler {
    /// The average total concurrency over the last `window`.
    fn average(&self, now: Timestamp, window: Duration) -> f64 {
        let since = ago(now, window);
        let (sum, n) =
            self.samples.iter().filter(|(t, _)| *t >= since).fold((0.0, 0), |(sum, n), (_, c)| (sum + c, n + 1));
        if n == 0 { 0.0 } else { sum / f64::from(n) }
    }

    /// The replicas a Function running `current` should have, given its nodes' `reports` at
    /// `now`:
    /// - total concurrency = Σ over nodes of max(concurrency, inFlight), sampled on each call;
    /// - stable = ⌈average over [`STABLE_WINDOW`] / target⌉, panic = ⌈average over
    ///   [`PANIC_WINDOW`] / target⌉; panic mode starts when panic ≥ 2 × current (current > 0)
    ///   and lasts a stable window after it last held: then replicas = max(panic, current)
    ///   (never down), else replicas = stable;
    /// - while any request is in flight or one came within idleTimeout, at least 1 (0 → 1 at
    ///   once when a request arrives at zero);
    /// - with minReplicas 0 and no request in flight or within idleTimeout, 0;
    /// - always within [minReplicas, maxReplicas].
    pub fn decide(&mut self, bounds: &Bounds, current: i32, reports: &[LoadReport], now: Timestamp) -> Decision {
        let total: f64 = reports.iter().map(|r| r.concurrency.max(r.in_flight as f64)).sum();
        self.samples.push_back((now, total));
        let oldest = ago(now, STABLE_WINDOW);
        while self.samples.front().is_some_and(|(t, _)| *t < oldest) {
            self.samples.pop_front();
        }
        let stable_avg = self.average(now, STABLE_WINDOW);
        let panic_avg = self.average(now, PANIC_WINDOW);
        let wanted = |avg: f64| (avg / bounds.target).ceil().min(f64::from(i32::MAX)) as i32;
        let (stable, panic) = (wanted(stable_avg), wanted(panic_avg));
        if current > 0 && f64::from(panic) >= PANIC_THRESHOLD * f64::from(current) {
            self.panicked_at = Some(now);
        }
        if self.panicked_at.is_some_and(|t| t < oldest) {
            self.panicked_at = None;
        }
        let in_flight = reports.iter().any(|r| r.in_flight > 0);
        let recent = ago(now, bounds.idle);
        let requested = reports.iter().any(|r| r.last_request.is_some_and(|t| t > recent));
        let active = in_flight || requested;

        if !active && bounds.min == 0 {
            let message = format!("no request for {}s", bounds.idle.as_secs_f64());
            return Decision { replicas: 0, reason: "ScaledToZero", message };
        }
        let (by_load, window, avg) = match self.panicked_at {
            Some(_) => (panic.max(current), "panic", panic_avg),
            None => (stable, "stable", stable_avg),
        };
        let floor = if active { bounds.min.max(1) } else { bounds.min };
        let replicas = by_load.clamp(floor, bounds.max);
        let (reason, message) = if current == 0 && replicas > 0 {
            ("Activated", format!("a request arrived at zero replicas; scaled to {replicas}"))
        } else if replicas > current {
            ("ScaledUp", format!("concurrency {avg:.1} over the {window} window, target {}", bounds.target))
        } else if replicas < current {
            ("ScaledDown", format!("concurrency {avg:.1} over the {window} window, target {}", bounds.target))
        } else {
            ("Steady", String::new())
        };
        Decision { replicas, reason, message }
    }
}

/// How a Function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runs {
    /// In every node's gateway, per request.
    Wasm,
    /// As a Deployment.
    Linux,
    /// Not known: the embedded registry does not hold the image.
    ImageNotFound,
}

/// The runtime by the Function's forced handler or, without one, by its image (the agent's and
/// scheduler's rule). An index with both Linux and Wasm entries runs as Linux (what a Linux node
/// of a listed architecture pulls); an image of another registry is taken for Linux.
fn runs(spec: &FunctionSpec, image: ImageRuntime) -> Runs {
    match spec.runtime_class_name.as_deref() {
        Some(WASM_HANDLER) => return Runs::Wasm,
        Some(LINUX_HANDLER) => return Runs::Linux,
        _ => {}
    }
    match image {
        ImageRuntime::Needs(WASM_HANDLER) => Runs::Wasm,
        ImageRuntime::Needs(_) | ImageRuntime::Either => Runs::Linux,
        ImageRuntime::Unknown if embedded_reference(&spec.image).is_some() => Runs::ImageNotFound,
        ImageRuntime::Unknown => Runs::Linux,
    }
}

/// The gateways of the ready nodes (that offer `handler`, when given), by node name.
fn gateways<'a>(nodes: &'a [Arc<Node>], handler: Option<&str>) -> Vec<(&'a str, &'a str)> {
    let label = handler.map(crate::scheduler::plugins::runtime_support::runtime_label);
    let mut found: Vec<_> = nodes
        .iter()
        .filter(|n| super::node_lifecycle::ready_status(n) == Some("True"))
        .filter(|n| {
            label
                .as_ref()
                .is_none_or(|l| n.metadata.labels.as_ref().and_then(|m| m.get(l)).is_some_and(|v| v == "true"))
        })
        .filter_map(|n| {
            let gateway = n.metadata.annotations.as_ref()?.get(GATEWAY_ANNOTATION)?;
            Some((n.metadata.name.as_deref()?, gateway.as_str()))
        })
        .collect();
    found.sort();
    found
}

/// The path the gateway routes to the Function.
fn route_path(f: &Function) -> String {
    let name = f.metadata.name.as_deref().unwrap_or_default();
    f.spec.route.as_ref().and_then(|r| r.path.clone()).unwrap_or_else(|| format!("/{name}"))
}

/// The pod template a Linux-image Function's Deployment runs.
fn deployment_for(f: &Function, replicas: i32) -> Deployment {
    let name = f.metadata.name.clone().unwrap_or_default();
    let labels = BTreeMap::from([(FUNCTION_LABEL.to_string(), name.clone())]);
    let port = f.spec.port.unwrap_or(DEFAULT_PORT);
    let container = json!({
        "name": CONTAINER,
        "image": f.spec.image,
        "command": (!f.spec.command.is_empty()).then_some(&f.spec.command),
        "args": (!f.spec.args.is_empty()).then_some(&f.spec.args),
        "env": (!f.spec.env.is_empty()).then_some(&f.spec.env),
        "resources": f.spec.resources,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1},
    });
    let template = json!({"metadata": {"labels": labels}, "spec": {"containers": [strip_nulls(container)]}});
    let hash = super::workload::template_hash(&serde_json::from_value(template.clone()).unwrap_or_default(), None);
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": name, "namespace": f.metadata.namespace, "labels": labels,
            "annotations": {SPEC_HASH: hash}, "ownerReferences": [controller_ref(f)],
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
    }))
    .unwrap_or_default()
}

fn strip_nulls(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    v
}

fn spec_hash(d: &Deployment) -> Option<&str> {
    d.metadata.annotations.as_ref()?.get(SPEC_HASH).map(String::as_str)
}

/// The Ready condition: (status, reason, message).
fn ready_condition(runs: Runs, desired: i32, ready: i32, gateways: usize) -> (&'static str, &'static str, String) {
    match runs {
        Runs::ImageNotFound => ("False", "ImageNotFound", "the image is not in the cluster's registry".into()),
        Runs::Wasm if gateways == 0 => ("False", "NoGateway", "no ready node with a gateway runs Wasm".into()),
        Runs::Wasm => ("True", "Ready", format!("served by the gateways of {gateways} node(s)")),
        Runs::Linux if desired == 0 && ready == 0 => {
            ("True", "ScaledToZero", "no replicas; the gateway starts one on the next request".into())
        }
        Runs::Linux if desired == 0 => (
            "True",
            "ScaledToZero",
            format!("scaled to zero, {ready} replica(s) stopping; the gateway starts one on the next request"),
        ),
        Runs::Linux if ready == 0 => ("False", "Deploying", format!("0 of {desired} replicas ready")),
        Runs::Linux => ("True", "Ready", format!("{ready} of {desired} replicas ready")),
    }
}

/// `conditions` with Ready set, keeping its transition time when its status did not change.
fn with_ready(
    old: &[Condition],
    (status, reason, message): (&str, &str, String),
    generation: Option<i64>,
) -> Vec<Condition> {
    let previous = old.iter().find(|c| c.type_ == "Ready");
    let since = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    let mut conditions: Vec<Condition> = old.iter().filter(|c| c.type_ != "Ready").cloned().collect();
    conditions.push(Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    });
    conditions
}

struct FunctionContext {
    ctx: Arc<Context>,
    images: ImageRuntimes,
    nodes: Store<Node>,
    scalers: Mutex<HashMap<String, Autoscaler>>,
}

impl FunctionContext {
    fn decide(&self, uid: &str, bounds: &Bounds, current: i32, reports: &[LoadReport]) -> Decision {
        let mut scalers = self.scalers.lock().unwrap_or_else(|e| e.into_inner());
        scalers.entry(uid.to_string()).or_default().decide(bounds, current, reports, Timestamp::now())
    }

    fn forget(&self, uid: &str) {
        self.scalers.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }
}

async fn reconcile(f: Arc<Function>, fctx: Arc<FunctionContext>) -> Result<Action, ReconcileError> {
    let ctx = &fctx.ctx;
    let uid = f.metadata.uid.clone().unwrap_or_default();
    if f.metadata.deletion_timestamp.is_some() {
        fctx.forget(&uid);
        return Ok(Action::await_change());
    }
    let name = f.metadata.name.clone().unwrap_or_default();
    let namespace = f.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let functions: Api<Function> = Api::namespaced(ctx.client.clone(), &namespace);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);

    let reports: Vec<LoadReport> = load_reports(&f).into_iter().map(|(_, r)| r).collect();
    let invocations: i64 = reports.iter().map(|r| r.requests).sum();
    let runs = runs(&f.spec, fctx.images.of_image(&f.spec.image).await);
    let nodes = fctx.nodes.state();
    let existing = deployments.get_opt(&name).await?;
    let ours = existing.filter(|d| controller_of(&d.metadata).is_some_and(|r| r.uid == uid));

    // The gateways that serve it: any ready node's for a Linux function, those of nodes that run
    // Wasm for a Wasm one.
    let serving_gateways = gateways(&nodes, (runs == Runs::Wasm).then_some(WASM_HANDLER));
    let serving = serving_gateways.len();
    let (replicas, ready, desired) = match runs {
        Runs::Linux => {
            let current = ours.as_ref().and_then(|d| d.spec.as_ref()?.replicas).unwrap_or(0);
            let decision = fctx.decide(&uid, &Bounds::of(&f.spec), current, &reports);
            let want = deployment_for(&f, decision.replicas);
            let d = match &ours {
                None => deployments.create(&PostParams::default(), &want).await?,
                Some(d) if spec_hash(d) != spec_hash(&want) || current != decision.replicas => {
                    let patch = json!({
                        "metadata": {"annotations": {SPEC_HASH: spec_hash(&want)}},
                        "spec": {"replicas": decision.replicas,
                                 "template": want.spec.as_ref().map(|s| &s.template)},
                    });
                    deployments.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await?
                }
                Some(d) => d.clone(),
            };
            if decision.replicas != current {
                let type_ = EventType::Normal;
                let message = format!("{} (replicas {current} → {})", decision.message, decision.replicas);
                ctx.recorder.record(&*f, type_, decision.reason, &message);
            }
            let status = d.status.unwrap_or_default();
            (status.replicas.unwrap_or(0), status.ready_replicas.unwrap_or(0), decision.replicas)
        }
        Runs::Wasm | Runs::ImageNotFound => {
            if runs == Runs::Wasm && ours.is_some() {
                // The image changed from Linux to Wasm: its pods are no longer needed.
                deployments.delete(&name, &DeleteParams::background()).await?;
            }
            // A Wasm function has no pods: its replicas are the node gateways that serve it.
            let n = if runs == Runs::Wasm { i32::try_from(serving).unwrap_or(i32::MAX) } else { 0 };
            (n, n, n)
        }
    };

    let url = serving_gateways.first().map(|(_, gw)| format!("{}{}", gw.trim_end_matches('/'), route_path(&f)));
    let old = f.status.clone().unwrap_or_default();
    let condition = ready_condition(runs, desired, ready, serving);
    let status = FunctionStatus {
        url,
        replicas: Some(replicas),
        ready_replicas: Some(ready),
        conditions: with_ready(&old.conditions, condition, f.metadata.generation),
        invocations: Some(invocations),
    };
    if serde_json::to_value(&status).ok() != serde_json::to_value(&old).ok() {
        let mut body = serde_json::to_value(&status).unwrap_or_default();
        if status.url.is_none() {
            body["url"] = Value::Null;
        }
        functions.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": body}))).await?;
    }

    Ok(match runs {
        Runs::Linux if desired > 0 || replicas > 0 || reports.iter().any(|r| r.in_flight > 0) => Action::requeue(TICK),
        // Reports of new requests come as annotation changes, which reconcile again.
        Runs::Linux => Action::requeue(Duration::from_secs(30)),
        Runs::Wasm => Action::requeue(Duration::from_secs(30)),
        Runs::ImageNotFound => Action::requeue(Duration::from_secs(10)),
    })
}

/// Runs the controller until the process ends.
pub async fn run(client: kube::Client) {
    let (nodes, writer) = reflector::store();
    let node_watch =
        reflector::reflector(writer, watcher(Api::<Node>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .touched_objects()
            .for_each(|_| futures::future::ready(()));
    tokio::spawn(node_watch);
    let fctx = Arc::new(FunctionContext {
        ctx: Context::new(client.clone(), "function-controller"),
        images: ImageRuntimes::new(client.clone()),
        nodes,
        scalers: Mutex::default(),
    });
    Controller::new(Api::<Function>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Deployment>::all(client), watcher::Config::default())
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .run(reconcile, retry_soon, fctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s as i64).unwrap()
    }

    fn bounds(min: i32, max: i32, target: f64, idle: u64) -> Bounds {
        Bounds { min, max, target, idle: Duration::from_secs(idle) }
    }

    fn load(in_flight: i64, concurrency: f64, last: Option<u64>) -> LoadReport {
        LoadReport { in_flight, concurrency, last_request: last.map(at), ..Default::default() }
    }

    #[test]
    fn a_request_at_zero_activates_at_once() {
        let mut a = Autoscaler::default();
        let b = bounds(0, 5, 10.0, 60);
        assert_eq!(a.decide(&b, 0, &[], at(0)).replicas, 0);
        // The activator's immediate report: one held request, no average yet.
        let d = a.decide(&b, 0, &[load(1, 0.0, Some(1))], at(1));
        assert_eq!((d.replicas, d.reason), (1, "Activated"));
        // A request that came after the last scale to zero wakes it too, even if done.
        let mut a = Autoscaler::default();
        assert_eq!(a.decide(&b, 0, &[load(0, 0.0, Some(5))], at(6)).replicas, 1);
    }

    #[test]
    fn scales_to_zero_only_after_idle_timeout_and_only_with_min_zero() {
        let mut a = Autoscaler::default();
        let b = bounds(0, 5, 10.0, 5);
        let done = [load(0, 0.0, Some(10))];
        assert_eq!(a.decide(&b, 1, &done, at(12)).replicas, 1);
        assert_eq!(a.decide(&b, 1, &done, at(14)).replicas, 1);
        let d = a.decide(&b, 1, &done, at(16));
        assert_eq!((d.replicas, d.reason), (0, "ScaledToZero"));
        // A request still in flight keeps it up however old the last arrival.
        assert_eq!(a.decide(&b, 1, &[load(1, 1.0, Some(10))], at(100)).replicas, 1);
        // With minReplicas 2 it stays at 2.
        let mut a = Autoscaler::default();
        assert_eq!(a.decide(&bounds(2, 5, 10.0, 5), 2, &done, at(100)).replicas, 2);
    }

    #[test]
    fn stable_window_follows_the_average() {
        let mut a = Autoscaler::default();
        let b = bounds(0, 10, 10.0, 60);
        // 30 concurrent for a minute: ⌈30/10⌉ = 3, reached without panic from 3.
        for s in (0..60).step_by(2) {
            a.decide(&b, 3, &[load(15, 15.0, Some(s)), load(15, 15.0, Some(s))], at(s));
        }
        let d = a.decide(&b, 3, &[load(30, 30.0, Some(60))], at(60));
        assert_eq!(d.replicas, 3);
        // Load halves: the stable average comes down over the window, not at once.
        let d = a.decide(&b, 3, &[load(10, 10.0, Some(62))], at(62));
        assert_eq!(d.replicas, 3);
        let mut last = d;
        for s in (64..=124).step_by(2) {
            last = a.decide(&b, 3, &[load(10, 10.0, Some(s))], at(s));
        }
        assert_eq!((last.replicas, last.reason), (1, "ScaledDown"));
    }

    #[test]
    fn a_jump_panics_up_and_holds_off_scaling_down() {
        let mut a = Autoscaler::default();
        let b = bounds(0, 4, 2.0, 60);
        for s in (0..30).step_by(2) {
            a.decide(&b, 1, &[load(1, 1.0, Some(s))], at(s));
        }
        // 20 concurrent: the panic window's average (1, 1, 1, 20 → 5.75) asks ⌈5.75/2⌉ = 3
        // ≥ 2 × 1 → up at once, while the stable window (≈ 2.2) would ask 2.
        let d = a.decide(&b, 1, &[load(20, 20.0, Some(30))], at(30));
        assert_eq!((d.replicas, d.reason), (3, "ScaledUp"));
        assert!(d.message.contains("panic"), "{}", d.message);
        // Still 20 two seconds on: ⌈10.5/2⌉ = 6, capped at 4.
        let d = a.decide(&b, 3, &[load(20, 20.0, Some(32))], at(32));
        assert_eq!(d.replicas, 4);
        // Load stops (requests still recent): panic holds the replicas.
        let d = a.decide(&b, 4, &[load(0, 0.0, Some(33))], at(40));
        assert_eq!(d.replicas, 4);
        // A stable window after the last panic, back on the stable average.
        let d = a.decide(&b, 4, &[load(1, 1.0, Some(95))], at(95));
        assert_eq!(d.replicas, 1);
    }

    #[test]
    fn bounds_default_and_clamp() {
        let spec: FunctionSpec =
            serde_json::from_value(json!({"image": "x", "scale": {"idleTimeout": "1m30s"}})).unwrap();
        assert_eq!(Bounds::of(&spec), bounds(0, DEFAULT_MAX, DEFAULT_TARGET, 90));
        let mut a = Autoscaler::default();
        assert_eq!(a.decide(&bounds(0, 3, 1.0, 60), 3, &[load(50, 50.0, Some(0))], at(1)).replicas, 3);
    }

    #[test]
    fn wasm_or_linux() {
        let spec = |image: &str, rc: Option<&str>| FunctionSpec {
            image: image.into(),
            runtime_class_name: rc.map(Into::into),
            ..Default::default()
        };
        assert_eq!(runs(&spec("hello:1", None), ImageRuntime::Needs(WASM_HANDLER)), Runs::Wasm);
        assert_eq!(runs(&spec("web:1", None), ImageRuntime::Needs(LINUX_HANDLER)), Runs::Linux);
        assert_eq!(runs(&spec("web:1", None), ImageRuntime::Either), Runs::Linux);
        assert_eq!(runs(&spec("missing:1", None), ImageRuntime::Unknown), Runs::ImageNotFound);
        assert_eq!(runs(&spec("docker.io/library/nginx:1", None), ImageRuntime::Unknown), Runs::Linux);
        assert_eq!(runs(&spec("web:1", Some("wasmtime")), ImageRuntime::Needs(LINUX_HANDLER)), Runs::Wasm);
    }

    #[test]
    fn linux_deployment_is_owned_and_labelled() {
        let f: Function = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"image": "web:1", "port": 8000, "args": ["-p", "8000"]},
        }))
        .unwrap();
        let d = deployment_for(&f, 0);
        assert_eq!(controller_of(&d.metadata).unwrap().uid, "u1");
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(0));
        assert_eq!(spec.selector.match_labels.unwrap()[FUNCTION_LABEL], "web");
        let c = &spec.template.spec.unwrap().containers[0];
        assert_eq!(c.args.as_deref(), Some(&["-p".to_string(), "8000".into()][..]));
        assert!(c.command.is_none());
        let probe = c.readiness_probe.as_ref().unwrap().tcp_socket.as_ref().unwrap();
        assert_eq!(probe.port, k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8000));
    }

    #[test]
    fn reports_are_read_from_annotations() {
        let f: Function = serde_json::from_value(json!({"metadata": {"annotations": {
            "load.wharf.dev/n1": r#"{"inFlight":2,"concurrency":1.5,"requests":7,"errors":0,"lastRequest":"2026-01-01T00:00:00Z","at":"2026-01-01T00:00:01Z"}"#,
            "load.wharf.dev/n2": "not json",
            "other": "x"}}, "spec": {"image": "x"}}))
        .unwrap();
        let reports = load_reports(&f);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].0, "n1");
        assert_eq!((reports[0].1.in_flight, reports[0].1.requests), (2, 7));
    }

    #[test]
    fn ready_reasons() {
        assert_eq!(ready_condition(Runs::Linux, 0, 0, 1).1, "ScaledToZero");
        assert_eq!(ready_condition(Runs::Linux, 1, 0, 1).1, "Deploying");
        assert_eq!(ready_condition(Runs::Linux, 0, 3, 1).1, "ScaledToZero", "pods still stopping");
        assert_eq!(ready_condition(Runs::Linux, 2, 1, 1).0, "True");
        assert_eq!(ready_condition(Runs::ImageNotFound, 0, 0, 1).1, "ImageNotFound");
        assert_eq!(ready_condition(Runs::Wasm, 1, 1, 0).1, "NoGateway");
    }
}
