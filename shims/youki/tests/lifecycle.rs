//! Starting, output, exit codes, stopping and removing Linux containers.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Fixture, cgroup_dirs, mounts_under, wait_for_output};
use wharf_shim::{Exit, Shim, Stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_goes_to_the_log_by_stream() {
    let fx = Fixture::new();
    let (spec, sink) = fx.sh("echo out; echo err >&2; echo more");
    assert_eq!(fx.run(spec).await, Exit::Code(0));
    assert_eq!(sink.text(Stream::Stdout), "out\nmore\n");
    assert_eq!(sink.text(Stream::Stderr), "err\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_are_reported() {
    let fx = Fixture::new();
    assert_eq!(fx.run(fx.sh("exit 3").0).await, Exit::Code(3));
    assert_eq!(fx.run(fx.spec(&["false"]).0).await, Exit::Code(1));
    assert_eq!(fx.run(fx.spec(&["true"]).0).await, Exit::Code(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn args_env_and_working_directory() {
    let fx = Fixture::new();
    let (mut spec, sink) = fx.spec(&["sh", "-c", r#"echo "$0|$1|$GREETING|$(pwd)|$HOSTNAME|$PATH""#, "zero", "one"]);
    spec.env = vec![("GREETING".into(), "hello world".into())];
    spec.working_dir = Some("/tmp".into());
    assert_eq!(fx.run(spec).await, Exit::Code(0));
    assert_eq!(
        sink.stdout(),
        "zero|one|hello world|/tmp|testpod|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_command_fails_to_start_and_leaves_nothing() {
    let fx = Fixture::new();
    let (spec, _) = fx.spec(&["no-such-program"]);
    let id = spec.id.clone();
    let err = fx.shim.start(spec).await.err().expect("start should fail");
    assert!(err.to_string().contains("no-such-program"), "{err}");
    assert!(!fx.shim.existing().contains(&id));
    assert!(cgroup_dirs(&format!("{}/{id}", fx.cgroup_parent)).is_empty());
    assert!(mounts_under(&fx.root()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lets_a_container_honour_sigterm() {
    let fx = Fixture::new();
    let (spec, sink) = fx.sh("trap 'echo bye; exit 0' TERM; echo ready; sleep 1000 & wait");
    let id = spec.id.clone();
    let container = fx.start(spec).await;
    wait_for_output(&sink, "ready").await;
    let asked = Instant::now();
    assert_eq!(container.stop(Duration::from_secs(10)).await, Exit::Code(0));
    assert!(asked.elapsed() < Duration::from_secs(5), "took {:?}", asked.elapsed());
    assert_eq!(sink.stdout(), "ready\nbye\n");
    fx.shim.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_a_container_that_ignores_sigterm_after_the_grace_period() {
    let fx = Fixture::new();
    let (spec, sink) = fx.sh("trap '' TERM; echo ready; while true; do sleep 0.1; done");
    let id = spec.id.clone();
    let container = fx.start(spec).await;
    wait_for_output(&sink, "ready").await;
    let asked = Instant::now();
    assert_eq!(container.stop(Duration::from_millis(700)).await, Exit::Killed { signal: 9 });
    let took = asked.elapsed();
    assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(5), "took {took:?}");
    // Once ended, stop and wait repeat the end.
    assert_eq!(container.stop(Duration::ZERO).await, Exit::Killed { signal: 9 });
    assert_eq!(container.wait().await, Exit::Killed { signal: 9 });
    fx.shim.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_leaves_no_process_cgroup_mount_or_bundle() {
    let fx = Fixture::new();
    // A container with a child process, removed while it runs.
    let (spec, sink) = fx.sh("sleep 1000 & echo ready; wait");
    let id = spec.id.clone();
    let container = fx.start(spec).await;
    wait_for_output(&sink, "ready").await;

    let cgroup = format!("{}/{id}", fx.cgroup_parent);
    let dirs = cgroup_dirs(&cgroup);
    assert!(dirs.len() >= 4, "cgroup directories: {dirs:?}");
    let pids: Vec<i32> =
        std::fs::read_to_string(dirs[0].join("cgroup.procs")).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "sh and sleep: {pids:?}");
    let bundle = fx.root().join("containers").join(&id);
    assert_eq!(mounts_under(&bundle).len(), 1);
    assert_eq!(fx.shim.existing(), vec![id.clone()]);

    fx.shim.remove(&id).await.unwrap();
    for pid in &pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} is still there");
    }
    assert_eq!(cgroup_dirs(&cgroup), Vec::<std::path::PathBuf>::new());
    assert_eq!(mounts_under(&fx.root()), Vec::<String>::new());
    assert!(!bundle.exists());
    assert!(!fx.root().join("state").join(&id).exists());
    assert!(fx.shim.existing().is_empty());
    // The watcher saw the end; removing again is fine.
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), container.wait()).await.unwrap(), Exit::Code(137));
    fx.shim.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_start_side_by_side() {
    let fx = Fixture::new();
    let started = Instant::now();
    let fx = &fx;
    let runs: Vec<_> = (0..6)
        .map(|i| {
            let (spec, sink) = fx.sh(&format!("echo container {i}"));
            async move { (fx.run(spec).await, sink.stdout()) }
        })
        .collect();
    let results = futures::future::join_all(runs).await;
    for (i, (exit, out)) in results.into_iter().enumerate() {
        assert_eq!(exit, Exit::Code(0));
        assert_eq!(out, format!("container {i}\n"));
    }
    eprintln!("6 containers started, ran and were removed in {:?}", started.elapsed());
}
