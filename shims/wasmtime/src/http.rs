//! `WasmtimeHttp`: serves `wasi:http/proxy` components for the node's gateway, one instance per
//! request from a linked `ProxyPre` kept warm per digest.
//!
//! It has an engine of its own, built like the container shim's (pooling allocator sized from
//! the same [`WasmtimeConfig`], epoch interruption, its own ticker), so requests cannot use up
//! the pool the node's pods start in, and shares the on-disk compiled-code cache directory
//! with it. Each request gets a `Store` with the memory limiter and an epoch deadline that
//! yields every tick, so a looping guest shares its worker thread and is dropped when its
//! timeout passes. Outgoing HTTP from a guest is refused (`HTTP-request-denied`); the guest
//! sees no files, no environment and no sockets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::OnceCell;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};
use wharf_shim::http::{Body, BoxError, HttpError, ProxyHandler, ProxyRequest, Warmth};
use wharf_shim::{BoxFuture, ShimError, Stream};

use crate::WasmtimeConfig;
use crate::cache::{Compiled, DiskCache, Origin};
use crate::engine::{self, EpochTicker};
use crate::limits::{self, MemoryLimiter, Usage};
use crate::output::{Budget, LogOutput};

/// Serves `wasi:http/proxy` components; see the module docs.
#[derive(Clone)]
pub struct WasmtimeHttp {
    inner: Arc<Inner>,
}

/// The linked component of a digest once prepared, and how it was found.
type WarmCell = OnceCell<(ProxyPre<HttpHost>, Warmth)>;

struct Inner {
    engine: Engine,
    disk: DiskCache,
    linker: Linker<HttpHost>,
    /// Per digest; the cell makes concurrent first requests share one compilation.
    warm: Mutex<HashMap<String, Arc<WarmCell>>>,
    max_memory_bytes: u64,
    epoch_tick: Duration,
    log_bytes_per_sec: u64,
    _ticker: EpochTicker,
}

impl WasmtimeHttp {
    /// Builds the engine and its pool and starts its epoch ticker; compiled code goes to
    /// `config.cache_dir`.
    pub fn new(config: &WasmtimeConfig) -> Result<Self, ShimError> {
        let engine = engine::build(config)?;
        let disk = DiskCache::new(&config.cache_dir, &engine)
            .map_err(|e| ShimError::Runtime(format!("compiled-code cache {}: {e}", config.cache_dir.display())))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi_http::p2::add_to_linker_async(&mut linker)
            .map_err(|e| ShimError::Runtime(format!("wasi:http linker: {e:#}")))?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)?;
        Ok(WasmtimeHttp {
            inner: Arc::new(Inner {
                engine,
                disk,
                linker,
                warm: Mutex::default(),
                max_memory_bytes: config.max_memory_bytes,
                epoch_tick: config.epoch_tick,
                log_bytes_per_sec: config.log_bytes_per_sec,
                _ticker: ticker,
            }),
        })
    }

    async fn prepare_artifact(&self, artifact: PathBuf, digest: String) -> Result<Warmth, HttpError> {
        let cell = self.inner.warm.lock().expect("warm lock").entry(digest.clone()).or_default().clone();
        if cell.initialized() {
            return Ok(Warmth::Warm);
        }
        let (_, warmth) = cell
            .get_or_try_init(|| {
                let inner = self.inner.clone();
                async move {
                    tokio::task::spawn_blocking(move || inner.load_or_compile(&digest, &artifact))
                        .await
                        .map_err(|e| HttpError::Runtime(format!("preparing the component: {e}")))?
                }
            })
            .await?;
        Ok(*warmth)
    }

    async fn serve(inner: Arc<Inner>, request: ProxyRequest) -> Result<http::Response<Body>, HttpError> {
        let ProxyRequest { digest, limits, log, request } = request;
        let pre = inner
            .warm
            .lock()
            .expect("warm lock")
            .get(&digest)
            .and_then(|cell| cell.get().map(|(pre, _)| pre.clone()))
            .ok_or_else(|| HttpError::NotPrepared(digest.clone()))?;
        let budget = Budget::new(inner.log_bytes_per_sec);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(LogOutput::new(log.clone(), Stream::Stdout, budget.clone())).stderr(LogOutput::new(
            log,
            Stream::Stderr,
            budget,
        ));
        let usage = Usage::new();
        let host = HttpHost {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: DenyOutgoing,
            limiter: MemoryLimiter::new(limits.memory_bytes, inner.max_memory_bytes, usage.clone()),
        };
        let mut store = limits::new_store(&inner.engine, host, HttpHost::limiter, usage, None, inner.epoch_tick);
        let runtime_error = |e: wasmtime::Error| HttpError::Runtime(format!("{e:#}"));
        let request =
            request.map(|body| body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string()))));
        let incoming = store.data_mut().http().new_incoming_request(Scheme::Http, request).map_err(runtime_error)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let outparam = store.data_mut().http().new_response_outparam(sender).map_err(runtime_error)?;

        let deadline = tokio::time::Instant::now() + limits.timeout;
        // The guest runs on a task of its own: it may go on writing the body after the head is
        // sent. At the deadline the task's future, and so the store, is dropped.
        let mut task = tokio::spawn(tokio::time::timeout_at(deadline, async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy.wasi_http_incoming_handler().call_handle(&mut store, incoming, outparam).await
        }));
        let mut receiver = receiver;
        let answer = tokio::select! {
            // First: a guest that answered and then ended has both ready.
            biased;
            answer = &mut receiver => answer,
            _ = tokio::time::sleep_until(deadline) => {
                task.abort();
                return Err(HttpError::Timeout(limits.timeout));
            }
            // The guest ended before it answered: it trapped or never set a response.
            ended = &mut task => match receiver.try_recv() {
                Ok(answer) => Ok(answer),
                Err(_) => return Err(match ended {
                    Ok(Ok(Ok(()))) => HttpError::Trap("the guest returned without a response".into()),
                    Ok(Ok(Err(e))) => HttpError::Trap(describe(&e)),
                    Ok(Err(_)) => HttpError::Timeout(limits.timeout),
                    Err(e) => HttpError::Runtime(format!("the request task failed: {e}")),
                }),
            },
        };
        match answer {
            Ok(Ok(response)) => Ok(response.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync())),
            Ok(Err(code)) => Err(HttpError::Trap(format!("the guest answered with error {code:?}"))),
            Err(_) => Err(match task.await {
                Ok(Ok(Err(e))) => HttpError::Trap(describe(&e)),
                Ok(Err(_)) => HttpError::Timeout(limits.timeout),
                _ => HttpError::Trap("the guest ended without a response".into()),
            }),
        }
    }
}

