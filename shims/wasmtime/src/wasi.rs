//! The guest's view of the world, from the container spec and nothing else: argv, env,
//! preopened mounts, working directory, stdout/stderr into the log; no stdin, no host
//! environment or directories; no network unless the spec gives the pod's network namespace
//! (`ContainerSpec.network`), and then all of wasi-sockets (TCP, UDP, name lookup) to any
//! address: the guest runs inside that namespace, which is what confines it. Only preview 2
//! components can use them: WASI preview 1 has no call that opens a socket (and wasmtime's
//! `sock_accept`/`sock_recv`/`sock_send` are unimplemented), so a module given a network runs
//! the same way, in the namespace, but can do nothing there it could not do without it.

use std::path::PathBuf;

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wharf_shim::{ContainerSpec, Mount, ShimError, Stream};

use crate::output::{Budget, LogOutput};

/// A WASI context builder for `spec`; `log_bytes_per_sec` paces its output (0: unpaced).
///
/// A `working_dir` inside a mount is also preopened as `.`, so the guest's relative paths
/// resolve there (WASI preview 1 has no current directory; wasi-libc resolves relative paths
/// through a `.` preopen); preview 2 guests also get it as `initial-cwd`. A working directory
/// outside every mount has nothing to show and is only reported as `initial-cwd`.
pub(crate) fn context(spec: &ContainerSpec, log_bytes_per_sec: u64) -> Result<WasiCtxBuilder, ShimError> {
    let budget = Budget::new(log_bytes_per_sec);
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(&spec.args)
        .envs(&spec.env)
        .stdout(LogOutput::new(spec.log.clone(), Stream::Stdout, budget.clone()))
        .stderr(LogOutput::new(spec.log.clone(), Stream::Stderr, budget));
    let sockets = spec.network.is_some();
    wasi.allow_tcp(sockets).allow_udp(sockets).allow_ip_name_lookup(sockets);
    if sockets {
        wasi.inherit_network();
    }
    for mount in &spec.mounts {
        preopen(&mut wasi, &mount.host_path, &mount.guest_path, mount.read_only)?;
    }
    if let Some(dir) = &spec.working_dir {
        wasi.initial_cwd(dir);
        if let Some((host, read_only)) = host_dir_of(dir, &spec.mounts) {
            preopen(&mut wasi, &host, ".", read_only)?;
        }
    }
    Ok(wasi)
}

fn preopen(wasi: &mut WasiCtxBuilder, host: &std::path::Path, guest: &str, read_only: bool) -> Result<(), ShimError> {
    let perms = if read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
    wasi.preopened_dir(host, guest, perms)
        .map(drop)
        .map_err(|e| ShimError::Runtime(format!("mount {} at {guest}: {e:#}", host.display())))
}

/// The host directory behind guest path `dir` (under the mount with the longest matching
/// guest path), and whether that mount is read-only.
fn host_dir_of(dir: &str, mounts: &[Mount]) -> Option<(PathBuf, bool)> {
    let wanted = components(dir);
    mounts
        .iter()
        .filter_map(|m| {
            let base = components(&m.guest_path);
            wanted.starts_with(&base).then(|| (base.len(), m, &wanted[base.len()..]))
        })
        .max_by_key(|(depth, ..)| *depth)
        .map(|(_, m, rest)| (rest.iter().fold(m.host_path.clone(), |p, c| p.join(c)), m.read_only))
}

/// Normalized components of an absolute guest path (`.` and `..` resolved, never above `/`).
fn components(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            part => out.push(part),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(host: &str, guest: &str, read_only: bool) -> Mount {
        Mount { host_path: host.into(), guest_path: guest.into(), read_only }
    }

    #[test]
    fn working_dir_maps_into_the_deepest_mount() {
        let mounts = [mount("/h/data", "/data", false), mount("/h/cfg", "/data/cfg/", true)];
        assert_eq!(host_dir_of("/data/x/y", &mounts), Some(("/h/data/x/y".into(), false)));
        assert_eq!(host_dir_of("/data/cfg", &mounts), Some(("/h/cfg".into(), true)));
        assert_eq!(host_dir_of("/data/./cfg/../cfg/a", &mounts), Some(("/h/cfg/a".into(), true)));
        assert_eq!(host_dir_of("/data/../../etc", &mounts), None);
        assert_eq!(host_dir_of("/datax", &mounts), None);
        assert_eq!(host_dir_of("/", &mounts), None);
    }
}
