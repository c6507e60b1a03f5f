//! Helpers shared by the integration tests (real containers, as root): a busybox root
//! filesystem layer built from Debian's busybox-static, a shim on a temporary root with its own
//! cgroup parent, a log sink that records, specs, and checks for leftovers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use wharf_shim::{Container, ContainerSpec, Exit, LinuxSpec, Shim};
use wharf_shim_youki::{YoukiConfig, YoukiShim};

/// Records everything written to it.
pub use wharf_shim::MemorySink as Sink;

/// A unique name for ids, cgroups and namespaces of this test run.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Writes a root filesystem layer holding busybox, its applet links in /bin, and /etc/passwd
/// and /etc/group with root and nobody (65534).
pub fn busybox_layer(dir: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "these tests need /bin/busybox: apt-get install busybox-static");
    let list = std::process::Command::new(busybox).arg("--list").output().expect("busybox --list");
    for sub in ["bin", "etc", "tmp", "root", "mnt", "proc", "sys", "dev"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o1777);
    std::fs::set_permissions(dir.join("tmp"), mode).unwrap();
}

/// A container `id` running `args` on the busybox `layer`, below `cgroup_parent`.
pub fn spec(id: &str, layer: &Path, cgroup_parent: &str, args: &[&str]) -> (ContainerSpec, Arc<Sink>) {
    let sink = Arc::new(Sink::default());
    let spec = ContainerSpec {
        id: id.to_string(),
        artifact: layer.to_path_buf(),
        digest: "sha256:busybox".into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: vec![],
        working_dir: None,
        mounts: vec![],
        memory_limit: None,
        cpu_limit_millis: None,
        log: sink.clone(),
        network: None,
        linux: LinuxSpec {
            layers: vec![layer.to_path_buf()],
            hostname: "testpod".into(),
            cgroup_parent: cgroup_parent.to_string(),
            ..Default::default()
        },
    };
    (spec, sink)
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub shim: Arc<YoukiShim>,
    pub layer: PathBuf,
    /// Every container of this fixture goes below this cgroup.
    pub cgroup_parent: String,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        busybox_layer(&layer);
        let shim = Arc::new(YoukiShim::new(YoukiConfig::new(dir.path().join("youki"))).expect("youki shim"));
        Fixture { dir, shim, layer, cgroup_parent: unique("wharf-test") }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("youki")
    }

    /// A spec running `args` in the busybox image.
    pub fn spec(&self, args: &[&str]) -> (ContainerSpec, Arc<Sink>) {
        spec(&unique("c"), &self.layer, &self.cgroup_parent, args)
    }

    pub fn sh(&self, script: &str) -> (ContainerSpec, Arc<Sink>) {
        self.spec(&["sh", "-c", script])
    }

    pub async fn start(&self, spec: ContainerSpec) -> Arc<dyn Container> {
        self.shim.start(spec).await.expect("start")
    }

    /// Starts `spec`, waits (at most 30 s) for its end and removes it.
    pub async fn run(&self, spec: ContainerSpec) -> Exit {
        let id = spec.id.clone();
        let container = self.start(spec).await;
        let exit =
            tokio::time::timeout(Duration::from_secs(30), container.wait()).await.expect("container did not end");
        self.shim.remove(&id).await.expect("remove");
        exit
    }

    /// Runs a shell script and returns its exit and stdout.
    pub async fn output(&self, spec: (ContainerSpec, Arc<Sink>)) -> (Exit, String) {
        let (spec, sink) = spec;
        let exit = self.run(spec).await;
        (exit, sink.stdout())
    }
}

impl Drop for Fixture {
    /// Removes whatever a failed test left, then the fixture's cgroup parents.
    fn drop(&mut self) {
        let shim = self.shim.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            for id in shim.existing() {
                let _ = runtime.block_on(shim.remove(&id));
            }
        })
        .join()
        .unwrap();
        for dir in cgroup_dirs(&self.cgroup_parent) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Every cgroup hierarchy's mount point.
pub fn hierarchies() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter(|l| l.split(" - ").nth(1).is_some_and(|fs| fs.starts_with("cgroup")))
        .map(|l| PathBuf::from(l.split(' ').nth(4).unwrap()))
        .collect()
}

/// The directories named `relative` under every hierarchy that exist.
pub fn cgroup_dirs(relative: &str) -> Vec<PathBuf> {
    hierarchies().into_iter().map(|h| h.join(relative)).filter(|d| d.exists()).collect()
}

/// A cgroup control file of a container (v1: under `controller`'s hierarchy; v2: unified).
pub fn cgroup_file(fx: &Fixture, id: &str, controller: &str, file: &str) -> PathBuf {
    let relative = format!("{}/{id}/{file}", fx.cgroup_parent);
    let v1 = Path::new("/sys/fs/cgroup").join(controller).join(&relative);
    if Path::new("/sys/fs/cgroup").join(controller).exists() { v1 } else { Path::new("/sys/fs/cgroup").join(relative) }
}

/// Lines of /proc/self/mountinfo mentioning `path`.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let text = path.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&text))
        .map(str::to_owned)
        .collect()
}

/// Waits (at most 10 s) until the container printed `text`.
pub async fn wait_for_output(sink: &Sink, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sink.stdout().contains(text) {
        assert!(std::time::Instant::now() < deadline, "no {text:?} in the output: {:?}", sink.stdout());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
