//! The HTTP surface of the API server: authentication, then discovery, OpenAPI and the
//! resource verbs. `router()` builds the whole app; `serve` runs it over TLS.

pub mod admission;
pub mod discovery;
mod eviction;
mod exec;
mod function_logs;
mod logs;
pub mod metrics;
mod multiwatch;
mod node_credentials;
pub use logs::agent_client;
pub mod openapi;
mod output;
pub mod patch;
mod portforward;
pub mod protobuf;
mod proxy;
pub mod request;
mod resource_metrics;
mod resources;
mod reviews;
mod runtime_class;
pub mod serve;
pub mod server_join;
mod token_request;
mod watch;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use crate::auth::authz::Authorizer;
use crate::auth::tokens::Authenticator;
use crate::auth::{Attributes, impersonation};
use crate::error::{Error, Result};
use crate::store::Store;

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// What every handler needs.
pub struct ApiState {
    pub store: Store,
    pub auth: Authenticator,
    /// Decides what an authenticated user may do.
    pub authz: Authorizer,
    pub max_body: usize,
    pub agents: reqwest::Client,
    /// TLS toward agents for WebSockets (exec, port-forward), with the same client identity.
    pub agent_tls: Arc<rustls::ClientConfig>,
    /// The cluster CA, served unauthenticated at `/cacerts` for joining agents.
    pub ca_pem: String,
    /// The embedded OCI registry under `/v2/`.
    pub registry: crate::oci::Registry,
    /// Settings of the admission plugins (default toleration seconds).
    pub admission: crate::server::AdmissionOptions,
    /// What `/metrics` reports.
    pub metrics: metrics::ApiMetrics,
    /// The nodes' last metrics scrapes, for metrics.k8s.io's CPU rates.
    pub scrapes: resource_metrics::Scrapes,
}

impl ApiState {
    pub fn new(
        store: Store,
        auth: Authenticator,
        ca_pem: String,
        registry: crate::oci::Registry,
        admission: crate::server::AdmissionOptions,
    ) -> Self {
        Self {
            authz: Authorizer::new(store.clone()),
            store,
            auth,
            max_body: MAX_BODY,
            agents: logs::agent_client(),
            agent_tls: Arc::new(logs::agent_tls()),
            ca_pem,
            registry,
            admission,
            metrics: Default::default(),
            scrapes: Default::default(),
        }
    }
}

/// The whole API server app; `dashboard` (the web UI's routes, served without authentication:
/// its pages hold no data) is merged in, and a browser asking for `/` is sent to it.
pub fn router(state: Arc<ApiState>, dashboard: Option<Router>) -> Router {
    let mut app = Router::new()
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/healthz", get(ok))
        .route("/cacerts", get(cacerts))
        .route(multiwatch::PATH, axum::routing::any(multiwatch::serve));
    if dashboard.is_some() {
        // Other methods on `/` get the API's answer (a Status), not a bare 405.
        app = app.route("/", get(root).fallback(dispatch));
    }
    let app = app.fallback(dispatch).with_state(state);
    match dashboard {
        Some(dashboard) => app.merge(dashboard),
        None => app,
    }
}

async fn ok() -> &'static str {
    "ok"
}

/// `/`: a browser (asking for HTML) goes to the dashboard; API clients get the API's answer.
async fn root(state: State<Arc<ApiState>>, request: Request) -> Response {
    let html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if html {
        return axum::response::Redirect::to(DASHBOARD_PATH).into_response();
    }
    dispatch(state, request).await
}

/// Where the dashboard is served.
pub const DASHBOARD_PATH: &str = "/ui/";

/// The cluster CA; agents check it against the hash in their join token.
async fn cacerts(State(state): State<Arc<ApiState>>) -> String {
    state.ca_pem.clone()
}

async fn dispatch(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    // A WebSocket request (kubectl exec) takes the connection's upgrade with it.
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.ok();
    // So does an `Upgrade: SPDY/3.1` request (kubectl port-forward without WebSocket).
    let spdy = parts
        .headers
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().starts_with(b"SPDY/"))
        .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
        .flatten();
    // Parsed once, for the handlers and the metrics.
    let target = request::parse_path(parts.uri.path().trim_end_matches('/'));
    let query = request::Query::parse(parts.uri.query());
    let counted = target.as_ref().ok().cloned().flatten();
    let watch = query.as_ref().is_ok_and(|q| q.flag("watch"));
    let parsed = Parsed { target, query };
    let handled = route(&state, &parts, parsed, body, upgrade, spdy);
    // Fenced for the whole handling (writes are made in this task, never in spawned ones).
    let handled = match fence(&parts.headers) {
        Some(fence) => crate::store::FENCE.scope(fence, handled).await,
        None => handled.await,
    };
    let response = match handled {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    state.metrics.observe(&parts.method, counted.as_ref(), watch, response.status().as_u16(), started.elapsed());
    tracing::debug!(
        method = %parts.method,
        path = parts.uri.path(),
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// A request of the leader's controllers names their holder identity in `Wharf-Fence`: its
/// writes commit only while the controller-manager Lease still names that holder, so a deposed
/// leader's late requests are refused (409) instead of acting twice.
fn fence(headers: &axum::http::HeaderMap) -> Option<crate::store::Fence> {
    let holder = headers.get(crate::leader::FENCE_HEADER)?;
    Some(crate::store::Fence {
        lease: crate::leader::fence_lease_key(),
        holder: String::from_utf8_lossy(holder.as_bytes()).into_owned(),
    })
}

async fn collect(body: Body, limit: usize) -> Result<Bytes> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::TooLarge(limit)),
        Err(e) => Err(Error::BadRequest(format!("cannot read the request body: {e}"))),
    }
}

