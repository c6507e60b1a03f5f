//! Components in the WASI preview 2 command world, run by calling their `wasi:cli/run`
//! export. Components of the `wasi:http/proxy` world are refused here: the gateway serves them.

use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, component::types::ComponentItem};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wharf_shim::ShimError;

use crate::limits::MemoryLimiter;

/// Store data of a component guest.
pub(crate) struct ComponentHost {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl ComponentHost {
    pub(crate) fn new(mut wasi: WasiCtxBuilder, limiter: MemoryLimiter) -> Self {
        ComponentHost { wasi: wasi.build(), table: ResourceTable::new(), limiter }
    }

    pub(crate) fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

impl WasiView for ComponentHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The linker every component is linked with: the WASI preview 2 interfaces.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<ComponentHost>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// Checks that `component` is a command (exports `wasi:cli/run`) whose imports WASI
/// satisfies, and links it.
pub(crate) fn prepare(
    engine: &Engine,
    linker: &Linker<ComponentHost>,
    component: &Component,
) -> Result<CommandPre<ComponentHost>, ShimError> {
    let ty = component.component_type();
    let exports_instance = |prefix: &str| {
        ty.exports(engine)
            .any(|(name, item)| name.starts_with(prefix) && matches!(item.ty, ComponentItem::ComponentInstance(_)))
    };
    if !exports_instance("wasi:cli/run@0.2") {
        return Err(ShimError::InvalidArtifact(if exports_instance("wasi:http/incoming-handler@") {
            "the component is a wasi:http/proxy (it exports wasi:http/incoming-handler, not \
             wasi:cli/run): it is served over HTTP by the gateway, not run as a command"
                .into()
        } else {
            "the component exports no wasi:cli/run@0.2 interface: not a WASI command".into()
        }));
    }
    let pre = linker.instantiate_pre(component).map_err(|e| ShimError::InvalidArtifact(format!("{e:#}")))?;
    CommandPre::new(pre).map_err(|e| ShimError::InvalidArtifact(format!("{e:#}")))
}

/// Instantiates and runs the guest to its end: 0 when `run` returns ok, 1 when it returns an
/// error, or the error (trap, `wasi:cli/exit`) that ended it.
pub(crate) async fn run(pre: &CommandPre<ComponentHost>, store: &mut Store<ComponentHost>) -> wasmtime::Result<i32> {
    let command = pre.instantiate_async(&mut *store).await?;
    let ok = command.wasi_cli_run().call_run(&mut *store).await?;
    Ok(if ok.is_ok() { 0 } else { 1 })
}
