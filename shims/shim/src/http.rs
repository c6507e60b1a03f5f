//! Serving `wasi:http/proxy` components: what the node's HTTP gateway needs from a shim.
//!
//! The gateway calls [`ProxyHandler::prepare`] with a pulled artifact (compiled once per digest
//! through the shim's on-disk cache, then kept linked in memory), then [`ProxyHandler::handle`]
//! once per request: a fresh instance in a store of its own, under the request's
//! [`RequestLimits`]. A trap or a timeout fails that one request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

use crate::{BoxFuture, LogSink};

/// Errors carried by request and response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body streamed between the gateway and the guest.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// What one request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Linear memory the instance may hold, over all its memories (`None`: the shim's slot size).
    pub memory_bytes: Option<u64>,
    /// Wall time from instantiation until the response body is complete; a busy guest is
    /// interrupted at the next epoch tick past it.
    pub timeout: Duration,
}

/// How [`ProxyHandler::prepare`] found the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warmth {
    /// Already linked in memory.
    Warm,
    /// Loaded from the on-disk compiled-code cache.
    Cached,
    /// Compiled now.
    Compiled,
}

/// Why a request was not answered by the guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The artifact is not a component of the `wasi:http/proxy` world (or not valid Wasm).
    #[error("not a wasi:http/proxy component: {0}")]
    NotProxy(String),
    /// `handle` was called for a digest that was never prepared.
    #[error("component {0} is not prepared")]
    NotPrepared(String),
    /// The guest trapped (including running out of memory) or failed to instantiate.
    #[error("the function failed: {0}")]
    Trap(String),
    /// The guest did not answer (or finish its body) within the timeout.
    #[error("the function did not answer within {0:?}")]
    Timeout(Duration),
    /// The shim could not run the request (I/O, the instance pool is full).
    #[error("{0}")]
    Runtime(String),
}

impl HttpError {
    /// The status the gateway answers with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Timeout(_) => 504,
            HttpError::Runtime(_) => 503,
            HttpError::NotProxy(_) | HttpError::NotPrepared(_) | HttpError::Trap(_) => 500,
        }
    }
}

/// One request for a prepared component.
pub struct ProxyRequest {
    /// The digest given to [`ProxyHandler::prepare`].
    pub digest: String,
    pub limits: RequestLimits,
    /// Where the guest's stdout and stderr go.
    pub log: Arc<dyn LogSink>,
    pub request: http::Request<Body>,
}

/// Serves `wasi:http/proxy` components, one instance per request.
pub trait ProxyHandler: Send + Sync {
    /// Compiles (or loads from the disk cache) and links the component at `artifact` under
    /// `digest`. Concurrent calls for one digest share one compilation.
    fn prepare(&self, artifact: PathBuf, digest: String) -> BoxFuture<'_, Result<Warmth, HttpError>>;

    /// Runs one request to completion of its response head; the body streams after.
    fn handle(&self, request: ProxyRequest) -> BoxFuture<'static, Result<http::Response<Body>, HttpError>>;
}
