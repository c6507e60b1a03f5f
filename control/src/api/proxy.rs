//! The `proxy` subresource, as kube-apiserver's `services/proxy` and `nodes/proxy`:
//!
//! - `.../functions/{name}/proxy[/PATH]` (any method): the request goes to a ready node's gateway
//!   (the Node annotation `wharf.dev/gateway`) at the Function's route path + PATH, with its
//!   query, body and headers (without `Authorization`, which holds the caller's API token, and
//!   the hop-by-hop ones); the gateway's status, headers and body come back as they are,
//!   streamed. This is how the dashboard invokes functions without reaching the gateway itself.
//! - `GET /api/v1/nodes/{name}/proxy/metrics`: the node agent's Prometheus text;
//!   `.../proxy/metrics/resource` keeps the resource families (`node_`, `pod_`, `container_`),
//!   as the kubelet's resource metrics endpoint.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::ApiState;
use super::request::{Target, proxy_subpath};
use crate::controllers::function::GATEWAY_ANNOTATION;
use crate::error::{Error, Result};
use crate::store::ObjectKey;

/// How long reaching a gateway may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an agent's metrics may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the agents' `/metrics` is written in.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Headers that belong to one connection (RFC 9110 §7.6.1), and those the API server sets.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Serves `{name}/proxy[/PATH]` of nodes and functions.
pub async fn serve(
    state: &ApiState,
    target: &Target,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let subpath = proxy_subpath(uri.path(), target);
    match target.resource.kind {
        "Function" => function(state, target, method, subpath, uri.query(), headers, body).await,
        "Node" if *method == Method::GET => node(state, target, subpath).await,
        "Node" => Err(Error::MethodNotAllowed),
        _ => Err(Error::NoRoute),
    }
}

/// A client for the gateways: plain HTTP/1.1, never through an environment proxy.
fn gateway_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .use_preconfigured_tls(super::logs::agent_tls())
            .no_proxy()
            .http1_only()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .expect("HTTP client builds")
    })
}

/// Whether a Node reports `Ready=True`.
pub(super) fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The gateway URLs of the ready nodes, the one in the Function's `status.url` first (the
/// Function controller puts a serving gateway there).
fn gateways(nodes: &[Value], function: &Value) -> Vec<String> {
    let mut found: Vec<String> = nodes
        .iter()
        .filter(|n| node_ready(n))
        .filter_map(|n| n["metadata"]["annotations"][GATEWAY_ANNOTATION].as_str())
        .map(|g| g.trim_end_matches('/').to_string())
        .collect();
    found.sort();
    let url = function["status"]["url"].as_str().unwrap_or_default();
    found.sort_by_key(|g| !url.starts_with(&format!("{g}/")));
    found
}

/// The path the gateway routes to `function` (its `spec.route.path`, which defaulting always
/// sets and validation makes absolute), with `subpath` under it.
fn function_path(function: &Value, subpath: &str) -> String {
    let route = function["spec"]["route"]["path"].as_str().unwrap_or("/").to_string();
    match subpath {
        "" => route,
        sub => format!("{}{sub}", route.trim_end_matches('/')),
    }
}

/// Whether a request or response header is passed through.
fn forwarded(name: &HeaderName, connection: &[String]) -> bool {
    let name = name.as_str();
    !HOP_BY_HOP.contains(&name)
        && name != header::AUTHORIZATION.as_str()
        && name != header::HOST.as_str()
        && name != header::CONTENT_LENGTH.as_str()
        && !connection.iter().any(|c| c == name)
}

/// The header names a `Connection` header lists (also hop-by-hop).
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

async fn function(
    state: &ApiState,
    target: &Target,
    method: &Method,
    subpath: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let key = ObjectKey::new(target.resource.storage_key(), &namespace, &name);
    let function = state.store.get(&key).ok_or_else(|| Error::NotFound {
        group: target.resource.group.into(),
        kind: target.resource.plural.into(),
        name: name.clone(),
    })?;
    let nodes: Vec<Value> =
        state.store.list("nodes", None, None, 0, |_| true).items.iter().map(|n| n.object.clone()).collect();
    let Some(gateway) = gateways(&nodes, &function.object).into_iter().next() else {
        return Err(Error::Unavailable(format!(
            "no ready node has a gateway to serve function {namespace}/{name} (Node annotation {GATEWAY_ANNOTATION})"
        )));
    };
    let mut url = format!("{gateway}{}", function_path(&function.object, subpath));
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        url = format!("{url}?{query}");
    }
    let connection = connection_listed(headers);
    let mut request = gateway_client().request(method.clone(), &url);
    for (key, value) in headers.iter().filter(|(k, _)| forwarded(k, &connection)) {
        request = request.header(key, value);
    }
    if let Some(host) = function.object["spec"]["route"]["host"].as_str() {
        request = request.header(header::HOST, host);
    }
    let response = request.body(reqwest::Body::wrap_stream(body.into_data_stream())).send().await.map_err(|e| {
        tracing::info!(%namespace, %name, %url, error = %e, "function proxy: the gateway cannot be reached");
        Error::Unavailable(format!("cannot reach the gateway {gateway} for function {namespace}/{name}"))
    })?;
    let status = response.status();
    let connection = connection_listed(response.headers());
    let mut out = HeaderMap::new();
    for (key, value) in response.headers().iter().filter(|(k, _)| forwarded(k, &connection)) {
        out.append(key.clone(), value.clone());
    }
    Ok((status, out, Body::from_stream(response.bytes_stream())).into_response())
}

