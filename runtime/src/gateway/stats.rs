//! Per-function counters of the node's gateway: requests in flight, requests, errors (answers
//! of 5xx, and requests refused for overload), cold starts (a request that had to pull, load or
//! compile the function's code on this node) and a latency histogram (request arrival to
//! response head). The load reporter ([`super::load`]) and `/metrics` read [`Stats::snapshot`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets; a last bucket takes the rest.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// One function's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionStats {
    pub namespace: String,
    pub name: String,
    pub in_flight: u64,
    pub requests: u64,
    pub errors: u64,
    pub cold_starts: u64,
    /// Requests per latency bucket, not cumulative: `latency_counts[i]` took at most
    /// `LATENCY_BUCKETS[i]` seconds and more than the bucket before; the last entry counts
    /// those slower than every bound (`len() == LATENCY_BUCKETS.len() + 1`).
    pub latency_counts: Vec<u64>,
    /// Sum of all latencies, in seconds.
    pub latency_sum_seconds: f64,
}

#[derive(Default)]
struct Counters {
    in_flight: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    cold_starts: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_nanos: AtomicU64,
}

/// `(namespace, name)`.
type FunctionKey = (String, String);

/// The gateway's counters, shared (cheap to clone).
#[derive(Clone, Default)]
pub struct Stats {
    functions: Arc<Mutex<HashMap<FunctionKey, Arc<Counters>>>>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let functions = self.functions.lock().unwrap_or_else(|e| e.into_inner()).len();
        f.debug_struct("Stats").field("functions", &functions).finish()
    }
}

impl Stats {
    fn counters(&self, namespace: &str, name: &str) -> Arc<Counters> {
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = functions.get(&(namespace.to_string(), name.to_string())) {
            return c.clone();
        }
        functions.entry((namespace.to_string(), name.to_string())).or_default().clone()
    }

    /// Counts a request to `namespace/name` as arrived and in flight until the returned guard
    /// is finished or dropped (a dropped guard counts as an error).
    pub fn begin(&self, namespace: &str, name: &str) -> InFlight {
        let counters = self.counters(namespace, name);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { counters, started: std::time::Instant::now(), finished: false }
    }

    /// Stops counting a function (its route went away).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.functions.lock().unwrap_or_else(|e| e.into_inner()).remove(&(namespace.to_string(), name.to_string()));
    }

    /// Every function's counters, sorted by namespace and name.
    pub fn snapshot(&self) -> Vec<FunctionStats> {
        let functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<FunctionStats> = functions
            .iter()
            .map(|((namespace, name), c)| FunctionStats {
                namespace: namespace.clone(),
                name: name.clone(),
                in_flight: c.in_flight.load(Ordering::Relaxed),
                requests: c.requests.load(Ordering::Relaxed),
                errors: c.errors.load(Ordering::Relaxed),
                cold_starts: c.cold_starts.load(Ordering::Relaxed),
                latency_counts: c.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
                latency_sum_seconds: c.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            })
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }
}

/// A request in flight; see [`Stats::begin`].
pub struct InFlight {
    counters: Arc<Counters>,
    started: std::time::Instant,
    finished: bool,
}

impl InFlight {
    /// This request had to pull, load or compile the function's code.
    pub fn cold_start(&self) {
        self.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
    }

    /// The response head is out with `status`.
    pub fn finish(mut self, status: u16) {
        self.record(status >= 500 || status == 429);
    }

    fn record(&mut self, error: bool) {
        if self.finished {
            return;
        }
        self.finished = true;
        let c = &self.counters;
        c.in_flight.fetch_sub(1, Ordering::Relaxed);
        if error {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        let elapsed = self.started.elapsed();
        c.buckets[bucket(elapsed)].fetch_add(1, Ordering::Relaxed);
        c.latency_sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.record(true);
    }
}

fn bucket(latency: Duration) -> usize {
    let seconds = latency.as_secs_f64();
    LATENCY_BUCKETS.iter().position(|&bound| seconds <= bound).unwrap_or(LATENCY_BUCKETS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_errors_and_latency() {
        let stats = Stats::default();
        let a = stats.begin("default", "hello");
        let b = stats.begin("default", "hello");
        assert_eq!(stats.snapshot()[0].in_flight, 2);
        a.cold_start();
        a.finish(200);
        b.finish(504);
        drop(stats.begin("default", "hello"));
        let s = &stats.snapshot()[0];
        assert_eq!((s.in_flight, s.requests, s.errors, s.cold_starts), (0, 3, 2, 1));
        assert_eq!(s.latency_counts.iter().sum::<u64>(), 3);
        assert_eq!(s.latency_counts.len(), LATENCY_BUCKETS.len() + 1);
    }

    #[test]
    fn latency_buckets() {
        assert_eq!(bucket(Duration::from_micros(100)), 0);
        assert_eq!(bucket(Duration::from_micros(500)), 0);
        assert_eq!(bucket(Duration::from_micros(501)), 1);
        assert_eq!(bucket(Duration::from_secs(60)), LATENCY_BUCKETS.len());
    }
}
