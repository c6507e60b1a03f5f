//! The node's pod address allocator: one file per address in use, named by the address and
//! holding the pod's uid, under `DATA/network/ipam/<podCIDR>/`. Files survive an agent restart,
//! so a pod keeps its address for its whole life; `create_new` makes a taken address fail to
//! be taken twice even by two agents sharing a data dir by mistake.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::Ipv4Net;

/// Pod addresses of one podCIDR.
#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    range: Ipv4Net,
    /// Serializes allocations of this agent.
    lock: Mutex<()>,
}

impl Ipam {
    /// The allocator of `range` keeping its files under `root` (created if missing).
    pub fn open(root: &Path, range: Ipv4Net) -> Result<Self, String> {
        let dir = root.join(range.to_string().replace('/', "_"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self { dir, range, lock: Mutex::new(()) })
    }

    /// Every (address, uid) in use.
    fn entries(&self) -> Vec<(Ipv4Addr, String)> {
        let files = std::fs::read_dir(&self.dir).into_iter().flatten().flatten();
        files
            .filter_map(|e| {
                let ip = e.file_name().to_str()?.parse().ok()?;
                let uid = std::fs::read_to_string(e.path()).ok()?;
                Some((ip, uid.trim().to_string()))
            })
            .collect()
    }

    /// The pod's address: the one it already holds, else the lowest free one after the gateway
    /// (addresses of pods `live` says are gone are freed first).
    pub fn allocate(&self, uid: &str, live: impl Fn(&str) -> bool) -> Result<Ipv4Addr, String> {
        let _held = self.lock.lock().expect("ipam lock");
        let mut entries = self.entries();
        if let Some((ip, _)) = entries.iter().find(|(_, u)| u == uid) {
            return Ok(*ip);
        }
        entries.retain(|(ip, u)| live(u) || std::fs::remove_file(self.dir.join(ip.to_string())).is_err());
        for ip in self.range.hosts().skip(1) {
            if entries.iter().any(|(taken, _)| *taken == ip) {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(uid.as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
        }
        Err(format!("no free pod address left in {}", self.range))
    }

    /// The pod's address, if it holds one.
    pub fn address_of(&self, uid: &str) -> Option<Ipv4Addr> {
        self.entries().into_iter().find(|(_, u)| u == uid).map(|(ip, _)| ip)
    }

    /// Frees the pod's address (if any).
    pub fn release(&self, uid: &str) {
        let _held = self.lock.lock().expect("ipam lock");
        for (ip, _) in self.entries().into_iter().filter(|(_, u)| u == uid) {
            let _ = std::fs::remove_file(self.dir.join(ip.to_string()));
        }
    }

    /// Frees the addresses of pods `keep` says are gone (removed while the agent was down).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let _held = self.lock.lock().expect("ipam lock");
        for (ip, uid) in self.entries() {
            if !keep(&uid) {
                let _ = std::fs::remove_file(self.dir.join(ip.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_stable_unique_and_reused_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path(), "10.9.3.0/24".parse().unwrap()).unwrap();
        let a = ipam.allocate("uid-a", |_| true).unwrap();
        let b = ipam.allocate("uid-b", |_| true).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 3, 2), "the first host is the gateway");
        assert_eq!(b, Ipv4Addr::new(10, 9, 3, 3));
        assert_eq!(ipam.allocate("uid-a", |_| true).unwrap(), a, "a pod keeps its address");
        // A restarted agent reads the same files.
        let again = Ipam::open(dir.path(), "10.9.3.0/24".parse().unwrap()).unwrap();
        assert_eq!(again.address_of("uid-b"), Some(b));
        again.release("uid-a");
        assert_eq!(again.allocate("uid-c", |_| true).unwrap(), a);
        again.retain(|uid| uid != "uid-b");
        assert_eq!(again.address_of("uid-b"), None);
    }

    #[test]
    fn a_full_range_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path(), "10.9.3.0/30".parse().unwrap()).unwrap();
        assert_eq!(ipam.allocate("a", |_| true).unwrap(), Ipv4Addr::new(10, 9, 3, 2));
        assert!(ipam.allocate("b", |_| true).unwrap_err().contains("no free pod address"));
        // Unless the pod holding it is gone.
        assert_eq!(ipam.allocate("b", |uid| uid != "a").unwrap(), Ipv4Addr::new(10, 9, 3, 2));
    }
}
