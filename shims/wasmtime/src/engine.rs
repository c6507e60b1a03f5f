//! The one wasmtime `Engine` of a shim: pooling allocator sized from the config, epoch
//! interruption driven by a background ticker thread.
//!
//! Pool sizing for `N = max_instances` guests and `M = max_memory_bytes` (defaults 4096, 1 GiB):
//!
//! | pool                 | slots | each                      | address space (N=4096) |
//! |----------------------|-------|---------------------------|------------------------|
//! | linear memories      | N     | M + 32 MiB guard          | ~4.1 TiB               |
//! | async (fiber) stacks | N     | 2 MiB + guard page        | ~8 GiB                 |
//! | core instances       | 4N    | 1 MiB of `VMContext`      | 16 GiB                 |
//! | component instances  | N     | 1 MiB                     | 4 GiB                  |
//! | tables               | 2N    | 20 000 elements           | ~1.3 GiB               |
//!
//! These are reservations, not RAM: an idle guest costs only the pages it touched (a small
//! guest sleeping in `poll_oneoff` is well under 1 MiB, mostly its linear memory and the
//! touched part of its fiber stack), so thousands fit in a few GiB. The memory reservation is
//! capped at `M` instead of wasmtime's 4 GiB default so the pool fits many times in the 128 TiB
//! of a 64-bit address space; the cost is explicit bounds checks in compiled code. Core
//! instances and tables get several slots per guest because a component holds several core
//! instances (main module, adapter, shims).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wharf_shim::ShimError;

use crate::WasmtimeConfig;

/// Guard region after each linear memory (wasmtime's 64-bit default).
const MEMORY_GUARD_BYTES: u64 = 32 << 20;

/// Builds the engine described in the module docs.
pub(crate) fn build(config: &WasmtimeConfig) -> Result<Engine, ShimError> {
    let n = config.max_instances.max(1);
    let max_memory = usize::try_from(config.max_memory_bytes)
        .map_err(|_| ShimError::Runtime("max_memory_bytes does not fit this host".into()))?;

    let mut pool = PoolingAllocationConfig::new();
    pool.total_memories(n)
        .total_stacks(n)
        .total_core_instances(n.saturating_mul(4))
        .total_component_instances(n)
        .total_tables(n.saturating_mul(2))
        .max_memory_size(max_memory);

    let mut wasm = Config::new();
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_reservation(config.max_memory_bytes)
        .memory_guard_size(MEMORY_GUARD_BYTES)
        .epoch_interruption(true)
        .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
    Engine::new(&wasm).map_err(|e| ShimError::Runtime(format!("wasmtime engine: {e:#}")))
}

/// Increments the engine's epoch every tick on a thread of its own, until dropped.
pub(crate) struct EpochTicker {
    stopped: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, tick: Duration) -> Result<Self, ShimError> {
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        std::thread::Builder::new()
            .name("wasmtime-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| ShimError::Runtime(format!("epoch ticker thread: {e}")))?;
        Ok(EpochTicker { stopped })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}
