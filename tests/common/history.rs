//! A client-side history of writes for the reliability tests (tests/crash.rs, tests/overload.rs):
//! every request with its start and end time and outcome, and the checks etcd's robustness tests
//! make of such a history — acknowledged writes keep increasing, unique resourceVersions in
//! real-time order.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Create,
    Update,
    Delete,
}

impl OpKind {
    /// The watch event type the write causes.
    pub fn event_type(self) -> &'static str {
        match self {
            OpKind::Create => "ADDED",
            OpKind::Update => "MODIFIED",
            OpKind::Delete => "DELETED",
        }
    }
}

/// How a request ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A success reply carrying the object's new resourceVersion.
    Acked(i64),
    /// A definite failure (a 4xx Status): the write did not happen.
    Failed(u16),
    /// No answer (connection error, timeout) or a 5xx: the write may or may not have happened.
    Unknown(String),
}

/// One request of a history.
#[derive(Debug, Clone)]
pub struct Op {
    pub kind: OpKind,
    pub namespace: String,
    pub name: String,
    /// The `op` data key the write carried (for a delete, the one of the state it removed).
    pub id: String,
    /// Labels the object had after this write (for a delete, before it).
    pub labels: Vec<(String, String)>,
    pub start: Instant,
    pub end: Instant,
    pub outcome: Outcome,
}

impl Op {
    pub fn acked_rev(&self) -> Option<i64> {
        match self.outcome {
            Outcome::Acked(rev) => Some(rev),
            _ => None,
        }
    }
}

/// Kubernetes' classification of a client error: a Status below 500 is a definite refusal,
/// anything else (5xx, connection reset, timeout) leaves the outcome unknown.
pub fn classify(error: &kube::Error) -> Outcome {
    match error {
        kube::Error::Api(status) if status.code > 0 && status.code < 500 => Outcome::Failed(status.code),
        other => Outcome::Unknown(other.to_string()),
    }
}

/// Checks that acknowledged writes got unique resourceVersions and that they respect real
/// time: whenever one write's reply arrived before another's request was sent, the first has
/// the smaller resourceVersion (linearizability of the revision counter). Returns the number of
/// ordered pairs the check covered implicitly (acknowledged writes) or the first violation.
pub fn check_real_time_order(ops: &[Op]) -> Result<usize, String> {
    let mut acked: Vec<(&Op, i64)> = ops.iter().filter_map(|o| o.acked_rev().map(|r| (o, r))).collect();
    let mut revs: Vec<i64> = acked.iter().map(|(_, r)| *r).collect();
    revs.sort_unstable();
    if let Some(w) = revs.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("resourceVersion {} was acknowledged for two writes", w[0]));
    }
    // Sweep the writes by start time, keeping the largest revision among writes whose reply
    // came before it: that one must be smaller than the write's own.
    let mut by_end: Vec<(Instant, i64, &Op)> = acked.iter().map(|(o, r)| (o.end, *r, *o)).collect();
    by_end.sort_by_key(|(end, _, _)| *end);
    acked.sort_by_key(|(o, _)| o.start);
    let mut finished = 0;
    let mut max_before: Option<(i64, &Op)> = None;
    for (op, rev) in &acked {
        while finished < by_end.len() && by_end[finished].0 < op.start {
            let (_, r, o) = by_end[finished];
            if max_before.is_none_or(|(m, _)| r > m) {
                max_before = Some((r, o));
            }
            finished += 1;
        }
        if let Some((before, earlier)) = max_before
            && before >= *rev
        {
            return Err(format!(
                "{:?} {}/{} (resourceVersion {rev}) started after {:?} {}/{} was acknowledged with the larger \
                 resourceVersion {before}",
                op.kind, op.namespace, op.name, earlier.kind, earlier.namespace, earlier.name
            ));
        }
    }
    Ok(acked.len())
}

/// The `q` quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `p50 / p99 / max` of durations in milliseconds, for the tests' printed figures.
pub fn summary(durations: &mut [Duration]) -> String {
    durations.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
        ms(quantile(durations, 0.5)),
        ms(quantile(durations, 0.99)),
        ms(durations.last().copied().unwrap_or_default()),
        durations.len()
    )
}

/// A tiny deterministic generator (xorshift) for picking operations and objects.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The resourceVersion of a stored ConfigMap, as a number.
pub fn rev_of(cm: &k8s_openapi::api::core::v1::ConfigMap) -> i64 {
    cm.metadata.resource_version.as_deref().and_then(|r| r.parse().ok()).expect("a numeric resourceVersion")
}
