//! Commands run inside a running container (`kubectl exec`, exec probes), as runc exec does:
//! a process in the container's namespaces and cgroup, with the container's user,
//! capabilities, environment, working directory and seccomp filter. Without a TTY its streams
//! are pipes (or /dev/null when not asked for); with one it gets a pseudo-terminal made in the
//! container (its controlling terminal, so a shell is interactive), whose master libcontainer
//! sends over a console socket.

use std::fs::File;
use std::io::{IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libcontainer::oci_spec::runtime::{LinuxSeccomp, Process as ProcessSpec, Spec};
use nix::fcntl::OFlag;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::termios::Winsize;
use wharf_shim::{ExecProcess, ExecSpec, ShimError};

use crate::exit::Ended;
use crate::fork;
use crate::launch::{self, ExecIo, Stdio};
use crate::process::Process;

/// How long libcontainer may take to hand over the terminal once the command runs.
const CONSOLE_PATIENCE: Duration = Duration::from_secs(5);

/// What exec needs to know about a container.
pub(crate) struct ExecContext {
    pub(crate) id: String,
    pub(crate) state_dir: PathBuf,
    pub(crate) containers_dir: PathBuf,
    /// The container's own process: what every exec'd one is made from.
    pub(crate) process: ProcessSpec,
    pub(crate) seccomp: Option<LinuxSeccomp>,
}

impl ExecContext {
    pub(crate) fn new(id: &str, state_dir: &Path, containers_dir: &Path, spec: &Spec) -> ExecContext {
        ExecContext {
            id: id.to_string(),
            state_dir: state_dir.to_path_buf(),
            containers_dir: containers_dir.to_path_buf(),
            process: spec.process().clone().unwrap_or_default(),
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
        }
    }
}

/// A started command's ends.
struct Started {
    pid: i32,
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
    terminal: Option<Arc<OwnedFd>>,
}

fn runtime(what: &str, err: impl std::fmt::Display) -> ShimError {
    ShimError::Runtime(format!("{what}: {err}"))
}

pub(crate) async fn exec(ctx: Arc<ExecContext>, spec: ExecSpec) -> Result<ExecProcess, ShimError> {
    if spec.args.is_empty() {
        return Err(ShimError::Runtime("exec needs a command".into()));
    }
    // Started and watched on a task of its own: a caller that stops polling (a probe whose
    // container is being stopped) must not leave the process unreaped, or the container's init
    // could never finish exiting (the kernel waits for every process of its PID namespace).
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = started_tx.send(start_watched(ctx, spec).await);
    });
    started_rx.await.map_err(|e| runtime("exec task", e))?
}

/// Starts the process and a task that reaps it when it ends, whatever becomes of the caller.
async fn start_watched(ctx: Arc<ExecContext>, spec: ExecSpec) -> Result<ExecProcess, ShimError> {
    let started =
        tokio::task::spawn_blocking(move || start(&ctx, &spec)).await.map_err(|e| runtime("exec task", e))??;
    let process = match Process::open(started.pid) {
        Ok(process) => process,
        Err(err) => {
            tokio::task::spawn_blocking(move || fork::abandon(started.pid));
            return Err(runtime("cannot watch the exec'd process", err));
        }
    };
    let (code_tx, code_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let code = match process.ended().await {
            Ended::Exited(code) => code,
            Ended::Signaled(signal) => 128 + signal,
            Ended::Unknown => 255,
        };
        let _ = code_tx.send(code);
    });
    let terminal = started.terminal;
    Ok(ExecProcess {
        stdin: started.stdin,
        stdout: started.stdout,
        stderr: started.stderr,
        resize: Box::new(move |cols, rows| {
            if let Some(master) = &terminal {
                let size = Winsize { ws_col: cols, ws_row: rows, ws_xpixel: 0, ws_ypixel: 0 };
                if let Err(err) = rustix::termios::tcsetwinsize(master.as_fd(), size) {
                    tracing::debug!(%err, "cannot resize the exec terminal");
                }
            }
        }),
        exit: Box::pin(async move { code_rx.await.unwrap_or(255) }),
    })
}

/// A name for this exec's files in the bundle directory.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("exec-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn start(ctx: &ExecContext, spec: &ExecSpec) -> Result<Started, ShimError> {
    let bundle = ctx.containers_dir.join(&ctx.id);
    let name = unique_name();
    let process_path = bundle.join(format!("{name}.json"));
    let mut process = ctx.process.clone();
    process.set_args(Some(spec.args.clone())).set_terminal(Some(spec.tty));
    if spec.tty {
        // Full-screen programs need to know the terminal, as with other runtimes.
        let mut env = process.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        process.set_env(Some(env));
    }
    let json = serde_json::to_vec(&process).map_err(|e| runtime("exec process", e))?;
    std::fs::write(&process_path, json).map_err(|e| runtime("cannot write the exec process", e))?;
    let started = if spec.tty {
        start_with_terminal(ctx, spec, &bundle, &name, &process_path)
    } else {
        start_with_pipes(ctx, spec, &process_path)
    };
    let _ = std::fs::remove_file(&process_path);
    started
}