/// The request's path and query, parsed once (their errors are answered after authentication).
struct Parsed {
    target: Result<Option<request::Target>>,
    query: Result<request::Query>,
}

#[allow(clippy::too_many_arguments)]
async fn route(
    state: &Arc<ApiState>,
    parts: &axum::http::request::Parts,
    parsed: Parsed,
    body: Body,
    upgrade: Option<WebSocketUpgrade>,
    spdy: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response> {
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let registry = uri.path() == "/v2" || uri.path().starts_with("/v2/");
    let Some(user) = state.auth.authenticate_request(headers, &parts.extensions) else {
        return if registry { Ok(crate::oci::unauthorized()) } else { Err(Error::Unauthorized) };
    };
    let user = impersonation::apply(&state.authz, user, headers)?;
    if registry {
        state.authz.check(&Attributes::non_resource(user, method, uri.path()))?;
        // Blob uploads stream to disk, without the API's body limit.
        return Ok(state.registry.handle(method, uri, headers, body).await);
    }
    let path = uri.path().trim_end_matches('/');
    let query = parsed.query?;
    // metrics.k8s.io is served outside the resource table: its paths name no table resource.
    let metrics = path.starts_with(resource_metrics::PREFIX);
    let target = if metrics { None } else { parsed.target? };
    let attributes = match &target {
        Some(target) => Attributes::resource(user, method, target, &query, path),
        None if metrics => resource_metrics::attributes(user, method, path, &query),
        None => Attributes::non_resource(user, method, uri.path()),
    };
    state.authz.check(&attributes)?;
    let user = &attributes.user;
    let json = |value: &serde_json::Value| output::json(StatusCode::OK, value, &[]);
    let read_only =
        |response: Response| if *method == Method::GET { Ok(response) } else { Err(Error::MethodNotAllowed) };
    match path {
        "/version" => read_only(json(&discovery::version())),
        "/metrics" => read_only(
            (StatusCode::OK, [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.render()).into_response(),
        ),
        "/api" => read_only(discovery::root(headers, true)),
        "/apis" => read_only(discovery::root(headers, false)),
        "/openapi/v3" => read_only(json(openapi::index())),
        "/openapi/v2" => read_only(
            (StatusCode::OK, [(header::CONTENT_TYPE, openapi::V2_PROTOBUF)], openapi::v2_empty_document())
                .into_response(),
        ),
        node_credentials::PATH => node_credentials::create(state, method, collect(body, state.max_body).await?).await,
        _ if path.starts_with("/openapi/v3/") => {
            let (document, _) = openapi::document(&path["/openapi/v3/".len()..]).ok_or(Error::NoRoute)?;
            read_only(json(document))
        }
        _ if path.starts_with(resource_metrics::PREFIX) => resource_metrics::serve(state, method, path, &query).await,
        _ => match target {
            Some(target) if target.subresource == Some(crate::registry::kinds::Subresource::Exec) => {
                exec::pod_exec(state, &target, uri.query(), upgrade).await
            }
            Some(target) if target.subresource == Some(crate::registry::kinds::Subresource::PortForward) => {
                portforward::pod_port_forward(state, &target, headers, upgrade, spdy).await
            }
            Some(target)
                if target.resource.kind == "Function"
                    && target.subresource == Some(crate::registry::kinds::Subresource::Log) =>
            {
                function_logs::serve(state, method, &target, &query).await
            }
            Some(target) if target.subresource == Some(crate::registry::kinds::Subresource::Proxy) => {
                proxy::serve(state, &target, method, uri, headers, body).await
            }
            Some(target) => {
                let body = collect(body, state.max_body).await?;
                resources::handle(state, user, method, target, query, headers, body).await
            }
            None => {
                let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                let document = match segments.as_slice() {
                    ["api", version] => discovery::resource_list("", version),
                    ["apis", group] => discovery::group(group),
                    ["apis", group, version] => discovery::resource_list(group, version),
                    _ => None,
                };
                read_only(json(&document.ok_or(Error::NoRoute)?))
            }
        },
    }
}
