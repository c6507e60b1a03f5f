//! A container outlives the agent that started it, and the next agent finds it and takes it
//! over. The first agent is this test binary run again, which starts the container and exits
//! at once, as an agent killed with SIGKILL would.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, Sink, cgroup_dirs, mounts_under, unique, wait_for_output};
use wharf_shim::{Exit, Shim};
use wharf_shim_youki::{YoukiConfig, YoukiShim};

/// Set in the first agent's environment: root, layer, cgroup parent and id, one per line.
const FIRST_AGENT: &str = "WHARF_YOUKI_TEST_FIRST_AGENT";
const TEST_NAME: &str = "a_running_container_is_adopted_by_the_next_agent";

const SCRIPT: &str = "i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo tick $i; sleep 0.1; done; echo bye; exit 3";

/// Starts the container and leaves without cleaning anything up.
async fn first_agent(setup: String) -> ! {
    let [root, layer, cgroup_parent, id]: [&str; 4] = setup.lines().collect::<Vec<_>>().try_into().unwrap();
    let shim = YoukiShim::new(YoukiConfig::new(root)).unwrap();
    let (spec, _) = common::spec(id, layer.as_ref(), cgroup_parent, &["sh", "-c", SCRIPT]);
    shim.start(spec).await.expect("start");
    std::process::exit(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_container_is_adopted_by_the_next_agent() {
    if let Ok(setup) = std::env::var(FIRST_AGENT) {
        first_agent(setup).await;
    }
    let fx = Fixture::new();
    let id = unique("adopted");
    let setup = format!("{}\n{}\n{}\n{id}", fx.root().display(), fx.layer.display(), fx.cgroup_parent);
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME])
        .env(FIRST_AGENT, setup)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the first agent failed");

    // No agent reads the container's output for a while: it must not die of it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let next = YoukiShim::new(YoukiConfig::new(fx.root())).unwrap();
    assert_eq!(next.existing(), vec![id.clone()]);
    let sink = Arc::new(Sink::default());
    let container = next.adopt(&id, sink.clone()).await.expect("the container is still running");
    assert_eq!(container.id(), id);
    wait_for_output(&sink, "tick").await;
    let seen = sink.stdout();
    assert!(seen.lines().count() >= 3, "output written while no agent ran is kept: {seen:?}");

    std::fs::write(fx.root().join("containers").join(&id).join("rootfs/tmp/stop"), "").unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), container.wait()).await.expect("no end seen");
    match exit {
        Exit::Failed { code: 137, message } => assert!(message.contains("previous agent"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(sink.stdout().ends_with("bye\n"), "{:?}", sink.stdout());

    next.remove(&id).await.unwrap();
    assert!(next.existing().is_empty());
    assert!(next.adopt(&id, sink.clone()).await.is_none());
    assert!(cgroup_dirs(&format!("{}/{id}", fx.cgroup_parent)).is_empty());
    assert!(mounts_under(&fx.root()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_container_is_listed_but_not_adopted() {
    let fx = Fixture::new();
    let (spec, _) = fx.spec(&["true"]);
    let id = spec.id.clone();
    let container = fx.start(spec).await;
    assert_eq!(container.wait().await, Exit::Code(0));
    let next = YoukiShim::new(YoukiConfig::new(fx.root())).unwrap();
    assert_eq!(next.existing(), vec![id.clone()]);
    assert!(next.adopt(&id, Arc::new(Sink::default())).await.is_none());
    next.remove(&id).await.unwrap();
    assert!(next.existing().is_empty());
}
