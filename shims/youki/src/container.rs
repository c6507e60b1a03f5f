//! A running Linux container: the `Container` handle the agent holds, and the task that watches
//! its init process, forwards its output to the container log, and classifies its end.
//!
//! Dropping the handle leaves the container running (the agent may take it over again with
//! `adopt`); `stop` or `Shim::remove` end it.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use rustix::process::Signal;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wharf_shim::{BoxFuture, Container, ExecProcess, ExecSpec, Exit, LogSink, ShimError, Stats, Stream};

use crate::bundle::Output;
use crate::cgroup::Cgroup;
use crate::exec::ExecContext;
use crate::exit;
use crate::process::Process;

/// How long forwarding the rest of the output may take once the init ended.
const DRAIN: Duration = Duration::from_secs(2);
/// How long `stop` waits for the end of a SIGKILLed init before it looks at the process itself.
const KILLED_PATIENCE: Duration = Duration::from_secs(5);
/// Bytes read from an output FIFO at a time.
const CHUNK: usize = 64 << 10;

pub(crate) struct LinuxContainer {
    id: String,
    init: Arc<Process>,
    cgroup: Cgroup,
    exit: watch::Receiver<Option<Exit>>,
    /// The last signal `stop` sent (0: none).
    stopped_with: Arc<AtomicI32>,
    exec: Arc<ExecContext>,
}

/// Forwards one output FIFO to `sink` until the container has ended, then what is left in it.
fn forward(
    fifo: OwnedFd,
    stream: Stream,
    sink: Arc<dyn LogSink>,
    mut ended: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let mut fifo = match pipe::Receiver::from_owned_fd(fifo) {
        Ok(fifo) => fifo,
        Err(err) => {
            tracing::warn!(%err, "cannot read container output");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        let mut buf = vec![0; CHUNK];
        loop {
            tokio::select! {
                read = fifo.read(&mut buf) => match read {
                    Ok(n @ 1..) => sink.write(stream, &buf[..n]),
                    _ => return,
                },
                _ = ended.wait_for(|ended| *ended) => break,
            }
        }
        // Its processes are gone (they die with its init), so no end-of-file is needed: take
        // what the FIFO still holds, reading it directly (the runtime may not have seen it
        // become readable yet).
        while let Ok(n @ 1..) = rustix::io::read(&fifo, &mut buf) {
            sink.write(stream, &buf[..n]);
        }
    }))
}

impl LinuxContainer {
    /// Starts watching a container whose init is `init`, forwarding `output` to `log`.
    pub(crate) fn watch(
        id: String,
        init: Process,
        cgroup: Cgroup,
        exec: ExecContext,
        output: Output,
        log: Arc<dyn LogSink>,
    ) -> Arc<LinuxContainer> {
        let (ended_tx, ended_rx) = watch::channel(false);
        let mut readers: Vec<JoinHandle<()>> = [(output.stdout, Stream::Stdout), (output.stderr, Stream::Stderr)]
            .into_iter()
            .filter_map(|(fifo, stream)| forward(fifo, stream, log.clone(), ended_rx.clone()))
            .collect();
        let (exit_tx, exit) = watch::channel(None);
        let init = Arc::new(init);
        let stopped_with = Arc::new(AtomicI32::new(0));
        let container = Arc::new(LinuxContainer {
            id: id.clone(),
            init: init.clone(),
            cgroup: cgroup.clone(),
            exit,
            stopped_with: stopped_with.clone(),
            exec: Arc::new(exec),
        });
        tokio::spawn(async move {
            let ended = init.ended().await;
            ended_tx.send_replace(true);
            let drained = tokio::time::timeout(DRAIN, async {
                for reader in readers.iter_mut() {
                    let _ = reader.await;
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(container = %id, "container output still flowing after its init ended");
                readers.iter().for_each(JoinHandle::abort);
            }
            let stopped = stopped_with.load(Ordering::SeqCst);
            let exit = exit::classify(ended, cgroup.oom_kills(), (stopped != 0).then_some(stopped));
            tracing::debug!(container = %id, ?ended, ?exit, "linux container ended");
            exit_tx.send_replace(Some(exit));
        });
        container
    }

    fn ended(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }
}

/// Whether `/proc/PID/stat` shows the process in `state` (the field after the command name).
fn process_state_is(stat: &str, state: char) -> bool {
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()) == Some(state)
}

impl Container for LinuxContainer {
    fn id(&self) -> &str {
        &self.id
    }

    fn wait(&self) -> BoxFuture<'_, Exit> {
        let mut exit = self.exit.clone();
        Box::pin(async move {
            match exit.wait_for(Option::is_some).await {
                Ok(ended) => ended.clone().expect("waited for Some"),
                Err(_) => {
                    Exit::Failed { code: exit::UNKNOWN_EXIT_CODE, message: "the container watcher panicked".into() }
                }
            }
        })
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            if let Some(exit) = self.ended() {
                return exit;
            }
            self.stopped_with.store(libc::SIGTERM, Ordering::SeqCst);
            self.init.signal(Signal::TERM);
            if let Ok(exit) = tokio::time::timeout(grace, self.wait()).await {
                return exit;
            }
            tracing::debug!(container = %self.id, pid = self.init.pid(), "grace period over, killing");
            self.stopped_with.store(libc::SIGKILL, Ordering::SeqCst);
            loop {
                self.init.signal(Signal::KILL);
                self.cgroup.kill_all();
                if let Ok(exit) = tokio::time::timeout(KILLED_PATIENCE, self.wait()).await {
                    return exit;
                }
                // The end of a SIGKILLed init was not seen: if the process is gone (or a zombie
                // nobody reaps) the pod must not wait for it forever; if it lives, say how.
                let pid = self.init.pid();
                match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                    Ok(stat) if !process_state_is(&stat, 'Z') => {
                        tracing::warn!(container = %self.id, pid, stat = %stat.trim(), "killed container init still runs");
                    }
                    _ => {
                        tracing::warn!(container = %self.id, pid, "killed container init ended unseen");
                        return Exit::Killed { signal: libc::SIGKILL };
                    }
                }
            }
        })
    }

    fn stats(&self) -> Stats {
        self.cgroup.stats()
    }

    fn exec(&self, spec: ExecSpec) -> BoxFuture<'_, Result<ExecProcess, ShimError>> {
        Box::pin(crate::exec::exec(self.exec.clone(), spec))
    }
}

#[cfg(test)]
mod tests {
    use super::process_state_is;

    #[test]
    fn the_state_is_read_after_the_command_name() {
        assert!(process_state_is("4242 (sh) Z 1 4242 4242 0", 'Z'));
        assert!(!process_state_is("4242 (odd) name) S 1 4242", 'Z'));
        assert!(process_state_is("4242 (odd) name) D 1 4242", 'D'));
    }
}
