//! One Kubernetes API client over several API servers of one control plane (they share a CA,
//! credentials and one revision order), failing over between them.
//!
//! Each server gets kube's own client stack (TLS, auth, timeouts, retries of 429/503/504) built
//! from one [`kube::Config`] with its `cluster_url` replaced; [`Failover`] is the tower service
//! in front of them that [`kube::Client::new`] wraps. A request goes to the server that last
//! worked. When that server cannot be reached — the connection is refused, reset or times out
//! before the request is sent — the same request goes to the next server, and the one that
//! answers is remembered. A request that reached a server is never sent again unless its method
//! is safe (GET, HEAD, OPTIONS: nothing is applied twice); one that got a response, even a 500,
//! is never sent again.
//!
//! Watches need nothing more: a watch stream ends when its server dies, kube-runtime's watcher
//! watches again (or lists again) through the same client, and that request fails over. The
//! resourceVersion it resumes from is valid on every server since they share one revision log.
//!
//! A kubeconfig lists the servers in its cluster's extension [`SERVERS_EXTENSION`]
//! (`{"servers": ["https://…", …]}`), which kubectl ignores; without it, the cluster's `server`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use hyper::{Method, Request, Response};
use kube::client::Body;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

/// The kubeconfig cluster extension that lists every server of the control plane.
pub const SERVERS_EXTENSION: &str = "wharf.dev/servers";

/// Longest wait for a TCP connection to one server when there are others to try (kube's own
/// default is 30 s, longer than a node Lease lasts).
pub const FAILOVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    #[error("no API server URL given")]
    NoServers,
    #[error("{url:?} is not an API server URL: {source}")]
    BadUrl { url: String, source: hyper::http::uri::InvalidUri },
    #[error("{0}")]
    Kubeconfig(#[from] KubeconfigError),
    #[error("{0}")]
    Client(#[from] kube::Error),
}

/// One API server and kube's client stack for it.
struct Server {
    url: String,
    client: kube::Client,
}

/// A tower service sending each request to the API server that last worked, failing over to the
/// next on connection failures (see the module docs). Clones share the servers and the choice.
#[derive(Clone)]
pub struct Failover {
    servers: Arc<[Server]>,
    current: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failover").field("servers", &self.urls()).field("current", &self.current_url()).finish()
    }
}

impl Failover {
    /// Kube's client stack from `config` for each of `urls` (in order; the first is tried first).
    /// Must run inside a Tokio runtime (each stack spawns its buffer task).
    pub fn new(config: &kube::Config, urls: &[String]) -> Result<Self, ApiClientError> {
        if urls.is_empty() {
            return Err(ApiClientError::NoServers);
        }
        let servers = urls
            .iter()
            .map(|url| {
                let cluster_url = url.parse().map_err(|source| ApiClientError::BadUrl { url: url.clone(), source })?;
                let mut config = config.clone();
                config.cluster_url = cluster_url;
                if urls.len() > 1 {
                    let limit =
                        config.connect_timeout.map_or(FAILOVER_CONNECT_TIMEOUT, |t| t.min(FAILOVER_CONNECT_TIMEOUT));
                    config.connect_timeout = Some(limit);
                }
                let client = kube::Client::try_from(config)?;
                Ok(Server { url: url.clone(), client })
            })
            .collect::<Result<Vec<_>, ApiClientError>>()?;
        Ok(Self { servers: servers.into(), current: Arc::new(AtomicUsize::new(0)) })
    }

    /// A [`kube::Client`] over these servers.
    pub fn into_client(self, default_namespace: impl Into<String>) -> kube::Client {
        kube::Client::new(self, default_namespace)
    }

    /// The servers, in the order given.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.url.clone()).collect()
    }

    /// The server requests go to first.
    pub fn current_url(&self) -> String {
        self.servers[self.current.load(Ordering::Relaxed) % self.servers.len()].url.clone()
    }

    async fn send(self, request: Request<Body>) -> Result<Response<Body>, kube::Error> {
        let start = self.current.load(Ordering::Relaxed) % self.servers.len();
        let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let mut pending = Some(request);
        let mut attempt = 0;
        loop {
            let index = (start + attempt) % self.servers.len();
            let server = &self.servers[index];
            let last = attempt + 1 == self.servers.len();
            let Some(request) = pending.take() else { unreachable!("a request is kept for every attempt") };
            // Keep a copy for the next server while there is one (a streamed body has none).
            let (this, kept) = if last { (request, None) } else { split_copy(request) };
            match server.client.send(this).await {
                Ok(response) => {
                    if index != start
                        && self.current.compare_exchange(start, index, Ordering::Relaxed, Ordering::Relaxed).is_ok()
                    {
                        tracing::warn!(from = %self.servers[start].url, to = %server.url, "API server unreachable; failed over");
                    }
                    return Ok(response);
                }
                Err(error) => {
                    let retry = kept.is_some() && (safe || connection_failed(&error));
                    if !retry {
                        return Err(error);
                    }
                    tracing::debug!(server = %server.url, error = %error, "API server unreachable; trying the next");
                    pending = kept;
                    attempt += 1;
                }
            }
        }
    }
}

