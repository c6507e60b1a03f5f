//! Stopping guests, sleeping guests, and many idle guests on few threads.

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, sleeper, spin};
use wharf_shim::{Exit, Stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_an_infinite_loop_promptly() {
    let fx = Fixture::new();
    let container = fx.start(fx.spec(spin(), &["x"]).0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    // The grace period is not waited for: a Wasm guest cannot be signalled.
    let exit = container.stop(Duration::from_secs(30)).await;
    let took = asked.elapsed();
    assert_eq!(exit, Exit::Killed { signal: 9 });
    assert!(took < Duration::from_millis(100), "stop took {took:?}");
    assert_eq!(container.wait().await, Exit::Killed { signal: 9 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_guest_wakes_and_can_be_stopped_while_asleep() {
    let fx = Fixture::new();
    let (spec, sink) = fx.spec(sleeper(50), &["x"]);
    let started = Instant::now();
    assert_eq!(fx.run(spec).await, Exit::Code(0));
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(sink.text(Stream::Stdout), "woke");

    let (spec, sink) = fx.spec(sleeper(60_000), &["x"]);
    let container = fx.start(spec).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = Instant::now();
    assert_eq!(container.stop(Duration::from_secs(30)).await, Exit::Killed { signal: 9 });
    assert!(asked.elapsed() < Duration::from_millis(100));
    assert_eq!(sink.text(Stream::Stdout), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_stops_the_guest() {
    let fx = Fixture::new();
    let (spec, sink) = fx.spec(sleeper(300), &["x"]);
    drop(fx.start(spec).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sink.text(Stream::Stdout), "", "the guest was cancelled before it woke");
}

fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_sleeping_guests_need_no_thread_each() {
    const GUESTS: usize = 500;
    let fx = Fixture::with(|c| c.max_instances = GUESTS as u32 + 10);
    let (spec, _) = fx.spec(sleeper(60_000), &["sleeper"]);
    // Warm up: compiles once, starts the runtime's blocking pool.
    fx.start(spec.clone()).await.stop(Duration::ZERO).await;
    let threads_before = proc_status("Threads:");
    let rss_before = proc_status("VmRSS:");

    let started = Instant::now();
    let mut guests = Vec::with_capacity(GUESTS);
    for i in 0..GUESTS {
        let mut spec = spec.clone();
        spec.id = format!("sleeper-{i}");
        guests.push(fx.start(spec).await);
    }
    let start_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let threads = proc_status("Threads:");
    let rss_per_guest_kib = proc_status("VmRSS:").saturating_sub(rss_before) / GUESTS as u64;
    for guest in &guests {
        assert_eq!(guest.stats().memory_bytes, 65536, "every guest is running");
    }

    let stopping = Instant::now();
    let exits = futures::future::join_all(guests.iter().map(|g| g.stop(Duration::from_secs(30)))).await;
    let stop_time = stopping.elapsed();
    assert!(exits.iter().all(|e| *e == Exit::Killed { signal: 9 }));
    assert!(threads <= threads_before + 4, "{threads} threads for {GUESTS} guests (were {threads_before})");
    assert!(rss_per_guest_kib < 1024, "{rss_per_guest_kib} KiB per idle guest");
    assert!(start_time < Duration::from_secs(20), "starting took {start_time:?}");
    assert!(stop_time < Duration::from_secs(5), "stopping took {stop_time:?}");
    eprintln!(
        "{GUESTS} sleeping guests: started in {start_time:?}, stopped in {stop_time:?}, \
         {threads} threads, ~{rss_per_guest_kib} KiB RSS each"
    );
}
