//! `YoukiShim`: the `Shim` the agent runs Linux containers with.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libcontainer::container::{Container as StateContainer, ContainerStatus};
use libcontainer::oci_spec::runtime::Spec;
use wharf_shim::{BoxFuture, Container, ContainerSpec, LogSink, Shim, ShimError};

use crate::bundle::{Bundle, Output};
use crate::cgroup::Cgroup;
use crate::container::LinuxContainer;
use crate::exec::ExecContext;
use crate::host::Host;
use crate::process::Process;
use crate::user::{self, Accounts};
use crate::{YoukiConfig, fork, launch, spec};

/// How long `remove` waits for a container's processes to die before deleting its cgroup.
const KILL_PATIENCE: Duration = Duration::from_secs(5);

/// Runs Linux containers with libcontainer: an overlay root filesystem per container, cgroups
/// (v1 or v2, cgroupfs driver), the pod sandbox's namespaces. Its methods must be awaited on a
/// tokio runtime; the libcontainer calls run on blocking threads, through a forked helper.
pub struct YoukiShim {
    inner: Arc<Inner>,
}

struct Inner {
    config: YoukiConfig,
    host: Host,
}

/// libcontainer's rule for container ids (they name directories).
fn check_id(id: &str) -> Result<(), ShimError> {
    let valid = !id.is_empty()
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if valid { Ok(()) } else { Err(ShimError::InvalidArtifact(format!("invalid container id {id:?}"))) }
}

fn task_failed(err: tokio::task::JoinError) -> ShimError {
    ShimError::Runtime(format!("youki shim task failed: {err}"))
}

impl YoukiShim {
    /// Checks that the host can run Linux containers (root, cgroups with the memory, cpu and
    /// pids controllers, overlayfs) and creates the root directories.
    pub fn new(config: YoukiConfig) -> Result<Self, ShimError> {
        let host = Host::probe()?;
        for dir in [config.state_dir(), config.containers_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| ShimError::Runtime(format!("cannot create {}: {e}", dir.display())))?;
        }
        tracing::debug!(root = %config.root.display(), ?host.hierarchy, "youki shim ready");
        Ok(YoukiShim { inner: Arc::new(Inner { config, host }) })
    }

    async fn start_container(&self, spec: ContainerSpec) -> Result<Arc<dyn Container>, ShimError> {
        check_id(&spec.id)?;
        let (id, log) = (spec.id.clone(), spec.log.clone());
        let inner = self.inner.clone();
        let started = Instant::now();
        let cgroup = Cgroup::new(&self.inner.host.hierarchy, &spec::cgroups_path(&spec.linux, &spec.id));
        let (pid, runtime, output) =
            tokio::task::spawn_blocking(move || inner.launch(&spec)).await.map_err(task_failed)??;
        let init = match Process::open(pid) {
            Ok(init) => init,
            Err(err) => {
                let inner = self.inner.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    fork::abandon(pid);
                    inner.remove(&id)
                })
                .await;
                return Err(ShimError::Runtime(format!("cannot watch the container's process: {err}")));
            }
        };
        tracing::debug!(container = %id, pid, took = ?started.elapsed(), "linux container started");
        Ok(self.inner.watch(&id, init, &runtime, cgroup, output, log))
    }

    async fn adopt_container(&self, id: String, log: Arc<dyn LogSink>) -> Option<Arc<dyn Container>> {
        check_id(&id).ok()?;
        let inner = self.inner.clone();
        let lookup_id = id.clone();
        let (pid, runtime, output) = tokio::task::spawn_blocking(move || inner.running(&lookup_id)).await.ok()??;
        let init = Process::open(pid).ok()?;
        // The pid must still be the container's, not reused since its state was written.
        let cgroup = self.inner.cgroup(&runtime)?;
        if !cgroup.pids().contains(&pid) {
            return None;
        }
        tracing::info!(container = %id, pid, "adopted a running linux container");
        Some(self.inner.watch(&id, init, &runtime, cgroup, output, log))
    }
}

impl Inner {
    fn bundle(&self, id: &str) -> Bundle {
        Bundle::new(&self.config.containers_dir(), id)
    }

    /// The cgroup of a container whose runtime spec (from its bundle) is `runtime`.
    fn cgroup(&self, runtime: &Spec) -> Option<Cgroup> {
        let path = runtime.linux().as_ref()?.cgroups_path().as_ref()?;
        Some(Cgroup::new(&self.host.hierarchy, path))
    }

