//! Runs Linux OCI containers through youki's libcontainer: the image's layers overlaid into a
//! root filesystem, an OCI runtime spec generated from the container spec, and libcontainer to
//! create, start, exec into and delete the container, with cgroups v1 or v2.
//!
//! Modules: `host` (prerequisites and host facts), `user` (who the process runs as), `spec`
//! and `seccomp` (the runtime spec, pure), `bundle` (bundle directory, overlay, output FIFOs),
//! `fork` and `launch` (libcontainer calls in a forked helper), `process` (pidfd watching),
//! `cgroup` (usage, OOM kills, killing), `exit` (how an end becomes an `Exit`), `container`
//! (the running container), `exec` (commands inside it), `shim` (the `Shim`).

mod bundle;
mod cgroup;
mod config;
mod container;
mod exec;
mod exit;
mod fork;
mod host;
mod launch;
mod process;
mod seccomp;
mod shim;
mod spec;
mod user;

pub use config::YoukiConfig;
pub use shim::YoukiShim;
