//! `metrics.k8s.io/v1beta1`, what metrics-server serves and `kubectl top` reads: NodeMetrics
//! (`/apis/metrics.k8s.io/v1beta1/nodes[/NAME]`) and PodMetrics
//! (`/apis/metrics.k8s.io/v1beta1/[namespaces/NS/]pods[/NAME]`), computed on read from the
//! agents' `/metrics` (`node_*` and `container_*` families) of the Ready nodes, scraped in
//! parallel. CPU is a rate, so each node keeps its last two scrapes: a read less than
//! [`MIN_INTERVAL`] after the last scrape answers from them, a later one scrapes anew and
//! reports the rate since the scrape before; without a recent enough earlier scrape (the first
//! read, or one [`MAX_WINDOW`] after the last) it scrapes twice, [`MIN_INTERVAL`] apart.
//! `window` is the time between the two scrapes; CPU is in nanocores, memory in Ki.
//! Nothing is stored: these resources are listed and read, never watched.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::ApiState;
use super::request::Query;
use crate::error::{Error, Result};
use crate::registry::selector::LabelSelector;
use crate::store::ObjectKey;

/// The group and version served.
pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
/// Where its resources are served.
pub const PREFIX: &str = "/apis/metrics.k8s.io/v1beta1/";

/// Reads closer together than this share a scrape; also the shortest window.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// A window longer than this is sampled again over [`MIN_INTERVAL`].
const MAX_WINDOW: Duration = Duration::from_secs(60);
/// How long one agent's metrics may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// CPU time and memory of a node or container at one scrape.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Usage {
    cpu_seconds: f64,
    memory_bytes: u64,
}

/// Namespace, pod and container.
type ContainerKey = (String, String, String);

/// One scrape of a node's agent.
#[derive(Debug, Default)]
struct Scrape {
    node: Option<Usage>,
    containers: BTreeMap<ContainerKey, Usage>,
}

#[derive(Debug)]
struct Sample {
    at: Instant,
    time: jiff::Timestamp,
    scrape: Scrape,
}

/// The last two scrapes of a node.
struct History {
    previous: Option<Arc<Sample>>,
    latest: Arc<Sample>,
}

/// The last two scrapes of each node, by name (the API server keeps one in its state).
#[derive(Default)]
pub struct Scrapes(Mutex<HashMap<String, History>>);

/// The node's CPU rate and memory between two scrapes, with what the API reports them with.
#[derive(Debug, Clone, PartialEq)]
struct Rate {
    nanocores: u64,
    memory_bytes: u64,
}

/// Parses the Prometheus or OpenMetrics text of an agent.
fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, labels, value) = match line.find('{') {
            Some(open) => {
                let Some(close) = line.rfind('}') else { continue };
                (&line[..open], &line[open + 1..close], &line[close + 1..])
            }
            None => match line.split_once(' ') {
                Some((name, rest)) => (name, "", rest),
                None => continue,
            },
        };
        let Some(value) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        let container = || {
            let labels = labels_of(labels);
            let label = |key: &str| labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            Some((label("namespace")?, label("pod")?, label("container")?))
        };
        match name {
            "node_cpu_usage_seconds_total" => scrape.node.get_or_insert_default().cpu_seconds = value,
            "node_memory_working_set_bytes" => scrape.node.get_or_insert_default().memory_bytes = value as u64,
            "container_cpu_usage_seconds_total" => {
                if let Some(key) = container() {
                    scrape.containers.entry(key).or_default().cpu_seconds = value;
                }
            }
            "container_memory_working_set_bytes" => {
                if let Some(key) = container() {
                    scrape.containers.entry(key).or_default().memory_bytes = value as u64;
                }
            }
            _ => {}
        }
    }
    scrape
}

/// `k="v",k2="v2"` with `\"`, `\\` and `\n` escapes.
fn labels_of(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim().trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    out
}

/// The CPU rate and current memory from two usages `seconds` apart; None when the counter went
/// back (the container restarted).
fn rate(previous: &Usage, latest: &Usage, seconds: f64) -> Option<Rate> {
    (latest.cpu_seconds >= previous.cpu_seconds && seconds > 0.0).then(|| Rate {
        nanocores: ((latest.cpu_seconds - previous.cpu_seconds) / seconds * 1e9).round() as u64,
        memory_bytes: latest.memory_bytes,
    })
}

