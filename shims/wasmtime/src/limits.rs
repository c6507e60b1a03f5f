//! What a guest may use and what it used: the memory limit (a `ResourceLimiter`), the CPU
//! limit (epoch callback), and the counters behind `Container::stats`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};

/// Resource use of one guest, shared between its task and its `Container` handle.
pub(crate) struct Usage {
    started: Instant,
    /// Bytes of linear memory the guest holds, across all its memories.
    memory_bytes: AtomicU64,
    /// Time spent in finished polls of the guest future.
    cpu_nanos: AtomicU64,
    /// Start of the poll in progress (nanoseconds since `started`), or `IDLE`.
    poll_started: AtomicU64,
}

const IDLE: u64 = u64::MAX;

impl Usage {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Usage {
            started: Instant::now(),
            memory_bytes: AtomicU64::new(0),
            cpu_nanos: AtomicU64::new(0),
            poll_started: AtomicU64::new(IDLE),
        })
    }

    pub(crate) fn memory_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed)
    }

    /// CPU time so far: the finished polls plus the one in progress.
    pub(crate) fn cpu_nanos(&self) -> u64 {
        let done = self.cpu_nanos.load(Ordering::Relaxed);
        match self.poll_started.load(Ordering::Relaxed) {
            IDLE => done,
            start => done + self.now().saturating_sub(start),
        }
    }

    /// Called once the guest has ended and its store is gone.
    pub(crate) fn release_memory(&self) {
        self.memory_bytes.store(0, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// How long a guest limited to `millicores` must pause to be back within its share, with
    /// a burst of one tick. `None` while it is within.
    fn throttle(&self, millicores: u64, tick: Duration) -> Option<Duration> {
        let millicores = u128::from(millicores.max(1));
        let now = u128::from(self.now());
        let used = u128::from(self.cpu_nanos());
        let allowed = now * millicores / 1000 + tick.as_nanos();
        (used > allowed).then(|| {
            let nanos = (used - allowed) * 1000 / millicores;
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        })
    }
}

/// Counts the time spent polling the guest future as the guest's CPU time. That covers its
/// Wasm code and the synchronous part of its host calls; awaiting (sleep, I/O) costs nothing.
pub(crate) struct Metered<F> {
    inner: Pin<Box<F>>,
    usage: Arc<Usage>,
}

impl<F: Future> Metered<F> {
    pub(crate) fn new(inner: F, usage: Arc<Usage>) -> Self {
        Metered { inner: Box::pin(inner), usage }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = self.usage.now();
        self.usage.poll_started.store(start, Ordering::Relaxed);
        let poll = self.inner.as_mut().poll(cx);
        let spent = self.usage.now().saturating_sub(start);
        self.usage.cpu_nanos.fetch_add(spent, Ordering::Relaxed);
        self.usage.poll_started.store(IDLE, Ordering::Relaxed);
        poll
    }
}

/// Enforces the memory limit and records memory use.
///
/// Not wasmtime's `StoreLimits`: the limit here is on the sum of all the guest's memories (a
/// component has several), and the shim must know whether a failed growth was the limit's
/// doing to report `OutOfMemory`, and how much memory the guest holds for `stats`.
pub(crate) struct MemoryLimiter {
    /// The container's limit, capped to the pool's slot size.
    limit: u64,
    usage: Arc<Usage>,
    total: u64,
    hit_limit: bool,
}

impl MemoryLimiter {
    /// `limit` is the container's (`None`: unlimited); `slot` the pool's per-memory maximum.
    pub(crate) fn new(limit: Option<u64>, slot: u64, usage: Arc<Usage>) -> Self {
        MemoryLimiter { limit: limit.map_or(slot, |l| l.min(slot)), usage, total: 0, hit_limit: false }
    }

    /// Whether a memory growth was refused because of the limit.
    pub(crate) fn hit_limit(&self) -> bool {
        self.hit_limit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Growth past the memory's own declared maximum fails in wasmtime anyway: plain Wasm
        // semantics, not the container's limit. Refusing it here keeps `total` exact, since
        // wasmtime performs every other approved growth.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let total = (self.total + desired as u64).saturating_sub(current as u64);
        if total > self.limit {
            self.hit_limit = true;
            return Ok(false);
        }
        self.total = total;
        self.usage.memory_bytes.store(total, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables are bounded by the pool's table slots.
        Ok(true)
    }
}

/// A store for one guest: the memory limiter installed, and an epoch deadline of one tick
/// whose callback yields to the async runtime (so a busy guest shares its worker thread and
/// can be stopped between ticks) and, for a guest with a CPU limit, pauses it while it is
/// ahead of its share.
pub(crate) fn new_store<T: Send + 'static>(
    engine: &Engine,
    data: T,
    limiter: fn(&mut T) -> &mut MemoryLimiter,
    usage: Arc<Usage>,
    cpu_millicores: Option<u64>,
    tick: Duration,
) -> Store<T> {
    let mut store = Store::new(engine, data);
    store.limiter(move |data| limiter(data) as &mut dyn ResourceLimiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(match cpu_millicores.and_then(|m| usage.throttle(m, tick)) {
            Some(pause) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))),
            None => UpdateDeadline::Yield(1),
        })
    });
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn limit_applies_to_all_memories_together() {
        let usage = Usage::new();
        let mut limiter = MemoryLimiter::new(Some(3 * MIB as u64), 1 << 30, usage.clone());
        assert!(limiter.memory_growing(0, 2 * MIB, None).unwrap());
        assert!(limiter.memory_growing(0, MIB, None).unwrap());
        assert_eq!(usage.memory_bytes(), 3 * MIB as u64);
        assert!(!limiter.hit_limit());
        assert!(!limiter.memory_growing(MIB, 2 * MIB, None).unwrap());
        assert!(limiter.hit_limit());
        assert_eq!(usage.memory_bytes(), 3 * MIB as u64);
    }

    #[test]
    fn declared_maximum_is_not_the_limit() {
        let mut limiter = MemoryLimiter::new(Some(64 * MIB as u64), 1 << 30, Usage::new());
        assert!(!limiter.memory_growing(MIB, 2 * MIB, Some(MIB)).unwrap());
        assert!(!limiter.hit_limit());
    }

    #[test]
    fn pool_slot_caps_the_limit() {
        let mut limiter = MemoryLimiter::new(None, 4 * MIB as u64, Usage::new());
        assert!(limiter.memory_growing(0, 4 * MIB, None).unwrap());
        assert!(!limiter.memory_growing(4 * MIB, 5 * MIB, None).unwrap());
        assert!(limiter.hit_limit());
    }

    #[test]
    fn throttle_pauses_a_guest_ahead_of_its_share() {
        let usage = Usage::new();
        let tick = Duration::from_millis(10);
        assert_eq!(usage.throttle(100, tick), None);
        // 50 ms of CPU at once: at 100 millicores that is 500 ms of wall time.
        usage.cpu_nanos.store(50_000_000, Ordering::Relaxed);
        let pause = usage.throttle(100, tick).unwrap();
        assert!(pause > Duration::from_millis(300) && pause <= Duration::from_millis(400), "{pause:?}");
        assert_eq!(usage.throttle(1000, Duration::from_millis(100)), None);
    }
}
