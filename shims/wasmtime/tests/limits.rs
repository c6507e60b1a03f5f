//! Memory limit, CPU limit, output pacing, and the resource use reported by `stats`.

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, sleeper, spin, wasi_module};
use wharf_shim::{Exit, Stream};

const MIB: u64 = 1 << 20;

/// Grows memory a page at a time until refused, then does `on_refusal`.
fn grower(on_refusal: &str) -> String {
    wasi_module(&format!(
        r#"(func (export "_start")
          (loop $grow
            (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
              (then {on_refusal}))
            (br $grow)))"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_past_the_limit_then_trapping_is_out_of_memory() {
    let fx = Fixture::new();
    let (mut spec, _) = fx.spec(grower("(unreachable)"), &["x"]);
    spec.memory_limit = Some(2 * MIB);
    assert_eq!(fx.run(spec).await, Exit::OutOfMemory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_past_the_limit_then_exiting_non_zero_is_out_of_memory() {
    let fx = Fixture::new();
    let (mut spec, _) = fx.spec(grower("(call $proc_exit (i32.const 1))"), &["x"]);
    spec.memory_limit = Some(2 * MIB);
    assert_eq!(fx.run(spec).await, Exit::OutOfMemory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_handles_the_refusal_and_exits_zero_completes() {
    let fx = Fixture::new();
    let (mut spec, _) = fx.spec(grower("(call $proc_exit (i32.const 0))"), &["x"]);
    spec.memory_limit = Some(2 * MIB);
    assert_eq!(fx.run(spec).await, Exit::Code(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_slot_is_the_limit_of_an_unlimited_guest() {
    // Slots of 64 MiB in the test config.
    let fx = Fixture::new();
    let (spec, _) = fx.spec(grower("(unreachable)"), &["x"]);
    assert_eq!(fx.run(spec).await, Exit::OutOfMemory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_maximum_is_not_out_of_memory() {
    let fx = Fixture::new();
    // The module's own memory maximum is 2 pages: the refusal is ordinary Wasm behaviour.
    let capped = grower("(unreachable)").replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 1 2)");
    let (mut spec, _) = fx.spec(capped, &["x"]);
    spec.memory_limit = Some(64 * MIB);
    assert!(matches!(fx.run(spec).await, Exit::Failed { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_memory_above_the_limit_is_out_of_memory() {
    let fx = Fixture::new();
    let big = spin().replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 64)");
    let (mut spec, _) = fx.spec(big, &["x"]);
    spec.memory_limit = Some(2 * MIB);
    assert_eq!(fx.run(spec).await, Exit::OutOfMemory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_report_linear_memory_and_cpu() {
    let fx = Fixture::new();
    let three_pages = sleeper(60_000).replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 3)");
    let sleeping = fx.start(fx.spec(three_pages, &["x"]).0).await;
    let spinning = fx.start(fx.spec(spin(), &["x"]).0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let idle = sleeping.stats();
    assert_eq!(idle.memory_bytes, 3 * 65536);
    assert!(idle.cpu_nanos < 100_000_000, "a sleeping guest uses next to no CPU: {idle:?}");
    let busy = spinning.stats();
    assert_eq!(busy.memory_bytes, 65536);
    assert!(busy.cpu_nanos > 20_000_000, "a spinning guest uses CPU: {busy:?}");

    sleeping.stop(Duration::ZERO).await;
    spinning.stop(Duration::ZERO).await;
    assert_eq!(sleeping.stats().memory_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_limit_throttles_a_spinning_guest() {
    let fx = Fixture::new();
    let (mut spec, _) = fx.spec(spin(), &["x"]);
    spec.cpu_limit_millis = Some(100);
    let container = fx.start(spec).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = Duration::from_nanos(container.stats().cpu_nanos);
    let wall = started.elapsed();
    // 100 millicores of ~1 s is ~100 ms, plus a tick of burst; allow scheduling slack.
    assert!(cpu > Duration::from_millis(30) && cpu < wall / 4, "cpu {cpu:?} in {wall:?}");
    assert_eq!(container.stop(Duration::ZERO).await, Exit::Killed { signal: 9 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_output_is_paced_not_buffered() {
    let fx = Fixture::with(|c| c.log_bytes_per_sec = 64 << 10);
    let flood = wasi_module(
        r#"(func (export "_start")
          (loop $again
            (call $print (i32.const 1) (i32.const 4096) (i32.const 4096))
            (br $again)))"#,
    );
    let (spec, sink) = fx.spec(flood, &["x"]);
    let container = fx.start(spec).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let written = sink.total_bytes() as f64;
    let allowed = (64 << 10) as f64 * (1.0 + started.elapsed().as_secs_f64());
    assert!(written > 64.0 * 1024.0, "the burst is written at once: {written}");
    assert!(written <= allowed + 8192.0, "{written} bytes > {allowed}");
    assert!(sink.text(Stream::Stderr).is_empty());
    let stopped = Instant::now();
    assert_eq!(container.stop(Duration::ZERO).await, Exit::Killed { signal: 9 });
    assert!(stopped.elapsed() < Duration::from_millis(200), "a paced guest stops at once");
}
