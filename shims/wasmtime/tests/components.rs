//! WASI preview 2 components: the command world runs, the proxy world is refused. The
//! components are written in the component text format, lowering WASI imports by hand.

mod common;

use common::Fixture;
use wharf_shim::{Exit, Shim, ShimError, Stream};

/// A command that writes each argument and `KEY=value` environment entry on its own stdout
/// line, then: with exactly two arguments returns an error from `run`; with exactly one calls
/// `wasi:cli/exit` with an error; otherwise returns ok.
const COMMAND: &str = r#"
(component $C
  (import "wasi:io/error@0.2.0" (instance $io-error (export "error" (type (sub resource)))))
  (alias export $io-error "error" (type $error))
  (import "wasi:io/streams@0.2.0" (instance $streams
    (alias outer $C $error (type $err))
    (export "output-stream" (type $os (sub resource)))
    (type $stream-error (variant (case "last-operation-failed" (own $err)) (case "closed")))
    (export "stream-error" (type $se (eq $stream-error)))
    (export "[method]output-stream.blocking-write-and-flush"
      (func (param "self" (borrow $os)) (param "contents" (list u8)) (result (result (error $se)))))))
  (alias export $streams "output-stream" (type $output-stream))
  (import "wasi:cli/stdout@0.2.0" (instance $stdout
    (alias outer $C $output-stream (type $os))
    (export "get-stdout" (func (result (own $os))))))
  (import "wasi:cli/environment@0.2.0" (instance $environment
    (export "get-arguments" (func (result (list string))))
    (export "get-environment" (func (result (list (tuple string string)))))))
  (import "wasi:cli/exit@0.2.0" (instance $exit
    (export "exit" (func (param "status" (result))))))

  ;; Memory and a bump allocator, instantiated first so imports can be lowered into them.
  (core module $libc
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $ptr i32)
      (local.set $ptr (i32.and
        (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $ptr) (local.get 3)))
      (local.get $ptr)))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "memory" (core memory $memory))
  (alias core export $libc "realloc" (core func $realloc))

  (core func $get-stdout (canon lower (func $stdout "get-stdout")))
  (core func $write (canon lower (func $streams "[method]output-stream.blocking-write-and-flush") (memory $memory)))
  (core func $get-arguments (canon lower (func $environment "get-arguments") (memory $memory) (realloc $realloc)))
  (core func $get-environment (canon lower (func $environment "get-environment") (memory $memory) (realloc $realloc)))
  (core func $exit (canon lower (func $exit "exit")))

  (core module $main
    (import "wasi" "get-stdout" (func $get_stdout (result i32)))
    (import "wasi" "write" (func $write (param i32 i32 i32 i32)))
    (import "wasi" "get-arguments" (func $get_arguments (param i32)))
    (import "wasi" "get-environment" (func $get_environment (param i32)))
    (import "wasi" "exit" (func $exit (param i32)))
    (import "libc" "memory" (memory 1))
    (data (i32.const 0) "\n=")
    (global $out (mut i32) (i32.const 0))
    (func $put (param $ptr i32) (param $len i32)
      (call $write (global.get $out) (local.get $ptr) (local.get $len) (i32.const 32)))
    ;; Prints `count` strings (ptr, len pairs) starting at `list`, `stride` bytes apart, each
    ;; followed by a newline; with a stride of 16, pairs of strings joined by '='.
    (func $put_all (param $list i32) (param $count i32) (param $stride i32)
      (local $i i32) (local $item i32)
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $item (i32.add (local.get $list) (i32.mul (local.get $i) (local.get $stride))))
        (call $put (i32.load (local.get $item)) (i32.load offset=4 (local.get $item)))
        (if (i32.eq (local.get $stride) (i32.const 16))
          (then
            (call $put (i32.const 1) (i32.const 1))
            (call $put (i32.load offset=8 (local.get $item)) (i32.load offset=12 (local.get $item)))))
        (call $put (i32.const 0) (i32.const 1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
    (func (export "run") (result i32)
      (local $args i32)
      (global.set $out (call $get_stdout))
      (call $get_arguments (i32.const 16))
      (local.set $args (i32.load (i32.const 20)))
      (call $put_all (i32.load (i32.const 16)) (local.get $args) (i32.const 8))
      (call $get_environment (i32.const 16))
      (call $put_all (i32.load (i32.const 16)) (i32.load (i32.const 20)) (i32.const 16))
      (if (i32.eq (local.get $args) (i32.const 1)) (then (call $exit (i32.const 1)) (unreachable)))
      (i32.eq (local.get $args) (i32.const 2))))

  (core instance $wasi
    (export "get-stdout" (func $get-stdout))
    (export "write" (func $write))
    (export "get-arguments" (func $get-arguments))
    (export "get-environment" (func $get-environment))
    (export "exit" (func $exit)))
  (core instance $main (instantiate $main (with "wasi" (instance $wasi)) (with "libc" (instance $libc))))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run)))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_component_runs_with_its_args_and_env() {
    let fx = Fixture::new();
    let (mut spec, sink) = fx.spec(COMMAND, &["cmd", "hello", "world"]);
    spec.env = vec![("GREETING".into(), "hi".into())];
    assert_eq!(fx.run(spec).await, Exit::Code(0));
    assert_eq!(sink.text(Stream::Stdout), "cmd\nhello\nworld\nGREETING=hi\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_returning_an_error_or_exiting_with_one_is_exit_code_one() {
    let fx = Fixture::new();
    let (spec, sink) = fx.spec(COMMAND, &["cmd", "fail"]);
    assert_eq!(fx.run(spec).await, Exit::Code(1));
    assert_eq!(sink.text(Stream::Stdout), "cmd\nfail\n");
    let (spec, _) = fx.spec(COMMAND, &["cmd"]);
    assert_eq!(fx.run(spec).await, Exit::Code(1));
    assert_eq!(fx.shim.compilations(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_is_cached_on_disk_like_a_module() {
    let fx = Fixture::new();
    let (spec, _) = fx.spec(COMMAND, &["cmd", "a", "b"]);
    assert_eq!(fx.run(spec.clone()).await, Exit::Code(0));
    let restarted = wharf_shim_wasmtime::WasmtimeShim::new(common::config(&fx.cache_dir())).unwrap();
    assert_eq!(restarted.start(spec).await.unwrap().wait().await, Exit::Code(0));
    assert_eq!((restarted.compilations(), restarted.disk_cache_loads()), (0, 1));
}

fn invalid(result: Result<std::sync::Arc<dyn wharf_shim::Container>, ShimError>) -> String {
    match result {
        Err(ShimError::InvalidArtifact(message)) => message,
        Err(other) => panic!("expected InvalidArtifact, got {other:?}"),
        Ok(_) => panic!("expected InvalidArtifact, the guest started"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_component_is_not_run_as_a_command() {
    let fx = Fixture::new();
    let proxy = r#"(component
      (import "wasi:http/types@0.2.0" (instance (export "fields" (type (sub resource)))))
      (core module $m (func (export "handle")))
      (core instance $i (instantiate $m))
      (func $handle (canon lift (core func $i "handle")))
      (instance $handler (export "handle" (func $handle)))
      (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))"#;
    let message = invalid(fx.shim.start(fx.spec(proxy, &["x"]).0).await);
    assert!(message.contains("wasi:http/proxy") && message.contains("gateway"), "{message}");

    let library = "(component)";
    let message = invalid(fx.shim.start(fx.spec(library, &["x"]).0).await);
    assert!(message.contains("wasi:cli/run"), "{message}");
}

/// A command that sleeps `ns` nanoseconds on `wasi:clocks/monotonic-clock`, then returns ok.
fn sleeper(ns: u64) -> String {
    format!(
        r#"(component $C
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $p (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $p))))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (alias outer $C $pollable (type $p))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))
  (core func $subscribe (canon lower (func $clock "subscribe-duration")))
  (core func $block (canon lower (func $poll "[method]pollable.block")))
  (core module $main
    (import "wasi" "subscribe" (func $subscribe (param i64) (result i32)))
    (import "wasi" "block" (func $block (param i32)))
    (func (export "run") (result i32)
      (call $block (call $subscribe (i64.const {ns})))
      (i32.const 0)))
  (core instance $wasi (export "subscribe" (func $subscribe)) (export "block" (func $block)))
  (core instance $main (instantiate $main (with "wasi" (instance $wasi))))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run)))"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_component_wakes_or_is_stopped_at_once() {
    let fx = Fixture::new();
    let started = std::time::Instant::now();
    assert_eq!(fx.run(fx.spec(sleeper(50_000_000), &["x"]).0).await, Exit::Code(0));
    assert!(started.elapsed() >= std::time::Duration::from_millis(50));

    let container = fx.start(fx.spec(sleeper(60_000_000_000), &["x"]).0).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let asked = std::time::Instant::now();
    assert_eq!(container.stop(std::time::Duration::from_secs(30)).await, Exit::Killed { signal: 9 });
    assert!(asked.elapsed() < std::time::Duration::from_millis(100));
}
