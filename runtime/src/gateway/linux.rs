//! The activator and forwarder for Linux-image Functions. A Linux-image Function `NS/NAME`
//! runs as pods labelled `wharf.dev/function: NAME` (its Deployment, scaled by the control
//! plane's Function controller). The gateway hands each request for one to [`LinuxFunctions::
//! forward`]: it watches that function's pods (one label-selected watch per function, started on
//! its first request), holds the request until a pod is ready — at zero replicas the node's load
//! report (see [`super::load`]) has told the autoscaler to scale up — and forwards it to a ready
//! pod's `podIP:port`, round-robin, streaming both bodies. A request held longer than
//! [`HOLD_TIMEOUT`] answers 504.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{self, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

/// The label on a Linux-image Function's pods.
pub const FUNCTION_LABEL: &str = "wharf.dev/function";
/// How long a request waits for a ready pod before it answers 504.
pub const HOLD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting to a pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a pod can take requests: Ready, with an IP, not being deleted.
pub fn serving_ip(pod: &Pod) -> Option<IpAddr> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    status.pod_ip.as_deref()?.parse().ok()
}

/// The pods of one function, as a watch keeps them, and the round-robin position.
struct Backend {
    pods: Store<Pod>,
    /// Bumped whenever the watch sees a pod change, so held requests look again.
    changed: watch::Receiver<u64>,
    next: AtomicUsize,
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl Backend {
    fn start(client: kube::Client, namespace: &str, name: &str) -> Self {
        let (pods, writer) = reflector::store();
        let (tx, changed) = watch::channel(0u64);
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().labels(&format!("{FUNCTION_LABEL}={name}"));
        let stream = reflector::reflector(writer, watcher(api, config)).default_backoff().touched_objects().for_each(
            move |_| {
                tx.send_modify(|n| *n = n.wrapping_add(1));
                futures::future::ready(())
            },
        );
        Backend { pods, changed, next: AtomicUsize::new(0), watch: tokio::spawn(stream) }
    }

    /// The IPs of the ready pods, sorted (so round-robin walks a stable order).
    fn ready(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self.pods.state().iter().filter_map(|p| serving_ip(p)).collect();
        ips.sort();
        ips
    }

    /// The next ready pod round-robin, if any.
    fn pick(&self) -> Option<IpAddr> {
        pick_round_robin(&self.ready(), &self.next)
    }

    /// Waits (at most `timeout`) until a pod is ready and picks it.
    async fn wait_ready(&self, timeout: Duration) -> Option<IpAddr> {
        let mut changed = self.changed.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changed.borrow_and_update();
            if let Some(ip) = self.pick() {
                return Some(ip);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                // The watch ended (cannot happen while we hold the Backend) or time is up.
                Ok(Err(_)) | Err(_) => return self.pick(),
            }
        }
    }
}

fn pick_round_robin(ips: &[IpAddr], next: &AtomicUsize) -> Option<IpAddr> {
    if ips.is_empty() {
        return None;
    }
    Some(ips[next.fetch_add(1, Ordering::Relaxed) % ips.len()])
}

/// Forwards requests to Linux-image Functions' pods, activating them from zero.
pub struct LinuxFunctions {
    client: kube::Client,
    backends: Mutex<HashMap<(String, String), Arc<Backend>>>,
    hold_timeout: Duration,
}

/// How forwarding a request went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no ready instance of function {0} within {1:?}")]
    NotReady(String, Duration),
    #[error("cannot reach instance {0}: {1}")]
    Connect(SocketAddr, String),
    #[error("instance {0} failed the request: {1}")]
    Upstream(SocketAddr, String),
}

impl IntoResponse for ForwardError {
    fn into_response(self) -> Response {
        let status = match self {
            ForwardError::NotReady(..) => StatusCode::GATEWAY_TIMEOUT,
            ForwardError::Connect(..) | ForwardError::Upstream(..) => StatusCode::BAD_GATEWAY,
        };
        tracing::debug!(error = %self, "function request failed");
        (status, format!("{self}\n")).into_response()
    }
}

impl LinuxFunctions {
    pub fn new(client: kube::Client) -> Arc<Self> {
        Arc::new(LinuxFunctions { client, backends: Mutex::default(), hold_timeout: HOLD_TIMEOUT })
    }

    fn backend(&self, namespace: &str, name: &str) -> Arc<Backend> {
        let mut backends = self.backends.lock().unwrap_or_else(|e| e.into_inner());
        backends
            .entry((namespace.to_string(), name.to_string()))
            .or_insert_with(|| Arc::new(Backend::start(self.client.clone(), namespace, name)))
            .clone()
    }

