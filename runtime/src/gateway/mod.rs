//! The node's HTTP gateway (`--gateway-listen`): routes requests by path and host (see
//! [`routes`]) to Functions and to Services that carry a route annotation; anything else
//! answers 404.
//!
//! - A Wasm Function (its image pulls as a Wasm artifact, or `runtimeClassName: wasmtime`) is
//!   served in-process through the shim's [`ProxyHandler`]: the node pulls and prepares the
//!   component on its first request (concurrent first requests share one pull and compile),
//!   then instantiates it once per request. At most [`routes::CONCURRENCY_ANNOTATION`]
//!   requests per function run at once on a node; more wait for a slot until the function's
//!   timeout, then answer 429. A trap answers 500, a timeout 504.
//! - A Linux-image Function goes through [`linux::LinuxFunctions`] (activator and forwarder).
//! - A routed Service goes to a ready endpoint of its first port ([`service`]).
//!
//! Once listening, the agent writes the Node annotation [`GATEWAY_ANNOTATION`]. Every request
//! to a function is counted in [`stats::Stats`] and announced to the [`load::LoadReporter`].
//! Wasm functions' stdout and stderr go to per-function files ([`fnlogs`]), served to clients
//! on the node itself (from loopback or the node's address) at
//! `GET /.wharf/logs/NAMESPACE/NAME[?follow=true]`, and to the API server (node token) by the
//! agent's endpoint ([`function_log`]).

pub mod fnlogs;
pub mod linux;
pub mod load;
pub mod routes;
mod service;
pub mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{OnceCell, Semaphore};
use wharf_shim::http::{BoxError, HttpError, ProxyHandler, ProxyRequest, RequestLimits, Warmth};

use crate::AgentError;
use crate::pull::ImagePuller;
use routes::{FunctionTarget, Route, Target};

/// Node annotation: the gateway's URL, `http://ADDR:PORT`.
pub const GATEWAY_ANNOTATION: &str = "wharf.dev/gateway";

/// Where and as whom the gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub node: String,
    /// The node's InternalIP, announced when listening on an unspecified address.
    pub address: String,
    pub listen: SocketAddr,
    /// Function logs go under `<data_dir>/functions`.
    pub data_dir: PathBuf,
    /// The per-function counters the gateway keeps (a clone of the handle `/metrics` reads).
    pub stats: stats::Stats,
}

/// Function objects as the gateway reads them (runtime cannot depend on wharf-control).
pub fn functions_resource() -> ApiResource {
    ApiResource {
        group: "wharf.dev".into(),
        version: "v1".into(),
        api_version: "wharf.dev/v1".into(),
        kind: "Function".into(),
        plural: "functions".into(),
    }
}

/// Serves the gateway until the task is dropped (logging why it could not). `wasm` serves Wasm
/// functions (none: they answer 503).
pub async fn run(
    client: kube::Client,
    options: GatewayOptions,
    images: Arc<dyn ImagePuller>,
    wasm: Option<Arc<dyn ProxyHandler>>,
) {
    if let Err(e) = serve(client, options, images, wasm).await {
        tracing::error!(error = %e, "the gateway stopped");
    }
}

async fn serve(
    client: kube::Client,
    options: GatewayOptions,
    images: Arc<dyn ImagePuller>,
    wasm: Option<Arc<dyn ProxyHandler>>,
) -> Result<(), AgentError> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| AgentError::Setup(format!("gateway cannot listen on {}: {e}", options.listen)))?;
    let local = listener.local_addr().map_err(|e| AgentError::Setup(format!("gateway address: {e}")))?;
    let gateway = Gateway::start(client.clone(), &options, images, wasm);
    let ip = if local.ip().is_unspecified() { options.address.clone() } else { local.ip().to_string() };
    let url = format!("http://{}", SocketAddr::new(ip.parse().unwrap_or(local.ip()), local.port()));
    tokio::spawn(announce(client, options.node.clone(), url.clone()));
    tracing::info!(%url, "gateway listening");
    let app = Router::new().fallback(handle).with_state(gateway);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .map_err(|e| AgentError::Setup(format!("gateway: {e}")))
}