/// A window as Go's `time.Duration` prints it, to the millisecond: `10s`, `10.25s`.
fn window(d: Duration) -> String {
    let ms = d.as_millis();
    let fraction = format!("{:03}", ms % 1000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() { format!("{}s", ms / 1000) } else { format!("{}.{fraction}s", ms / 1000) }
}

fn usage_json(rate: &Rate) -> Value {
    json!({"cpu": format!("{}n", rate.nanocores), "memory": format!("{}Ki", rate.memory_bytes / 1024)})
}

/// Scrapes node `name` now and records it; returns its last two scrapes.
async fn scrape(state: &ApiState, name: &str) -> Result<(Option<Arc<Sample>>, Arc<Sample>)> {
    let text = super::proxy::scrape(state, name, SCRAPE_TIMEOUT).await?;
    let sample = Arc::new(Sample { at: Instant::now(), time: jiff::Timestamp::now(), scrape: parse(&text) });
    let mut history = state.scrapes.0.lock().unwrap_or_else(|e| e.into_inner());
    let entry = match history.remove(name) {
        // Two reads at once both scrape: a window of milliseconds gives no rate, keep the older pair's start.
        Some(h) if sample.at.duration_since(h.latest.at) < MIN_INTERVAL => {
            History { previous: h.previous, latest: sample }
        }
        Some(h) => History { previous: Some(h.latest), latest: sample },
        None => History { previous: None, latest: sample },
    };
    let pair = (entry.previous.clone(), entry.latest.clone());
    history.insert(name.to_string(), entry);
    Ok(pair)
}

/// Two scrapes of node `name` to compute rates over (earlier, later), scraping as needed.
async fn window_of(state: &ApiState, name: &str) -> Option<(Arc<Sample>, Arc<Sample>)> {
    let recent = {
        let history = state.scrapes.0.lock().unwrap_or_else(|e| e.into_inner());
        history.get(name).and_then(|h| {
            let previous = h.previous.clone()?;
            (h.latest.at.elapsed() < MIN_INTERVAL).then(|| (previous, h.latest.clone()))
        })
    };
    if recent.is_some() {
        return recent;
    }
    let usable = |(previous, latest): (Option<Arc<Sample>>, Arc<Sample>)| {
        previous.filter(|p| latest.at.duration_since(p.at) <= MAX_WINDOW).map(|p| (p, latest))
    };
    match scrape(state, name).await {
        Ok(pair) => {
            if let Some(window) = usable(pair) {
                return Some(window);
            }
        }
        Err(e) => {
            tracing::debug!(node = name, error = %e, "no metrics from the node");
            return None;
        }
    }
    tokio::time::sleep(MIN_INTERVAL).await;
    scrape(state, name).await.ok().and_then(usable)
}

/// The Ready nodes (objects) accepted by `keep`.
fn ready_nodes(state: &ApiState, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
    state
        .store
        .list("nodes", None, None, 0, |n| super::proxy::node_ready(&n.object) && keep(&n.object))
        .items
        .iter()
        .map(|n| n.object.clone())
        .collect()
}

/// The windows of the named nodes, scraped in parallel.
async fn windows(state: &ApiState, names: Vec<String>) -> HashMap<String, (Arc<Sample>, Arc<Sample>)> {
    let found = futures::future::join_all(names.iter().map(|n| window_of(state, n))).await;
    names.into_iter().zip(found).filter_map(|(name, w)| Some((name, w?))).collect()
}

/// RFC 3339 to the second, as `metav1.Time`.
fn rfc3339(time: jiff::Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn metadata(object: &Value, time: jiff::Timestamp) -> Value {
    let mut meta = json!({"name": object["metadata"]["name"], "creationTimestamp": rfc3339(time)});
    if let Some(ns) = object["metadata"]["namespace"].as_str() {
        meta["namespace"] = ns.into();
    }
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        meta["labels"] = Value::Object(labels.clone());
    }
    meta
}

/// A NodeMetrics of `node` over `(previous, latest)`.
fn node_metrics(node: &Value, (previous, latest): &(Arc<Sample>, Arc<Sample>)) -> Option<Value> {
    let seconds = latest.at.duration_since(previous.at);
    let rate = rate(&previous.scrape.node?, &latest.scrape.node?, seconds.as_secs_f64())?;
    Some(json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": metadata(node, latest.time),
        "timestamp": rfc3339(latest.time),
        "window": window(seconds),
        "usage": usage_json(&rate),
    }))
}

