//! Runs WebAssembly containers in-process on wasmtime: WASI preview 1 modules and preview 2
//! command components, as tokio tasks on one pooled engine (a guest allowed sockets on a thread
//! of its own inside the pod's network namespace), with compiled code cached on disk by digest
//! and kept linked in memory.
//!
//! Modules: `engine` (pool sizing, epoch ticker), `cache` (compiled code on disk), `artifact`
//! (compile/load/link once per digest), `module` and `component` (the two runners), `wasi`
//! (what the guest sees), `output` (logs), `limits` (memory, CPU, stats), `exit` (how a guest's
//! end becomes an `Exit`), `container` (the running guest).

mod artifact;
mod cache;
mod component;
mod config;
mod container;
mod engine;
mod exit;
mod http;
mod limits;
mod module;
mod output;
mod shim;
mod wasi;

pub use config::WasmtimeConfig;
pub use container::STOP_SIGNAL;
pub use exit::{ERROR_EXIT_CODE, TRAP_EXIT_CODE};
pub use http::{WasmtimeHttp, check_proxy_component};
pub use shim::WasmtimeShim;
