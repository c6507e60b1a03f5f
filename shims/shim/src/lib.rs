//! The contract between the node agent and its container runtimes: the `Shim` trait and the
//! small, engine-neutral description of a container it receives. Engine code lives in the shim
//! crates, never here; the agent never sees an engine's types.

pub mod http;
pub mod image;

use std::fs::File;
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

/// A [`LogSink`] that keeps all output in memory (tests, and tools that capture a run).
#[derive(Default)]
pub struct MemorySink(std::sync::Mutex<Vec<(Stream, Vec<u8>)>>);

impl LogSink for MemorySink {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        self.0.lock().expect("memory sink lock").push((stream, bytes.to_vec()));
    }
}

impl MemorySink {
    /// Everything written to `stream`, as text (invalid UTF-8 replaced).
    pub fn text(&self, stream: Stream) -> String {
        let chunks = self.0.lock().expect("memory sink lock");
        let bytes: Vec<u8> = chunks.iter().filter(|(s, _)| *s == stream).flat_map(|(_, b)| b.clone()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn stdout(&self) -> String {
        self.text(Stream::Stdout)
    }

    /// Bytes written to both streams.
    pub fn total_bytes(&self) -> usize {
        self.0.lock().expect("memory sink lock").iter().map(|(_, b)| b.len()).sum()
    }
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
    /// The pod's network namespace (a bind-mounted namespace file) when the guest may use
    /// sockets: the wasmtime shim then grants wasi-sockets and runs the guest on a thread that
    /// joined this namespace. `None` denies sockets. Linux containers join the pod's network
    /// through `linux.namespaces` instead and ignore it.
    pub network: Option<PathBuf>,
    /// What only Linux containers use; the wasmtime shim ignores it.
    pub linux: LinuxSpec,
}

/// A namespace kind a container can join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceKind {
    Network,
    Ipc,
    Uts,
}

/// A namespace of the pod sandbox, kept alive by a bind mount at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNamespace {
    pub kind: NamespaceKind,
    pub path: PathBuf,
}

/// `seccompProfile.type`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// The container runtime's default filter (Kubernetes' `RuntimeDefault`).
    #[default]
    RuntimeDefault,
    Unconfined,
    /// Kubernetes' `Localhost`: the filter in this file (the OCI runtime spec's `linux.seccomp`
    /// JSON), which the agent resolved below its seccomp directory.
    Localhost(PathBuf),
}

/// The Linux part of a container: its root filesystem, the pod sandbox it joins, identity,
/// privileges and the cgroup limits beyond `ContainerSpec`'s memory and cpu limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinuxSpec {
    /// Unpacked image layers, bottom first; the shim overlays them under a writable upper dir
    /// of its own and removes that with the container.
    pub layers: Vec<PathBuf>,
    /// The pod's namespaces (network, IPC, UTS) the container joins; the sandbox already has
    /// its hostname set. Empty: the container gets namespaces of its own.
    pub namespaces: Vec<SandboxNamespace>,
    /// The pod's name, the hostname when the container has a UTS namespace of its own.
    pub hostname: String,
    /// cgroup path under each hierarchy's root the container's cgroup goes below, e.g.
    /// `wharf/pod<uid>`.
    pub cgroup_parent: String,
    /// The image's `config.User` (`uid`, `uid:gid`, `name`, `name:group`), resolved against
    /// the rootfs's /etc/passwd and /etc/group when not numeric.
    pub image_user: Option<String>,
    /// `securityContext.runAsUser` / `runAsGroup` (container's, else the pod's): override the image.
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    /// `runAsNonRoot`: refuse to start (InvalidArtifact with a clear message) as uid 0.
    pub run_as_non_root: bool,
    /// Pod `securityContext.supplementalGroups` (and fsGroup).
    pub supplemental_groups: Vec<i64>,
    pub read_only_root_filesystem: bool,
    /// All capabilities, devices, no seccomp, no masked paths.
    pub privileged: bool,
    /// `allowPrivilegeEscalation: false` → no_new_privs.
    pub no_new_privileges: bool,
    /// Capability names as Kubernetes writes them (`NET_ADMIN`, or `CAP_NET_ADMIN`; `ALL` in drop).
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub seccomp: Seccomp,
    /// `resources.requests.cpu` in millicores → cpu shares (v1) or weight (v2).
    pub cpu_request_millis: Option<u64>,
    /// Most processes the container's cgroup may hold.
    pub pids_limit: Option<i64>,
}

