//! A running guest and the `Container` handle the agent holds to wait for it, stop it and read
//! its resource use. A guest runs as a tokio task on the agent's runtime (no thread of its own),
//! unless it may use sockets: then it runs on an OS thread of its own that first joins the
//! pod's network namespace and drives the guest on a current-thread runtime, so every socket
//! the guest opens (and every blocking helper thread that runtime spawns) lives in the pod's
//! network. Both ways share the supervision below, so stop, exit status and logs are the same.
//!
//! Wasm guests receive no signals, so `stop` does not wait for the grace period: it cancels
//! the guest at once and reports `Killed { signal: 9 }` (what a kubelet reports for a SIGKILL,
//! exit code 137). A computing guest is cancelled at its next epoch tick, a waiting one
//! (sleep, I/O) immediately. Dropping every handle to a container stops it the same way.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wharf_shim::{BoxFuture, Container, Exit, ShimError, Stats};

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
        let (container, supervised) = Self::supervise(id, guest);
        tokio::spawn(supervised);
        container
    }

    /// Starts `guest` on a thread of its own that has joined the network namespace at `netns`
    /// (a namespace file such as a bind mount of `/proc/PID/ns/net`). Returns once the thread
    /// is in the namespace; joining it is what can fail.
    pub(crate) async fn spawn_in_network(id: String, guest: Guest, netns: &Path) -> Result<Arc<Self>, ShimError> {
        let (container, supervised) = Self::supervise(id, guest);
        let (joined_tx, joined) = tokio::sync::oneshot::channel();
        let netns = netns.to_path_buf();
        std::thread::Builder::new()
            .name("wasm-netns".into())
            .spawn(move || {
                let runtime = match join_network(&netns).and_then(|()| current_thread_runtime()) {
                    Ok(runtime) => runtime,
                    Err(e) => return drop(joined_tx.send(Err(e))),
                };
                let _ = joined_tx.send(Ok(()));
                runtime.block_on(supervised);
                // Blocking helpers (name lookups) may still run: leave them, the exit is out.
                runtime.shutdown_background();
            })
            .map_err(|e| ShimError::Runtime(format!("guest thread: {e}")))?;
        joined
            .await
            .map_err(|_| ShimError::Runtime("the guest thread ended before joining the pod network".into()))??;
        Ok(container)
    }

    /// The handle of `guest`, and the future that runs it to its end (or its stop) and
    /// publishes how it ended.
    fn supervise(id: String, guest: Guest) -> (Arc<Self>, impl Future<Output = ()> + Send + 'static) {
        let (exit_tx, exit) = watch::channel(None);
        let (stop, mut stop_rx) = watch::channel(false);
        let usage = guest.usage.clone();
        let task_id = id.clone();
        let supervised = async move {
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
        };
        (Arc::new(WasmContainer { id, exit, stop, usage }), supervised)
    }
}

/// Moves the calling thread into the network namespace at `netns`, for good.
fn join_network(netns: &Path) -> Result<(), ShimError> {
    let fail =
        |e: &dyn std::fmt::Display| ShimError::Runtime(format!("join network namespace {}: {e}", netns.display()));
    let file = std::fs::File::open(netns).map_err(|e| fail(&e))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| fail(&e))
}

/// The runtime a guest thread drives its guest on: timers (sleeps, epoch pauses) and I/O.
fn current_thread_runtime() -> Result<tokio::runtime::Runtime, ShimError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ShimError::Runtime(format!("guest thread runtime: {e}")))
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
