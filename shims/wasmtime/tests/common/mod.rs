//! Helpers shared by the integration tests: a shim on a temporary cache, artifacts written
//! from WAT, a log sink that records, specs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wharf_shim::{Container, ContainerSpec, Exit, Mount, Shim};
use wharf_shim_wasmtime::{WasmtimeConfig, WasmtimeShim};

/// Records everything written to it.
pub use wharf_shim::MemorySink as Sink;

/// A small pool so many tests can hold a shim at once.
pub fn config(cache_dir: &Path) -> WasmtimeConfig {
    WasmtimeConfig { max_instances: 32, max_memory_bytes: 64 << 20, ..WasmtimeConfig::new(cache_dir) }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub shim: WasmtimeShim,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(adjust: impl FnOnce(&mut WasmtimeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(&dir.path().join("cache"));
        adjust(&mut config);
        let shim = WasmtimeShim::new(config).unwrap();
        Fixture { dir, shim }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Writes a Wasm artifact (WAT text or binary) and returns a spec to run it.
    pub fn spec(&self, wat: impl AsRef<[u8]>, args: &[&str]) -> (ContainerSpec, Arc<Sink>) {
        let bytes = wat::parse_bytes(wat.as_ref()).unwrap().into_owned();
        self.spec_bytes(&bytes, args)
    }

    /// Like `spec`, for raw bytes that need not be Wasm.
    pub fn spec_bytes(&self, bytes: &[u8], args: &[&str]) -> (ContainerSpec, Arc<Sink>) {
        let digest = format!("sha256:{:x}", Sha256::digest(bytes));
        let artifact = self.dir.path().join(format!("{}.wasm", &digest[7..19]));
        std::fs::write(&artifact, bytes).unwrap();
        let sink = Arc::new(Sink::default());
        let spec = ContainerSpec {
            id: format!("test-{}", &digest[7..15]),
            artifact,
            digest,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: vec![],
            working_dir: None,
            mounts: vec![],
            memory_limit: None,
            cpu_limit_millis: None,
            log: sink.clone(),
            network: None,
            linux: Default::default(),
        };
        (spec, sink)
    }

    pub async fn start(&self, spec: ContainerSpec) -> Arc<dyn Container> {
        self.shim.start(spec).await.expect("start")
    }

    /// Starts `spec` and waits (at most 30 s) for its exit.
    pub async fn run(&self, spec: ContainerSpec) -> Exit {
        let container = self.start(spec).await;
        tokio::time::timeout(Duration::from_secs(30), container.wait()).await.expect("guest did not end")
    }
}

pub fn mount(host: &Path, guest: &str, read_only: bool) -> Mount {
    Mount { host_path: host.to_owned(), guest_path: guest.into(), read_only }
}

/// A WASI preview 1 command: the WASI imports the tests use, one page of exported memory, a
/// `$print (fd ptr len)` helper, and `body` (functions, data, the `_start` export).
pub fn wasi_module(body: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; Writes memory[ptr..ptr+len] to fd; the iovec lives at 16..24, nwritten at 24.
  (func $print (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24))))
  ;; Sleeps `ns` nanoseconds in poll_oneoff (subscription at 256, event at 320).
  (func $sleep (param $ns i64)
    (i64.store (i32.const 256) (i64.const 0))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (local.get $ns))
    (i64.store (i32.const 288) (i64.const 0))
    (i32.store16 (i32.const 296) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 24))))
  {body}
)"#
    )
}

/// A guest that spins forever.
pub fn spin() -> String {
    wasi_module(r#"(func (export "_start") (loop $l (br $l)))"#)
}

/// A guest that sleeps `ms` milliseconds, then prints "woke".
pub fn sleeper(ms: u64) -> String {
    wasi_module(&format!(
        r#"(data (i32.const 1024) "woke")
        (func (export "_start")
          (call $sleep (i64.const {ns}))
          (call $print (i32.const 1) (i32.const 1024) (i32.const 4)))"#,
        ns = ms * 1_000_000
    ))
}
