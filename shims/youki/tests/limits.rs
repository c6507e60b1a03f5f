//! Resources → cgroups: an OOM kill is reported as such, a fork bomb is held by the pids limit,
//! CPU limit and request reach the cgroup, and stats read it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Fixture, cgroup_dirs, cgroup_file, wait_for_output};
use wharf_shim::{Exit, Shim};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_over_its_memory_limit_is_oom_killed() {
    let fx = Fixture::new();
    // tail keeps a line without end in memory: it grows until the limit.
    let (mut spec, _) = fx.spec(&["tail", "/dev/zero"]);
    spec.memory_limit = Some(32 << 20);
    assert_eq!(fx.run(spec).await, Exit::OutOfMemory);

    // A shell whose child is OOM-killed ends with 137: still an OOM kill.
    let (mut spec, _) = fx.sh("head -c 200m /dev/zero | tail");
    spec.memory_limit = Some(32 << 20);
    assert_eq!(fx.run(spec).await, Exit::OutOfMemory);

    // Within its limit, the same shell ends normally.
    let (mut spec, _) = fx.sh("head -c 1m /dev/zero | tail | wc -c");
    spec.memory_limit = Some(32 << 20);
    assert_eq!(fx.run(spec).await, Exit::Code(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_held_by_the_pids_limit() {
    let fx = Fixture::new();
    let (mut spec, sink) = fx.sh("f() { f | f & }; f; echo ready; exec tail -f /dev/null");
    spec.linux.pids_limit = Some(32);
    let id = spec.id.clone();
    let container = fx.start(spec).await;
    wait_for_output(&sink, "ready").await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(read(&cgroup_file(&fx, &id, "pids", "pids.max")), "32");
    let current: u32 = read(&cgroup_file(&fx, &id, "pids", "pids.current")).parse().unwrap();
    assert!(current <= 32, "{current} processes");
    // Forks refused at the limit.
    let events = read(&cgroup_file(&fx, &id, "pids", "pids.events"));
    let refused: u64 = events.strip_prefix("max ").and_then(|n| n.parse().ok()).unwrap();
    assert!(refused > 0, "the bomb never reached the limit: {events}");
    assert!(std::process::Command::new("true").status().unwrap().success(), "the host can still fork");

    // pid 1 of the container ignores SIGTERM: killed after the grace period, with every fork.
    let exit = tokio::time::timeout(Duration::from_secs(20), container.stop(Duration::from_millis(500))).await;
    assert_eq!(exit.expect("stop took too long"), Exit::Killed { signal: 9 });
    fx.shim.remove(&id).await.unwrap();
    assert!(cgroup_dirs(&format!("{}/{id}", fx.cgroup_parent)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_limit_and_request_reach_the_cgroup_and_stats_read_it() {
    let fx = Fixture::new();
    let (mut spec, sink) = fx.sh("echo ready; while true; do :; done");
    spec.cpu_limit_millis = Some(500);
    spec.linux.cpu_request_millis = Some(250);
    spec.memory_limit = Some(64 << 20);
    let id = spec.id.clone();
    let container = fx.start(spec).await;
    wait_for_output(&sink, "ready").await;

    if Path::new("/sys/fs/cgroup/cpu").exists() {
        assert_eq!(read(&cgroup_file(&fx, &id, "cpu", "cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&cgroup_file(&fx, &id, "cpu", "cpu.cfs_period_us")), "100000");
        assert_eq!(read(&cgroup_file(&fx, &id, "cpu", "cpu.shares")), "256");
        assert_eq!(read(&cgroup_file(&fx, &id, "memory", "memory.limit_in_bytes")), (64u64 << 20).to_string());
    } else {
        assert_eq!(read(&cgroup_file(&fx, &id, "", "cpu.max")), "50000 100000");
        assert_eq!(read(&cgroup_file(&fx, &id, "", "memory.max")), (64u64 << 20).to_string());
    }

    let before = container.stats();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = container.stats();
    // A busy loop held to half a CPU (one CPU's worth without the limit).
    let used = Duration::from_nanos(after.cpu_nanos - before.cpu_nanos);
    assert!(used > Duration::from_millis(50) && used < Duration::from_millis(650), "{used:?} of CPU in a second");
    assert!(after.memory_bytes > 0 && after.memory_bytes < 64 << 20, "{after:?}");
    assert_eq!(container.stop(Duration::ZERO).await, Exit::Killed { signal: 9 });
    fx.shim.remove(&id).await.unwrap();
}
