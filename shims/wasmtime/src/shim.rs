//! `WasmtimeShim`: the `Shim` the agent starts Wasm containers with.

use std::sync::Arc;

use wasmtime::Engine;
use wharf_shim::{BoxFuture, Container, ContainerSpec, Shim, ShimError};

use crate::artifact::Artifacts;
use crate::container::{Guest, WasmContainer};
use crate::engine::{self, EpochTicker};
use crate::limits::{MemoryLimiter, Usage};
use crate::{WasmtimeConfig, wasi};

/// Runs WebAssembly containers in-process: one engine, one compiled-code cache, guests as
/// tokio tasks; a guest given a network namespace (`ContainerSpec.network`) runs on a thread of
/// its own inside it. `start` must be awaited on a tokio runtime (the other guests run on it).
pub struct WasmtimeShim {
    config: WasmtimeConfig,
    engine: Engine,
    artifacts: Arc<Artifacts>,
    ticker: Arc<EpochTicker>,
}

impl WasmtimeShim {
    /// Builds the engine and its pool, opens (creating) the cache directory and starts the
    /// epoch ticker.
    pub fn new(config: WasmtimeConfig) -> Result<Self, ShimError> {
        let engine = engine::build(&config)?;
        let artifacts = Arc::new(Artifacts::new(engine.clone(), &config.cache_dir)?);
        let ticker = Arc::new(EpochTicker::start(engine.clone(), config.epoch_tick)?);
        Ok(WasmtimeShim { config, engine, artifacts, ticker })
    }

    /// Number of artifacts this shim compiled (not found warm in memory nor on disk).
    pub fn compilations(&self) -> u64 {
        self.artifacts.compilations()
    }

    /// Number of artifacts this shim loaded from the on-disk cache.
    pub fn disk_cache_loads(&self) -> u64 {
        self.artifacts.disk_loads()
    }

    async fn start_container(&self, spec: ContainerSpec) -> Result<Arc<dyn Container>, ShimError> {
        let prepared = self.artifacts.prepare(&spec).await?;
        let wasi = wasi::context(&spec, self.config.log_bytes_per_sec)?;
        let usage = Usage::new();
        let guest = Guest {
            engine: self.engine.clone(),
            prepared,
            wasi,
            limiter: MemoryLimiter::new(spec.memory_limit, self.config.max_memory_bytes, usage.clone()),
            usage,
            cpu_millicores: spec.cpu_limit_millis,
            tick: self.config.epoch_tick,
            ticker: self.ticker.clone(),
        };
        tracing::debug!(container = %spec.id, digest = %spec.digest, network = ?spec.network, "starting wasm guest");
        let container = match &spec.network {
            Some(netns) => WasmContainer::spawn_in_network(spec.id, guest, netns).await?,
            None => WasmContainer::spawn(spec.id, guest),
        };
        Ok(container)
    }
}

impl Shim for WasmtimeShim {
    fn name(&self) -> &'static str {
        "wasmtime"
    }

    fn start(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<Arc<dyn Container>, ShimError>> {
        Box::pin(self.start_container(spec))
    }
}