/// Writes the Node annotation, retrying until it is written.
async fn announce(client: kube::Client, node: String, url: String) {
    let nodes: Api<Node> = Api::all(client);
    let patch = Patch::Merge(serde_json::json!({"metadata": {"annotations": {GATEWAY_ANNOTATION: url}}}));
    let mut wait = std::time::Duration::from_millis(200);
    while let Err(e) = nodes.patch(&node, &PatchParams::default(), &patch).await {
        tracing::warn!(%node, error = %e, "cannot announce the gateway on the Node; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(10));
    }
}

struct Gateway {
    routes: RwLock<Arc<Vec<Route>>>,
    slices: Store<EndpointSlice>,
    images: Arc<dyn ImagePuller>,
    wasm: Option<Arc<dyn ProxyHandler>>,
    linux: Arc<linux::LinuxFunctions>,
    load: Arc<load::LoadReporter>,
    stats: stats::Stats,
    logs: fnlogs::FunctionLogs,
    backends: Mutex<HashMap<(String, String), Arc<Backend>>>,
    /// The node's own address: a client connecting from it is on the node.
    node_ip: Option<std::net::IpAddr>,
}

/// How a function runs, found on its first request on this node.
#[derive(Debug, Clone)]
enum Kind {
    Wasm { digest: String, artifact: PathBuf },
    Linux,
}

/// One function on this node: its spec as routed, what it runs as, its concurrency slots.
struct Backend {
    target: FunctionTarget,
    kind: OnceCell<Kind>,
    slots: Arc<Semaphore>,
}

impl Gateway {
    fn start(
        client: kube::Client,
        options: &GatewayOptions,
        images: Arc<dyn ImagePuller>,
        wasm: Option<Arc<dyn ProxyHandler>>,
    ) -> Arc<Self> {
        let stats = options.stats.clone();
        let load = load::LoadReporter::new(client.clone(), options.node.clone(), stats.clone());
        tokio::spawn(load.clone().run());

        let ar = functions_resource();
        let functions_writer = reflector::store::Writer::new(ar.clone());
        let functions = functions_writer.as_reader();
        let (services, services_writer) = reflector::store::<Service>();
        let (slices, slices_writer) = reflector::store::<EndpointSlice>();
        let gateway = Arc::new(Gateway {
            routes: RwLock::default(),
            slices,
            images,
            wasm,
            linux: linux::LinuxFunctions::new(client.clone()),
            load,
            stats,
            logs: fnlogs::FunctionLogs::new(options.data_dir.join("functions")),
            backends: Mutex::default(),
            node_ip: options.address.parse().ok(),
        });

        let (changed, mut changes) = tokio::sync::mpsc::channel::<()>(1);
        let config = watcher::Config::default();
        let fn_api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let signal = changed.clone();
        tokio::spawn(watcher(fn_api, config.clone()).default_backoff().reflect(functions_writer).for_each(move |_| {
            let _ = signal.try_send(());
            async {}
        }));
        let signal = changed;
        tokio::spawn(
            watcher(Api::<Service>::all(client.clone()), config.clone())
                .default_backoff()
                .reflect(services_writer)
                .for_each(move |_| {
                    let _ = signal.try_send(());
                    async {}
                }),
        );
        tokio::spawn(
            watcher(Api::<EndpointSlice>::all(client), config)
                .default_backoff()
                .reflect(slices_writer)
                .for_each(|_| async {}),
        );
        let weak = Arc::downgrade(&gateway);
        tokio::spawn(async move {
            while changes.recv().await.is_some() {
                let Some(gateway) = weak.upgrade() else { return };
                let mut table: Vec<Route> =
                    functions.state().iter().filter_map(|f| routes::function_route(f)).collect();
                table.extend(services.state().iter().filter_map(|s| routes::service_route(s)));
                gateway.forget_removed(&table);
                *gateway.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
            }
        });
        gateway
    }

    fn routes(&self) -> Arc<Vec<Route>> {
        self.routes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Drops what the gateway keeps for functions no longer routed.
    fn forget_removed(&self, table: &[Route]) {
        let mut backends = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        backends.retain(|(namespace, name), _| {
            let kept = table.iter().any(|r| &r.namespace == namespace && &r.name == name);
            if !kept {
                self.linux.forget(namespace, name);
                self.stats.forget(namespace, name);
                self.logs.forget(namespace, name);
            }
            kept
        });
    }

    /// The backend of `namespace/name` for `target`, new when the spec changed.
    fn backend(&self, namespace: &str, name: &str, target: &FunctionTarget) -> Arc<Backend> {
        let mut backends = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        let key = (namespace.to_string(), name.to_string());
        match backends.get(&key) {
            Some(b) if &b.target == target => b.clone(),
            _ => {
                let backend = Arc::new(Backend {
                    target: target.clone(),
                    kind: OnceCell::new(),
                    slots: Arc::new(Semaphore::new(target.concurrency)),
                });
                backends.insert(key, backend.clone());
                backend
            }
        }
    }

    /// Pulls the function's image (and prepares a Wasm component) on its first request.
    /// Returns the kind and whether this was a cold start.
    async fn kind(&self, backend: &Backend) -> Result<(Kind, bool), (StatusCode, String)> {
        if let Some(kind) = backend.kind.get() {
            return Ok((kind.clone(), false));
        }
        let target = &backend.target;
        let kind = backend
            .kind
            .get_or_try_init(|| async {
                if target.runtime_class.as_deref() == Some("youki") {
                    return Ok(Kind::Linux);
                }
                let artifact = self
                    .images
                    .pull(&target.image, "IfNotPresent", &Vec::new(), None)
                    .await
                    .map_err(|e| (StatusCode::BAD_GATEWAY, format!("cannot pull {}: {e}", target.image)))?;
                if artifact.runtime != "wasmtime" && target.runtime_class.as_deref() != Some("wasmtime") {
                    return Ok(Kind::Linux);
                }
                Ok(Kind::Wasm { digest: artifact.digest, artifact: artifact.path })
            })
            .await?
            .clone();
        Ok((kind, true))
    }

    async fn function(&self, route: &Route, target: &FunctionTarget, request: Request) -> Response {
        let (namespace, name) = (&route.namespace, &route.name);
        self.load.arrived(namespace, name);
        let flight = self.stats.begin(namespace, name);
        let backend = self.backend(namespace, name, target);
        let (kind, mut cold) = match self.kind(&backend).await {
            Ok(found) => found,
            Err((status, message)) => {
                tracing::warn!(%namespace, %name, error = %message, "function unavailable");
                flight.finish(status.as_u16());
                return (status, format!("function {namespace}/{name}: {message}\n")).into_response();
            }
        };
        let response = match kind {
            // Held until a pod is ready, then the function's own timeout for its answer (a pod
            // that goes away mid-request must not hold the client forever).
            Kind::Linux => tokio::time::timeout(
                linux::HOLD_TIMEOUT + target.timeout,
                self.linux.forward(namespace, name, target.port, request),
            )
            .await
            .unwrap_or_else(|_| (StatusCode::GATEWAY_TIMEOUT, "the function did not answer in time\n").into_response()),
            Kind::Wasm { digest, artifact } => {
                let Some(wasm) = &self.wasm else {
                    flight.finish(503);
                    return (StatusCode::SERVICE_UNAVAILABLE, "this node does not run Wasm functions\n")
                        .into_response();
                };
                let Ok(_slot) = tokio::time::timeout(target.timeout, backend.slots.clone().acquire_owned()).await
                else {
                    flight.finish(429);
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("function {namespace}/{name} is at its concurrency limit\n"),
                    )
                        .into_response();
                };
                match self.serve_wasm(wasm.as_ref(), route, target, (&digest, artifact), request).await {
                    Ok((response, warmth)) => {
                        cold |= warmth != Warmth::Warm;
                        response
                    }
                    Err(e) => {
                        tracing::info!(%namespace, %name, error = %e, "function request failed");
                        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        let message = match e {
                            HttpError::Runtime(_) => "the node cannot run the function now".to_string(),
                            e => e.to_string(),
                        };
                        (status, format!("function {namespace}/{name}: {message}\n")).into_response()
                    }
                }
            }
        };
        if cold {
            flight.cold_start();
        }
        flight.finish(response.status().as_u16());
        response
    }

    async fn serve_wasm(
        &self,
        wasm: &dyn ProxyHandler,
        route: &Route,
        target: &FunctionTarget,
        (digest, artifact): (&str, PathBuf),
        request: Request,
    ) -> Result<(Response, Warmth), HttpError> {
        // A map lookup once warm: the shim keeps the linked component per digest.
        let warmth = wasm.prepare(artifact, digest.to_string()).await?;
        let request = request.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
        let response = wasm
            .handle(ProxyRequest {
                digest: digest.to_string(),
                limits: RequestLimits { memory_bytes: target.memory_bytes, timeout: target.timeout },
                log: self.logs.request(&route.namespace, &route.name),
                request,
            })
            .await?;
        Ok((response.map(Body::new), warmth))
    }
}

async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/.wharf/logs/") {
        return fnlogs_response(&gateway, peer, rest, request.uri().query().unwrap_or_default()).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .map(str::to_string);
    let table = gateway.routes();
    let Some(route) = routes::select(&table, host.as_deref(), &path) else {
        return (StatusCode::NOT_FOUND, format!("no route for {path}\n")).into_response();
    };
    match &route.target {
        Target::Function(target) => gateway.function(route, target, request).await,
        Target::Service { port_name } => service::forward(&gateway.slices, route, port_name, request).await,
    }
}

