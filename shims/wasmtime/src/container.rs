//! A running guest: a tokio task (no thread of its own) and the `Container` handle the agent
//! holds to wait for it, stop it and read its resource use.
//!
//! Wasm guests receive no signals, so `stop` does not wait for the grace period: it cancels
//! the guest at once and reports `Killed { signal: 9 }` (what a kubelet reports for a SIGKILL,
//! exit code 137). A computing guest is cancelled at its next epoch tick, a waiting one
//! (sleep, I/O) immediately. Dropping every handle to a container stops it the same way.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wharf_shim::{BoxFuture, Container, Exit, Stats};

use crate::artifact::Prepared;
use crate::component::{self, ComponentHost};
use crate::engine::EpochTicker;
use crate::exit;
use crate::limits::{self, MemoryLimiter, Metered, Usage};
use crate::module::{self, ModuleHost};

/// Signal number reported for a stopped guest.
pub const STOP_SIGNAL: i32 = 9;

pub(crate) struct WasmContainer {
    id: String,
    exit: watch::Receiver<Option<Exit>>,
    stop: watch::Sender<bool>,
    usage: Arc<Usage>,
}

/// Everything a guest task needs.
pub(crate) struct Guest {
    pub(crate) engine: Engine,
    pub(crate) prepared: Prepared,
    pub(crate) wasi: WasiCtxBuilder,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) usage: Arc<Usage>,
    pub(crate) cpu_millicores: Option<u64>,
    pub(crate) tick: Duration,
    /// Keeps the epoch ticking while the guest runs, even if the shim is gone.
    pub(crate) ticker: Arc<EpochTicker>,
}

impl WasmContainer {
    /// Starts `guest` as a task on the current tokio runtime.
    pub(crate) fn spawn(id: String, guest: Guest) -> Arc<Self> {
        let (exit_tx, exit) = watch::channel(None);
        let (stop, mut stop_rx) = watch::channel(false);
        let usage = guest.usage.clone();
        let task_id = id.clone();
        tokio::spawn(async move {
            let usage = guest.usage.clone();
            let run = Metered::new(guest.run(), usage.clone());
            let ended = tokio::select! {
                biased;
                // Stop was asked for, or every handle dropped (the sender is gone).
                _ = stop_rx.wait_for(|stop| *stop) => Exit::Killed { signal: STOP_SIGNAL },
                ended = run => ended,
            };
            usage.release_memory();
            tracing::debug!(container = %task_id, exit = ?ended, "wasm guest ended");
            exit_tx.send_replace(Some(ended));
        });
        Arc::new(WasmContainer { id, exit, stop, usage })
    }
}

impl Guest {
    async fn run(self) -> Exit {
        let Guest { engine, prepared, wasi, limiter, usage, cpu_millicores, tick, ticker } = self;
        let (outcome, hit_limit) = match prepared {
            Prepared::Module(pre) => {
                let host = ModuleHost::new(wasi, limiter);
                let mut store = limits::new_store(&engine, host, ModuleHost::limiter, usage, cpu_millicores, tick);
                let outcome = module::run(&pre, &mut store).await;
                (outcome, store.data_mut().limiter().hit_limit())
            }
            Prepared::Command(pre) => {
                let host = ComponentHost::new(wasi, limiter);
                let mut store: Store<ComponentHost> =
                    limits::new_store(&engine, host, ComponentHost::limiter, usage, cpu_millicores, tick);
                let outcome = component::run(&pre, &mut store).await;
                (outcome, store.data_mut().limiter().hit_limit())
            }
        };
        drop(ticker);
        exit::classify(outcome, hit_limit)
    }
}

impl Container for WasmContainer {
    fn id(&self) -> &str {
        &self.id
    }

    fn wait(&self) -> BoxFuture<'_, Exit> {
        let mut exit = self.exit.clone();
        Box::pin(async move {
            match exit.wait_for(Option::is_some).await {
                Ok(ended) => ended.clone().expect("waited for Some"),
                // The task died without reporting (it panicked).
                Err(_) => Exit::Failed { code: exit::ERROR_EXIT_CODE, message: "the wasm guest task panicked".into() },
            }
        })
    }

    fn stop(&self, _grace: Duration) -> BoxFuture<'_, Exit> {
        self.stop.send_replace(true);
        self.wait()
    }

    fn stats(&self) -> Stats {
        Stats { memory_bytes: self.usage.memory_bytes(), cpu_nanos: self.usage.cpu_nanos() }
    }
}
