//! The node ending a running pod on its own, as the kubelet does, when the pod breaks a limit the
//! node enforces rather than the runtime:
//!
//! - an emptyDir volume using more than its `sizeLimit`, measured like `du` every [`PERIOD`] (a
//!   `medium: Memory` one is a tmpfs of that size, so it cannot) → the pod is evicted: phase
//!   Failed, reason `Evicted`, message `Usage of EmptyDir volume "NAME" exceeds the limit
//!   "LIMIT". `, a Warning `Evicted` event, its containers killed at once (grace 0, as the
//!   kubelet's local storage eviction);
//! - `activeDeadlineSeconds` passed since the pod started → phase Failed, reason
//!   `DeadlineExceeded`, containers stopped with the pod's grace period.
//!
//! Deciding ([`over_limit`], [`deadline_exceeded`]) is pure; [`watch`] measures and waits.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

/// How often emptyDir usage and the deadline are checked.
pub const PERIOD: Duration = Duration::from_secs(2);

/// The kubelet's reason for a pod it evicted.
pub const EVICTED: &str = "Evicted";
/// The kubelet's reason for a pod past its `activeDeadlineSeconds`.
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

/// Why the node ends the pod, as its status and event say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub reason: &'static str,
    pub message: String,
    /// Grace period of the kill; `None`: the pod's own.
    pub grace: Option<Duration>,
}

/// An emptyDir volume with a `sizeLimit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyDirLimit {
    pub volume: String,
    pub bytes: u64,
    /// The limit as the pod spells it (the message quotes it).
    pub quantity: String,
}

/// The pod's emptyDir volumes that have a (non-zero) `sizeLimit`.
pub fn empty_dir_limits(pod: &Pod) -> Vec<EmptyDirLimit> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    volumes
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let quantity = v.empty_dir.as_ref()?.size_limit.as_ref()?.0.clone();
            let bytes = crate::worker::quantity_bytes(&quantity).filter(|b| *b > 0)?;
            Some(EmptyDirLimit { volume: v.name.clone(), bytes, quantity })
        })
        .collect()
}

/// The first emptyDir whose usage (`usage(volume name)`, in bytes) exceeds its limit.
pub fn over_limit(limits: &[EmptyDirLimit], mut usage: impl FnMut(&str) -> u64) -> Option<Verdict> {
    limits.iter().find(|l| usage(&l.volume) > l.bytes).map(|l| Verdict {
        reason: EVICTED,
        message: format!("Usage of EmptyDir volume {:?} exceeds the limit {:?}. ", l.volume, l.quantity),
        grace: Some(Duration::ZERO),
    })
}

/// Whether the pod, started at `started`, is past its `activeDeadlineSeconds` at `now`.
pub fn deadline_exceeded(pod: &Pod, started: Timestamp, now: Timestamp) -> Option<Verdict> {
    let seconds = pod.spec.as_ref()?.active_deadline_seconds?;
    let elapsed = now.duration_since(started).as_secs();
    (elapsed >= seconds).then(|| Verdict {
        reason: DEADLINE_EXCEEDED,
        message: "Pod was active on the node longer than the specified deadline".into(),
        grace: None,
    })
}

/// Disk space used by the files under `dir` (allocated blocks, as `du` counts them; symbolic
/// links not followed, other file systems included). 0 for a missing directory.
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            total += meta.blocks() * 512;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}

/// Waits until the node must end `pod`, whose volumes are under `volume_root`, and says why;
/// never returns for a pod with neither an emptyDir sizeLimit nor an activeDeadlineSeconds.
/// The deadline counts from the pod's `status.startTime` (now, for a pod not started before).
pub async fn watch(pod: &Pod, volume_root: PathBuf) -> Verdict {
    let limits = empty_dir_limits(pod);
    let started = pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map_or_else(Timestamp::now, |t| t.0);
    let deadline = pod
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .and_then(|secs| started.checked_add(jiff::SignedDuration::from_secs(secs)).ok());
    if limits.is_empty() && deadline.is_none() {
        return std::future::pending().await;
    }
    loop {
        let now = Timestamp::now();
        if let Some(verdict) = deadline_exceeded(pod, started, now) {
            return verdict;
        }
        if !limits.is_empty() {
            let (root, checked) = (volume_root.clone(), limits.clone());
            let usage = move || over_limit(&checked, |name| disk_usage(&root.join(name)));
            if let Ok(Some(verdict)) = tokio::task::spawn_blocking(usage).await {
                return verdict;
            }
        }
        // The next check: a period on, or just past the deadline if that comes first.
        let mut pause = if limits.is_empty() { Duration::MAX } else { PERIOD };
        if let Some(at) = deadline {
            let left = Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO);
            pause = pause.min(left + Duration::from_millis(1));
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn only_empty_dirs_with_a_size_limit_count() {
        let p = pod(serde_json::json!({"containers": [], "volumes": [
            {"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}},
            {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "64Ki"}},
            {"name": "free", "emptyDir": {}},
            {"name": "zero", "emptyDir": {"sizeLimit": "0"}},
            {"name": "host", "hostPath": {"path": "/tmp"}},
        ]}));
        let limits = empty_dir_limits(&p);
        let names: Vec<&str> = limits.iter().map(|l| l.volume.as_str()).collect();
        assert_eq!(names, ["scratch", "ram"]);
        assert_eq!(limits[0].bytes, 1 << 20);

        assert_eq!(
            over_limit(&limits, |name| if name == "ram" { 64 << 10 } else { 1 << 20 }),
            None,
            "at the limit is within it"
        );
        let verdict = over_limit(&limits, |name| if name == "ram" { 65 << 10 } else { 0 }).unwrap();
        assert_eq!(verdict.reason, "Evicted");
        assert_eq!(verdict.message, "Usage of EmptyDir volume \"ram\" exceeds the limit \"64Ki\". ");
        assert_eq!(verdict.grace, Some(Duration::ZERO));
    }

    #[test]
    fn the_deadline_counts_from_the_start() {
        let p = pod(serde_json::json!({"containers": [], "activeDeadlineSeconds": 5}));
        let start: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let at = |s: i64| start + jiff::SignedDuration::from_secs(s);
        assert_eq!(deadline_exceeded(&p, start, at(4)), None);
        let verdict = deadline_exceeded(&p, start, at(5)).unwrap();
        assert_eq!((verdict.reason, verdict.grace), ("DeadlineExceeded", None));
        assert_eq!(deadline_exceeded(&pod(serde_json::json!({"containers": []})), start, at(1000)), None);
    }

    #[test]
    fn disk_usage_counts_allocated_blocks_below_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(disk_usage(&dir.path().join("missing")), 0);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/data"), vec![1u8; 300 << 10]).unwrap();
        let used = disk_usage(dir.path());
        assert!(used >= 300 << 10, "{used}");
    }
}
