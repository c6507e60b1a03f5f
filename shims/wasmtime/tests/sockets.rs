//! wasi-sockets: a guest given a network namespace listens and answers there (it runs on a
//! thread that joined it), a guest without one cannot open a socket, a namespace that cannot be
//! joined fails the start; and what the thread costs at start, printed.
//!
//! The namespace given here is the test's own (`/proc/self/ns/net`), so the test can connect to
//! the guest on 127.0.0.1; joining a namespace needs CAP_SYS_ADMIN (the tests run as root). The
//! listening guest is the `http-server` sample (a wasm32-wasip2 command using std::net), built by
//! `samples/build`.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Fixture, sleeper};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf_shim::{Exit, Shim, Stream};

const OWN_NETWORK: &str = "/proc/self/ns/net";

/// `samples/out/http-server.wasm`, built once per test binary by `samples/build`.
fn http_server_sample() -> Vec<u8> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let path = BUILT.get_or_init(|| {
        let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples");
        let out = std::process::Command::new(samples.join("build")).output().expect("samples/build runs");
        assert!(
            out.status.success(),
            "samples/build failed (it needs the wasm32-wasip2 Rust target: rustup target add wasm32-wasip2):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        samples.join("out/http-server.wasm")
    });
    std::fs::read(path).expect("samples/out/http-server.wasm")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET / on 127.0.0.1:port, retried until the guest listens (at most 20 s); the whole response.
async fn get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(mut stream) => {
                stream.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
                let mut response = String::new();
                stream.read_to_string(&mut response).await.unwrap();
                return response;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the guest never listened on 127.0.0.1:{port}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_given_a_network_listens_and_answers_in_it() {
    let fx = Fixture::new();
    let port = free_port();
    let (mut spec, sink) = fx.spec_bytes(&http_server_sample(), &["http-server"]);
    spec.env = vec![("PORT".into(), port.to_string())];
    spec.network = Some(OWN_NETWORK.into());
    let container = fx.start(spec).await;

    let response = get(port).await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("hello from wasm socket\n"), "{response}");
    // Same handle semantics as a guest run as a task: stop cancels it at once.
    assert_eq!(container.stop(Duration::from_secs(30)).await, Exit::Killed { signal: 9 });
    let log = sink.stdout();
    assert!(log.contains(&format!("listening on 0.0.0.0:{port}")), "{log}");
    assert!(log.contains("GET / from 127.0.0.1:"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_without_a_network_cannot_open_a_socket() {
    let fx = Fixture::new();
    let port = free_port();
    let (mut spec, sink) = fx.spec_bytes(&http_server_sample(), &["http-server"]);
    spec.env = vec![("PORT".into(), port.to_string())];
    assert_eq!(fx.run(spec).await, Exit::Code(1));
    let stderr = sink.text(Stream::Stderr);
    assert!(stderr.contains(&format!("cannot listen on 0.0.0.0:{port}")), "{stderr}");
    println!("denied guest says: {}", stderr.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_that_cannot_be_joined_fails_the_start() {
    let fx = Fixture::new();
    let (mut spec, _) = fx.spec(sleeper(10), &["x"]);
    spec.network = Some("/nonexistent/ns/net".into());
    let error = fx.shim.start(spec).await.err().expect("the start fails");
    assert!(error.to_string().contains("join network namespace /nonexistent/ns/net"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_on_a_network_thread_runs_and_stops_like_a_task() {
    let fx = Fixture::new();
    let (mut spec, sink) = fx.spec(sleeper(20), &["x"]);
    spec.network = Some(OWN_NETWORK.into());
    assert_eq!(fx.run(spec).await, Exit::Code(0));
    assert_eq!(sink.stdout(), "woke");

    let (mut spec, _) = fx.spec(sleeper(60_000), &["x"]);
    spec.network = Some(OWN_NETWORK.into());
    let container = fx.start(spec).await;
    assert_eq!(container.stop(Duration::from_secs(30)).await, Exit::Killed { signal: 9 });
}

/// Start cost of a guest on a thread in a namespace against one run as a task: the time
/// `start` takes and until the guest ran to its end (a module that prints and exits), over
/// several warm starts each. Printed, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_time_on_a_network_thread_against_a_task() {
    const STARTS: u32 = 30;
    let fx = Fixture::new();
    let (warm, _) = fx.spec(sleeper(0), &["x"]);
    assert_eq!(fx.run(warm).await, Exit::Code(0));
    for network in [None, Some(PathBuf::from(OWN_NETWORK))] {
        let (mut start_total, mut run_total) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..STARTS {
            let (mut spec, _) = fx.spec(sleeper(0), &["x"]);
            spec.network = network.clone();
            let began = Instant::now();
            let container = fx.start(spec).await;
            start_total += began.elapsed();
            assert_eq!(container.wait().await, Exit::Code(0));
            run_total += began.elapsed();
        }
        println!(
            "guest as {:<28} start {:>7.1} µs, start to exit {:>7.1} µs (mean of {STARTS})",
            if network.is_some() { "a thread in a network ns:" } else { "a task:" },
            start_total.as_secs_f64() * 1e6 / f64::from(STARTS),
            run_total.as_secs_f64() * 1e6 / f64::from(STARTS),
        );
    }
}
