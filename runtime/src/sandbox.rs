//! The pod sandbox: network, IPC and UTS namespaces that every Linux container of a pod joins
//! (and Wasm guests allowed sockets use the network one), kept alive by bind mounts under the
//! pod's directory (so they outlive an agent restart), with loopback up and the pod's name as
//! hostname; and the `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` files each container
//! gets. A hostNetwork pod has no network namespace of its own: its containers join the agent's.
//! The pod's `eth0` is added by [`crate::network`].
//!
//! ```text
//! DATA/pods/<uid>/sandbox/ns/{net,ipc,uts}      bind mounts of the namespaces
//! DATA/pods/<uid>/sandbox/etc/{hosts,hostname,resolv.conf}
//! ```
//!
//! Everything here blocks (namespace calls, a short `ip` run): call it from a blocking thread.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::PodDNSConfig;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use wharf_shim::{Mount, NamespaceKind, SandboxNamespace};

const KINDS: [(NamespaceKind, &str, CloneFlags); 3] = [
    (NamespaceKind::Network, "net", CloneFlags::CLONE_NEWNET),
    (NamespaceKind::Ipc, "ipc", CloneFlags::CLONE_NEWIPC),
    (NamespaceKind::Uts, "uts", CloneFlags::CLONE_NEWUTS),
];

/// What makes a pod's sandbox, from its spec.
#[derive(Debug, Clone, Default)]
pub struct SandboxSpec {
    pub hostname: String,
    pub pod_ip: String,
    /// `spec.hostNetwork`: no network namespace of the pod's own.
    pub host_network: bool,
    /// The pod's namespace, for the cluster DNS search path.
    pub namespace: String,
    /// The cluster's DNS domain (`cluster.local`).
    pub cluster_domain: String,
    /// The cluster DNS server of this node (its pod gateway), once the node network is up.
    pub nameserver: Option<String>,
    /// `spec.dnsPolicy` (default `ClusterFirst`): `ClusterFirst` (and `ClusterFirstWithHostNet`
    /// for hostNetwork pods) name the node's cluster DNS server with the cluster search path,
    /// `Default` takes the node's resolv.conf, `None` only `dns_config`; `dns_config` is merged
    /// into each.
    pub dns_policy: Option<String>,
    pub dns_config: Option<PodDNSConfig>,
    /// `spec.hostAliases` as (ip, hostnames).
    pub host_aliases: Vec<(String, Vec<String>)>,
}

/// A pod's sandbox, ready for containers to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub dir: PathBuf,
    pub namespaces: Vec<SandboxNamespace>,
    host_network: bool,
    /// The files mounted at /etc/hosts, /etc/hostname and /etc/resolv.conf.
    pub files: Vec<Mount>,
}

#[derive(Debug, thiserror::Error)]
#[error("pod sandbox {}: {message}", dir.display())]
pub struct SandboxError {
    dir: PathBuf,
    message: String,
}

/// The sandbox directory of pod `uid` under the agent's data dir.
pub fn dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid).join("sandbox")
}

/// Where the sandbox under `dir` keeps its network namespace (whether or not it exists).
pub fn netns_path(dir: &Path) -> PathBuf {
    dir.join("ns").join("net")
}

impl Sandbox {
    /// The sandbox under `dir`: the one an earlier agent made if its namespaces are still
    /// mounted, else a new one. The files are rewritten either way.
    pub fn ensure(dir: &Path, spec: &SandboxSpec) -> Result<Self, SandboxError> {
        let fail = |message: String| SandboxError { dir: dir.to_path_buf(), message };
        let ns_dir = dir.join("ns");
        let etc = dir.join("etc");
        for d in [&ns_dir, &etc] {
            std::fs::create_dir_all(d).map_err(|e| fail(format!("cannot create {}: {e}", d.display())))?;
        }
        let mounted = mounted_paths();
        let own = kinds(spec.host_network);
        let mut namespaces: Vec<SandboxNamespace> =
            own.iter().map(|(kind, name, _)| SandboxNamespace { kind: *kind, path: ns_dir.join(name) }).collect();
        if !namespaces.iter().all(|ns| mounted.contains(&ns.path)) {
            // Half-made (or from before a reboot): start over.
            unmount_namespaces(&ns_dir);
            make_namespaces(&ns_dir, &spec.hostname, &own).map_err(fail)?;
        }
        if spec.host_network {
            let path = PathBuf::from(format!("/proc/{}/ns/net", std::process::id()));
            namespaces.insert(0, SandboxNamespace { kind: NamespaceKind::Network, path });
        }
        let files = write_files(&etc, spec).map_err(fail)?;
        Ok(Self { dir: dir.to_path_buf(), namespaces, host_network: spec.host_network, files })
    }

    /// The pod's own network namespace (None for a hostNetwork pod), for its `eth0` and for
    /// probes that connect inside the pod.
    pub fn netns(&self) -> Option<&Path> {
        (!self.host_network).then(|| self.namespaces[0].path.as_path())
    }
}

