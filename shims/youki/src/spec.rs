//! The OCI runtime spec (config.json) of a container, generated from its `ContainerSpec`: the
//! process (argv, env, cwd, identity, capabilities, no_new_privs), the root filesystem, the
//! standard mounts and the pod's volumes, namespaces (new or the pod sandbox's), masked and
//! read-only paths, seccomp and the cgroup limits. Pure: the caller resolves the identity and
//! probes the host.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::Linux;
use libcontainer::oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxNamespace,
    LinuxNamespaceType, LinuxPids, LinuxResources, Mount, Process, Root, Spec, User,
};
use wharf_shim::{ContainerSpec, LinuxSpec, NamespaceKind, Seccomp, ShimError};

use crate::host::Host;
use crate::seccomp;
use crate::user::Identity;

/// `PATH` when the container's environment has none.
pub(crate) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// CFS period the CPU limit is expressed in (100 ms).
pub(crate) const CPU_PERIOD_US: u64 = 100_000;
/// Size of /dev and /dev/shm.
const TMPFS_SIZE: &str = "size=65536k";

/// The capabilities a container has unless its securityContext adds or drops some.
pub(crate) const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

fn invalid(message: impl Into<String>) -> ShimError {
    ShimError::InvalidArtifact(message.into())
}

/// The container's cgroup below every hierarchy's root: `/<cgroup_parent>/<id>`.
pub(crate) fn cgroups_path(linux: &LinuxSpec, id: &str) -> PathBuf {
    let parent = linux.cgroup_parent.trim_matches('/');
    if parent.is_empty() { PathBuf::from(format!("/{id}")) } else { PathBuf::from(format!("/{parent}/{id}")) }
}

/// The runtime spec of `spec`, whose root filesystem is mounted at `rootfs`.
pub(crate) fn runtime_spec(
    spec: &ContainerSpec,
    rootfs: &Path,
    identity: &Identity,
    host: &Host,
) -> Result<Spec, ShimError> {
    let linux = &spec.linux;
    let capabilities = capabilities(linux, host)?;
    let new_uts = !linux.namespaces.iter().any(|ns| ns.kind == NamespaceKind::Uts);

    let mut root = Root::default();
    root.set_path(rootfs.to_path_buf()).set_readonly(Some(linux.read_only_root_filesystem));
    let mut runtime = Spec::default();
    runtime
        .set_root(Some(root))
        .set_process(Some(process(spec, identity, &capabilities)?))
        .set_hostname((new_uts && !linux.hostname.is_empty()).then(|| linux.hostname.clone()))
        .set_mounts(Some(mounts(spec)?))
        .set_annotations(None);

    let mut oci_linux = Linux::default();
    oci_linux
        .set_namespaces(Some(namespaces(linux, host)?))
        .set_cgroups_path(Some(cgroups_path(linux, &spec.id)))
        .set_resources(Some(resources(spec, host)?))
        .set_masked_paths(Some(if linux.privileged { vec![] } else { strings(&MASKED_PATHS) }))
        .set_readonly_paths(Some(if linux.privileged { vec![] } else { strings(&READONLY_PATHS) }))
        .set_seccomp(match &linux.seccomp {
            _ if linux.privileged => None,
            Seccomp::RuntimeDefault => Some(seccomp::runtime_default(&capabilities)),
            Seccomp::Unconfined => None,
            Seccomp::Localhost(path) => Some(seccomp::localhost(path).map_err(invalid)?),
        });
    runtime.set_linux(Some(oci_linux));
    Ok(runtime)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn process(
    spec: &ContainerSpec,
    identity: &Identity,
    capabilities: &HashSet<Capability>,
) -> Result<Process, ShimError> {
    if spec.args.is_empty() {
        return Err(invalid("no command to run: the image has no entrypoint or cmd and the container sets no command"));
    }
    let cwd = spec.working_dir.as_deref().filter(|d| !d.is_empty()).unwrap_or("/");
    if !cwd.starts_with('/') {
        return Err(invalid(format!("workingDir {cwd} is not an absolute path")));
    }
    let mut user = User::default();
    user.set_uid(identity.uid)
        .set_gid(identity.gid)
        .set_additional_gids((!identity.additional_gids.is_empty()).then(|| identity.additional_gids.clone()));

    let mut caps = LinuxCapabilities::default();
    let set: HashSet<Capability> = capabilities.clone();
    caps.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable(None)
        .set_ambient(None);

    let mut process = Process::default();
    process
        .set_terminal(Some(false))
        .set_args(Some(spec.args.clone()))
        .set_env(Some(env(spec)))
        .set_cwd(PathBuf::from(cwd))
        .set_user(user)
        .set_capabilities(Some(caps))
        .set_rlimits(None)
        // Only `Some(true)` may be written: libcontainer loads seccomp after dropping
        // capabilities whenever the field is present, which fails without no_new_privs.
        .set_no_new_privileges(spec.linux.no_new_privileges.then_some(true));
    Ok(process)
}

/// The final environment: the spec's, plus PATH and HOSTNAME when it has none.
fn env(spec: &ContainerSpec) -> Vec<String> {
    let has = |key: &str| spec.env.iter().any(|(k, _)| k == key);
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !has("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOSTNAME") && !spec.linux.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", spec.linux.hostname));
    }
    env
}

