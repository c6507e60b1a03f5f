//! Compiled code: warm in memory per digest, on disk across shims, never stale.

mod common;

use std::path::Path;

use common::{Fixture, wasi_module};
use wharf_shim::{Exit, Shim, Stream};
use wharf_shim_wasmtime::WasmtimeShim;

fn hello() -> String {
    wasi_module(
        r#"(data (i32.const 1000) "cached")
        (func (export "_start") (call $print (i32.const 1) (i32.const 1000) (i32.const 6)))"#,
    )
}

fn cache_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_is_compiled_once_and_then_loaded_from_disk() {
    let fx = Fixture::new();
    let (spec, sink) = fx.spec(hello(), &["x"]);

    // First start compiles; the second (and concurrent ones) reuse the warm code.
    assert_eq!(fx.run(spec.clone()).await, Exit::Code(0));
    assert_eq!(fx.shim.compilations(), 1);
    let (a, b) = tokio::join!(fx.run(spec.clone()), fx.run(spec.clone()));
    assert_eq!((a, b), (Exit::Code(0), Exit::Code(0)));
    assert_eq!(fx.shim.compilations(), 1);
    assert_eq!(fx.shim.disk_cache_loads(), 0);
    assert_eq!(sink.text(Stream::Stdout), "cached".repeat(3));

    let files = cache_files(&fx.cache_dir());
    assert_eq!(files.len(), 1, "{files:?}");
    let digest_hex = &spec.digest["sha256:".len()..];
    assert!(files[0].starts_with(&format!("sha256-{digest_hex}-")) && files[0].ends_with(".cwasm"), "{files:?}");

    // A new shim (a restarted agent) on the same directory compiles nothing.
    let restarted = WasmtimeShim::new(common::config(&fx.cache_dir())).unwrap();
    let container = restarted.start(spec.clone()).await.unwrap();
    assert_eq!(container.wait().await, Exit::Code(0));
    assert_eq!(restarted.compilations(), 0);
    assert_eq!(restarted.disk_cache_loads(), 1);
    assert_eq!(sink.text(Stream::Stdout), "cached".repeat(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_engine_configuration_does_not_share_compiled_code() {
    let fx = Fixture::new();
    let (spec, _) = fx.spec(hello(), &["x"]);
    assert_eq!(fx.run(spec.clone()).await, Exit::Code(0));

    // Different memory reservation: code compiled for it differs (bounds checks).
    let mut config = common::config(&fx.cache_dir());
    config.max_memory_bytes = 32 << 20;
    let other = WasmtimeShim::new(config).unwrap();
    let container = other.start(spec.clone()).await.unwrap();
    assert_eq!(container.wait().await, Exit::Code(0));
    assert_eq!((other.compilations(), other.disk_cache_loads()), (1, 0));
    assert_eq!(cache_files(&fx.cache_dir()).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_cache_file_is_replaced() {
    let fx = Fixture::new();
    let (spec, _) = fx.spec(hello(), &["x"]);
    assert_eq!(fx.run(spec.clone()).await, Exit::Code(0));
    let name = cache_files(&fx.cache_dir()).remove(0);
    let path = fx.cache_dir().join(&name);
    // Replace (new inode: the first shim still maps the old file) with garbage.
    let garbage = fx.dir.path().join("garbage");
    std::fs::write(&garbage, b"\x7fELF but not really").unwrap();
    std::fs::rename(&garbage, &path).unwrap();

    let restarted = WasmtimeShim::new(common::config(&fx.cache_dir())).unwrap();
    let container = restarted.start(spec.clone()).await.unwrap();
    assert_eq!(container.wait().await, Exit::Code(0));
    assert_eq!((restarted.compilations(), restarted.disk_cache_loads()), (1, 0));

    // It was rewritten: a third shim loads it.
    let third = WasmtimeShim::new(common::config(&fx.cache_dir())).unwrap();
    third.start(spec).await.unwrap().wait().await;
    assert_eq!((third.compilations(), third.disk_cache_loads()), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_usable_digest_the_content_is_the_key() {
    let fx = Fixture::new();
    let (mut spec, _) = fx.spec(hello(), &["x"]);
    let digest = std::mem::replace(&mut spec.digest, "latest".into());
    assert_eq!(fx.run(spec.clone()).await, Exit::Code(0));
    spec.digest = digest;
    assert_eq!(fx.run(spec).await, Exit::Code(0));
    assert_eq!(fx.shim.compilations(), 1, "the computed digest is the file's sha256");
}
