//! Every process the shim makes is reaped: helpers, libcontainer's intermediate processes,
//! inits that failed, containers and exec'd commands. Alone in its test binary, so the
//! process's children are the shim's only.

mod common;

use std::io::Write;
use std::time::Duration;

use common::Fixture;
use wharf_shim::{ExecSpec, Exit, Shim};

/// The children of this process (of any of its threads), with their state.
fn children() -> Vec<String> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in list.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            found.push(stat.split(' ').take(3).collect::<Vec<_>>().join(" "));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_left_unreaped() {
    let fx = Fixture::new();
    assert_eq!(fx.run(fx.sh("echo hi").0).await, Exit::Code(0));
    assert!(fx.shim.start(fx.spec(&["no-such-program"]).0).await.is_err());

    let (spec, sink) = fx.sh("echo ready; exec tail -f /dev/null");
    let id = spec.id.clone();
    let container = fx.start(spec).await;
    common::wait_for_output(&sink, "ready").await;
    for tty in [false, true] {
        let spec = ExecSpec { args: vec!["sh".into()], tty, stdin: true, stdout: true, ..Default::default() };
        let mut process = container.exec(spec).await.unwrap();
        process.stdin.take().unwrap().write_all(b"exit 0\n").unwrap();
        assert_eq!(tokio::time::timeout(Duration::from_secs(10), process.exit).await.unwrap(), 0);
    }
    assert!(container.exec(ExecSpec { args: vec!["no-such-program".into()], ..Default::default() }).await.is_err());
    assert_eq!(container.stop(Duration::from_millis(200)).await, Exit::Killed { signal: 9 });
    fx.shim.remove(&id).await.unwrap();

    assert_eq!(children(), Vec::<String>::new());
}