/// The request, and a copy of it when its body can be copied.
fn split_copy(request: Request<Body>) -> (Request<Body>, Option<Request<Body>>) {
    let Some(body) = request.body().try_clone() else { return (request, None) };
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    (request, Some(copy))
}

/// Whether `error` is a failure to connect (refused, reset or timed out while connecting, TLS
/// handshake): the request was not sent.
pub fn connection_failed(error: &kube::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(e) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && e.is_connect()
        {
            return true;
        }
        current = e.source();
    }
    false
}

impl tower::Service<Request<Body>> for Failover {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each server's stack has its own buffer and is polled when a request goes to it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}

/// The servers `kubeconfig`'s current cluster lists: its [`SERVERS_EXTENSION`] in order, then
/// its `server` if the extension leaves it out (empty when it has neither).
pub fn kubeconfig_servers(kubeconfig: &Kubeconfig) -> Vec<String> {
    let context = match &kubeconfig.current_context {
        Some(name) => kubeconfig.contexts.iter().find(|c| &c.name == name),
        None => kubeconfig.contexts.first().filter(|_| kubeconfig.contexts.len() == 1),
    };
    let Some(cluster_name) = context.and_then(|c| c.context.as_ref()).map(|c| &c.cluster) else {
        return Vec::new();
    };
    let Some(cluster) = kubeconfig.clusters.iter().find(|c| &c.name == cluster_name).and_then(|c| c.cluster.as_ref())
    else {
        return Vec::new();
    };
    let mut servers: Vec<String> = cluster
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.name == SERVERS_EXTENSION)
        .flat_map(|e| e.extension["servers"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    if let Some(server) = &cluster.server
        && !servers.contains(server)
    {
        servers.push(server.clone());
    }
    servers
}

/// The kubeconfig cluster extension listing `servers`.
pub fn servers_extension(servers: &[String]) -> kube::config::NamedExtension {
    kube::config::NamedExtension {
        name: SERVERS_EXTENSION.into(),
        extension: serde_json::json!({ "servers": servers }),
    }
}

/// A client as `kubeconfig`'s current context describes, failing over across the servers its
/// cluster lists ([`kubeconfig_servers`]).
pub async fn from_kubeconfig(kubeconfig: Kubeconfig) -> Result<kube::Client, ApiClientError> {
    let servers = kubeconfig_servers(&kubeconfig);
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let servers = if servers.is_empty() { vec![config.cluster_url.to_string()] } else { servers };
    let namespace = config.default_namespace.clone();
    Ok(Failover::new(&config, &servers)?.into_client(namespace))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::AtomicU32;

    use http_body_util::Full;
    use hyper::body::Incoming;
    use tokio::task::JoinSet;

    use super::*;

    /// A local HTTP server answering every request with `status` and `body`, counting them;
    /// dropping it closes the listener and every connection.
    struct TestServer {
        url: String,
        hits: Arc<AtomicU32>,
        task: tokio::task::JoinHandle<()>,
    }

    impl TestServer {
        /// Closes the listener and every connection, as a killed server does.
        async fn kill(mut self) {
            self.task.abort();
            let _ = (&mut self.task).await;
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn serve(status: u16, body: &'static str) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicU32::new(0));
        let counted = hits.clone();
        let task = tokio::spawn(async move {
            // Connections live in this task: aborting it closes them all, as a killed server does.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let counted = counted.clone();
                let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let response = Response::builder()
                        .status(status)
                        .header("content-type", "text/plain")
                        .body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
                        .unwrap();
                    async move { Ok::<_, Infallible>(response) }
                });
                connections.spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        TestServer { url, hits, task }
    }

    /// A server that reads each request and closes the connection without answering (it died
    /// while handling it); counts the requests it read.
    async fn hang_up() -> TestServer {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicU32::new(0));
        let counted = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { continue };
                let mut buffer = [0u8; 4096];
                if matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                drop(stream);
            }
        });
        TestServer { url, hits, task }
    }

