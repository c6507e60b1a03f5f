//! The scheduling queue, as kube-scheduler's: pods wait in the *active* queue (higher priority
//! first, then oldest first); a pod that did not fit goes to the *unschedulable* pods until
//! something changes in the cluster (a node added or updated, a pod deleted or finished), then
//! to the *backoff* queue until its backoff (1 s doubling to 10 s per attempt) has passed. A pod
//! that waited a long time as unschedulable is retried anyway.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod stays unschedulable without any cluster event before it is retried.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled.
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    place: Place,
    /// Position in the active queue: (higher priority first, then arrival).
    active_key: (Reverse<i32>, u64),
    attempts: u32,
    /// When the backoff ends (backoff queue), or since when it is unschedulable.
    at: Instant,
    /// When the pod first entered the queue (scheduling latency is measured from here).
    added: Instant,
    /// The plugins that rejected the pod in its last cycle (kube-scheduler's
    /// UnschedulablePlugins).
    rejected_by: BTreeSet<&'static str>,
}

/// A pod handed out for a scheduling cycle.
#[derive(Debug, Clone)]
pub struct Popped {
    pub pod: Arc<Pod>,
    /// The cycle this pod is scheduled in (see [`SchedulingQueue::unschedulable`]).
    pub cycle: u64,
    pub attempts: u32,
    /// When the pod first entered the queue.
    pub added: Instant,
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// The backoff after `attempts` failed attempts.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

#[derive(Debug, Default)]
pub struct SchedulingQueue {
    entries: HashMap<String, Entry>,
    active: BTreeSet<((Reverse<i32>, u64), String)>,
    backoff: BTreeSet<(Instant, String)>,
    /// Unschedulable pods by the time they became so.
    unschedulable: BTreeSet<(Instant, String)>,
    seq: u64,
    cycle: u64,
    /// The cycle at which the last cluster event asked to move pods: a pod that fails in a
    /// cycle started before then may have missed the event, so it goes to backoff rather than
    /// waiting as unschedulable.
    move_request_cycle: u64,
}

impl SchedulingQueue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn push_active(&mut self, uid: &str) {
        let Some(entry) = self.entries.get_mut(uid) else { return };
        self.seq += 1;
        entry.active_key = (Reverse(priority(&entry.pod)), self.seq);
        entry.place = Place::Active;
        self.active.insert((entry.active_key, uid.to_string()));
    }

    fn push_backoff(&mut self, uid: &str, until: Instant) {
        let Some(entry) = self.entries.get_mut(uid) else { return };
        entry.place = Place::Backoff;
        entry.at = until;
        self.backoff.insert((until, uid.to_string()));
    }

    /// Takes the pod out of whichever queue holds it (the entry stays).
    fn unlink(&mut self, uid: &str) {
        let Some(entry) = self.entries.get(uid) else { return };
        match entry.place {
            Place::Active => {
                self.active.remove(&(entry.active_key, uid.to_string()));
            }
            Place::Backoff => {
                self.backoff.remove(&(entry.at, uid.to_string()));
            }
            Place::Unschedulable => {
                self.unschedulable.remove(&(entry.at, uid.to_string()));
            }
            Place::InFlight => {}
        }
    }

    /// A pending pod was added or updated. New pods go to the active queue; an unschedulable
    /// pod whose spec or labels changed is retried (a status-only update is not a reason).
    pub fn add(&mut self, pod: Arc<Pod>, now: Instant) {
        let uid = uid(&pod);
        match self.entries.get_mut(&uid) {
            None => {
                let entry = Entry {
                    pod,
                    place: Place::Active,
                    active_key: (Reverse(0), 0),
                    attempts: 0,
                    at: now,
                    added: now,
                    rejected_by: BTreeSet::new(),
                };
                self.entries.insert(uid.clone(), entry);
                self.push_active(&uid);
            }
            Some(entry) => {
                let changed = entry.pod.spec != pod.spec || entry.pod.metadata.labels != pod.metadata.labels;
                entry.pod = pod;
                if changed && entry.place == Place::Unschedulable {
                    let until = entry.at + backoff(entry.attempts);
                    self.unlink(&uid);
                    self.move_one(&uid, until, now);
                }
            }
        }
    }

    /// The pod is gone, bound elsewhere or no longer ours.
    pub fn delete(&mut self, uid: &str) {
        self.unlink(uid);
        self.entries.remove(uid);
    }