    /// Prepares the bundle and has libcontainer create and start the container; returns its
    /// init's pid, its runtime spec and the read ends of its output. Undoes everything if it
    /// fails.
    fn launch(&self, spec: &ContainerSpec) -> Result<(i32, Spec, Output), ShimError> {
        let bundle = self.bundle(&spec.id);
        let state = self.config.state_dir().join(&spec.id);
        if bundle.dir().exists() || state.exists() {
            return Err(ShimError::Runtime(format!("container {} already exists", spec.id)));
        }
        let launched = (|| {
            let started = Instant::now();
            bundle.create(&spec.linux.layers)?;
            let identity = user::resolve(&spec.linux, &Accounts::read(&bundle.rootfs()))?;
            let runtime = spec::runtime_spec(spec, &bundle.rootfs(), &identity, &self.host)?;
            runtime.save(bundle.config()).map_err(|e| ShimError::Runtime(format!("cannot write config.json: {e}")))?;
            let (stdio, output) = bundle.stdio()?;
            let prepared = started.elapsed();
            let state_dir = self.config.state_dir();
            let pid = fork::run(|| launch::create_and_start(&state_dir, &spec.id, bundle.dir(), stdio))
                .map_err(|e| ShimError::Runtime(format!("starting container {}: {e}", spec.id)))?;
            tracing::debug!(container = %spec.id, bundle = ?prepared, libcontainer = ?(started.elapsed() - prepared), "launched");
            Ok((pid, runtime, output))
        })();
        if launched.is_err()
            && let Err(err) = self.remove(&spec.id)
        {
            tracing::warn!(container = %spec.id, %err, "cannot clean up after a failed start");
        }
        launched
    }

    fn watch(
        &self,
        id: &str,
        init: Process,
        runtime: &Spec,
        cgroup: Cgroup,
        output: Output,
        log: Arc<dyn LogSink>,
    ) -> Arc<dyn Container> {
        let exec = ExecContext::new(id, &self.config.state_dir(), &self.config.containers_dir(), runtime);
        LinuxContainer::watch(id.to_string(), init, cgroup, exec, output, log)
    }

    /// The init pid, runtime spec and output of container `id` if libcontainer's state says it
    /// runs.
    fn running(&self, id: &str) -> Option<(i32, Spec, Output)> {
        let state = StateContainer::load(self.config.state_dir().join(id)).ok()?;
        if state.status() != ContainerStatus::Running {
            return None;
        }
        let bundle = self.bundle(id);
        let runtime = Spec::load(bundle.config()).ok()?;
        let output = bundle.output().ok()?;
        Some((state.pid()?.as_raw(), runtime, output))
    }

    fn existing(&self) -> Vec<String> {
        let mut ids = BTreeSet::new();
        for dir in [self.config.state_dir(), self.config.containers_dir()] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            ids.extend(entries.flatten().filter_map(|e| e.file_name().into_string().ok()));
        }
        ids.into_iter().collect()
    }

    /// Kills what is left of container `id`, has libcontainer delete it (state and cgroup),
    /// unmounts its root filesystem and deletes its bundle. Blocks.
    fn remove(&self, id: &str) -> Result<(), ShimError> {
        check_id(id)?;
        let bundle = self.bundle(id);
        if let Some(cgroup) = Spec::load(bundle.config()).ok().and_then(|runtime| self.cgroup(&runtime))
            && !cgroup.empty(KILL_PATIENCE)
        {
            tracing::warn!(container = %id, "processes of the container outlived SIGKILL");
        }
        let state = self.config.state_dir().join(id);
        if state.exists() {
            match StateContainer::load(state.clone()) {
                Ok(mut container) => {
                    container.delete(true).map_err(|e| ShimError::Runtime(format!("deleting container {id}: {e}")))?
                }
                Err(err) => {
                    tracing::warn!(container = %id, %err, "unreadable container state, deleting it");
                    std::fs::remove_dir_all(&state)
                        .map_err(|e| ShimError::Runtime(format!("cannot remove {}: {e}", state.display())))?;
                }
            }
        }
        bundle.remove()
    }
}

impl Shim for YoukiShim {
    fn name(&self) -> &'static str {
        "youki"
    }

    fn start(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<Arc<dyn Container>, ShimError>> {
        Box::pin(self.start_container(spec))
    }

    fn existing(&self) -> Vec<String> {
        self.inner.existing()
    }

    fn adopt(&self, id: &str, log: Arc<dyn LogSink>) -> BoxFuture<'_, Option<Arc<dyn Container>>> {
        Box::pin(self.adopt_container(id.to_string(), log))
    }

    fn remove(&self, id: &str) -> BoxFuture<'_, Result<(), ShimError>> {
        let inner = self.inner.clone();
        let id = id.to_string();
        Box::pin(async move { tokio::task::spawn_blocking(move || inner.remove(&id)).await.map_err(task_failed)? })
    }
}
