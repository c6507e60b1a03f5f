//! What the host must offer before any container can start (root, cgroups with the controllers
//! the limits use, overlayfs), and the facts about it the runtime spec depends on.

use std::path::{Path, PathBuf};

use libcgroups::common::CgroupSetup;
use libcgroups::v1::ControllerType;
use libcontainer::capabilities::CapabilityExt;
use libcontainer::oci_spec::runtime::Capability;
use wharf_shim::ShimError;

/// Where the container cgroups' files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    /// cgroup v1 (legacy or hybrid): the mount points of the controllers the shim reads.
    V1 { memory: PathBuf, cpuacct: PathBuf },
    /// cgroup v2: the unified hierarchy's mount point.
    V2 { root: PathBuf },
}

#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub(crate) hierarchy: Hierarchy,
    /// The kernel has cgroup namespaces.
    pub(crate) cgroup_namespace: bool,
    /// The memory controller accounts swap, so a swap limit can be written.
    pub(crate) swap_accounting: bool,
    /// The agent's bounding set: what a privileged container gets (all it can have).
    pub(crate) capabilities: Vec<Capability>,
}

const V1_CONTROLLERS: [ControllerType; 6] = [
    ControllerType::Memory,
    ControllerType::Cpu,
    ControllerType::CpuAcct,
    ControllerType::Pids,
    ControllerType::Devices,
    ControllerType::Freezer,
];
const V2_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

impl Host {
    /// Checks the prerequisites and gathers the facts; the error names what is missing.
    pub(crate) fn probe() -> Result<Host, ShimError> {
        let missing = |what: String| ShimError::Runtime(format!("the youki shim cannot run Linux containers: {what}"));
        if !nix::unistd::geteuid().is_root() {
            return Err(missing("it must run as root".into()));
        }
        let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if !filesystems.lines().any(|l| l.split_whitespace().last() == Some("overlay")) {
            return Err(missing("the kernel has no overlay filesystem (modprobe overlay)".into()));
        }
        let setup = libcgroups::common::get_cgroup_setup()
            .map_err(|e| missing(format!("cgroups are not mounted at /sys/fs/cgroup ({e})")))?;
        let hierarchy = match setup {
            CgroupSetup::Legacy | CgroupSetup::Hybrid => {
                let mut mounts = Vec::new();
                for controller in V1_CONTROLLERS {
                    let mount = libcgroups::v1::util::get_subsystem_mount_point(&controller)
                        .map_err(|_| missing(format!("the cgroup v1 {controller} controller is not mounted")))?;
                    mounts.push(mount);
                }
                Hierarchy::V1 { memory: mounts[0].clone(), cpuacct: mounts[2].clone() }
            }
            CgroupSetup::Unified => {
                let root = libcgroups::v2::util::get_unified_mount_point()
                    .map_err(|e| missing(format!("no cgroup v2 mount ({e})")))?;
                let available = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
                for controller in V2_CONTROLLERS {
                    if !available.split_whitespace().any(|c| c == controller) {
                        return Err(missing(format!("the cgroup v2 {controller} controller is not available")));
                    }
                }
                Hierarchy::V2 { root }
            }
        };
        let capabilities = caps::read(None, caps::CapSet::Bounding)
            .map_err(|e| missing(format!("cannot read its capabilities ({e})")))?;
        let mut capabilities: Vec<Capability> = capabilities.into_iter().map(Capability::from_cap).collect();
        capabilities.sort_by_key(|c| c.to_string());
        Ok(Host {
            swap_accounting: swap_accounting(&hierarchy),
            hierarchy,
            cgroup_namespace: Path::new("/proc/self/ns/cgroup").exists(),
            capabilities,
        })
    }
}

fn swap_accounting(hierarchy: &Hierarchy) -> bool {
    match hierarchy {
        Hierarchy::V1 { memory, .. } => memory.join("memory.memsw.limit_in_bytes").exists(),
        // The root cgroup has no memory files: look at the agent's own cgroup.
        Hierarchy::V2 { root } => std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|c| c.lines().find_map(|l| l.strip_prefix("0::").map(str::to_owned)))
            .is_some_and(|own| root.join(own.trim_start_matches('/')).join("memory.swap.max").exists()),
    }
}
