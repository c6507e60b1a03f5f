//! The seccomp filter for Kubernetes' `RuntimeDefault`: a deny-list in the manner of the usual
//! container default profile. Everything is allowed except the calls below, which fail with
//! EPERM (or ENOSYS for `clone3`, so C libraries fall back to `clone`, whose flags can be
//! checked). A call listed with capabilities is allowed when the container holds one of them.
//!
//! Always denied:
//! - `kexec_load`, `kexec_file_load`: boot another kernel.
//! - `keyctl`, `add_key`, `request_key`: the kernel keyring is not namespaced.
//! - `swapon`, `swapoff`: the host's swap.
//! - `io_uring_setup`, `io_uring_enter`, `io_uring_register`: a large, often exploited surface.
//! - `uselib`, `ustat`, `sysfs`, `_sysctl`, `nfsservctl`, `create_module`, `get_kernel_syms`,
//!   `query_module`: obsolete interfaces.
//!
//! Denied without a capability:
//! - CAP_SYS_ADMIN: `mount`, `umount`, `umount2`, the new mount API (`fsopen`, `fsconfig`,
//!   `fsmount`, `fspick`, `move_mount`, `open_tree`, `mount_setattr`), `pivot_root`, `unshare`,
//!   `setns`, `clone` with a namespace flag, `clone3`, `quotactl`, `quotactl_fd`,
//!   `fanotify_init`, `name_to_handle_at`, `lookup_dcookie`; with CAP_BPF also `bpf`, with
//!   CAP_PERFMON also `perf_event_open`.
//! - CAP_SYS_MODULE: `init_module`, `finit_module`, `delete_module`.
//! - CAP_SYS_BOOT: `reboot`.
//! - CAP_SYS_PTRACE: `ptrace`, `process_vm_readv`, `process_vm_writev`, `kcmp`, `pidfd_getfd`,
//!   `userfaultfd`.
//! - CAP_DAC_READ_SEARCH: `open_by_handle_at`.
//! - CAP_SYS_PACCT: `acct`.
//! - CAP_SYS_TIME: `settimeofday`, `stime`, `clock_settime`.
//! - CAP_SYS_RAWIO: `iopl`, `ioperm`.
//! - CAP_SYS_TTY_CONFIG: `vhangup`.
//! - CAP_SYSLOG: `syslog`.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use libcontainer::oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