/// `GET /.wharf/logs/NAMESPACE/NAME[?follow=true]` from the node itself: the function's log
/// file, followed (polled) while the client stays if asked.
async fn fnlogs_response(gateway: &Gateway, peer: SocketAddr, rest: &str, query: &str) -> Response {
    if !peer.ip().is_loopback() && Some(peer.ip()) != gateway.node_ip {
        return (StatusCode::FORBIDDEN, "function logs are served to the node itself only\n").into_response();
    }
    let Some((namespace, name)) = rest.split_once('/') else {
        return (StatusCode::NOT_FOUND, "want /.wharf/logs/NAMESPACE/NAME\n").into_response();
    };
    let Some(path) = gateway.logs.path(namespace, name) else {
        return (StatusCode::NOT_FOUND, "bad function name\n").into_response();
    };
    let follow = query.split('&').any(|kv| kv == "follow=true" || kv == "follow=1");
    function_log(path, follow, None).await
}

/// A function's log file at `path` (its last `tail` lines when given), followed (polled) while
/// the client stays if `follow`. The gateway serves it to clients on the node, the agent's
/// endpoint to the API server.
pub(crate) async fn function_log(path: PathBuf, follow: bool, tail: Option<usize>) -> Response {
    let mut text = tokio::fs::read(&path).await.unwrap_or_default();
    // Following goes on from the end of the file, not of the tail sent.
    let offset = text.len() as u64;
    if let Some(tail) = tail {
        text.drain(..tail_start(&text, tail));
    }
    if !follow {
        return (StatusCode::OK, text).into_response();
    }
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(text)) });
    let more = futures::stream::unfold(offset, move |mut offset| {
        let path = path.clone();
        async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                let len = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
                if len < offset {
                    offset = 0;
                }
                if len > offset {
                    // Only what was appended since the last read.
                    let chunk = read_from(&path, offset).await.unwrap_or_default();
                    let next = offset + chunk.len() as u64;
                    return Some((Ok(bytes::Bytes::from(chunk)), next));
                }
            }
        }
    });
    Response::new(Body::from_stream(first.chain(more)))
}