    /// Stops watching a function's pods (when the gateway's route to it goes away).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.backends.lock().unwrap_or_else(|e| e.into_inner()).remove(&(namespace.to_string(), name.to_string()));
    }

    /// Sends `request` to a ready pod of function `namespace/name` listening on `port`, holding
    /// it until one is ready. The request's path and query go as they are; `Host` is kept.
    pub async fn forward(&self, namespace: &str, name: &str, port: u16, request: Request) -> Response {
        match self.try_forward(namespace, name, port, request).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    }

    async fn try_forward(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
        request: Request,
    ) -> Result<Response, ForwardError> {
        let backend = self.backend(namespace, name);
        let ip = match backend.pick() {
            Some(ip) => ip,
            None => backend
                .wait_ready(self.hold_timeout)
                .await
                .ok_or_else(|| ForwardError::NotReady(format!("{namespace}/{name}"), self.hold_timeout))?,
        };
        send(SocketAddr::new(ip, port), request).await
    }
}

/// Sends one request over a new HTTP/1 connection to `addr`, streaming both bodies.
async fn send(addr: SocketAddr, request: Request) -> Result<Response, ForwardError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| ForwardError::Connect(addr, "connect timed out".into()))?
        .map_err(|e| ForwardError::Connect(addr, e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream))
        .await
        .map_err(|e| ForwardError::Connect(addr, e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%addr, error = %e, "function connection ended");
        }
    });
    let response =
        sender.send_request(to_pod(request)).await.map_err(|e| ForwardError::Upstream(addr, e.to_string()))?;
    Ok(response.map(Body::new))
}

/// The request as the pod gets it: origin-form URI, no hop-by-hop headers.
fn to_pod(request: Request) -> Request {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    parts.uri = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    parts.version = http::Version::HTTP_11;
    let host = parts.headers.get(http::header::HOST).cloned();
    for hop in ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authorization"] {
        parts.headers.remove(hop);
    }
    if host.is_none()
        && let Ok(v) = http::HeaderValue::from_str("function")
    {
        parts.headers.insert(http::header::HOST, v);
    }
    Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ip: Option<&str>, ready: bool, deleting: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "deletionTimestamp": deleting.then_some("2026-01-01T00:00:00Z")},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap()
    }

    #[test]
    fn only_ready_pods_with_an_ip_serve() {
        assert_eq!(serving_ip(&pod(Some("10.1.0.5"), true, false)), Some("10.1.0.5".parse().unwrap()));
        assert_eq!(serving_ip(&pod(Some("10.1.0.5"), false, false)), None);
        assert_eq!(serving_ip(&pod(None, true, false)), None);
        assert_eq!(serving_ip(&pod(Some("10.1.0.5"), true, true)), None);
    }

    #[tokio::test]
    async fn a_held_request_goes_on_when_a_pod_turns_ready_and_times_out_otherwise() {
        let (pods, mut writer) = reflector::store::<Pod>();
        let (tx, changed) = watch::channel(0u64);
        let watch = tokio::spawn(async {});
        let backend = Arc::new(Backend { pods, changed, next: AtomicUsize::new(0), watch });
        assert_eq!(backend.wait_ready(Duration::from_millis(50)).await, None);

        let held = tokio::spawn({
            let backend = backend.clone();
            async move { backend.wait_ready(Duration::from_secs(10)).await }
        });
        let mut see = |pod: Pod| {
            writer.apply_watcher_event(&watcher::Event::Apply(pod));
            tx.send_modify(|n| *n += 1);
        };
        see(pod(Some("10.1.0.7"), false, false));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished(), "a pod that is not ready takes no request");
        see(pod(Some("10.1.0.7"), true, false));
        assert_eq!(held.await.unwrap(), Some("10.1.0.7".parse().unwrap()));
    }

    #[test]
    fn round_robin_walks_every_pod() {
        let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let next = AtomicUsize::new(0);
        let picked: Vec<_> = (0..4).map(|_| pick_round_robin(&ips, &next).unwrap()).collect();
        assert_eq!(picked, [ips[0], ips[1], ips[0], ips[1]]);
        assert_eq!(pick_round_robin(&[], &next), None);
    }

    #[test]
    fn the_pod_gets_an_origin_form_request() {
        let request = http::Request::get("http://gateway:8080/fn/x?a=1")
            .header("connection", "keep-alive")
            .header("host", "gateway:8080")
            .body(Body::empty())
            .unwrap();
        let sent = to_pod(request);
        assert_eq!(sent.uri(), "/fn/x?a=1");
        assert_eq!(sent.headers()["host"], "gateway:8080");
        assert!(sent.headers().get("connection").is_none());
    }

    #[tokio::test]
    async fn forwards_and_streams_the_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/echo", axum::routing::post(|body: String| async move { format!("got {body}") }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let request = http::Request::post("/echo").body(Body::from("hello")).unwrap();
        let response = send(addr, request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        assert_eq!(&body[..], b"got hello");
        // Nobody listening: 502.
        let closed: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let err = send(closed, http::Request::get("/").body(Body::empty()).unwrap()).await.unwrap_err();
        assert_eq!(err.into_response().status(), StatusCode::BAD_GATEWAY);
    }
}
