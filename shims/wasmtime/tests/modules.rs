//! WASI preview 1 modules: output, arguments, environment, exit codes, traps, bad artifacts.

mod common;

use std::time::Duration;

use common::{Fixture, wasi_module};
use wharf_shim::{Exit, Shim, ShimError, Stream};
use wharf_shim_wasmtime::TRAP_EXIT_CODE;

/// Prints its argv and environment to stdout (each string on a line), "bye" to stderr.
fn hello() -> String {
    wasi_module(
        r#"(data (i32.const 1000) "bye\n")
        ;; Turns the NULs of an args/environ buffer into newlines and prints it.
        (func $print_strings (param $ptr i32) (param $len i32)
          (local $i i32)
          (block $done (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
            (if (i32.eqz (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
              (then (i32.store8 (i32.add (local.get $ptr) (local.get $i)) (i32.const 10))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))
          (call $print (i32.const 1) (local.get $ptr) (local.get $len)))
        (func (export "_start")
          (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
          (drop (call $args_get (i32.const 2048) (i32.const 4096)))
          (call $print_strings (i32.const 4096) (i32.load (i32.const 4)))
          (drop (call $environ_sizes_get (i32.const 0) (i32.const 4)))
          (drop (call $environ_get (i32.const 2048) (i32.const 8192)))
          (call $print_strings (i32.const 8192) (i32.load (i32.const 4)))
          (call $print (i32.const 2) (i32.const 1000) (i32.const 4)))"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_sees_exactly_its_args_and_env() {
    let fx = Fixture::new();
    let (mut spec, sink) = fx.spec(hello(), &["hello.wasm", "big", "world"]);
    spec.env = vec![("GREETING".into(), "hi there".into())];
    assert_eq!(fx.shim.name(), "wasmtime");
    assert_eq!(fx.run(spec).await, Exit::Code(0));
    // Nothing of the host's environment (PATH, HOME...) reaches the guest.
    assert_eq!(sink.text(Stream::Stdout), "hello.wasm\nbig\nworld\nGREETING=hi there\n");
    assert_eq!(sink.text(Stream::Stderr), "bye\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proc_exit_code_is_the_exit_code() {
    let fx = Fixture::new();
    let exit3 = wasi_module(r#"(func (export "_start") (call $proc_exit (i32.const 3)))"#);
    assert_eq!(fx.run(fx.spec(exit3, &["x"]).0).await, Exit::Code(3));
    let exit0 = wasi_module(r#"(func (export "_start") (call $proc_exit (i32.const 0)) (unreachable))"#);
    assert_eq!(fx.run(fx.spec(exit0, &["x"]).0).await, Exit::Code(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_fails_with_its_message() {
    let fx = Fixture::new();
    let trap = wasi_module(
        r#"(func $deep (unreachable))
        (func (export "_start") (call $deep))"#,
    );
    let Exit::Failed { code, message } = fx.run(fx.spec(trap, &["x"]).0).await else { panic!("expected a failure") };
    assert_eq!(code, TRAP_EXIT_CODE);
    assert!(message.contains("unreachable"), "{message}");
    assert!(message.contains("deep"), "backtrace names the function: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_is_shared_and_stop_after_exit_keeps_the_exit() {
    let fx = Fixture::new();
    let exit3 =
        wasi_module(r#"(func (export "_start") (call $sleep (i64.const 50000000)) (call $proc_exit (i32.const 3)))"#);
    let container = fx.start(fx.spec(exit3, &["x"]).0).await;
    let (a, b, c) = tokio::join!(container.wait(), container.wait(), container.wait());
    assert_eq!([a, b, c], [Exit::Code(3), Exit::Code(3), Exit::Code(3)]);
    assert_eq!(container.wait().await, Exit::Code(3));
    assert_eq!(container.stop(Duration::from_secs(30)).await, Exit::Code(3));
    assert!(container.id().starts_with("test-"));
}

fn invalid_message(result: Result<std::sync::Arc<dyn wharf_shim::Container>, ShimError>) -> String {
    match result {
        Err(ShimError::InvalidArtifact(message)) => message,
        Err(other) => panic!("expected InvalidArtifact, got {other:?}"),
        Ok(_) => panic!("expected InvalidArtifact, the guest started"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_artifacts_are_refused_at_start() {
    let fx = Fixture::new();
    let garbage = invalid_message(fx.shim.start(fx.spec_bytes(b"definitely not wasm", &["x"]).0).await);
    assert!(garbage.contains("magic header"), "wasmtime's message: {garbage}");

    let invalid = invalid_message(fx.shim.start(fx.spec_bytes(b"\0asm\x01\0\0\0\x01\xff", &["x"]).0).await);
    assert!(invalid.contains("invalid WebAssembly"), "{invalid}");

    let no_start = invalid_message(fx.shim.start(fx.spec("(module)", &["x"]).0).await);
    assert!(no_start.contains("_start"), "{no_start}");
    let reactor = r#"(module (func (export "_start") (param i32)))"#;
    let bad_start = invalid_message(fx.shim.start(fx.spec(reactor, &["x"]).0).await);
    assert!(bad_start.contains("_start"), "{bad_start}");

    let import = r#"(module (import "env" "launch_missiles" (func)) (func (export "_start")))"#;
    let unknown = invalid_message(fx.shim.start(fx.spec(import, &["x"]).0).await);
    assert!(unknown.contains("launch_missiles"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_artifact_is_a_runtime_error() {
    let fx = Fixture::new();
    let (mut spec, _) = fx.spec("(module)", &["x"]);
    spec.artifact = fx.dir.path().join("nowhere.wasm");
    spec.digest = String::new();
    assert!(matches!(fx.shim.start(spec).await, Err(ShimError::Runtime(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_unstable_modules_run() {
    let fx = Fixture::new();
    let old = r#"(module
      (import "wasi_unstable" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (i32.const 7))))"#;
    assert_eq!(fx.run(fx.spec(old, &["x"]).0).await, Exit::Code(7));
}
