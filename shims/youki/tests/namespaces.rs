//! The pod sandbox: new or joined network, IPC and UTS namespaces, the hostname, and volumes
//! bind-mounted from the host (files and directories, read-only or not).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Fixture, unique};
use wharf_shim::{Exit, Mount, NamespaceKind, SandboxNamespace};

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

/// A network namespace made with `ip netns add`, deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        let name = unique("wharf-test-net");
        run("ip", &["netns", "add", &name]);
        NetNs(name)
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A UTS namespace kept by a bind mount on a file, with its own hostname; undone on drop.
struct UtsNs(PathBuf);

impl UtsNs {
    fn new(dir: &Path, hostname: &str) -> UtsNs {
        let file = dir.join("uts");
        std::fs::write(&file, "").unwrap();
        run("unshare", &[&format!("--uts={}", file.display()), "hostname", hostname]);
        UtsNs(file)
    }
}

impl Drop for UtsNs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_of_its_own_gets_the_pod_hostname() {
    let fx = Fixture::new();
    let (exit, out) = fx.output(fx.sh("hostname; readlink /proc/self/ns/net")).await;
    assert_eq!(exit, Exit::Code(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "testpod");
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(lines[1], host_net.to_str().unwrap(), "the container has a network namespace of its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_namespaces_are_joined() {
    let fx = Fixture::new();
    let net = NetNs::new();
    let uts = UtsNs::new(fx.dir.path(), "sandbox-host");
    let (mut spec, sink) = fx.sh("hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/uts");
    spec.linux.namespaces = vec![
        SandboxNamespace { kind: NamespaceKind::Network, path: net.path() },
        SandboxNamespace { kind: NamespaceKind::Uts, path: uts.0.clone() },
    ];
    let (exit, out) = fx.output((spec, sink)).await;
    assert_eq!(exit, Exit::Code(0));
    assert_eq!(out, format!("sandbox-host\nnet:[{}]\nuts:[{}]\n", inode(&net.path()), inode(&uts.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_are_bind_mounted() {
    let fx = Fixture::new();
    let hosts = fx.dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 testpod\n").unwrap();
    let data = fx.dir.path().join("data");
    let config = fx.dir.path().join("config");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("setting"), "on\n").unwrap();

    let (mut spec, sink) = fx.sh("cat /etc/hosts /etc/config/setting; echo written > /data/out; \
         touch /etc/config/new 2>/dev/null && echo config-writable; true");
    spec.mounts = vec![
        Mount { host_path: hosts.clone(), guest_path: "/etc/hosts".into(), read_only: false },
        Mount { host_path: data.clone(), guest_path: "/data".into(), read_only: false },
        Mount { host_path: config.clone(), guest_path: "/etc/config".into(), read_only: true },
    ];
    assert_eq!(fx.output((spec, sink)).await, (Exit::Code(0), "127.0.0.1 testpod\non\n".into()));
    assert_eq!(std::fs::read_to_string(data.join("out")).unwrap(), "written\n");
    assert!(!config.join("new").exists());
}