impl Inner {
    fn load_or_compile(&self, digest: &str, path: &Path) -> Result<(ProxyPre<HttpHost>, Warmth), HttpError> {
        let (compiled, origin) = self.disk.load_or_compile(&self.engine, digest, path).map_err(|e| match e {
            ShimError::InvalidArtifact(message) => HttpError::NotProxy(message),
            other => HttpError::Runtime(other.to_string()),
        })?;
        let warmth = if origin == Origin::Disk { Warmth::Cached } else { Warmth::Compiled };
        let Compiled::Component(component) = compiled else {
            return Err(HttpError::NotProxy("a core module, not a component".into()));
        };
        let pre = self.linker.instantiate_pre(&component).map_err(|e| HttpError::NotProxy(format!("{e:#}")))?;
        let pre = ProxyPre::new(pre).map_err(|e| HttpError::NotProxy(format!("{e:#}")))?;
        Ok((pre, warmth))
    }
}

impl ProxyHandler for WasmtimeHttp {
    fn prepare(&self, artifact: PathBuf, digest: String) -> BoxFuture<'_, Result<Warmth, HttpError>> {
        Box::pin(self.prepare_artifact(artifact, digest))
    }

    fn handle(&self, request: ProxyRequest) -> BoxFuture<'static, Result<http::Response<Body>, HttpError>> {
        Box::pin(Self::serve(self.inner.clone(), request))
    }
}

/// A trap's message, or the error chain of another failure.
fn describe(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<Trap>() {
        Some(trap) => format!("trap: {trap}"),
        None => format!("{error:#}"),
    }
}

/// Store data of one request.
struct HttpHost {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: DenyOutgoing,
    limiter: MemoryLimiter,
}

