//! Core Wasm modules: WASI preview 1 commands (and the older `wasi_unstable`), run by calling
//! their `_start` export.

use wasmtime::{Engine, InstancePre, Linker, Module, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wharf_shim::ShimError;

use crate::limits::MemoryLimiter;

/// Store data of a module guest.
pub(crate) struct ModuleHost {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

impl ModuleHost {
    pub(crate) fn new(mut wasi: WasiCtxBuilder, limiter: MemoryLimiter) -> Self {
        ModuleHost { wasi: wasi.build_p1(), limiter }
    }

    pub(crate) fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

/// The linker every module is linked with: WASI preview 1 and preview 0, nothing else.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<ModuleHost>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |host: &mut ModuleHost| &mut host.wasi)?;
    wasmtime_wasi::p0::add_to_linker_async(&mut linker, |host: &mut ModuleHost| &mut host.wasi)?;
    Ok(linker)
}

/// Checks that `module` is a command whose imports WASI satisfies, and links it.
pub(crate) fn prepare(linker: &Linker<ModuleHost>, module: &Module) -> Result<InstancePre<ModuleHost>, ShimError> {
    let start = module.get_export("_start");
    let is_command = start.and_then(|e| e.func().map(|f| f.params().len() == 0 && f.results().len() == 0));
    if is_command != Some(true) {
        return Err(ShimError::InvalidArtifact("the module exports no `_start: func()`: not a WASI command".into()));
    }
    linker.instantiate_pre(module).map_err(|e| ShimError::InvalidArtifact(format!("{e:#}")))
}

/// Instantiates and runs the guest to its end: the exit code of a normal return (0), or the
/// error (trap, `proc_exit`) that ended it.
pub(crate) async fn run(pre: &InstancePre<ModuleHost>, store: &mut Store<ModuleHost>) -> wasmtime::Result<i32> {
    let instance = pre.instantiate_async(&mut *store).await?;
    let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
    start.call_async(&mut *store, ()).await?;
    Ok(0)
}
