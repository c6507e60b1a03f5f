//! Commands run inside a running container, with pipes or with a terminal.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Fixture, wait_for_output};
use wharf_shim::{Container, ExecSpec, Exit, Shim};

/// A long-running container as user nobody with FOO=bar, for commands to join.
async fn target(fx: &Fixture) -> (String, std::sync::Arc<dyn Container>) {
    let (mut spec, sink) = fx.sh("echo ready; exec tail -f /dev/null");
    spec.env = vec![("FOO".into(), "bar".into())];
    spec.linux.image_user = Some("nobody".into());
    let id = spec.id.clone();
    let container = fx.start(spec).await;
    wait_for_output(&sink, "ready").await;
    (id, container)
}

fn read_all(mut file: std::fs::File) -> String {
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    text
}

async fn exit_of(process: wharf_shim::ExecProcess) -> i32 {
    tokio::time::timeout(Duration::from_secs(10), process.exit).await.expect("the command did not end")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_pipes() {
    let fx = Fixture::new();
    let (id, container) = target(&fx).await;
    let spec = ExecSpec {
        args: vec![
            "sh".into(),
            "-c".into(),
            r#"read line; echo "got $line as $(id -u) FOO=$FOO in $(readlink /proc/1/ns/pid)"; echo oops >&2; exit 4"#
                .into(),
        ],
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let mut process = container.exec(spec).await.expect("exec");
    let mut stdin = process.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    drop(stdin);
    let stdout = process.stdout.take().unwrap();
    let stderr = process.stderr.take().unwrap();
    let (out, err) = tokio::task::spawn_blocking(move || (read_all(stdout), read_all(stderr))).await.unwrap();
    assert_eq!(exit_of(process).await, 4);
    assert!(out.starts_with("got hello as 65534 FOO=bar in pid:["), "{out}");
    assert_eq!(err, "oops\n");

    // Not asked for: /dev/null; and the command sees the container's seccomp filter.
    let spec = ExecSpec {
        args: vec!["sh".into(), "-c".into(), "grep -q '^Seccomp:.2' /proc/self/status".into()],
        ..Default::default()
    };
    let process = container.exec(spec).await.unwrap();
    assert!(process.stdin.is_none() && process.stdout.is_none() && process.stderr.is_none());
    assert_eq!(exit_of(process).await, 0);

    let spec = ExecSpec { args: vec!["no-such-command".into()], stdout: true, ..Default::default() };
    let err = container.exec(spec).await.expect_err("exec should fail");
    assert!(err.to_string().contains("no-such-command"), "{err}");

    assert_eq!(container.stop(Duration::ZERO).await, Exit::Killed { signal: 9 });
    fx.shim.remove(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_terminal() {
    let fx = Fixture::new();
    let (id, container) = target(&fx).await;
    let spec = ExecSpec { args: vec!["sh".into()], tty: true, stdin: true, stdout: true, stderr: true };
    let mut process = container.exec(spec).await.expect("exec");
    assert!(process.stderr.is_none(), "a terminal has no separate stderr");
    (process.resize)(100, 40);
    let mut stdin = process.stdin.take().unwrap();
    let stdout = process.stdout.take().unwrap();
    let reader = tokio::task::spawn_blocking(move || read_all(stdout));
    stdin.write_all(b"tty; stty size; echo $((6 * 7)) $TERM; exit 3\n").unwrap();
    let started = Instant::now();
    assert_eq!(exit_of(process).await, 3);
    let out = tokio::time::timeout(Duration::from_secs(5), reader).await.expect("no end of output").unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    // An interactive shell: a prompt, the terminal inside the container, its size.
    assert!(out.contains("$ ") || out.contains("# "), "{out:?}");
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("40 100"), "{out:?}");
    assert!(out.contains("42 xterm"), "{out:?}");

    assert_eq!(container.stop(Duration::ZERO).await, Exit::Killed { signal: 9 });
    fx.shim.remove(&id).await.unwrap();
}
