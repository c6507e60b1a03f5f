//! Runs libcontainer's create/start/exec in a forked, single-threaded helper process.
//!
//! libcontainer clones the calling process and runs ordinary Rust (allocations, locks, logging)
//! in the clones before they exec. Cloning a multi-threaded agent that way can leave a clone
//! waiting forever on a lock another thread held at that instant; libcontainer also changes
//! process-wide state (the working directory while it binds sockets, the dumpable flag). So
//! each such call runs in a helper: a `fork` of the calling thread (glibc's fork keeps the
//! allocator usable in the child), with logging switched off, that makes the call and reports
//! one line back through a pipe. Rust's own locks are not reset by fork: the helper and its
//! clones must not take one another thread may hold (the process environment's write lock,
//! notably, which is why the container's command is exec'd with an explicit environment); a
//! helper that hangs anyway is killed after [`HELPER_PATIENCE`] and the call fails.
//!
//! The helper asks libcontainer for `as_sibling` processes, so the intermediate process and
//! the container's processes it clones become children of the agent (of the thread that
//! forked), which the agent can wait for. Intermediate processes (and inits that failed) are
//! reaped here; the process a call started is tracked until its watcher reaps it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{ForkResult, Pid};
use rustix::process::{PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

/// Container processes some watcher owns and will reap.
static TRACKED: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// How long a helper may take.
const HELPER_PATIENCE: Duration = Duration::from_secs(60);
/// How long a stray libcontainer process may take to end before it is killed.
const STRAY_PATIENCE: Duration = Duration::from_secs(2);

pub(crate) fn untrack(pid: i32) {
    TRACKED.lock().expect("tracked lock").remove(&pid);
}

/// Kills and reaps a tracked process nobody will watch. Blocks.
pub(crate) fn abandon(pid: i32) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    reap(Pid::from_raw(pid));
    untrack(pid);
}

/// Waits for our child `pid` to end and reaps it. Blocks.
fn reap(pid: Pid) {
    while waitpid(pid, Some(WaitPidFlag::__WALL)) == Err(Errno::EINTR) {}
}

/// Waits (at most `timeout`) until `fd` is readable, or has hung up. Blocks.
pub(crate) fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)) {
            Err(Errno::EINTR) => continue,
            Ok(ready) => return ready > 0,
            Err(_) => return false,
        }
    }
}

/// Runs `job` in a helper process; `job` returns the pid of the process it started, which is
/// then tracked (the caller must watch it). Blocks; call it from a blocking thread.
pub(crate) fn run(job: impl FnOnce() -> Result<i32, String>) -> Result<i32, String> {
    let (reader, writer) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let helper = spawn_helper(job, writer).map_err(|e| format!("fork: {e}"))?;
    let mut reply = String::new();
    let answered = readable(reader.as_fd(), HELPER_PATIENCE);
    if answered {
        let _ = BufReader::new(std::fs::File::from(reader)).read_line(&mut reply);
    } else {
        let _ = nix::sys::signal::kill(helper, nix::sys::signal::Signal::SIGKILL);
    }
    reap(helper);
    let result = match reply.trim_end().split_once(' ') {
        Some(("ok", pid)) => pid.parse().map_err(|_| format!("bad helper reply {reply:?}")),
        Some(("err", message)) => Err(message.to_string()),
        _ if !answered => Err(format!("libcontainer did not finish within {HELPER_PATIENCE:?}")),
        _ => Err("the helper process ended without a reply".to_string()),
    };
    if let Ok(pid) = result {
        TRACKED.lock().expect("tracked lock").insert(pid);
    }
    reap_strays();
    result
}

/// Forks; the child runs `job`, writes its reply line to `reply` and exits.
#[allow(unsafe_code)]
fn spawn_helper(job: impl FnOnce() -> Result<i32, String>, reply: OwnedFd) -> nix::Result<Pid> {
    // SAFETY: the child is a copy of a multi-threaded process with only this thread. glibc's
    // fork leaves its allocator and stdio locks usable in the child; the child disables tracing
    // (whose subscriber's locks another thread may hold), never touches the async runtime, runs
    // only `job` (libcontainer's builder, which forks again from this single thread and is kept
    // away from the environment's write lock, see the module docs), and leaves with `_exit` so
    // no destructor or exit handler of the parent's state runs. A hang is bounded by `run`.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let _quiet = tracing::dispatcher::set_default(&tracing::Dispatch::none());
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
                .unwrap_or_else(|_| Err("the helper process panicked".into()));
            let line = match outcome {
                Ok(pid) => format!("ok {pid}\n"),
                Err(message) => format!("err {}\n", message.replace('\n', " ")),
            };
            let _ = nix::unistd::write(&reply, line.as_bytes());
            // SAFETY: ends the helper at once, as above.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Reaps the processes libcontainer left as children of this thread: intermediate processes
/// (named `youki:[1:INTER]`) and inits that failed or were never started (`youki:[2:INIT]`).
fn reap_strays() {
    let tid = nix::unistd::gettid();
    let Ok(children) = std::fs::read_to_string(format!("/proc/self/task/{tid}/children")) else { return };
    for pid in children.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
        if TRACKED.lock().expect("tracked lock").contains(&pid) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.starts_with("youki:") {
            continue;
        }
        if let Some(fd) = rustix::process::Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok())
            && !readable(fd.as_fd(), STRAY_PATIENCE)
        {
            let _ = pidfd_send_signal(&fd, Signal::KILL);
        }
        reap(Pid::from_raw(pid));
    }
}