/// Denied calls and the capabilities that allow them (none: always denied).
const DENIED: &[(&[&str], &[Capability])] = &[
    (&["kexec_load", "kexec_file_load"], &[]),
    (&["keyctl", "add_key", "request_key"], &[]),
    (&["swapon", "swapoff"], &[]),
    (&["io_uring_setup", "io_uring_enter", "io_uring_register"], &[]),
    (&["uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "create_module", "get_kernel_syms", "query_module"], &[]),
    (
        &[
            "mount",
            "umount",
            "umount2",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "pivot_root",
            "unshare",
            "setns",
            "quotactl",
            "quotactl_fd",
            "fanotify_init",
            "name_to_handle_at",
            "lookup_dcookie",
        ],
        &[Capability::SysAdmin],
    ),
    (&["bpf"], &[Capability::SysAdmin, Capability::Bpf]),
    (&["perf_event_open"], &[Capability::SysAdmin, Capability::Perfmon]),
    (&["init_module", "finit_module", "delete_module"], &[Capability::SysModule]),
    (&["reboot"], &[Capability::SysBoot]),
    (
        &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "userfaultfd"],
        &[Capability::SysPtrace],
    ),
    (&["open_by_handle_at"], &[Capability::DacReadSearch]),
    (&["acct"], &[Capability::SysPacct]),
    (&["settimeofday", "stime", "clock_settime"], &[Capability::SysTime]),
    (&["iopl", "ioperm"], &[Capability::SysRawio]),
    (&["vhangup"], &[Capability::SysTtyConfig]),
    (&["syslog"], &[Capability::Syslog]),
];

/// The namespace flags `clone` may not carry without CAP_SYS_ADMIN.
const CLONE_NAMESPACES: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

fn deny(names: &[&str], errno: u32, args: Option<Vec<LinuxSeccompArg>>) -> LinuxSyscall {
    let mut syscall = LinuxSyscall::default();
    syscall
        .set_names(names.iter().map(|n| n.to_string()).collect())
        .set_action(LinuxSeccompAction::ScmpActErrno)
        .set_errno_ret(Some(errno))
        .set_args(args);
    syscall
}

/// The architectures whose calls the filter covers: the native one and its compat modes, so
/// 32-bit calls cannot go around it.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

/// The RuntimeDefault filter for a container holding `capabilities`.
pub(crate) fn runtime_default(capabilities: &HashSet<Capability>) -> LinuxSeccomp {
    let lifted = |caps: &[Capability]| caps.iter().any(|c| capabilities.contains(c));
    let mut syscalls: Vec<LinuxSyscall> =
        DENIED.iter().filter(|(_, caps)| !lifted(caps)).map(|(names, _)| deny(names, EPERM, None)).collect();
    if !capabilities.contains(&Capability::SysAdmin) {
        syscalls.push(deny(&["clone3"], ENOSYS, None));
        for flag in CLONE_NAMESPACES {
            let arg = LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(flag as u64)
                .value_two(flag as u64)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()
                .expect("every field is set");
            syscalls.push(deny(&["clone"], EPERM, Some(vec![arg])));
        }
    }
    let mut seccomp = LinuxSeccomp::default();
    seccomp
        .set_default_action(LinuxSeccompAction::ScmpActAllow)
        .set_architectures(Some(architectures()))
        .set_syscalls(Some(syscalls));
    seccomp
}

/// The largest Localhost profile read.
const PROFILE_MAX: u64 = 1 << 20;

/// A `Localhost` profile: the file at `path`, in the OCI runtime spec's `linux.seccomp` format.
/// Errs with what is wrong with it (the agent reports CreateContainerError, as a kubelet).
pub(crate) fn localhost(path: &Path) -> Result<LinuxSeccomp, String> {
    let cannot = |what: String| format!("cannot load seccomp profile {:?}: {what}", path.display().to_string());
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(PROFILE_MAX + 1).read_to_end(&mut text))
        .map_err(|e| cannot(e.to_string()))?;
    if text.len() as u64 > PROFILE_MAX {
        return Err(cannot(format!("larger than {PROFILE_MAX} bytes")));
    }
    serde_json::from_slice(&text).map_err(|e| cannot(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(seccomp: &LinuxSeccomp) -> HashSet<String> {
        seccomp
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn default_capabilities_leave_the_dangerous_calls_denied() {
        let caps: HashSet<Capability> = [Capability::Chown, Capability::NetBindService, Capability::Kill].into();
        let seccomp = runtime_default(&caps);
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActAllow);
        let denied = denied(&seccomp);
        for call in ["mount", "unshare", "setns", "bpf", "kexec_load", "init_module", "ptrace", "keyctl", "reboot"] {
            assert!(denied.contains(call), "{call} should be denied");
        }
        assert!(!denied.contains("read") && !denied.contains("clone"));
        let clone_rules = seccomp.syscalls().as_ref().unwrap().iter().filter(|s| s.names() == &["clone"]).count();
        assert_eq!(clone_rules, CLONE_NAMESPACES.len());
        let clone3 = seccomp.syscalls().as_ref().unwrap().iter().find(|s| s.names() == &["clone3"]).unwrap();
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));
    }

    #[test]
    fn a_capability_lifts_its_calls() {
        let caps: HashSet<Capability> = [Capability::SysAdmin, Capability::SysPtrace].into();
        let seccomp = runtime_default(&caps);
        let denied = denied(&seccomp);
        for call in ["mount", "unshare", "bpf", "perf_event_open", "ptrace", "clone3"] {
            assert!(!denied.contains(call), "{call} should be allowed");
        }
        assert!(denied.contains("kexec_load") && denied.contains("init_module"));
        assert!(!seccomp.syscalls().as_ref().unwrap().iter().any(|s| s.names() == &["clone"]));
    }

    #[test]
    fn localhost_profiles_are_read_from_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deny-mkdir.json");
        std::fs::write(
            &path,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
        )
        .unwrap();
        let profile = localhost(&path).unwrap();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(profile.syscalls().as_ref().unwrap()[0].names(), &["mkdir", "mkdirat"]);

        let missing = localhost(&dir.path().join("nope.json")).unwrap_err();
        assert!(missing.starts_with("cannot load seccomp profile") && missing.contains("nope.json"), "{missing}");
        std::fs::write(&path, "not json").unwrap();
        assert!(localhost(&path).unwrap_err().contains("deny-mkdir.json"));
    }
}
