//! The kubelet's restart back-off: 10 s doubling up to 5 minutes, reset after a container has
//! run cleanly for a while. The base is configurable so tests need not wait 10 s.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub max: Duration,
    /// A container that ran at least this long before exiting starts over at `base`.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self { base: Duration::from_secs(10), max: Duration::from_secs(300), reset_after: Duration::from_secs(600) }
    }
}

impl BackoffPolicy {
    pub fn with_base(base: Duration) -> Self {
        Self { base, max: base * 30, reset_after: base * 60 }
    }
}

/// Back-off state of one container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Consecutive failed runs counted towards the delay.
    failures: u32,
}

impl Backoff {
    /// Records an exit after a run of `ran` and returns how long to wait before restarting.
    pub fn next_delay(&mut self, policy: &BackoffPolicy, ran: Duration) -> Duration {
        if ran >= policy.reset_after {
            self.failures = 0;
        }
        let delay = policy.base.saturating_mul(1u32 << self.failures.min(16)).min(policy.max);
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_seconds_to_five_minutes() {
        let policy = BackoffPolicy::default();
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..7).map(|_| backoff.next_delay(&policy, Duration::ZERO).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn a_long_clean_run_resets_the_delay() {
        let policy = BackoffPolicy::default();
        let mut backoff = Backoff::default();
        backoff.next_delay(&policy, Duration::ZERO);
        backoff.next_delay(&policy, Duration::ZERO);
        assert_eq!(backoff.next_delay(&policy, Duration::from_secs(601)), Duration::from_secs(10));
    }

    #[test]
    fn the_base_scales_for_tests() {
        let policy = BackoffPolicy::with_base(Duration::from_millis(100));
        let mut backoff = Backoff::default();
        assert_eq!(backoff.next_delay(&policy, Duration::ZERO), Duration::from_millis(100));
        assert_eq!(backoff.next_delay(&policy, Duration::ZERO), Duration::from_millis(200));
    }
}
