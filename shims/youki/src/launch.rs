//! The libcontainer calls: create and start a container, start a process inside one. They run
//! inside the helper process of [`crate::fork`], never in the agent itself.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::oci_spec::runtime::{LinuxSeccomp, Spec};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError};

/// The standard streams a process starts with.
pub(crate) struct Stdio {
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

/// Creates the container of the bundle at `bundle` and starts its process; returns its pid.
pub(crate) fn create_and_start(state_dir: &Path, id: &str, bundle: &Path, stdio: Stdio) -> Result<i32, String> {
    let mut container = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(state_dir)
        .map_err(|e| wharf_shim::error_chain(&e))?
        .with_executor(Workload::default())
        .with_stdin(stdio.stdin)
        .with_stdout(stdio.stdout)
        .with_stderr(stdio.stderr)
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .as_sibling(true)
        .build()
        .map_err(|e| wharf_shim::error_chain(&e))?;
    container.start().map_err(|e| wharf_shim::error_chain(&e))?;
    container.pid().map(|pid| pid.as_raw()).ok_or_else(|| "the container has no pid".to_string())
}

/// How an exec'd process gets its terminal or streams.
pub(crate) enum ExecIo {
    /// A pseudo-terminal whose master libcontainer sends to this socket.
    Terminal {
        console_socket: PathBuf,
    },
    Streams(Stdio),
}

/// Starts the process described by the process.json at `process` in container `id`, under
/// the container's seccomp filter; returns its pid once it has exec'd.
pub(crate) fn exec(
    state_dir: &Path,
    id: &str,
    process: &Path,
    io: ExecIo,
    seccomp: Option<LinuxSeccomp>,
) -> Result<i32, String> {
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(state_dir)
        .map_err(|e| wharf_shim::error_chain(&e))?
        .with_executor(Workload { seccomp, ..Workload::default() });
    let terminal = matches!(io, ExecIo::Terminal { .. });
    match io {
        ExecIo::Terminal { console_socket } => builder = builder.with_console_socket(Some(console_socket)),
        ExecIo::Streams(stdio) => {
            builder = builder.with_stdin(stdio.stdin).with_stdout(stdio.stdout).with_stderr(stdio.stderr)
        }
    }
    let pid = builder
        .as_tenant()
        .with_process(Some(process))
        .with_detach(terminal)
        .as_sibling(true)
        .build()
        .map_err(|e| wharf_shim::error_chain(&e))?;
    Ok(pid.as_raw())
}

/// Execs the container's command. Like libcontainer's default executor, except that it sets the
/// environment through `execve` rather than the process environment (whose lock another thread
/// of the agent may have held when the helper was forked), and that it loads `seccomp` first:
/// libcontainer gives exec'd processes no filter of their own. Loading a filter without
/// CAP_SYS_ADMIN needs no_new_privs, so such processes always run with it.
#[derive(Clone, Default)]
struct Workload {
    seccomp: Option<LinuxSeccomp>,
    env: OnceCell<Vec<CString>>,
}

fn failed(what: &str, err: impl std::fmt::Display) -> ExecutorError {
    ExecutorError::Other(format!("{what}: {err}"))
}

/// Where `PATH` (from `env`) finds `program`, as execvp would.
fn find_program(program: &str, env: &[CString]) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = env.iter().find_map(|e| e.to_str().ok()?.strip_prefix("PATH=").map(str::to_owned))?;
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

impl Executor for Workload {
    fn setup_envs(&self, envs: HashMap<String, String>) -> Result<(), ExecutorSetEnvsError> {
        let env = envs
            .into_iter()
            .map(|(k, v)| CString::new(format!("{k}={v}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExecutorSetEnvsError::Other(format!("environment: {e}")))?;
        let _ = self.env.set(env);
        Ok(())
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = spec.process().as_ref().and_then(|p| p.args().as_ref()).ok_or(ExecutorError::InvalidArg)?;
        let env = self.env.get().map(Vec::as_slice).unwrap_or_default();
        let program = args.first().ok_or(ExecutorError::InvalidArg)?;
        let path = find_program(program, env)
            .ok_or_else(|| failed("exec", format!("executable '{program}' not found in $PATH")))?;
        let path = CString::new(path.into_os_string().into_vec()).map_err(|e| failed("exec", e))?;
        let args = args.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<Vec<_>, _>>();
        let args = args.map_err(|e| failed("exec", e))?;
        if let Some(seccomp) = &self.seccomp {
            nix::sys::prctl::set_no_new_privs().map_err(|e| failed("no_new_privs", e))?;
            libcontainer::seccomp::initialize_seccomp(seccomp)
                .map_err(|e| failed("seccomp", wharf_shim::error_chain(&e)))?;
        }
        let err = nix::unistd::execve(&path, &args, env).unwrap_err();
        Err(failed(&format!("exec {program}"), err))
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}