/// A command to run inside a running container (`kubectl exec`, exec probes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// argv, program first, looked up in the container's PATH.
    pub args: Vec<String>,
    /// Give the command a terminal: stdin and stdout are then the terminal, stderr is not separate.
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A command started inside a container. The files are blocking pipes (or the terminal's
/// master side with a TTY); readers see end-of-file once the command and everything holding
/// its output have ended.
pub struct ExecProcess {
    /// Writes to the command's stdin; `None` unless asked for. Drop it to close stdin.
    pub stdin: Option<File>,
    /// The command's stdout (with a TTY: the terminal, stdout and stderr together).
    pub stdout: Option<File>,
    /// The command's stderr; `None` with a TTY or when not asked for.
    pub stderr: Option<File>,
    /// Sets the terminal's size (columns, rows); does nothing without a TTY.
    pub resize: Box<dyn Fn(u16, u16) + Send + Sync>,
    /// Resolves to the command's exit code (128 + signal when a signal ended it).
    pub exit: BoxFuture<'static, i32>,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
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
            .field("network", &self.network)
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
    /// The runtime cannot do this at all (exec into a Wasm container).
    #[error("{0}")]
    Unsupported(String),
}

/// An error and its causes on one line (`a: b: c`), skipping a cause the text already has:
/// libraries such as reqwest and libcontainer keep the useful part in the source chain.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
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
    /// Runs a command inside the container, beside its main process.
    fn exec(&self, spec: ExecSpec) -> BoxFuture<'_, Result<ExecProcess, ShimError>> {
        let _ = spec;
        Box::pin(async { Err(ShimError::Unsupported("exec is not supported by this runtime".into())) })
    }
}

/// A container runtime the agent can run containers with.
pub trait Shim: Send + Sync {
    /// The runtime handler name: `wasmtime` or `youki`.
    fn name(&self) -> &'static str;
    /// Prepares and starts a container. Preparation errors (bad artifact) come back here, not
    /// as an exit.
    fn start(&self, spec: ContainerSpec) -> BoxFuture<'_, Result<Arc<dyn Container>, ShimError>>;
    /// Ids of the containers this runtime still holds from before the agent (re)started:
    /// running or stopped, not yet removed. In-process runtimes hold none.
    fn existing(&self) -> Vec<String> {
        Vec::new()
    }
    /// Takes over a container [`Shim::existing`] listed, if it is still running, sending its
    /// further output to `log`. Its exit code cannot be known once it ends (the agent that
    /// started it was its parent): `wait` then reports `Exit::Failed` saying so.
    ///
    /// A container must outlive the agent that started it: its stdout and stderr must not be
    /// pipes whose only reader is the agent (the container would die of SIGPIPE when the agent
    /// does), but e.g. FIFOs in its bundle that the container side also holds open for reading,
    /// so output waits for the next agent instead.
    fn adopt(&self, id: &str, log: Arc<dyn LogSink>) -> BoxFuture<'_, Option<Arc<dyn Container>>> {
        let _ = (id, log);
        Box::pin(async { None })
    }
    /// Removes a container: kills what is left of it and deletes its state, cgroup, mounts and
    /// root filesystem. The agent calls it once a container has ended and its status is
    /// recorded, and for containers it finds that no pod claims.
    fn remove(&self, id: &str) -> BoxFuture<'_, Result<(), ShimError>> {
        let _ = id;
        Box::pin(async { Ok(()) })
    }
}
