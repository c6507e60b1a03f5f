//! The contract between the node agent and its container runtimes: the `Shim` trait and the
//! small, engine-neutral description of a container it receives. Engine code lives in the shim
//! crates, never here; the agent never sees an engine's types.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which output stream a line of container output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Where a container's output goes. The agent's implementation writes the CRI log file.
pub trait LogSink: Send + Sync {
    /// Called with raw output as the guest writes it (not necessarily whole lines).
    fn write(&self, stream: Stream, bytes: &[u8]);
}

/// A host directory made visible to the container at `guest_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub guest_path: String,
    pub read_only: bool,
}

/// What to run: the image's content already on disk, and the process's view of the world.
#[derive(Clone)]
pub struct ContainerSpec {
    /// Unique per container attempt (pod uid, container name, restart count).
    pub id: String,
    /// The runnable artifact: for Wasm the `.wasm` module or component file; for Linux
    /// containers the unpacked root filesystem directory.
    pub artifact: PathBuf,
    /// Content digest of the artifact (`sha256:...`), the key of compiled-code caches.
    pub digest: String,
    /// argv, program name first (Kubernetes command + args, or the image's defaults).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    /// `resources.limits.memory` in bytes.
    pub memory_limit: Option<u64>,
    /// `resources.limits.cpu` in millicores.
    pub cpu_limit_millis: Option<u64>,
    pub log: Arc<dyn LogSink>,
}

impl std::fmt::Debug for ContainerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerSpec")
            .field("id", &self.id)
            .field("artifact", &self.artifact)
            .field("digest", &self.digest)
            .field("args", &self.args)
            .field("mounts", &self.mounts)
            .field("memory_limit", &self.memory_limit)
            .finish_non_exhaustive()
    }
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The program exited with this code.
    Code(i32),
    /// It was stopped by `stop` (exit code 137 in Kubernetes' terms, reason Error/Completed
    /// decided by the agent), optionally by this signal.
    Killed { signal: i32 },
    /// It needed more memory than its limit (reason OOMKilled, exit code 137).
    OutOfMemory,
    /// It failed in the runtime (a trap, a bad artifact): reason Error with this message.
    Failed { code: i32, message: String },
}

/// Resource use of a running container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub memory_bytes: u64,
    pub cpu_nanos: u64,
}

/// Errors a shim reports when it cannot create or control a container.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The artifact cannot be run by this shim (invalid Wasm, wrong format): the agent reports
    /// CreateContainerError with this message.
    #[error("{0}")]
    InvalidArtifact(String),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Runtime(String),
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A running (or finished) container.
pub trait Container: Send + Sync {
    fn id(&self) -> &str;
    /// Waits until the container ends.
    fn wait(&self) -> BoxFuture<'_, Exit>;
    /// Asks the container to stop, and forces it after `grace`. Returns once it has ended.
    fn stop(&self, grace: Duration) -> BoxFuture<'_, Exit>;
    fn stats(&self) -> Stats;
}

/// A container runtime the agent can run containers with.
pub trait Shim: Send + Sync {
    /// The runtime handler name: `wasmtime` or `youki`.
    fn name(&self) -> &'static str;
    /// Prepares and starts a container. Preparation errors (bad artifact) come back here, not
    /// as an exit.
    fn start(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<Arc<dyn Container>, ShimError>>;
}
