//! The shim's settings: where compiled code is cached and how large the instance pool is.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of a [`WasmtimeShim`](crate::WasmtimeShim). Build with [`WasmtimeConfig::new`] and
/// adjust fields; the defaults suit a node running thousands of small guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmtimeConfig {
    /// Directory of compiled code (`<digest>-<engine hash>.cwasm`). Created if missing; it must
    /// be private to the agent, since its files are loaded as trusted native code.
    pub cache_dir: PathBuf,
    /// Capacity of the pooling allocator: guests that can exist at once. Each takes one linear
    /// memory slot and one async stack; a start beyond it fails. Default 4096.
    pub max_instances: u32,
    /// Largest linear memory any guest may have, and the virtual reservation of each memory
    /// slot (so the pool reserves about `max_instances * (max_memory_bytes + 32 MiB guard)` of
    /// address space, not of RAM). A container's memory limit above this is capped to it.
    /// Default 1 GiB.
    pub max_memory_bytes: u64,
    /// Period of the epoch ticker: how often running guests yield to the async runtime and
    /// the CPU limit is checked. Default 10 ms.
    pub epoch_tick: Duration,
    /// Rate at which one container may write stdout + stderr (bytes per second, with a burst
    /// of one second's worth); a faster guest is paused, not dropped. 0 disables the limit.
    /// Default 8 MiB/s.
    pub log_bytes_per_sec: u64,
}

impl WasmtimeConfig {
    /// The defaults, caching compiled code in `cache_dir`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        WasmtimeConfig {
            cache_dir: cache_dir.into(),
            max_instances: 4096,
            max_memory_bytes: 1 << 30,
            epoch_tick: Duration::from_millis(10),
            log_bytes_per_sec: 8 << 20,
        }
    }
}