fn parse_capability(name: &str) -> Result<Option<Capability>, ShimError> {
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("CAP_").unwrap_or(&name);
    if name == "ALL" {
        return Ok(None);
    }
    name.parse().map(Some).map_err(|_| invalid(format!("unknown capability {name}")))
}

/// The default set, plus `add`, minus `drop` (`ALL` in either means every capability the agent
/// has); all of those when privileged.
fn capabilities(linux: &LinuxSpec, host: &Host) -> Result<HashSet<Capability>, ShimError> {
    let all: HashSet<Capability> = host.capabilities.iter().copied().collect();
    if linux.privileged {
        return Ok(all);
    }
    let mut caps: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    for name in &linux.capabilities_drop {
        match parse_capability(name)? {
            Some(cap) => {
                caps.remove(&cap);
            }
            None => caps.clear(),
        }
    }
    for name in &linux.capabilities_add {
        match parse_capability(name)? {
            Some(cap) => {
                caps.insert(cap);
            }
            None => caps.extend(all.iter().copied()),
        }
    }
    Ok(caps)
}

fn namespaces(linux: &LinuxSpec, host: &Host) -> Result<Vec<LinuxNamespace>, ShimError> {
    let namespace = |typ: LinuxNamespaceType, path: Option<&Path>| {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(typ).set_path(path.map(Path::to_path_buf));
        ns
    };
    let mut namespaces = vec![namespace(LinuxNamespaceType::Pid, None), namespace(LinuxNamespaceType::Mount, None)];
    if host.cgroup_namespace {
        namespaces.push(namespace(LinuxNamespaceType::Cgroup, None));
    }
    for (kind, typ) in [
        (NamespaceKind::Network, LinuxNamespaceType::Network),
        (NamespaceKind::Ipc, LinuxNamespaceType::Ipc),
        (NamespaceKind::Uts, LinuxNamespaceType::Uts),
    ] {
        let joined = linux.namespaces.iter().find(|ns| ns.kind == kind).map(|ns| ns.path.as_path());
        if joined.is_some_and(|p| !p.is_absolute()) {
            return Err(invalid(format!("sandbox namespace path {} is not absolute", joined.unwrap().display())));
        }
        namespaces.push(namespace(typ, joined));
    }
    Ok(namespaces)
}

fn mount(destination: &str, typ: &str, source: &Path, options: &[&str]) -> Mount {
    let mut mount = Mount::default();
    mount
        .set_destination(PathBuf::from(destination))
        .set_typ(Some(typ.to_string()))
        .set_source(Some(source.to_path_buf()))
        .set_options(Some(strings(options)));
    mount
}

/// /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, then the volumes as bind mounts.
fn mounts(spec: &ContainerSpec) -> Result<Vec<Mount>, ShimError> {
    let sys_mode = if spec.linux.privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        mount("/proc", "proc", Path::new("proc"), &["nosuid", "noexec", "nodev"]),
        mount("/dev", "tmpfs", Path::new("tmpfs"), &["nosuid", "strictatime", "mode=755", TMPFS_SIZE]),
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        mount("/dev/shm", "tmpfs", Path::new("shm"), &["nosuid", "noexec", "nodev", "mode=1777", TMPFS_SIZE]),
        mount("/dev/mqueue", "mqueue", Path::new("mqueue"), &["nosuid", "noexec", "nodev"]),
        mount("/sys", "sysfs", Path::new("sysfs"), &["nosuid", "noexec", "nodev", sys_mode]),
    ];
    for volume in &spec.mounts {
        if !volume.guest_path.starts_with('/') {
            return Err(invalid(format!("mount path {} is not absolute", volume.guest_path)));
        }
        if !volume.host_path.is_absolute() {
            return Err(invalid(format!("volume source {} is not absolute", volume.host_path.display())));
        }
        let mode = if volume.read_only { "ro" } else { "rw" };
        mounts.push(mount(&volume.guest_path, "bind", &volume.host_path, &["rbind", "rprivate", mode]));
    }
    Ok(mounts)
}

