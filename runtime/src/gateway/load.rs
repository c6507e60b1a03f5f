//! The node's load reports on Functions, the autoscaler's only input. Every [`SAMPLE`] the
//! reporter reads the gateway's per-function counters ([`super::stats`]); every [`REPORT`], for
//! each function whose report changed, it writes the Function annotation
//! `load.wharf.dev/<node>` with a JSON merge patch (only that key):
//! `{"inFlight":N,"concurrency":F,"requests":N,"errors":N,"lastRequest":RFC3339|null,"at":RFC3339}`
//! where `concurrency` is the average of the requests in flight sampled over the last
//! [`REPORT`] and `lastRequest` the last time a request arrived (or one was in flight).
//! A request for a function whose last report said idle is reported AT ONCE ([`LoadReporter::
//! arrived`]): that is the activator's signal to scale a Linux-image function up from zero.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::stats::Stats;

/// How often in-flight requests are sampled.
pub const SAMPLE: Duration = Duration::from_millis(200);
/// How often a changed report is written, and the window `concurrency` averages over.
pub const REPORT: Duration = Duration::from_secs(2);
/// The prefix of the Function annotations holding the nodes' reports.
pub const LOAD_PREFIX: &str = "load.wharf.dev/";

/// One node's report on one function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    pub in_flight: u64,
    pub concurrency: f64,
    pub requests: u64,
    pub errors: u64,
    pub last_request: Option<Timestamp>,
    pub at: Timestamp,
}

impl LoadReport {
    fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.concurrency == 0.0
    }

    /// Whether it says something `other` did not (the time it was made aside).
    fn differs(&self, other: &LoadReport) -> bool {
        (self.in_flight, self.concurrency, self.requests, self.errors, self.last_request)
            != (other.in_flight, other.concurrency, other.requests, other.errors, other.last_request)
    }
}

/// What the reporter remembers of one function.
#[derive(Debug, Default)]
struct Track {
    /// In-flight samples over the last [`REPORT`].
    samples: VecDeque<(Instant, u64)>,
    requests: u64,
    last_request: Option<Timestamp>,
    /// Requests that arrived before the counters show them (the activator's report counts them).
    arrived: u64,
    reported: Option<LoadReport>,
    reported_at: Option<Instant>,
    urgent: bool,
}

impl Track {
    /// Takes one sample of the counters at `now` (`wall` the same instant).
    fn sample(&mut self, in_flight: u64, requests: u64, now: Instant, wall: Timestamp) {
        if requests > self.requests || in_flight > 0 {
            self.last_request = Some(wall);
            self.arrived = 0;
        }
        self.requests = requests;
        self.samples.push_back((now, in_flight));
        while self.samples.front().is_some_and(|(t, _)| now.duration_since(*t) > REPORT) {
            self.samples.pop_front();
        }
    }

    fn concurrency(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: u64 = self.samples.iter().map(|(_, n)| n).sum();
        // Two decimals: a report changes when the load does, not with float noise.
        (sum as f64 / self.samples.len() as f64 * 100.0).round() / 100.0
    }

    fn report(&self, in_flight: u64, errors: u64, wall: Timestamp) -> LoadReport {
        LoadReport {
            in_flight: in_flight.max(self.arrived),
            concurrency: self.concurrency(),
            requests: self.requests,
            errors,
            last_request: self.last_request,
            at: wall,
        }
    }

    /// Whether `report` is to be written now.
    fn due(&self, report: &LoadReport, now: Instant) -> bool {
        match (&self.reported, self.reported_at) {
            _ if self.urgent => true,
            (Some(last), Some(at)) => report.differs(last) && now.duration_since(at) >= REPORT,
            _ => true,
        }
    }
}

/// Writes this node's load reports for the functions its gateway serves.
pub struct LoadReporter {
    client: kube::Client,
    node: String,
    stats: Stats,
    tracks: Mutex<HashMap<(String, String), Track>>,
    wake: Notify,
}

impl LoadReporter {
    pub fn new(client: kube::Client, node: String, stats: Stats) -> Arc<Self> {
        Arc::new(LoadReporter { client, node, stats, tracks: Mutex::default(), wake: Notify::new() })
    }

