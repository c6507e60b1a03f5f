//! A container's cgroup as the shim reads it: memory and CPU use, the OOM kill counter, and the
//! processes in it (to kill them all). libcontainer creates and removes the cgroup itself.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use wharf_shim::Stats;

use crate::host::Hierarchy;

#[derive(Debug, Clone)]
pub(crate) enum Cgroup {
    V1 { memory: PathBuf, cpuacct: PathBuf },
    V2 { dir: PathBuf },
}

/// The value of `key` in a file of `key value` lines (memory.stat, memory.events, cpu.stat).
fn field(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

fn number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Cgroup {
    /// The cgroup at `path` (as in the runtime spec's cgroupsPath) in `hierarchy`.
    pub(crate) fn new(hierarchy: &Hierarchy, path: &Path) -> Cgroup {
        let relative = path.strip_prefix("/").unwrap_or(path);
        match hierarchy {
            Hierarchy::V1 { memory, cpuacct } => {
                Cgroup::V1 { memory: memory.join(relative), cpuacct: cpuacct.join(relative) }
            }
            Hierarchy::V2 { root } => Cgroup::V2 { dir: root.join(relative) },
        }
    }

    /// How many processes the kernel's OOM killer ended in this cgroup.
    pub(crate) fn oom_kills(&self) -> u64 {
        match self {
            Cgroup::V1 { memory, .. } => field(&memory.join("memory.oom_control"), "oom_kill"),
            Cgroup::V2 { dir } => field(&dir.join("memory.events"), "oom_kill"),
        }
        .unwrap_or(0)
    }

    /// Memory in use (the working set: usage less inactive file cache) and CPU time so far.
    pub(crate) fn stats(&self) -> Stats {
        let (usage, inactive, cpu_nanos) = match self {
            Cgroup::V1 { memory, cpuacct } => (
                number(&memory.join("memory.usage_in_bytes")),
                field(&memory.join("memory.stat"), "total_inactive_file"),
                number(&cpuacct.join("cpuacct.usage")),
            ),
            Cgroup::V2 { dir } => (
                number(&dir.join("memory.current")),
                field(&dir.join("memory.stat"), "inactive_file"),
                field(&dir.join("cpu.stat"), "usage_usec").map(|us| us * 1000),
            ),
        };
        let usage = usage.unwrap_or(0);
        Stats { memory_bytes: usage.saturating_sub(inactive.unwrap_or(0)), cpu_nanos: cpu_nanos.unwrap_or(0) }
    }

    fn procs_file(&self) -> PathBuf {
        match self {
            Cgroup::V1 { memory, .. } => memory.join("cgroup.procs"),
            Cgroup::V2 { dir } => dir.join("cgroup.procs"),
        }
    }

    /// The processes in the cgroup (none once it is gone).
    pub(crate) fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.procs_file())
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Sends SIGKILL to every process in the cgroup.
    pub(crate) fn kill_all(&self) {
        for pid in self.pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Kills every process and waits (at most `patience`) until the cgroup holds none.
    pub(crate) fn empty(&self, patience: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + patience;
        loop {
            self.kill_all();
            if self.pids().is_empty() {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
