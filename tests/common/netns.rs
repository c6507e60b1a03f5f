//! Two test hosts in network namespaces on a bridge of the test's own, and `wharf agent`s
//! running in them (tests/network.rs, tests/node_partition.rs). Everything is removed on drop.

use std::process::{Child, Command, Stdio};

use super::{Cluster, cgroups_of_pod, mounts_under, pids_of_pod};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs (install iproute2)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Hosts `a` and `b`: network namespaces `wharf-<tag><octet>-{a,b}` at 172.16.OCTET.2 and .3,
/// each with an `uplink` veth to the bridge `w<tag>b<octet>` at .1 (where the API server can
/// listen). `tag` keeps the names of tests running at once apart.
pub struct Hosts {
    tag: char,
    octet: u8,
}

impl Hosts {
    pub fn make(tag: char, octet: u8) -> Self {
        let hosts = Hosts { tag, octet };
        hosts.remove();
        ip(&["link", "add", &hosts.bridge(), "type", "bridge"]);
        ip(&["addr", "add", &format!("172.16.{octet}.1/24"), "dev", &hosts.bridge()]);
        ip(&["link", "set", &hosts.bridge(), "up"]);
        for letter in ['a', 'b'] {
            let (netns, outside) = (hosts.netns(letter), format!("w{tag}{octet}{letter}"));
            ip(&["netns", "add", &netns]);
            ip(&["link", "add", &outside, "type", "veth", "peer", "name", "uplink", "netns", &netns]);
            ip(&["link", "set", &outside, "master", &hosts.bridge(), "up"]);
            ip(&["-n", &netns, "link", "set", "lo", "up"]);
            ip(&["-n", &netns, "addr", "add", &format!("{}/24", hosts.address(letter)), "dev", "uplink"]);
            ip(&["-n", &netns, "link", "set", "uplink", "up"]);
            ip(&["-n", &netns, "route", "add", "default", "via", &format!("172.16.{octet}.1")]);
        }
        hosts
    }

    pub fn netns(&self, letter: char) -> String {
        format!("wharf-{}{}-{letter}", self.tag, self.octet)
    }

    pub fn address(&self, letter: char) -> String {
        format!("172.16.{}.{}", self.octet, if letter == 'a' { 2 } else { 3 })
    }

    fn bridge(&self) -> String {
        format!("w{}b{}", self.tag, self.octet)
    }

    /// Sets the host's own end of its link up or down.
    pub fn link(&self, letter: char, up: bool) {
        ip(&["-n", &self.netns(letter), "link", "set", "uplink", if up { "up" } else { "down" }]);
        if up {
            // The default route went with the link.
            let _ = Command::new("ip")
                .args(["-n", &self.netns(letter), "route", "replace", "default", "via"])
                .arg(format!("172.16.{}.1", self.octet))
                .status();
        }
    }

    fn remove(&self) {
        for letter in ['a', 'b'] {
            let _ = Command::new("ip").args(["netns", "del", &self.netns(letter)]).stderr(Stdio::null()).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge()]).stderr(Stdio::null()).status();
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `wharf agent` in a host's network namespace; killed, with what its pods left, on drop.
pub struct NetnsAgent {
    dir: tempfile::TempDir,
    child: Child,
}

impl NetnsAgent {
    /// Started with `nsenter --net` rather than `ip netns exec`: the latter remounts /sys in a
    /// mount namespace of its own, hiding the cgroup hierarchy Linux containers need.
    pub fn start(cluster: &Cluster, hosts: &Hosts, letter: char, name: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let address = hosts.address(letter);
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", hosts.netns(letter)))
            .arg(env!("CARGO_BIN_EXE_wharf"))
            .args(["agent", "--server", &cluster.url, "--token-file"])
            .arg(cluster.data_dir().join("node-token"))
            .args(["--name", name, "--data-dir"])
            .arg(dir.path())
            .args(["--listen", &format!("{address}:0"), "--node-ip", &address])
            .args(["--gateway-listen", &format!("{address}:0")])
            .args(extra)
            .env("RUST_LOG", super::log_filter())
            .spawn()
            .expect("nsenter runs wharf agent (install util-linux)");
        NetnsAgent { dir, child }
    }
}

impl Drop for NetnsAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pods: Vec<String> = std::fs::read_dir(self.dir.path().join("pods"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|uid| uid.file_name().to_string_lossy().into_owned())
            .collect();
        for uid in &pods {
            for pid in pids_of_pod(uid) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
        for mount in mounts_under(self.dir.path()) {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
        for uid in &pods {
            let mut cgroups = cgroups_of_pod(uid);
            cgroups.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for cgroup in cgroups {
                let _ = std::fs::remove_dir(cgroup);
            }
        }
    }
}