/// A PodMetrics of `pod` over `(previous, latest)` of its node; None without any container.
fn pod_metrics(pod: &Value, (previous, latest): &(Arc<Sample>, Arc<Sample>)) -> Option<Value> {
    let seconds = latest.at.duration_since(previous.at);
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let containers: Vec<Value> = latest
        .scrape
        .containers
        .range((namespace.to_string(), name.to_string(), String::new())..)
        .take_while(|((ns, p, _), _)| ns == namespace && p == name)
        .filter_map(|(key, usage)| {
            let rate = rate(previous.scrape.containers.get(key)?, usage, seconds.as_secs_f64())?;
            Some(json!({"name": key.2, "usage": usage_json(&rate)}))
        })
        .collect();
    (!containers.is_empty()).then(|| {
        json!({
            "kind": "PodMetrics",
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "metadata": metadata(pod, latest.time),
            "timestamp": rfc3339(latest.time),
            "window": window(seconds),
            "containers": containers,
        })
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": format!("{GROUP}/{VERSION}"), "metadata": {}, "items": items})
}

fn not_found(plural: &str, name: &str) -> Error {
    Error::NotFound { group: GROUP.into(), kind: plural.into(), name: name.into() }
}

/// The authorization attributes of a `metrics.k8s.io` request (`path` under [`PREFIX`]): `get`
/// or `list` of `nodes` or `pods`, as RBAC rules name them.
pub fn attributes(user: crate::auth::User, method: &Method, path: &str, query: &Query) -> crate::auth::Attributes {
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').collect();
    let (namespace, resource, name) = match segments.as_slice() {
        ["namespaces", namespace, resource] => (*namespace, *resource, ""),
        ["namespaces", namespace, resource, name] => (*namespace, *resource, *name),
        [resource, name] => ("", *resource, *name),
        [resource, ..] => ("", *resource, ""),
        [] => ("", "", ""),
    };
    let verb = match *method {
        Method::GET | Method::HEAD if query.flag("watch") => "watch",
        Method::GET | Method::HEAD if !name.is_empty() => "get",
        Method::GET | Method::HEAD => "list",
        _ => "",
    };
    crate::auth::Attributes {
        user,
        verb: verb.into(),
        resource: Some(crate::auth::ResourceAttributes {
            group: GROUP.into(),
            version: "v1beta1".into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            label_selector: query.get("labelSelector").unwrap_or_default().to_string(),
            ..Default::default()
        }),
        path: path.into(),
    }
}

/// Serves a GET under [`PREFIX`].
pub async fn serve(state: &ApiState, method: &Method, path: &str, query: &Query) -> Result<Response> {
    if *method != Method::GET {
        return Err(Error::MethodNotAllowed);
    }
    if query.flag("watch") {
        return Err(Error::MethodNotAllowed);
    }
    let selector = query.get("labelSelector").map(LabelSelector::parse).transpose()?.unwrap_or_default();
    let rest = path.strip_prefix(PREFIX).ok_or(Error::NoRoute)?;
    let segments: Vec<&str> = rest.split('/').collect();
    let body = match segments.as_slice() {
        ["nodes"] => {
            let nodes = ready_nodes(state, |n| selector.matches(n["metadata"].get("labels")));
            let names = nodes.iter().filter_map(|n| n["metadata"]["name"].as_str()).map(String::from).collect();
            let windows = windows(state, names).await;
            let items = nodes
                .iter()
                .filter_map(|n| node_metrics(n, windows.get(n["metadata"]["name"].as_str().unwrap_or_default())?))
                .collect();
            list("NodeMetricsList", items)
        }
        ["nodes", name] => {
            let node =
                ready_nodes(state, |n| n["metadata"]["name"] == *name).pop().ok_or_else(|| not_found("nodes", name))?;
            let window = window_of(state, name).await.ok_or_else(|| not_found("nodes", name))?;
            node_metrics(&node, &window).ok_or_else(|| not_found("nodes", name))?
        }
        ["pods"] => pods(state, None, None, &selector).await?,
        ["namespaces", namespace, "pods"] => pods(state, Some(namespace), None, &selector).await?,
        ["namespaces", namespace, "pods", name] => pods(state, Some(namespace), Some(name), &selector).await?,
        _ => return Err(Error::NoRoute),
    };
    Ok(super::output::json(StatusCode::OK, &body, &[]))
}

/// PodMetricsList of the pods in `namespace` (all without) matching `selector`, or the
/// PodMetrics of pod `name`.
async fn pods(
    state: &ApiState,
    namespace: Option<&str>,
    name: Option<&str>,
    selector: &LabelSelector,
) -> Result<Value> {
    let pods: Vec<Value> = match name {
        Some(name) => {
            let key = ObjectKey::new("pods", namespace.unwrap_or_default(), name);
            vec![state.store.get(&key).ok_or_else(|| not_found("pods", name))?.object.clone()]
        }
        None => state
            .store
            .list("pods", namespace, None, 0, |p| selector.matches(p.object["metadata"].get("labels")))
            .items
            .iter()
            .map(|p| p.object.clone())
            .collect(),
    };
    let on_nodes = |p: &Value| p["spec"]["nodeName"].as_str().map(String::from);
    let mut names: Vec<String> = pods.iter().filter_map(on_nodes).collect();
    names.sort();
    names.dedup();
    let ready: Vec<String> = ready_nodes(state, |n| {
        n["metadata"]["name"].as_str().is_some_and(|n| names.binary_search(&n.to_string()).is_ok())
    })
    .iter()
    .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
    .collect();
    let windows = windows(state, ready).await;
    let mut items: Vec<Value> = pods.iter().filter_map(|p| pod_metrics(p, windows.get(&on_nodes(p)?)?)).collect();
    match name {
        Some(name) => items.pop().ok_or_else(|| not_found("pods", name)),
        None => Ok(list("PodMetricsList", items)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP node_cpu_usage_seconds CPU
# TYPE node_cpu_usage_seconds counter
node_cpu_usage_seconds_total 100.5
node_memory_working_set_bytes 2048000
container_cpu_usage_seconds_total{namespace="default",pod="web",container="app"} 2.0
container_memory_working_set_bytes{namespace="default",pod="web",container="app"} 4194304
container_cpu_usage_seconds_total{namespace="default",pod="web",container="side\"car"} 0.5
wharf_function_requests_total{namespace="default",function="f"} 3
# EOF
"#;

    #[test]
    fn agent_metrics_are_parsed() {
        let scrape = parse(TEXT);
        assert_eq!(scrape.node, Some(Usage { cpu_seconds: 100.5, memory_bytes: 2048000 }));
        let app = ("default".to_string(), "web".to_string(), "app".to_string());
        assert_eq!(scrape.containers[&app], Usage { cpu_seconds: 2.0, memory_bytes: 4194304 });
        let side = ("default".to_string(), "web".to_string(), "side\"car".to_string());
        assert_eq!(scrape.containers[&side].cpu_seconds, 0.5);
        assert_eq!(scrape.containers.len(), 2);
    }

    #[test]
    fn rates_windows_and_quantities_are_kubectls() {
        let previous = Usage { cpu_seconds: 10.0, memory_bytes: 0 };
        let latest = Usage { cpu_seconds: 10.25, memory_bytes: 10 * 1024 * 1024 + 5 };
        let r = rate(&previous, &latest, 0.5).unwrap();
        assert_eq!(r, Rate { nanocores: 500_000_000, memory_bytes: 10 * 1024 * 1024 + 5 });
        assert_eq!(usage_json(&r), json!({"cpu": "500000000n", "memory": "10240Ki"}));
        assert!(rate(&latest, &previous, 1.0).is_none(), "a restarted counter has no rate");
        assert_eq!(window(Duration::from_millis(10_000)), "10s");
        assert_eq!(window(Duration::from_millis(1_250)), "1.25s");
        assert_eq!(window(Duration::from_millis(30_007)), "30.007s");
    }

    #[test]
    fn pod_metrics_carry_the_containers_with_two_samples() {
        let at = Instant::now();
        let sample = |offset: u64, text: &str| {
            Arc::new(Sample {
                at: at + Duration::from_secs(offset),
                time: jiff::Timestamp::UNIX_EPOCH,
                scrape: parse(text),
            })
        };
        let before =
            sample(0, "container_cpu_usage_seconds_total{namespace=\"default\",pod=\"web\",container=\"app\"} 1.0\n");
        let after = sample(10, TEXT);
        let pod = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}});
        let metrics = pod_metrics(&pod, &(before.clone(), after.clone())).unwrap();
        assert_eq!(metrics["window"], "10s");
        assert_eq!(metrics["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(metrics["containers"], json!([{"name": "app", "usage": {"cpu": "100000000n", "memory": "4096Ki"}}]));
        let other = json!({"metadata": {"name": "other", "namespace": "default"}});
        assert!(pod_metrics(&other, &(before.clone(), after.clone())).is_none());
        let node = json!({"metadata": {"name": "n1"}});
        assert!(node_metrics(&node, &(before, after.clone())).is_none(), "no node sample before");
        let node_before = sample(0, "node_cpu_usage_seconds_total 90.5\nnode_memory_working_set_bytes 1\n");
        let metrics = node_metrics(&node, &(node_before, after)).unwrap();
        assert_eq!(metrics["usage"], json!({"cpu": "1000000000n", "memory": "2000Ki"}));
        assert_eq!(metrics["kind"], "NodeMetrics");
    }
}