async fn node(state: &ApiState, target: &Target, subpath: &str) -> Result<Response> {
    let name = target.name.clone().unwrap_or_default();
    if state.store.get(&ObjectKey::new("nodes", "", &name)).is_none() {
        return Err(Error::NotFound { group: String::new(), kind: "nodes".into(), name });
    }
    let text = match subpath.trim_end_matches('/') {
        "/metrics" => scrape(state, &name, SCRAPE_TIMEOUT).await?,
        "/metrics/resource" => resource_families(&scrape(state, &name, SCRAPE_TIMEOUT).await?),
        _ => return Err(Error::NoRoute),
    };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, OPENMETRICS)], text).into_response())
}

/// The agent's `/metrics` of node `name`, read as the API server.
pub(super) async fn scrape(state: &ApiState, name: &str, timeout: Duration) -> Result<String> {
    let (address, port) = super::logs::agent_address(state, name)?;
    let url = format!("https://{}/metrics", super::logs::authority(&address, port));
    let unreachable = |e: &dyn std::fmt::Display| {
        tracing::info!(node = name, error = %e, "cannot read the agent's metrics");
        Error::Unavailable(format!("cannot read the metrics of node {name}"))
    };
    let read = async {
        let response = state.agents.get(&url).send().await?.error_for_status()?;
        response.text().await
    };
    tokio::time::timeout(timeout, read).await.map_err(|e| unreachable(&e))?.map_err(|e| unreachable(&e))
}

/// The families of the kubelet's resource metrics endpoint (`node_`, `pod_`, `container_`) in
/// a Prometheus or OpenMetrics text, with their comments.
fn resource_families(text: &str) -> String {
    let resource = |name: &str| ["node_", "pod_", "container_"].iter().any(|p| name.starts_with(p));
    let mut out = String::new();
    for line in text.lines() {
        let name = match line.strip_prefix("# ") {
            Some(comment) => comment.split_whitespace().nth(1).unwrap_or_default(),
            None => line.split(['{', ' ']).next().unwrap_or_default(),
        };
        if resource(name) || line == "# EOF" {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: &str, gateway: Option<&str>) -> Value {
        let mut node = json!({"metadata": {"name": name, "annotations": {}},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}});
        if let Some(g) = gateway {
            node["metadata"]["annotations"][GATEWAY_ANNOTATION] = g.into();
        }
        node
    }

    #[test]
    fn ready_gateways_are_chosen_with_the_functions_own_first() {
        let nodes = [
            node("a", "True", Some("http://10.0.0.1:80/")),
            node("b", "False", Some("http://10.0.0.2:80")),
            node("c", "True", None),
            node("d", "True", Some("http://10.0.0.4:80")),
        ];
        let f = json!({"status": {"url": "http://10.0.0.4:80/hello"}});
        assert_eq!(gateways(&nodes, &f), ["http://10.0.0.4:80", "http://10.0.0.1:80"]);
        assert_eq!(gateways(&nodes, &json!({})), ["http://10.0.0.1:80", "http://10.0.0.4:80"]);
        assert!(gateways(&nodes[1..3], &f).is_empty());
    }

    #[test]
    fn the_route_path_takes_the_subpath() {
        let f = json!({"metadata": {"name": "hello"}, "spec": {"route": {"path": "/hello"}}});
        assert_eq!(function_path(&f, ""), "/hello");
        assert_eq!(function_path(&f, "/a/b"), "/hello/a/b");
        let f = json!({"metadata": {"name": "hello"}, "spec": {"route": {"path": "/"}}});
        assert_eq!(function_path(&f, "/x"), "/x");
        assert_eq!(function_path(&f, ""), "/");
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_behind() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "close, X-Private".parse().unwrap());
        let listed = connection_listed(&headers);
        for (name, kept) in [
            ("authorization", false),
            ("connection", false),
            ("transfer-encoding", false),
            ("x-private", false),
            ("host", false),
            ("content-type", true),
            ("x-test", true),
        ] {
            assert_eq!(forwarded(&HeaderName::from_static(name), &listed), kept, "{name}");
        }
    }

    #[test]
    fn resource_metrics_keep_the_resource_families() {
        let text = "# HELP node_cpu_usage_seconds CPU\n# TYPE node_cpu_usage_seconds counter\nnode_cpu_usage_seconds_total 5.0\n# TYPE wharf_function_requests counter\nwharf_function_requests_total{function=\"f\"} 3\npod_memory_working_set_bytes{namespace=\"d\",pod=\"p\"} 7\n# EOF\n";
        assert_eq!(
            resource_families(text),
            "# HELP node_cpu_usage_seconds CPU\n# TYPE node_cpu_usage_seconds counter\nnode_cpu_usage_seconds_total 5.0\npod_memory_working_set_bytes{namespace=\"d\",pod=\"p\"} 7\n# EOF\n"
        );
    }
}