/// Where the last `lines` lines of `text` start.
fn tail_start(text: &[u8], lines: usize) -> usize {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    if lines == 0 {
        return text.len();
    }
    body.iter().enumerate().rev().filter(|(_, b)| **b == b'\n').nth(lines - 1).map_or(0, |(i, _)| i + 1)
}

/// The file's bytes from `offset` to its end.
async fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut chunk = Vec::new();
    file.read_to_end(&mut chunk).await?;
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::tail_start;

    #[test]
    fn tails_start_at_a_line() {
        let text = b"a\nb\nc\n";
        assert_eq!(&text[tail_start(text, 2)..], b"b\nc\n");
        assert_eq!(&text[tail_start(text, 5)..], text);
        assert_eq!(&text[tail_start(text, 0)..], b"");
        assert_eq!(&b"a\nb"[tail_start(b"a\nb", 1)..], b"b");
    }

    #[tokio::test]
    async fn following_a_tail_sends_only_what_is_appended_after_it() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        let response = super::function_log(path.clone(), true, Some(1)).await;
        let mut body = response.into_body().into_data_stream();
        assert_eq!(body.next().await.unwrap().unwrap(), "three\n");
        std::fs::write(&path, "one\ntwo\nthree\nfour\n").unwrap();
        assert_eq!(body.next().await.unwrap().unwrap(), "four\n");
    }
}