fn launch(ctx: &ExecContext, process_path: &Path, io: ExecIo) -> Result<i32, ShimError> {
    fork::run(|| launch::exec(&ctx.state_dir, &ctx.id, process_path, io, ctx.seccomp.clone()))
        .map_err(|e| ShimError::Runtime(format!("exec in container {}: {e}", ctx.id)))
}

fn start_with_pipes(ctx: &ExecContext, spec: &ExecSpec, process_path: &Path) -> Result<Started, ShimError> {
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| runtime("pipe", e));
    let null = |write: bool| -> Result<OwnedFd, ShimError> {
        let file = std::fs::OpenOptions::new().read(!write).write(write).open("/dev/null");
        Ok(file.map_err(|e| runtime("/dev/null", e))?.into())
    };
    let (stdin, stdin_writer) = if spec.stdin {
        let (read, write) = pipe()?;
        (read, Some(File::from(write)))
    } else {
        (null(false)?, None)
    };
    let output = |asked: bool| -> Result<(OwnedFd, Option<File>), ShimError> {
        if asked {
            let (read, write) = pipe()?;
            Ok((write, Some(File::from(read))))
        } else {
            Ok((null(true)?, None))
        }
    };
    let (stdout, stdout_reader) = output(spec.stdout)?;
    let (stderr, stderr_reader) = output(spec.stderr)?;
    // The command's ends are closed here once it has them, so readers see its end.
    let pid = launch(ctx, process_path, ExecIo::Streams(Stdio { stdin, stdout, stderr }))?;
    Ok(Started { pid, stdin: stdin_writer, stdout: stdout_reader, stderr: stderr_reader, terminal: None })
}

fn start_with_terminal(
    ctx: &ExecContext,
    spec: &ExecSpec,
    bundle: &Path,
    name: &str,
    process_path: &Path,
) -> Result<Started, ShimError> {
    let socket_path = bundle.join(format!("{name}.sock"));
    // Bound through /proc/self/fd: the bundle's path may be longer than a socket address.
    let dir = File::open(bundle).map_err(|e| runtime("cannot open the bundle", e))?;
    let listener = UnixListener::bind(format!("/proc/self/fd/{}/{name}.sock", dir.as_raw_fd()))
        .map_err(|e| runtime("cannot bind the console socket", e))?;
    let master = launch(ctx, process_path, ExecIo::Terminal { console_socket: socket_path.clone() })
        .and_then(|pid| Ok((pid, receive_master(&listener)?)));
    let _ = std::fs::remove_file(&socket_path);
    let (pid, master) = master?;
    let master = Arc::new(master);
    let clone = |fd: &OwnedFd| fd.try_clone().map_err(|e| runtime("dup", e));
    let stdin = if spec.stdin { Some(File::from(clone(&master)?)) } else { None };
    let stdout = relay(File::from(clone(&master)?))?;
    Ok(Started { pid, stdin, stdout: Some(stdout), stderr: None, terminal: Some(master) })
}

/// Accepts libcontainer's connection and takes the terminal master it sends.
fn receive_master(listener: &UnixListener) -> Result<OwnedFd, ShimError> {
    if !fork::readable(listener.as_fd(), CONSOLE_PATIENCE) {
        return Err(ShimError::Runtime("the exec'd process sent no terminal".into()));
    }
    let (stream, _) = listener.accept().map_err(|e| runtime("console socket", e))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut name = [0u8; 64];
    loop {
        let iov = &mut [IoSliceMut::new(&mut name)];
        match rustix::net::recvmsg(&stream, iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Err(rustix::io::Errno::INTR) => continue,
            received => {
                received.map_err(|e| runtime("console socket", e))?;
                break;
            }
        }
    }
    control
        .drain()
        .find_map(|message| match message {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .ok_or_else(|| ShimError::Runtime("the console socket carried no terminal".into()))
}

/// A pipe fed from the terminal master: reading a master whose other side closed fails (EIO)
/// instead of reaching end-of-file, so a thread copies it and closes the pipe at its end.
fn relay(mut master: File) -> Result<File, ShimError> {
    let (reader, writer) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| runtime("pipe", e))?;
    let mut writer = File::from(writer);
    std::thread::Builder::new()
        .name("youki-exec-tty".into())
        .spawn(move || {
            let mut buf = [0u8; 16 << 10];
            loop {
                match master.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) if writer.write_all(&buf[..n]).is_err() => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // EIO: the command and everything holding the terminal have ended.
                    Err(_) => break,
                }
            }
        })
        .map_err(|e| runtime("cannot start the terminal relay", e))?;
    Ok(File::from(reader))
}
