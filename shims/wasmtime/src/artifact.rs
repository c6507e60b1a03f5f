//! From an artifact on disk to linked, ready-to-instantiate code, once per digest: kept warm
//! in memory (`InstancePre`) after the first start, loaded from the disk cache after a
//! restart, compiled only when neither has it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use wasmtime::component::Linker as ComponentLinker;
use wasmtime::{Engine, InstancePre, Linker};
use wasmtime_wasi::p2::bindings::CommandPre;
use wharf_shim::{ContainerSpec, ShimError};

use crate::cache::{self, Compiled, DiskCache, Origin};
use crate::component::{self, ComponentHost};
use crate::module::{self, ModuleHost};

/// Linked code of one artifact.
#[derive(Clone)]
pub(crate) enum Prepared {
    Module(InstancePre<ModuleHost>),
    Command(CommandPre<ComponentHost>),
}

pub(crate) struct Artifacts {
    engine: Engine,
    disk: DiskCache,
    module_linker: Linker<ModuleHost>,
    component_linker: ComponentLinker<ComponentHost>,
    /// Per digest; the cell makes concurrent first starts of a digest share one preparation.
    /// Entries live as long as the shim (one per distinct artifact the node ran).
    warm: Mutex<HashMap<String, Arc<OnceCell<Prepared>>>>,
    compilations: AtomicU64,
    disk_loads: AtomicU64,
}

impl Artifacts {
    pub(crate) fn new(engine: Engine, cache_dir: &Path) -> Result<Self, ShimError> {
        let disk = DiskCache::new(cache_dir, &engine)
            .map_err(|e| ShimError::Runtime(format!("compiled-code cache {}: {e}", cache_dir.display())))?;
        let linker_error = |e: wasmtime::Error| ShimError::Runtime(format!("WASI linker: {e:#}"));
        Ok(Artifacts {
            module_linker: module::linker(&engine).map_err(linker_error)?,
            component_linker: component::linker(&engine).map_err(linker_error)?,
            engine,
            disk,
            warm: Mutex::default(),
            compilations: AtomicU64::new(0),
            disk_loads: AtomicU64::new(0),
        })
    }

    pub(crate) fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    pub(crate) fn disk_loads(&self) -> u64 {
        self.disk_loads.load(Ordering::Relaxed)
    }

    /// The linked code for `spec`'s artifact, keyed by `spec.digest` (or, when that is not a
    /// usable `algorithm:hex` digest, by the SHA-256 of the file).
    pub(crate) async fn prepare(self: &Arc<Self>, spec: &ContainerSpec) -> Result<Prepared, ShimError> {
        let digest = match cache::valid_digest(&spec.digest) {
            Some(digest) => digest.to_owned(),
            None => {
                let path = spec.artifact.clone();
                blocking(move || read(&path).map(|bytes| cache::sha256_digest(&bytes))).await?
            }
        };
        let cell = self.warm.lock().expect("warm lock").entry(digest.clone()).or_default().clone();
        let prepared = cell
            .get_or_try_init(|| {
                let this = self.clone();
                let path = spec.artifact.clone();
                blocking(move || this.load_or_compile(&digest, &path))
            })
            .await?;
        Ok(prepared.clone())
    }

    fn load_or_compile(&self, digest: &str, path: &Path) -> Result<Prepared, ShimError> {
        let (compiled, origin) = self.disk.load_or_compile(&self.engine, digest, path)?;
        let counter = if origin == Origin::Disk { &self.disk_loads } else { &self.compilations };
        counter.fetch_add(1, Ordering::Relaxed);
        match compiled {
            Compiled::Module(m) => module::prepare(&self.module_linker, &m).map(Prepared::Module),
            Compiled::Component(c) => {
                component::prepare(&self.engine, &self.component_linker, &c).map(Prepared::Command)
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ShimError> {
    std::fs::read(path).map_err(|e| ShimError::Runtime(format!("reading artifact {}: {e}", path.display())))
}

/// Runs file and compiler work off the async worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ShimError> + Send + 'static,
) -> Result<T, ShimError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ShimError::Runtime(format!("preparing the artifact: {e}")))?
}