    /// Uids of every pod the queue holds.
    pub fn uids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Whether the queue holds the pod (in any queue, or in flight).
    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// Moves backoff pods whose time has come to the active queue, and pods unschedulable for
    /// longer than MAX_UNSCHEDULABLE to backoff or active.
    pub fn flush(&mut self, now: Instant) {
        while let Some((until, uid)) = self.backoff.first().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop_first();
            self.push_active(&uid);
        }
        while let Some((since, uid)) = self.unschedulable.first().cloned() {
            if now.duration_since(since) < MAX_UNSCHEDULABLE {
                break;
            }
            self.unschedulable.pop_first();
            self.push_active(&uid);
        }
    }

    /// The next pod to schedule, if any is active now.
    pub fn pop(&mut self, now: Instant) -> Option<Popped> {
        self.flush(now);
        let (_, uid) = self.active.pop_first()?;
        self.cycle += 1;
        let entry = self.entries.get_mut(&uid)?;
        entry.place = Place::InFlight;
        Some(Popped { pod: entry.pod.clone(), cycle: self.cycle, attempts: entry.attempts, added: entry.added })
    }

    /// When the earliest backoff ends.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.first().map(|(at, _)| *at)
    }

    /// The pod popped in `cycle` fits no node (`rejected_by` these plugins): it waits for a
    /// cluster event, or (if one came while it was being scheduled) for its backoff.
    pub fn unschedulable(&mut self, uid: &str, cycle: u64, rejected_by: BTreeSet<&'static str>, now: Instant) {
        let Some(entry) = self.entries.get_mut(uid) else { return };
        if entry.place != Place::InFlight {
            return;
        }
        entry.attempts += 1;
        entry.rejected_by = rejected_by;
        let until = now + backoff(entry.attempts);
        if self.move_request_cycle >= cycle {
            self.push_backoff(uid, until);
        } else {
            entry.place = Place::Unschedulable;
            entry.at = now;
            self.unschedulable.insert((now, uid.to_string()));
        }
    }

    /// The pod's binding failed for a reason other than the pod itself: retry after backoff.
    /// `pod` is the pod as it was popped (the queue may have let go of it when it was assumed).
    pub fn retry(&mut self, pod: Arc<Pod>, attempts: u32, added: Instant, now: Instant) {
        let uid = uid(&pod);
        self.unlink(&uid);
        let attempts = attempts + 1;
        self.entries.insert(
            uid.clone(),
            Entry {
                pod,
                place: Place::Backoff,
                active_key: (Reverse(0), 0),
                attempts,
                at: now,
                added,
                rejected_by: BTreeSet::new(),
            },
        );
        self.push_backoff(&uid, now + backoff(attempts));
    }

    /// The pod was assumed on a node: the queue lets go of it.
    pub fn done(&mut self, uid: &str) {
        self.delete(uid);
    }

    fn move_one(&mut self, uid: &str, backoff_until: Instant, now: Instant) {
        if backoff_until > now {
            self.push_backoff(uid, backoff_until);
        } else {
            self.push_active(uid);
        }
    }

    /// Something changed that may let unschedulable pods fit: each goes to backoff (if its
    /// backoff has not passed) or straight to the active queue.
    pub fn move_all(&mut self, now: Instant) {
        self.move_request_cycle = self.cycle;
        let waiting = std::mem::take(&mut self.unschedulable);
        for (since, uid) in waiting {
            let attempts = self.entries.get(&uid).map_or(0, |e| e.attempts);
            self.move_one(&uid, since + backoff(attempts), now);
        }
    }

    /// A change that concerns only `plugins` (a pod was bound: InterPodAffinity,
    /// PodTopologySpread): moves the unschedulable pods one of them rejected, as
    /// [`Self::move_all`] does.
    pub fn move_rejected_by(&mut self, plugins: &[&str], now: Instant) {
        let concerned: Vec<(Instant, String)> = self
            .unschedulable
            .iter()
            .filter(|(_, uid)| self.entries.get(uid).is_some_and(|e| e.rejected_by.iter().any(|p| plugins.contains(p))))
            .cloned()
            .collect();
        if concerned.is_empty() {
            return;
        }
        self.move_request_cycle = self.cycle;
        for (since, uid) in concerned {
            self.unschedulable.remove(&(since, uid.clone()));
            let attempts = self.entries.get(&uid).map_or(0, |e| e.attempts);
            self.move_one(&uid, since + backoff(attempts), now);
        }
    }

    /// How many pods wait in each queue: (active, backoff, unschedulable).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.active.len(), self.backoff.len(), self.unschedulable.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "uid": name, "labels": {"v": "1"}},
                "spec": {"priority": priority, "containers": [{"name": "c"}]},
            }))
            .unwrap(),
        )
    }

    fn name(p: &Popped) -> &str {
        p.pod.metadata.name.as_deref().unwrap()
    }

    #[test]
    fn higher_priority_then_oldest_first() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(pod("a", 0), now);
        q.add(pod("b", 10), now);
        q.add(pod("c", 0), now);
        let order: Vec<String> = std::iter::from_fn(|| q.pop(now)).map(|p| name(&p).to_string()).collect();
        assert_eq!(order, ["b", "a", "c"]);
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event_then_their_backoff() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(pod("a", 0), t0);
        let popped = q.pop(t0).unwrap();
        q.unschedulable("a", popped.cycle, BTreeSet::new(), t0);
        assert_eq!(q.counts(), (0, 0, 1));
        // A status-only update is no reason to retry.
        q.add(pod("a", 0), t0);
        assert!(q.pop(t0 + Duration::from_secs(5)).is_none());
        // An event before the backoff (1 s) ends: backoff queue, then active.
        q.move_all(t0 + Duration::from_millis(500));
        assert_eq!(q.counts(), (0, 1, 0));
        assert!(q.pop(t0 + Duration::from_millis(900)).is_none());
        let popped = q.pop(t0 + Duration::from_millis(1000)).unwrap();
        assert_eq!(popped.attempts, 1);
        // Second failure: 2 s backoff; an event after it goes straight to active.
        let t1 = t0 + Duration::from_secs(2);
        q.unschedulable("a", popped.cycle, BTreeSet::new(), t1);
        q.move_all(t1 + Duration::from_secs(3));
        assert_eq!(q.counts(), (1, 0, 0));
    }

    #[test]
    fn an_event_during_the_cycle_sends_the_pod_to_backoff() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(pod("a", 0), t0);
        let popped = q.pop(t0).unwrap();
        q.move_all(t0);
        q.unschedulable("a", popped.cycle, BTreeSet::new(), t0);
        assert_eq!(q.counts(), (0, 1, 0));
        assert!(q.pop(t0 + Duration::from_secs(1)).is_some());
    }

    #[test]
    fn spec_changes_and_time_retry_unschedulable_pods() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(pod("a", 0), t0);
        let popped = q.pop(t0).unwrap();
        q.unschedulable("a", popped.cycle, BTreeSet::new(), t0);
        q.add(pod("a", 5), t0 + Duration::from_secs(2));
        assert!(q.pop(t0 + Duration::from_secs(2)).is_some());
        q.unschedulable("a", popped.cycle + 1, BTreeSet::new(), t0 + Duration::from_secs(2));
        assert!(q.pop(t0 + Duration::from_secs(20)).is_none());
        assert!(q.pop(t0 + Duration::from_secs(2) + MAX_UNSCHEDULABLE).is_some());
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(5), MAX_BACKOFF);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }

    #[test]
    fn failed_binds_retry_after_backoff_and_deleted_pods_are_dropped() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(pod("a", 0), t0);
        let popped = q.pop(t0).unwrap();
        q.done("a");
        assert!(q.is_empty());
        q.retry(popped.pod, popped.attempts, popped.added, t0);
        assert_eq!(q.next_backoff(), Some(t0 + INITIAL_BACKOFF));
        q.delete("a");
        assert!(q.pop(t0 + MAX_BACKOFF).is_none());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_bound_pod_moves_only_the_pods_its_plugins_rejected() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(pod("affine", 0), t0);
        q.add(pod("big", 0), t0);
        let popped = q.pop(t0).unwrap();
        q.unschedulable(name(&popped), popped.cycle, BTreeSet::from(["InterPodAffinity"]), t0);
        let popped_big = q.pop(t0).unwrap();
        q.unschedulable(name(&popped_big), popped_big.cycle, BTreeSet::from(["NodeResourcesFit"]), t0);
        assert_eq!(q.counts(), (0, 0, 2));
        q.move_rejected_by(&["InterPodAffinity", "PodTopologySpread"], t0 + MAX_BACKOFF);
        assert_eq!(q.counts(), (1, 0, 1));
        assert_eq!(name(&q.pop(t0 + MAX_BACKOFF).unwrap()), "affine");
    }
}
