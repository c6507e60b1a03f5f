//! The agent's own HTTPS endpoint, which the API server calls for `kubectl logs`
//! (`GET /containerLogs/{namespace}/{pod}/{container}` with kubectl's log options) and
//! `kubectl exec` (`GET /exec/{namespace}/{pod}/{container}?command=..`, upgraded to the
//! remote-command WebSocket protocol) and `kubectl port-forward`
//! (`GET /portForward/{namespace}/{pod}?port=..`, one WebSocket per forwarded connection, see
//! `portforward`), and `GET /metrics` (the node, its containers and functions, see `metrics`), and
//! `GET /functionLogs/{namespace}/{name}` (a Wasm function's output on this node, see `gateway`).
//! Only callers bearing the node token are served.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

use crate::AgentError;
use crate::exec::{self, ExecOptions, RunningContainers};
use crate::logs::{self, LogQuery};
use crate::portforward;
use crate::worker::LogIndex;

struct EndpointState {
    /// The agent's data dir (pod sandboxes live under it).
    data_dir: PathBuf,
    logs: Arc<LogIndex>,
    running: Arc<RunningContainers>,
    functions: crate::gateway::stats::Stats,
    token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogParams {
    follow: Option<bool>,
    previous: Option<bool>,
    timestamps: Option<bool>,
    tail_lines: Option<usize>,
    since_seconds: Option<i64>,
    since_time: Option<String>,
    limit_bytes: Option<usize>,
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) => p.len() == token.len() && p.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0,
        None => false,
    }
}

