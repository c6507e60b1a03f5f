//! `kubectl exec` and `kubectl cp` end to end, as root: the real kubectl speaking the
//! remote-command WebSocket protocol to `wharf server`, which relays it to its node agent, which
//! runs the command in a busybox container through the youki shim (or says why it cannot).

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Cluster, busybox_layout, kubectl_path, wasm_fixture};

/// A cluster with a running busybox pod `box` (container `main`).
fn cluster_with_box() -> Cluster {
    let cluster = Cluster::start();
    assert_eq!(cluster.import(&busybox_layout(cluster.data_dir()), "busybox:v1"), "busybox:v1");
    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: box\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:v1\n    command: [sleep, '3600']\n",
    );
    cluster.ok(&["wait", "--for=condition=Ready", "pod/box", "--timeout=60s"]);
    cluster
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exec_runs_commands_with_their_streams_and_exit_code() {
    let cluster = cluster_with_box();
    assert_eq!(cluster.ok(&["exec", "box", "--", "cat", "/etc/hostname"]), "box\n");

    let out = cluster.kubectl(&["exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "kubectl exits with the command's code; stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    assert!(text(&out.stderr).starts_with("err\n"), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("command terminated with exit code 3"), "stderr: {}", text(&out.stderr));

    let out = cluster.kubectl_with(&["exec", "-i", "box", "--", "tr", "a-z", "A-Z"], Some("hello\nworld\n"), &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "HELLO\nWORLD\n", "stdin reached the command and its end ended it");
}

#[test]
fn exec_reaches_a_container_adopted_after_the_agent_was_killed() {
    let mut cluster = cluster_with_box();
    cluster.ok(&["exec", "box", "--", "sh", "-c", "echo before > /tmp/mark"]);
    cluster.restart();
    let adopted = cluster.eventually(Duration::from_secs(30), || {
        cluster.kubectl(&["exec", "box", "--", "cat", "/tmp/mark"]).stdout == b"before\n"
    });
    assert!(adopted, "exec never reached the running container after the restart");
}

#[test]
fn kubectl_cp_copies_files_in_and_out() {
    let cluster = cluster_with_box();
    let dir = cluster.data_dir();
    // Larger than a pipe and a WebSocket frame, every byte value.
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(dir.join("in.bin"), &content).unwrap();
    cluster.ok(&["cp", dir.join("in.bin").to_str().unwrap(), "box:/tmp/copied.bin"]);
    let inside = cluster.kubectl(&["exec", "box", "--", "cat", "/tmp/copied.bin"]);
    assert!(inside.status.success(), "stderr: {}", text(&inside.stderr));
    assert!(inside.stdout == content, "the copy in differs ({} bytes of {})", inside.stdout.len(), content.len());

    cluster.ok(&["cp", "box:/tmp/copied.bin", dir.join("out.bin").to_str().unwrap()]);
    assert!(std::fs::read(dir.join("out.bin")).unwrap() == content, "the copy out differs");
}

/// Runs `kubectl exec -it box -- sh` on a pseudo-terminal (`script`) sized 123×45, typing `lines`
/// a second apart.
fn interactive_shell(cluster: &Cluster, lines: &[&str]) -> Output {
    let kubectl = kubectl_path();
    let session = format!("stty cols 123 rows 45; {} exec -it box -- sh", kubectl.display());
    let mut script = Command::new("script")
        .args(["-qec", &session, "/dev/null"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script runs kubectl on a terminal: apt-get install bsdutils");
    let mut typing = script.stdin.take().unwrap();
    for line in lines {
        std::thread::sleep(Duration::from_secs(1));
        typing.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    drop(typing);
    script.wait_with_output().unwrap()
}

#[test]
fn exec_it_gives_an_interactive_shell_on_a_terminal() {
    let cluster = cluster_with_box();
    let out = interactive_shell(&cluster, &["echo hi-$((40+2))", "stty -a", "exit 5"]);
    let shown = text(&out.stdout);
    assert!(shown.contains("hi-42\r\n"), "the shell ran what was typed:\n{shown}");
    assert!(shown.contains("rows 45; columns 123"), "the terminal has the client's size:\n{shown}");
    assert_eq!(out.status.code(), Some(5), "the shell's exit code comes back:\n{shown}");
}

#[test]
fn exec_into_a_wasm_container_is_refused_clearly() {
    let cluster = Cluster::start();
    cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");
    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ticker\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: ticker:v1\n",
    );
    cluster.ok(&["wait", "--for=condition=Ready", "pod/ticker", "--timeout=60s"]);
    let out = cluster.kubectl(&["exec", "ticker", "--", "sh", "-c", "echo hi"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("cannot exec in container \"main\": exec is not supported by this runtime"), "{stderr}");
    assert!(out.stdout.is_empty());

    let stderr = cluster.fails(&["exec", "ticker", "-c", "nope", "--", "ls"], None);
    assert!(stderr.contains("container nope is not valid for pod ticker"), "stderr: {stderr}");
}

#[test]
fn exec_into_a_container_that_is_not_running_names_it() {
    let cluster = Cluster::start();
    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: unpulled\nspec:\n  containers:\n  - name: main\n    image: missing:v1\n",
    );
    let pulled = |pod: &serde_json::Value| {
        let reason = &pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
        reason == "ErrImagePull" || reason == "ImagePullBackOff"
    };
    cluster.wait_pod("unpulled", "failed to pull", Duration::from_secs(30), pulled);
    let stderr = cluster.fails(&["exec", "unpulled", "--", "ls"], None);
    assert!(stderr.contains("container not found (\"main\")"), "stderr: {stderr}");
}