    fn tracks(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Track>> {
        self.tracks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the reporter a request for function `namespace/name` arrived (the gateway calls it
    /// for every request, before it is served or held). Cheap; when the last report said the
    /// function was idle, a report goes out at once.
    pub fn arrived(&self, namespace: &str, name: &str) {
        let mut tracks = self.tracks();
        let track = tracks.entry((namespace.to_string(), name.to_string())).or_default();
        track.last_request = Some(Timestamp::now());
        track.arrived += 1;
        if track.reported.as_ref().is_none_or(LoadReport::is_idle) && !track.urgent {
            track.urgent = true;
            drop(tracks);
            self.wake.notify_one();
        }
    }

    /// Samples and reports until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SAMPLE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.wake.notified() => {}
            }
            let due = self.sample();
            let writes = due.into_iter().map(|(ns, name, report)| self.write(ns, name, report));
            futures::future::join_all(writes).await;
        }
    }

    /// Samples every function's counters; returns the reports due now (marked as written).
    fn sample(&self) -> Vec<(String, String, LoadReport)> {
        let now = Instant::now();
        let wall = Timestamp::now();
        let snapshot = self.stats.snapshot();
        let mut tracks = self.tracks();
        let mut due = Vec::new();
        for s in snapshot {
            let key = (s.namespace, s.name);
            let track = tracks.entry(key.clone()).or_default();
            let (in_flight, requests, errors) = (s.in_flight, s.requests, s.errors);
            track.sample(in_flight, requests, now, wall);
            let report = track.report(in_flight, errors, wall);
            if track.due(&report, now) {
                track.urgent = false;
                track.reported = Some(report.clone());
                track.reported_at = Some(now);
                due.push((key.0, key.1, report));
            }
        }
        // Functions the counters do not know yet (a request just arrived): report the arrival.
        for ((ns, name), track) in tracks.iter_mut().filter(|(_, t)| t.urgent) {
            let report = track.report(0, 0, wall);
            track.urgent = false;
            track.reported = Some(report.clone());
            track.reported_at = Some(now);
            due.push((ns.clone(), name.clone(), report));
        }
        due
    }

    async fn write(&self, namespace: String, name: String, report: LoadReport) {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &namespace, &super::functions_resource());
        let value = serde_json::to_string(&report).unwrap_or_default();
        let key = format!("{LOAD_PREFIX}{}", self.node);
        let patch = Patch::Merge(json!({"metadata": {"annotations": {key: value}}}));
        match api.patch(&name, &PatchParams::default(), &patch).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {
                self.tracks().remove(&(namespace, name));
            }
            Err(e) => {
                tracing::debug!(%namespace, %name, error = %e, "cannot write the load report");
                // Write it again on the next sample.
                if let Some(track) = self.tracks().get_mut(&(namespace, name)) {
                    track.reported = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn concurrency_averages_the_window() {
        let mut t = Track::default();
        let start = Instant::now();
        for i in 0..10u64 {
            t.sample(if i < 5 { 4 } else { 0 }, i, start + SAMPLE * i as u32, wall(0));
        }
        assert_eq!(t.concurrency(), 2.0);
        // Older samples leave the window.
        t.sample(0, 9, start + REPORT * 3, wall(6));
        assert_eq!(t.concurrency(), 0.0);
        assert_eq!(t.last_request, Some(wall(0)));
    }

    #[test]
    fn reports_go_out_when_changed_at_most_every_report_interval() {
        let now = Instant::now();
        let mut t = Track::default();
        t.sample(1, 1, now, wall(0));
        let first = t.report(1, 0, wall(0));
        assert!(t.due(&first, now), "the first report goes out at once");
        t.reported = Some(first.clone());
        t.reported_at = Some(now);
        t.sample(2, 2, now + SAMPLE, wall(0));
        let changed = t.report(2, 0, wall(0));
        assert!(!t.due(&changed, now + SAMPLE), "changed but too soon");
        assert!(t.due(&changed, now + REPORT), "changed and due");
        let same = LoadReport { at: wall(9), ..first.clone() };
        assert!(!t.due(&same, now + REPORT * 5), "an unchanged report is not written again");
        t.urgent = true;
        assert!(t.due(&same, now + SAMPLE), "an arrival at an idle function goes out at once");
    }

    #[test]
    fn an_arrival_counts_as_in_flight_until_the_counters_show_it() {
        let mut t = Track { arrived: 1, ..Default::default() };
        assert_eq!(t.report(0, 0, wall(0)).in_flight, 1);
        t.sample(1, 0, Instant::now(), wall(0));
        assert_eq!(t.arrived, 0);
        let report = t.report(1, 0, wall(0));
        assert_eq!(serde_json::to_value(&report).unwrap()["inFlight"], 1);
        assert!(serde_json::to_value(&report).unwrap()["lastRequest"].is_string());
    }
}