async fn container_logs(
    State(state): State<Arc<EndpointState>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(params): Query<LogParams>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, &state.token) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let container = Some(container.as_str()).filter(|c| !c.is_empty());
    let (path, running) = match state.logs.locate(&namespace, &pod, container, params.previous.unwrap_or(false)) {
        Ok(found) => found,
        Err(message) => return (StatusCode::NOT_FOUND, message).into_response(),
    };
    let since = match (&params.since_time, params.since_seconds) {
        (Some(t), _) => t.parse::<jiff::Timestamp>().ok(),
        (None, Some(s)) => jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(s)).ok(),
        _ => None,
    };
    let query = LogQuery {
        tail_lines: params.tail_lines,
        since,
        timestamps: params.timestamps.unwrap_or(false),
        limit_bytes: params.limit_bytes,
    };
    let (text, offset) = match logs::read(&path, &query) {
        Ok(read) => read,
        Err(e) => return (StatusCode::NOT_FOUND, format!("cannot read logs: {e}")).into_response(),
    };
    if !params.follow.unwrap_or(false) || !running {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response();
    }
    // Follow: send what is there, then poll for new lines until the container stops.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let logs = state.logs.clone();
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(text))).await.is_err() {
            return;
        }
        let mut offset = offset;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let still_running = logs
                .locate(&namespace, &pod, container_name(&path).as_deref(), false)
                .map(|(p, r)| p == path && r)
                .unwrap_or(false);
            match logs::read_from(&path, offset, &query) {
                Ok((more, reached)) => {
                    offset = reached;
                    if !more.is_empty() && tx.send(Ok(Bytes::from(more))).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
            if !still_running || tx.is_closed() {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn exec(
    State(state): State<Arc<EndpointState>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !authorized(&headers, &state.token) {
        return exec::rejection(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let options = match ExecOptions::from_query(&query) {
        Ok(options) => options,
        Err(message) => return exec::rejection(StatusCode::BAD_REQUEST, message),
    };
    let running = match state.running.get(&namespace, &pod, &container) {
        Ok(running) => running,
        Err(message) => return exec::rejection(StatusCode::NOT_FOUND, message),
    };
    let Ok(upgrade) = upgrade else {
        return exec::rejection(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    let upgrade = upgrade.protocols(exec::PROTOCOLS);
    if upgrade.selected_protocol().is_none() {
        return exec::rejection(
            StatusCode::BAD_REQUEST,
            format!("none of the requested subprotocols is supported; use one of {:?}", exec::PROTOCOLS),
        );
    }
    upgrade.on_upgrade(move |socket| exec::serve(socket, running, container, options))
}

#[derive(Debug, Deserialize)]
struct PortForwardParams {
    port: u16,
    uid: String,
    container: String,
}

async fn port_forward(
    State(state): State<Arc<EndpointState>>,
    Path((namespace, pod)): Path<(String, String)>,
    Query(params): Query<PortForwardParams>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !authorized(&headers, &state.token) {
        return exec::rejection(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if let Err(message) = state.running.get(&namespace, &pod, &params.container) {
        return exec::rejection(StatusCode::NOT_FOUND, format!("pod {namespace}/{pod} is not running: {message}"));
    }
    if params.uid.is_empty() || params.uid.contains(['/', '.']) {
        return exec::rejection(StatusCode::BAD_REQUEST, format!("invalid pod uid {:?}", params.uid));
    }
    let Ok(upgrade) = upgrade else {
        return exec::rejection(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    let upgrade = upgrade.protocols([portforward::PROTOCOL]);
    if upgrade.selected_protocol().is_none() {
        return exec::rejection(StatusCode::BAD_REQUEST, format!("subprotocol {} required", portforward::PROTOCOL));
    }
    let port = params.port;
    let netns = crate::sandbox::netns_path(&crate::sandbox::dir(&state.data_dir, &params.uid));
    match portforward::connect(&netns, port).await {
        Ok(stream) => upgrade.on_upgrade(move |socket| portforward::relay(socket, stream)),
        Err(message) => exec::rejection(
            StatusCode::BAD_REQUEST,
            format!("error forwarding port {port} to pod {pod}, uid {}: {message}", params.uid),
        ),
    }
}

/// The container name in a log path (`.../{container}/{attempt}.log`).
fn container_name(path: &std::path::Path) -> Option<String> {
    path.parent()?.file_name()?.to_str().map(str::to_string)
}

async fn healthz() -> &'static str {
    "ok"
}

/// `GET /metrics`: the node, its containers and functions, sampled now.
async fn metrics(State(state): State<Arc<EndpointState>>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &state.token) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut registry = prometheus_client::registry::Registry::default();
    if let Some(node) = crate::metrics::sample_node() {
        crate::metrics::register_node(&mut registry, &node);
    }
    crate::metrics::register_containers(&mut registry, &crate::metrics::sample(&state.running));
    crate::metrics::register_functions(&mut registry, &state.functions.snapshot());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], crate::metrics::encode(&registry)).into_response()
}

/// `GET /functionLogs/{namespace}/{name}[?follow=true&tailLines=N]`: what a Wasm function's
/// requests on this node wrote (the gateway's per-function log file).
async fn function_logs(
    State(state): State<Arc<EndpointState>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(params): Query<LogParams>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, &state.token) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let logs = crate::gateway::fnlogs::FunctionLogs::new(state.data_dir.join("functions"));
    let Some(path) = logs.path(&namespace, &name) else {
        return (StatusCode::NOT_FOUND, "bad function name").into_response();
    };
    crate::gateway::function_log(path, params.follow.unwrap_or(false), params.tail_lines).await
}

/// A self-signed serving configuration for the endpoint.
fn tls_config(name: &str) -> Result<Arc<rustls::ServerConfig>, AgentError> {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string(), "localhost".into(), "127.0.0.1".into()])
        .map_err(|e| AgentError::Setup(format!("endpoint certificate: {e}")))?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .map_err(|e| AgentError::Setup(format!("endpoint key: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| AgentError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .map_err(|e| AgentError::Setup(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The endpoint's routes.
pub(crate) fn app(
    data_dir: PathBuf,
    logs: Arc<LogIndex>,
    running: Arc<RunningContainers>,
    functions: crate::gateway::stats::Stats,
    token: String,
) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/containerLogs/{namespace}/{pod}/{container}", get(container_logs))
        .route("/exec/{namespace}/{pod}/{container}", get(exec))
        .route("/portForward/{namespace}/{pod}", get(port_forward))
        .route("/metrics", get(metrics))
        .route("/functionLogs/{namespace}/{name}", get(function_logs))
        .with_state(Arc::new(EndpointState { data_dir, logs, running, functions, token }))
}

/// Binds the endpoint; returns the bound address and the serving future.
pub async fn bind(
    listen: SocketAddr,
    node: &str,
    data_dir: PathBuf,
    logs: Arc<LogIndex>,
    running: Arc<RunningContainers>,
    functions: crate::gateway::stats::Stats,
    token: String,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()> + use<>), AgentError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| AgentError::Setup(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| AgentError::Setup(e.to_string()))?;
    let acceptor = TlsAcceptor::from(tls_config(node)?);
    let app = app(data_dir, logs, running, functions, token);
    let serve = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    };
    Ok((addr, serve))
}