/// Kubernetes' conversion of a CPU request to cgroup v1 shares (libcgroups turns shares into
/// a cgroup v2 weight): 1024 per CPU, at least 2 (also without a request).
pub(crate) fn cpu_shares(request_millis: Option<u64>) -> u64 {
    (request_millis.unwrap_or(0) * 1024 / 1000).clamp(2, 262_144)
}

/// Kubernetes' conversion of a CPU limit to a CFS quota per [`CPU_PERIOD_US`], at least 1 ms.
pub(crate) fn cpu_quota(limit_millis: u64) -> i64 {
    (limit_millis * CPU_PERIOD_US / 1000).max(1000) as i64
}

fn resources(spec: &ContainerSpec, host: &Host) -> Result<LinuxResources, ShimError> {
    let linux = &spec.linux;
    let mut devices = LinuxDeviceCgroup::default();
    // Unprivileged: deny every device, then libcgroups allows its default ones (null, zero, …).
    devices.set_allow(linux.privileged).set_typ(Some(LinuxDeviceType::A)).set_access(Some("rwm".into()));

    let mut cpu = LinuxCpu::default();
    cpu.set_shares(Some(cpu_shares(linux.cpu_request_millis)));
    if let Some(limit) = spec.cpu_limit_millis {
        cpu.set_quota(Some(cpu_quota(limit))).set_period(Some(CPU_PERIOD_US));
    }

    let mut resources = LinuxResources::default();
    resources.set_devices(Some(vec![devices])).set_cpu(Some(cpu));
    if let Some(limit) = spec.memory_limit {
        let limit = i64::try_from(limit).map_err(|_| invalid(format!("memory limit {limit} is too large")))?;
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(limit)).set_swap(host.swap_accounting.then_some(limit));
        resources.set_memory(Some(memory));
    }
    if let Some(limit) = linux.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wharf_shim::{LogSink, Mount as Volume, SandboxNamespace, Stream};

    use super::*;
    use crate::host::Hierarchy;

    struct Discard;
    impl LogSink for Discard {
        fn write(&self, _: Stream, _: &[u8]) {}
    }

    fn host() -> Host {
        Host {
            hierarchy: Hierarchy::V1 {
                memory: "/sys/fs/cgroup/memory".into(),
                cpuacct: "/sys/fs/cgroup/cpuacct".into(),
            },
            cgroup_namespace: true,
            swap_accounting: true,
            capabilities: vec![Capability::Chown, Capability::SysAdmin, Capability::NetAdmin, Capability::Kill],
        }
    }

    fn container(linux: LinuxSpec) -> ContainerSpec {
        ContainerSpec {
            id: "pod1-web-0".into(),
            artifact: "/unused".into(),
            digest: "sha256:00".into(),
            args: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec![("A".into(), "1".into())],
            working_dir: None,
            mounts: vec![],
            memory_limit: None,
            cpu_limit_millis: None,
            log: Arc::new(Discard),
            network: None,
            linux: LinuxSpec { hostname: "web".into(), cgroup_parent: "wharf/pod1".into(), ..linux },
        }
    }

    fn identity() -> Identity {
        Identity { uid: 1000, gid: 1001, additional_gids: vec![50] }
    }

    fn generate(spec: &ContainerSpec) -> Spec {
        runtime_spec(spec, Path::new("/bundle/rootfs"), &identity(), &host()).unwrap()
    }

    fn caps_of(spec: &Spec) -> HashSet<Capability> {
        spec.process().as_ref().unwrap().capabilities().as_ref().unwrap().effective().clone().unwrap()
    }

    fn namespace_paths(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        let linux = spec.linux().as_ref().unwrap();
        linux.namespaces().as_ref().unwrap().iter().map(|ns| (ns.typ(), ns.path().clone())).collect()
    }

    #[test]
    fn a_plain_container() {
        let spec = generate(&container(LinuxSpec::default()));
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.args().as_ref().unwrap(), &["sh", "-c", "echo hi"]);
        assert_eq!(process.env().as_ref().unwrap(), &["A=1", &format!("PATH={DEFAULT_PATH}"), "HOSTNAME=web"]);
        assert_eq!(process.cwd(), Path::new("/"));
        assert_eq!((process.user().uid(), process.user().gid()), (1000, 1001));
        assert_eq!(process.user().additional_gids().as_ref().unwrap(), &[50]);
        assert_eq!(process.no_new_privileges(), None);
        assert_eq!(process.rlimits(), &None);
        assert_eq!(caps_of(&spec), DEFAULT_CAPABILITIES.into_iter().collect());
        assert_eq!(spec.hostname().as_deref(), Some("web"));
        assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("/bundle/rootfs"));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));

        let destinations: Vec<_> = spec.mounts().as_ref().unwrap().iter().map(|m| m.destination().clone()).collect();
        let expected = ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"];
        assert_eq!(destinations, expected.map(PathBuf::from));

        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.cgroups_path().as_deref(), Some(Path::new("/wharf/pod1/pod1-web-0")));
        assert!(linux.masked_paths().as_ref().unwrap().contains(&"/proc/kcore".to_string()));
        assert!(linux.readonly_paths().as_ref().unwrap().contains(&"/proc/sys".to_string()));
        assert!(linux.seccomp().is_some());
        let types: Vec<_> = namespace_paths(&spec).into_iter().map(|(t, p)| (t, p.is_some())).collect();
        assert_eq!(
            types,
            [
                (LinuxNamespaceType::Pid, false),
                (LinuxNamespaceType::Mount, false),
                (LinuxNamespaceType::Cgroup, false),
                (LinuxNamespaceType::Network, false),
                (LinuxNamespaceType::Ipc, false),
                (LinuxNamespaceType::Uts, false),
            ]
        );
        let resources = linux.resources().as_ref().unwrap();
        assert_eq!(resources.cpu().as_ref().unwrap().shares(), Some(2));
        assert_eq!(resources.cpu().as_ref().unwrap().quota(), None);
        assert!(resources.memory().is_none() && resources.pids().is_none());
        let devices = resources.devices().as_ref().unwrap();
        assert!(!devices[0].allow());

        // What libcontainer reads back is what was generated.
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&json).unwrap(), spec);
        assert!(!json.contains("annotations"), "{json}");
    }

    #[test]
    fn the_pod_sandbox_is_joined() {
        let linux = LinuxSpec {
            namespaces: vec![
                SandboxNamespace { kind: NamespaceKind::Network, path: "/run/wharf/ns/net-1".into() },
                SandboxNamespace { kind: NamespaceKind::Uts, path: "/run/wharf/ns/uts-1".into() },
            ],
            ..Default::default()
        };
        let spec = generate(&container(linux));
        let paths = namespace_paths(&spec);
        assert!(paths.contains(&(LinuxNamespaceType::Network, Some("/run/wharf/ns/net-1".into()))));
        assert!(paths.contains(&(LinuxNamespaceType::Uts, Some("/run/wharf/ns/uts-1".into()))));
        assert!(paths.contains(&(LinuxNamespaceType::Ipc, None)));
        // The sandbox's UTS namespace already has the pod's hostname.
        assert_eq!(spec.hostname(), &None);
        assert!(spec.process().as_ref().unwrap().env().as_ref().unwrap().contains(&"HOSTNAME=web".to_string()));
    }

    #[test]
    fn capabilities_are_added_and_dropped() {
        let linux = LinuxSpec {
            capabilities_add: vec!["NET_ADMIN".into(), "cap_sys_time".into()],
            capabilities_drop: vec!["CAP_CHOWN".into(), "kill".into()],
            ..Default::default()
        };
        let caps = caps_of(&generate(&container(linux)));
        assert!(caps.contains(&Capability::NetAdmin) && caps.contains(&Capability::SysTime));
        assert!(!caps.contains(&Capability::Chown) && !caps.contains(&Capability::Kill));
        assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len());

        let linux = LinuxSpec {
            capabilities_drop: vec!["ALL".into()],
            capabilities_add: vec!["KILL".into()],
            ..Default::default()
        };
        assert_eq!(caps_of(&generate(&container(linux))), [Capability::Kill].into());

        let linux = LinuxSpec { capabilities_add: vec!["NOT_A_CAP".into()], ..Default::default() };
        let err = runtime_spec(&container(linux), Path::new("/r"), &identity(), &host()).unwrap_err();
        assert!(matches!(&err, ShimError::InvalidArtifact(m) if m.contains("NOT_A_CAP")), "{err}");
    }

    #[test]
    fn privileged_gets_everything_and_no_filters() {
        let spec = generate(&container(LinuxSpec { privileged: true, ..Default::default() }));
        assert_eq!(caps_of(&spec), host().capabilities.into_iter().collect());
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        assert_eq!(linux.masked_paths().as_ref().unwrap().len(), 0);
        assert_eq!(linux.readonly_paths().as_ref().unwrap().len(), 0);
        assert!(linux.resources().as_ref().unwrap().devices().as_ref().unwrap()[0].allow());
        let sys = spec.mounts().as_ref().unwrap().iter().find(|m| m.destination() == Path::new("/sys")).unwrap();
        assert!(sys.options().as_ref().unwrap().contains(&"rw".to_string()));
    }

    #[test]
    fn security_options() {
        let linux = LinuxSpec {
            seccomp: Seccomp::Unconfined,
            no_new_privileges: true,
            read_only_root_filesystem: true,
            ..Default::default()
        };
        let spec = generate(&container(linux));
        assert!(spec.linux().as_ref().unwrap().seccomp().is_none());
        assert_eq!(spec.process().as_ref().unwrap().no_new_privileges(), Some(true));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    }

    #[test]
    fn a_localhost_profile_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}"#).unwrap();
        let spec = generate(&container(LinuxSpec { seccomp: Seccomp::Localhost(path), ..Default::default() }));
        let seccomp = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
        assert_eq!(seccomp.default_action(), libcontainer::oci_spec::runtime::LinuxSeccompAction::ScmpActErrno);

        let missing = LinuxSpec { seccomp: Seccomp::Localhost(dir.path().join("none.json")), ..Default::default() };
        let err = runtime_spec(&container(missing), Path::new("/r"), &identity(), &host()).unwrap_err();
        assert!(matches!(&err, ShimError::InvalidArtifact(m) if m.contains("none.json")), "{err}");
        // Privileged containers are unconfined whatever the profile says.
        let privileged = LinuxSpec {
            privileged: true,
            seccomp: Seccomp::Localhost(dir.path().join("none.json")),
            ..Default::default()
        };
        assert!(generate(&container(privileged)).linux().as_ref().unwrap().seccomp().is_none());
    }

    #[test]
    fn limits_become_cgroup_resources() {
        let mut spec =
            container(LinuxSpec { cpu_request_millis: Some(250), pids_limit: Some(64), ..Default::default() });
        spec.memory_limit = Some(32 << 20);
        spec.cpu_limit_millis = Some(500);
        let spec = generate(&spec);
        let resources = spec.linux().as_ref().unwrap().resources().as_ref().unwrap().clone();
        let memory = resources.memory().unwrap();
        assert_eq!((memory.limit(), memory.swap()), (Some(32 << 20), Some(32 << 20)));
        let cpu = resources.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period(), cpu.shares()), (Some(50_000), Some(100_000), Some(256)));
        assert_eq!(resources.pids().unwrap().limit(), 64);
        assert_eq!(cpu_shares(Some(1)), 2);
        assert_eq!(cpu_quota(1), 1000);
    }

    #[test]
    fn volumes_are_bind_mounts() {
        let mut spec = container(LinuxSpec::default());
        spec.mounts = vec![
            Volume { host_path: "/var/lib/pod/hosts".into(), guest_path: "/etc/hosts".into(), read_only: false },
            Volume { host_path: "/var/lib/pod/config".into(), guest_path: "/config".into(), read_only: true },
        ];
        spec.working_dir = Some("/config".into());
        spec.env.push(("PATH".into(), "/bin".into()));
        let generated = generate(&spec);
        let mounts = generated.mounts().as_ref().unwrap();
        let hosts = &mounts[mounts.len() - 2];
        assert_eq!(hosts.typ().as_deref(), Some("bind"));
        assert_eq!(hosts.source().as_deref(), Some(Path::new("/var/lib/pod/hosts")));
        assert_eq!(hosts.options().as_ref().unwrap(), &["rbind", "rprivate", "rw"]);
        assert_eq!(mounts.last().unwrap().options().as_ref().unwrap(), &["rbind", "rprivate", "ro"]);
        let process = generated.process().as_ref().unwrap();
        assert_eq!(process.cwd(), Path::new("/config"));
        assert_eq!(process.env().as_ref().unwrap().iter().filter(|e| e.starts_with("PATH=")).count(), 1);

        spec.mounts[0].guest_path = "etc/hosts".into();
        assert!(runtime_spec(&spec, Path::new("/r"), &identity(), &host()).is_err());
    }

    #[test]
    fn a_container_needs_a_command() {
        let mut spec = container(LinuxSpec::default());
        spec.args.clear();
        let err = runtime_spec(&spec, Path::new("/r"), &identity(), &host()).unwrap_err();
        assert!(matches!(err, ShimError::InvalidArtifact(_)));
    }
}
