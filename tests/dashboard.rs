//! The web dashboard, driven as a user would in a browser: one cluster (with its local node and
//! the sample images imported), then the Playwright tests in web-ui/e2e/ (`node --test`) against
//! it in Debian's Chromium. Screenshots of every view go to target/dashboard-screenshots/.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, busybox_layout, kubectl_path, wasm_fixture};

/// The whole browser run's bound: the tests are killed (and fail) past it.
const NODE_TESTS_LIMIT: Duration = Duration::from_secs(6 * 60);

const INSTALL: &str = "apt-get install -y nodejs npm chromium";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails unless `node` (from PATH) and Debian's Chromium are there.
fn require_node_and_chromium() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "the dashboard tests need Node.js (node on PATH): {INSTALL}"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "the dashboard tests drive Debian's Chromium at /usr/bin/chromium: {INSTALL}"
    );
}

/// `npm ci` in web-ui/ when its node_modules (playwright-core, axe-core) is missing.
fn ensure_node_modules() {
    let web_ui = repo().join("web-ui");
    if web_ui.join("node_modules/playwright-core").exists() && web_ui.join("node_modules/axe-core").exists() {
        return;
    }
    println!("web-ui/node_modules is missing: running npm ci");
    let status = Command::new("npm").arg("ci").current_dir(&web_ui).status();
    assert!(status.is_ok_and(|s| s.success()), "npm ci in web-ui/ failed (npm is in Debian's npm package: {INSTALL})");
}

#[test]
fn dashboard_in_a_browser() {
    require_node_and_chromium();
    ensure_node_modules();
    let samples = common::samples_out();

    let cluster = Cluster::start();
    cluster.wait_nodes_ready(1, Duration::from_secs(60));
    // The images the views' tests run: busybox (Linux), the WASI fixtures and the http-hello component (Wasm).
    assert_eq!(cluster.import(&busybox_layout(cluster.data_dir()), "busybox:v1"), "busybox:v1");
    for name in ["hello", "ticker", "crasher"] {
        cluster.import(&wasm_fixture(cluster.data_dir(), name), &format!("{name}:v1"));
    }
    cluster.import(&samples.join("http-hello.wasm"), "http-hello:v1");

    let token = cluster.admin_token();
    let screenshots = repo().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&screenshots).expect("create the screenshot dir");
    println!("dashboard at {}/ui/; screenshots go to {}", cluster.url, screenshots.display());

    let started = Instant::now();
    let mut node = Command::new("node")
        .args(["--test", "--test-concurrency=1", "web-ui/e2e/"])
        .current_dir(repo())
        .env("WHARF_URL", &cluster.url)
        .env("WHARF_TOKEN", token.trim())
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("KUBECTL", kubectl_path())
        .env("WHARF_BIN", env!("CARGO_BIN_EXE_wharf"))
        .env("WHARF_SCREENSHOTS", &screenshots)
        .env("WHARF_SAMPLES", &samples)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        // Its own process group, so that a run past the limit is stopped with the browsers it started.
        .process_group(0)
        .spawn()
        .expect("node runs");
    let status = loop {
        if let Some(status) = node.try_wait().expect("wait for node") {
            break status;
        }
        if started.elapsed() > NODE_TESTS_LIMIT {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", node.id())]).status();
            let _ = node.wait();
            panic!("the dashboard tests ran past {} s and were stopped", NODE_TESTS_LIMIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("dashboard tests took {:.1} s; screenshots in {}", started.elapsed().as_secs_f64(), screenshots.display());
    assert!(status.success(), "node --test web-ui/e2e/ failed ({status}): see its output above");
}
