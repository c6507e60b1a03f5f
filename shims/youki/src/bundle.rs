//! A container's bundle directory, `ROOT/containers/<id>`: config.json, the root filesystem (an
//! overlay of the image layers with `upper/` and `work/` beside it), and the FIFOs its output
//! goes through. The container's stdout and stderr are those FIFOs opened read-write, so a
//! write never fails for want of a reader while no agent runs (it waits once the pipe is full),
//! and a new agent reopens them by name. The agent opens its read ends before the container
//! starts: a FIFO's buffered output is lost once nobody holds it open.

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;
use wharf_shim::{ShimError, Stream};

use crate::launch::Stdio;

/// Longest overlay option string the kernel takes (one page, with its terminating NUL).
const MAX_MOUNT_DATA: usize = 4095;

/// The agent's read ends of a container's output.
pub(crate) struct Output {
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

pub(crate) struct Bundle {
    dir: PathBuf,
}

fn io_error(what: &str, path: &Path, err: impl std::fmt::Display) -> ShimError {
    ShimError::Runtime(format!("{what} {}: {err}", path.display()))
}

impl Bundle {
    pub(crate) fn new(containers_dir: &Path, id: &str) -> Bundle {
        Bundle { dir: containers_dir.join(id) }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    pub(crate) fn fifo(&self, stream: Stream) -> PathBuf {
        self.dir.join(stream.as_str())
    }

    /// Creates the directory and mounts the overlay of `layers` (bottom first) at `rootfs/`.
    pub(crate) fn create(&self, layers: &[PathBuf]) -> Result<(), ShimError> {
        if layers.is_empty() {
            return Err(ShimError::InvalidArtifact("the image has no layers".into()));
        }
        for layer in layers {
            let text = layer.to_string_lossy();
            if !layer.is_absolute() || text.contains([',', ':']) {
                return Err(ShimError::Runtime(format!("layer path {text} cannot be given to overlayfs")));
            }
        }
        let (rootfs, upper, work) = (self.rootfs(), self.dir.join("upper"), self.dir.join("work"));
        for dir in [&rootfs, &upper, &work] {
            std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
        }
        // overlayfs takes the top layer first.
        let lower: Vec<String> = layers.iter().rev().map(|l| l.to_string_lossy().into_owned()).collect();
        let data = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
        if data.len() > MAX_MOUNT_DATA {
            return Err(ShimError::Runtime(format!("{} layers are too many to mount", layers.len())));
        }
        nix::mount::mount(Some("overlay"), &rootfs, Some("overlay"), MsFlags::empty(), Some(data.as_str()))
            .map_err(|e| io_error("cannot mount the overlay root filesystem at", &rootfs, e))
    }

    fn open_fifo(&self, stream: Stream, write: bool) -> Result<OwnedFd, ShimError> {
        let path = self.fifo(stream);
        // Reading without a writer yet must not block.
        let flags = if write { libc::O_CLOEXEC } else { libc::O_CLOEXEC | libc::O_NONBLOCK };
        let file = OpenOptions::new().read(true).write(write).custom_flags(flags).open(&path);
        Ok(file.map_err(|e| io_error("cannot open", &path, e))?.into())
    }

    /// Makes the output FIFOs; returns the container's ends (/dev/null for stdin, each FIFO
    /// read-write for stdout and stderr) and the agent's.
    pub(crate) fn stdio(&self) -> Result<(Stdio, Output), ShimError> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let path = self.fifo(stream);
            match nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(io_error("cannot make the FIFO", &path, e)),
            }
        }
        let output = self.output()?;
        let null = File::open("/dev/null").map_err(|e| io_error("cannot open", Path::new("/dev/null"), e))?;
        let stdio = Stdio {
            stdin: null.into(),
            stdout: self.open_fifo(Stream::Stdout, true)?,
            stderr: self.open_fifo(Stream::Stderr, true)?,
        };
        Ok((stdio, output))
    }

    /// Opens the agent's (non-blocking) read ends of the output FIFOs.
    pub(crate) fn output(&self) -> Result<Output, ShimError> {
        Ok(Output { stdout: self.open_fifo(Stream::Stdout, false)?, stderr: self.open_fifo(Stream::Stderr, false)? })
    }

    /// Unmounts the root filesystem and deletes the directory; nothing to do if it is gone.
    pub(crate) fn remove(&self) -> Result<(), ShimError> {
        let rootfs = self.rootfs();
        for attempt in 0.. {
            match nix::mount::umount2(&rootfs, MntFlags::empty()) {
                // EINVAL: not a mount point (any more); ENOENT: never created.
                Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => break,
                Err(Errno::EBUSY) if attempt < 20 => std::thread::sleep(Duration::from_millis(50)),
                Err(Errno::EBUSY) => {
                    tracing::warn!(rootfs = %rootfs.display(), "root filesystem still busy, detaching it");
                    nix::mount::umount2(&rootfs, MntFlags::MNT_DETACH)
                        .map_err(|e| io_error("cannot unmount", &rootfs, e))?;
                    break;
                }
                Err(e) => return Err(io_error("cannot unmount", &rootfs, e)),
            }
        }
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error("cannot remove", &self.dir, e)),
            _ => Ok(()),
        }
    }
}