impl HttpHost {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

impl WasiView for HttpHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HttpHost {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// Functions make no outgoing HTTP requests.
struct DenyOutgoing;

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<(), wasmtime_wasi_http::Error>> + Send>,
)>;

impl WasiHttpHooks for DenyOutgoing {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Checks that `bytes` is a component exporting `wasi:http/incoming-handler` (the
/// `wasi:http/proxy` world's export), without compiling it; the error says what it is instead.
pub fn check_proxy_component(bytes: &[u8]) -> Result<(), String> {
    if !wasmparser::Parser::is_component(bytes) {
        return Err(if wasmparser::Parser::is_core_wasm(bytes) {
            "a core WebAssembly module, not a component".into()
        } else {
            "not a WebAssembly binary".into()
        });
    }
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("invalid component: {e}"))?;
        if let wasmparser::Payload::ComponentExportSection(exports) = payload {
            for export in exports {
                let export = export.map_err(|e| format!("invalid component: {e}"))?;
                if export.name.name.starts_with("wasi:http/incoming-handler@") {
                    return Ok(());
                }
            }
        }
    }
    Err("a component that does not export wasi:http/incoming-handler".into())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use wharf_shim::MemorySink;
    use wharf_shim::http::RequestLimits;

    use super::*;

    /// A WAT component of the repository's test fixtures, written to `dir`.
    fn fixture(dir: &Path, name: &str) -> PathBuf {
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(format!("{name}.wat"));
        let bytes = wat::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert_eq!(check_proxy_component(&bytes), Ok(()));
        let path = dir.join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn request(digest: &str, timeout: Duration) -> ProxyRequest {
        let body = http_body_util::Empty::<bytes::Bytes>::new().map_err(|e| match e {}).boxed_unsync();
        ProxyRequest {
            digest: digest.into(),
            limits: RequestLimits { memory_bytes: Some(16 << 20), timeout },
            log: Arc::new(MemorySink::default()),
            request: http::Request::get("http://function/x").body(body).unwrap(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trap_and_a_timeout_fail_their_own_request() {
        let dir = tempfile::tempdir().unwrap();
        let config = WasmtimeConfig { max_instances: 8, ..WasmtimeConfig::new(dir.path().join("cache")) };
        let http = WasmtimeHttp::new(&config).unwrap();
        let trap = fixture(dir.path(), "http-trap");
        let looping = fixture(dir.path(), "http-loop");
        let (trap_digest, loop_digest) = ("sha256:0000000000000000a1", "sha256:0000000000000000b2");
        assert!(matches!(
            http.handle(request(trap_digest, Duration::from_secs(5))).await,
            Err(HttpError::NotPrepared(_))
        ));

        // Concurrent first preparations share one compilation; the next is warm.
        let (a, b) = tokio::join!(
            http.prepare(trap.clone(), trap_digest.into()),
            http.prepare(trap.clone(), trap_digest.into())
        );
        assert_eq!((a.unwrap(), b.unwrap()), (Warmth::Compiled, Warmth::Compiled));
        assert_eq!(http.prepare(trap, trap_digest.into()).await.unwrap(), Warmth::Warm);
        assert_eq!(http.prepare(looping, loop_digest.into()).await.unwrap(), Warmth::Compiled);

        let started = Instant::now();
        let (trapped, timed_out) = tokio::join!(
            http.handle(request(trap_digest, Duration::from_secs(5))),
            http.handle(request(loop_digest, Duration::from_millis(300)))
        );
        let trapped = trapped.unwrap_err();
        assert!(matches!(&trapped, HttpError::Trap(m) if m.contains("unreachable")), "{trapped}");
        assert_eq!(trapped.status(), 500);
        let timed_out = timed_out.unwrap_err();
        assert_eq!(timed_out, HttpError::Timeout(Duration::from_millis(300)));
        assert_eq!(timed_out.status(), 504);
        println!("trap and timeout answered in {:?}", started.elapsed());

        // The pool slots came back: many more requests still run.
        for _ in 0..20 {
            assert!(matches!(http.handle(request(trap_digest, Duration::from_secs(5))).await, Err(HttpError::Trap(_))));
        }

        // A second shim on the same cache loads the compiled code instead of compiling.
        let again = WasmtimeHttp::new(&config).unwrap();
        let path = dir.path().join("http-trap.wasm");
        assert_eq!(again.prepare(path, trap_digest.into()).await.unwrap(), Warmth::Cached);
    }

    #[test]
    fn only_proxy_components_pass_the_check() {
        let module = wat::parse_str("(module)").unwrap();
        assert!(check_proxy_component(&module).unwrap_err().contains("core WebAssembly module"));
        let command = wat::parse_str("(component)").unwrap();
        assert!(check_proxy_component(&command).unwrap_err().contains("does not export"));
        assert!(check_proxy_component(b"hello").unwrap_err().contains("not a WebAssembly"));
    }
}