/// The namespaces a sandbox makes of its own: all but the network one for a hostNetwork pod.
fn kinds(host_network: bool) -> Vec<(NamespaceKind, &'static str, CloneFlags)> {
    KINDS.into_iter().filter(|(kind, _, _)| !(host_network && *kind == NamespaceKind::Network)).collect()
}

/// Unmounts the namespaces and deletes the sandbox dir, and the pod's cgroup dirs under
/// `cgroup_parent` in every hierarchy (the shim removed the containers' own). A pod without a
/// sandbox dir never ran a Linux container: there is nothing to remove.
pub fn remove(dir: &Path, cgroup_parent: &str) {
    if !dir.exists() {
        return;
    }
    unmount_namespaces(&dir.join("ns"));
    let _ = std::fs::remove_dir_all(dir);
    remove_cgroups(Path::new("/sys/fs/cgroup"), cgroup_parent);
}

/// Removes `parent` (a relative cgroup path) from the unified hierarchy at `root` and from each
/// v1 hierarchy mounted below it.
fn remove_cgroups(root: &Path, parent: &str) {
    let mut hierarchies = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(root) {
        hierarchies.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.is_symlink()));
    }
    for hierarchy in hierarchies {
        let dir = hierarchy.join(parent);
        // cgroup dirs go with rmdir only, and only once their children are gone.
        if dir.join("cgroup.procs").exists() {
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// Mount points of this process's mount namespace.
fn mounted_paths() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().filter_map(|line| line.split(' ').nth(4)).map(|p| PathBuf::from(unescape_mount_path(p))).collect()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mount_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(b as char),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unmount_namespaces(ns_dir: &Path) {
    for (_, name, _) in KINDS {
        let path = ns_dir.join(name);
        let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&path);
    }
}

/// Makes the namespaces on a thread of their own (namespaces are per thread, and the thread
/// ends with them pinned by their bind mounts), names the UTS namespace and brings loopback up.
fn make_namespaces(
    ns_dir: &Path,
    hostname: &str,
    kinds: &[(NamespaceKind, &'static str, CloneFlags)],
) -> Result<(), String> {
    let ns_dir = ns_dir.to_path_buf();
    let hostname = hostname.to_string();
    let kinds = kinds.to_vec();
    std::thread::spawn(move || -> Result<(), String> {
        let flags = kinds.iter().fold(CloneFlags::empty(), |all, (_, _, flag)| all | *flag);
        nix::sched::unshare(flags).map_err(|e| format!("cannot create namespaces: {e}"))?;
        nix::unistd::sethostname(&hostname).map_err(|e| format!("cannot set hostname {hostname:?}: {e}"))?;
        // A child inherits the namespaces of the thread that starts it.
        if kinds.iter().any(|(kind, _, _)| *kind == NamespaceKind::Network) {
            let lo = Command::new("ip").args(["link", "set", "lo", "up"]).output();
            match lo {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    return Err(format!("ip link set lo up: {}", String::from_utf8_lossy(&out.stderr).trim()));
                }
                Err(e) => return Err(format!("cannot run ip (install iproute2): {e}")),
            }
        }
        for (_, name, _) in kinds {
            let target = ns_dir.join(name);
            std::fs::File::create(&target).map_err(|e| format!("cannot create {}: {e}", target.display()))?;
            let source = PathBuf::from("/proc/thread-self/ns").join(name);
            nix::mount::mount(Some(&source), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| format!("cannot bind {} to {}: {e}", source.display(), target.display()))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| "the namespace thread panicked".to_string())?
}

fn write_files(etc: &Path, spec: &SandboxSpec) -> Result<Vec<Mount>, String> {
    let node_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let files = [
        ("hosts", hosts(spec)),
        ("hostname", format!("{}\n", spec.hostname)),
        ("resolv.conf", resolv_conf(spec, &node_resolv)),
    ];
    files
        .into_iter()
        .map(|(name, content)| {
            let path = etc.join(name);
            std::fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(Mount { host_path: path, guest_path: format!("/etc/{name}"), read_only: false })
        })
        .collect()
}

fn hosts(spec: &SandboxSpec) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    out.push_str(&format!("{}\t{}\n", spec.pod_ip, spec.hostname));
    if !spec.host_aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for (ip, names) in &spec.host_aliases {
            out.push_str(&format!("{ip}\t{}\n", names.join("\t")));
        }
    }
    out
}

/// The pod's resolv.conf under its dnsPolicy, given the node's (`node_resolv`).
fn resolv_conf(spec: &SandboxSpec, node_resolv: &str) -> String {
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    // The kubelet's rule: ClusterFirst on a hostNetwork pod means Default.
    let cluster_first = match policy {
        "ClusterFirst" => !spec.host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    let domain = &spec.cluster_domain;
    let host = match (policy, &spec.nameserver) {
        (_, Some(server)) if cluster_first => format!(
            "nameserver {server}\nsearch {ns}.svc.{domain} svc.{domain} {domain}\noptions ndots:5\n",
            ns = spec.namespace
        ),
        ("None", _) => String::new(),
        _ => node_resolv.to_string(),
    };
    let mut nameservers: Vec<String> = Vec::new();
    let mut searches: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => nameservers.extend(words.map(String::from)),
            Some("search" | "domain") => searches.extend(words.map(String::from)),
            Some("options") => options.extend(words.map(String::from)),
            _ => {}
        }
    }
    if let Some(config) = &spec.dns_config {
        nameservers.extend(config.nameservers.iter().flatten().cloned());
        searches.extend(config.searches.iter().flatten().cloned());
        for option in config.options.iter().flatten() {
            let name = option.name.clone().unwrap_or_default();
            options.retain(|o| o.split(':').next() != Some(name.as_str()));
            options.push(match &option.value {
                Some(value) => format!("{name}:{value}"),
                None => name,
            });
        }
    }
    let mut out = String::new();
    for server in nameservers.iter().take(3) {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodDNSConfigOption;

    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec { hostname: "web-0".into(), pod_ip: "10.1.2.3".into(), ..Default::default() }
    }

    #[test]
    fn hosts_names_the_pod_and_its_aliases() {
        let mut spec = spec();
        spec.host_aliases = vec![("10.0.0.9".into(), vec!["db".into(), "db.local".into()])];
        let text = hosts(&spec);
        assert!(text.contains("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.1.2.3\tweb-0\n"));
        assert!(text.ends_with("10.0.0.9\tdb\tdb.local\n"));
    }

    #[test]
    fn resolv_conf_takes_dns_config_alone_with_policy_none() {
        let mut spec = spec();
        spec.dns_policy = Some("None".into());
        spec.dns_config = Some(PodDNSConfig {
            nameservers: Some(vec!["10.96.0.10".into()]),
            searches: Some(vec!["ns1.svc.cluster.local".into()]),
            options: Some(vec![PodDNSConfigOption { name: Some("ndots".into()), value: Some("5".into()) }]),
        });
        assert_eq!(
            resolv_conf(&spec, "nameserver 9.9.9.9\n"),
            "nameserver 10.96.0.10\nsearch ns1.svc.cluster.local\noptions ndots:5\n"
        );
    }

    #[test]
    fn resolv_conf_follows_the_dns_policy() {
        let node = "nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n";
        let mut spec = spec();
        spec.namespace = "shop".into();
        spec.cluster_domain = "cluster.local".into();
        spec.nameserver = Some("10.1.2.1".into());
        let cluster =
            "nameserver 10.1.2.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";
        assert_eq!(resolv_conf(&spec, node), cluster, "ClusterFirst is the default");
        spec.dns_policy = Some("Default".into());
        assert_eq!(resolv_conf(&spec, node), node);
        spec.dns_policy = Some("ClusterFirst".into());
        spec.host_network = true;
        assert_eq!(resolv_conf(&spec, node), node, "ClusterFirst on the host network is Default");
        spec.dns_policy = Some("ClusterFirstWithHostNet".into());
        assert_eq!(resolv_conf(&spec, node), cluster);
        spec.dns_policy = Some("None".into());
        assert_eq!(resolv_conf(&spec, node), "");
    }

    #[test]
    fn mountinfo_escapes_are_read_back() {
        assert_eq!(unescape_mount_path("/a\\040b/c\\134d"), "/a b/c\\d");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    /// As root: the namespaces are made, pinned, reused, and gone after `remove`.
    #[test]
    fn sandboxes_outlive_their_thread_and_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox_dir = dir.path().join("sandbox");
        let sandbox = Sandbox::ensure(&sandbox_dir, &spec()).expect("sandbox (needs root and iproute2)");
        let mounted = mounted_paths();
        for ns in &sandbox.namespaces {
            assert!(mounted.contains(&ns.path), "{} not mounted", ns.path.display());
        }
        // Port-forward finds the network namespace by this path alone.
        assert_eq!(sandbox.netns(), Some(netns_path(&sandbox_dir).as_path()));
        let uts_inside = Command::new("nsenter")
            .arg(format!("--uts={}", sandbox.namespaces[2].path.display()))
            .arg("hostname")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&uts_inside.stdout).trim(), "web-0");
        let lo = Command::new("nsenter")
            .arg(format!("--net={}", sandbox.netns().unwrap().display()))
            .args(["ip", "-o", "link", "show", "lo"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&lo.stdout).contains("UP"), "{}", String::from_utf8_lossy(&lo.stdout));
        assert_eq!(std::fs::read_to_string(sandbox_dir.join("etc/hostname")).unwrap(), "web-0\n");

        // A second ensure (an agent restart) keeps the same namespaces.
        let inode = |p: &Path| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
        let before = inode(sandbox.netns().unwrap());
        let again = Sandbox::ensure(&sandbox_dir, &spec()).unwrap();
        assert_eq!(inode(again.netns().unwrap()), before);

        remove(&sandbox_dir, "wharf-test/does-not-exist");
        assert!(!sandbox_dir.exists());
        let mounted = mounted_paths();
        assert!(sandbox.namespaces.iter().all(|ns| !mounted.contains(&ns.path)));
    }
}
