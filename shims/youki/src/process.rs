//! A process of a container (its init or an exec'd command) watched through a pidfd: waited for
//! without a thread, whether or not it is our child, and signalled without pid reuse races.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use rustix::process::{PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::exit::Ended;
use crate::fork;

/// Registers a pidfd with the async runtime.
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and refers to the same pidfd until
    // the AsyncFd drops it; nothing else closes it.
    Ok(unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?)
}

pub(crate) struct Process {
    pid: i32,
    fd: AsyncFd<OwnedFd>,
}

impl Process {
    /// Opens the process (it may already have ended, but not been reaped). Needs a tokio runtime.
    pub(crate) fn open(pid: i32) -> io::Result<Process> {
        let raw = rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(Process { pid, fd: register(pidfd_open(raw, PidfdFlags::empty())?)? })
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `signal`; a process that has already ended is not an error.
    pub(crate) fn signal(&self, signal: Signal) {
        if let Err(err) = pidfd_send_signal(self.fd.get_ref().as_fd(), signal)
            && err != rustix::io::Errno::SRCH
        {
            tracing::warn!(pid = self.pid, %err, "cannot signal a container process");
        }
    }

    /// Waits until the process ends and reaps it if it is our child.
    pub(crate) async fn ended(&self) -> Ended {
        // A pidfd becomes readable when its process ends.
        if let Err(err) = self.fd.readable().await {
            tracing::warn!(pid = self.pid, %err, "cannot wait for a container process");
            return Ended::Unknown;
        }
        // Container processes are created with CLONE_PARENT and no exit signal: only __WALL sees them.
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::__WALL | WaitPidFlag::WNOHANG;
        let status = loop {
            match waitid(Id::PIDFd(self.fd.get_ref().as_fd()), flags) {
                Err(nix::errno::Errno::EINTR) => continue,
                status => break status,
            }
        };
        let ended = match status {
            Ok(WaitStatus::Exited(_, code)) => Ended::Exited(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => Ended::Signaled(signal as i32),
            // ECHILD: not our child (a container adopted from a previous agent).
            _ => Ended::Unknown,
        };
        fork::untrack(self.pid);
        ended
    }
}