    /// A URL nothing listens on (a port just freed).
    fn closed_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }

    fn failover(urls: &[String]) -> Failover {
        let config = kube::Config::new(urls[0].parse().unwrap());
        Failover::new(&config, urls).unwrap()
    }

    async fn get(client: &kube::Client) -> Result<String, kube::Error> {
        client.request_text(Request::get("/version").body(Vec::new()).unwrap()).await
    }

    async fn post(client: &kube::Client) -> Result<String, kube::Error> {
        client.request_text(Request::post("/api/v1/namespaces").body(b"{}".to_vec()).unwrap()).await
    }

    #[tokio::test]
    async fn a_refused_connection_moves_the_request_to_the_next_server_and_stays_there() {
        let second = serve(200, "second").await;
        let urls = [closed_url(), second.url.clone()];
        let service = failover(&urls);
        let client = service.clone().into_client("default");
        assert_eq!(post(&client).await.unwrap(), "second", "a write that never reached the first server");
        assert_eq!(service.current_url(), second.url);
        assert_eq!(get(&client).await.unwrap(), "second");
        assert_eq!(second.hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_that_got_a_response_is_not_sent_again() {
        let first = serve(500, "broken").await;
        let second = serve(200, "second").await;
        let service = failover(&[first.url.clone(), second.url.clone()]);
        let client = service.clone().into_client("default");
        // kube's own retries cover 429/503/504 only; a 500 comes back as it is.
        let error = post(&client).await.unwrap_err();
        assert!(matches!(&error, kube::Error::Api(status) if status.code == 500), "{error:?}");
        assert!(get(&client).await.is_err());
        assert_eq!(first.hits.load(Ordering::SeqCst), 2);
        assert_eq!(second.hits.load(Ordering::SeqCst), 0);
        assert_eq!(service.current_url(), first.url);
    }

    #[tokio::test]
    async fn a_server_that_dies_is_replaced_by_the_next() {
        let first = serve(200, "first").await;
        let second = serve(200, "second").await;
        let service = failover(&[first.url.clone(), second.url.clone()]);
        let client = service.clone().into_client("default");
        assert_eq!(get(&client).await.unwrap(), "first");
        first.kill().await;
        // The pooled connection to the first server is gone; so is its listener.
        assert_eq!(get(&client).await.unwrap(), "second");
        assert_eq!(post(&client).await.unwrap(), "second");
        assert_eq!(service.current_url(), second.url);
    }

    #[tokio::test]
    async fn a_write_the_server_read_is_not_sent_again_but_a_read_is() {
        let first = hang_up().await;
        let second = serve(200, "second").await;
        let service = failover(&[first.url.clone(), second.url.clone()]);
        let client = service.clone().into_client("default");
        // The first server may have applied the write before it died: only the caller may decide
        // to send it again.
        let error = post(&client).await.unwrap_err();
        assert!(!connection_failed(&error), "{error:?}");
        assert_eq!((first.hits.load(Ordering::SeqCst), second.hits.load(Ordering::SeqCst)), (1, 0));
        assert_eq!(service.current_url(), first.url);
        // A read changes nothing: it goes on to the next server.
        assert_eq!(get(&client).await.unwrap(), "second");
        assert_eq!((first.hits.load(Ordering::SeqCst), second.hits.load(Ordering::SeqCst)), (2, 1));
        assert_eq!(service.current_url(), second.url);
    }

    #[tokio::test]
    async fn when_every_server_is_down_the_connection_error_comes_back() {
        let urls = [closed_url(), closed_url()];
        let client = failover(&urls).into_client("default");
        let error = get(&client).await.unwrap_err();
        assert!(connection_failed(&error), "{error:?}");
    }

    #[test]
    fn no_servers_is_an_error() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        assert!(matches!(Failover::new(&config, &[]), Err(ApiClientError::NoServers)));
    }

    fn kubeconfig(cluster: serde_json::Value) -> Kubeconfig {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "other", "cluster": {"server": "https://other:1"}},
                {"name": "wharf", "cluster": cluster},
            ],
            "users": [{"name": "admin", "user": {"token": "t"}}],
            "contexts": [{"name": "wharf", "context": {"cluster": "wharf", "user": "admin"}}],
            "current-context": "wharf",
        }))
        .unwrap()
    }

    #[test]
    fn kubeconfigs_list_their_servers_in_the_extension_else_in_server() {
        let listed = kubeconfig(serde_json::json!({
            "server": "https://a:6443",
            "extensions": [{"name": SERVERS_EXTENSION, "extension": {"servers": ["https://a:6443", "https://b:6443"]}}],
        }));
        assert_eq!(kubeconfig_servers(&listed), ["https://a:6443", "https://b:6443"]);
        let stale = kubeconfig(serde_json::json!({
            "server": "https://c:6443",
            "extensions": [{"name": SERVERS_EXTENSION, "extension": {"servers": ["https://a:6443"]}}],
        }));
        assert_eq!(kubeconfig_servers(&stale), ["https://a:6443", "https://c:6443"]);
        let plain = kubeconfig(serde_json::json!({"server": "https://a:6443"}));
        assert_eq!(kubeconfig_servers(&plain), ["https://a:6443"]);
        let written = kubeconfig(serde_json::json!({
            "server": "https://a:6443",
            "extensions": [servers_extension(&["https://a:6443".into(), "https://b:6443".into()])],
        }));
        assert_eq!(kubeconfig_servers(&written), ["https://a:6443", "https://b:6443"]);
    }
}
