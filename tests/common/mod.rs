//! A Wharf cluster for end-to-end tests: the real `wharf` binary on a temporary data dir and a
//! free loopback port, and the real kubectl pointed at it.

#![allow(dead_code)]

pub mod netns;

/// Agent flag: node Leases of 4 s, renewed every second (a quarter, as a kubelet does).
pub const QUICK_LEASE: [&str; 2] = ["--node-lease-duration-seconds", "4"];

/// Server flags that make node failure quick to see: 4 s leases (the local agent's), NotReady
/// after 4 s of silence, pods evicted 3 s after that.
pub const QUICK_NODE_FAILURE: [&str; 8] = [
    QUICK_LEASE[0],
    QUICK_LEASE[1],
    "--node-monitor-grace-period",
    "4s",
    "--default-not-ready-toleration-seconds",
    "3",
    "--default-unreachable-toleration-seconds",
    "3",
];
pub mod postgres;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `samples/out` (http-hello.wasm and the other samples), built once per test binary by
/// `samples/build`.
pub fn samples_out() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples");
            let out = Command::new(samples.join("build")).output().expect("samples/build runs");
            assert!(
                out.status.success(),
                "samples/build failed (it needs the wasm32-wasip2 Rust target: rustup target add wasm32-wasip2):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            samples.join("out")
        })
        .clone()
}

/// The kubectl every test drives; fails loudly when it is missing.
pub fn kubectl_path() -> PathBuf {
    let path = PathBuf::from(std::env::var("KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into()));
    assert!(path.exists(), "kubectl not found at {}: install kubectl (or set KUBECTL)", path.display());
    path
}

/// The log filter of the processes a test starts: warnings, unless `WHARF_TEST_LOG` says more
/// (e.g. `WHARF_TEST_LOG=warn,wharf_runtime=debug` to follow a pod's worker).
fn log_filter() -> String {
    std::env::var("WHARF_TEST_LOG").unwrap_or_else(|_| "warn,libcgroups=error".into())
}

/// The address ranges one test cluster has to itself, so that clusters of tests running at the
/// same time (in one process or several) never program the host with overlapping pod networks,
/// ClusterIPs or NodePorts. A slot is held by a lock on its file for the cluster's lifetime.
pub struct NetworkSlot {
    /// The second octet of every address of the cluster: pods 10.N.0.0/17, Services 10.N.128.0/17.
    pub octet: u8,
    _lock: std::fs::File,
}

impl NetworkSlot {
    const FIRST: u8 = 100;
    const COUNT: u8 = 128;

    /// Takes a free slot, waiting for one if all are held.
    pub fn take() -> Self {
        let dir = std::env::temp_dir().join("wharf-test-network-slots");
        std::fs::create_dir_all(&dir).expect("create the network slot dir");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            for octet in Self::FIRST..Self::FIRST + Self::COUNT {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(dir.join(format!("{octet}.lock")))
                    .expect("open a network slot lock");
                if file.try_lock().is_ok() {
                    return NetworkSlot { octet, _lock: file };
                }
            }
            assert!(Instant::now() < deadline, "all {} test network slots stayed taken for 2 min", Self::COUNT);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn cluster_cidr(&self) -> String {
        format!("10.{}.0.0/17", self.octet)
    }

    pub fn service_cidr(&self) -> String {
        format!("10.{}.128.0/17", self.octet)
    }

    /// 20 NodePorts of the default range, apart from every other slot's.
    pub fn node_port_range(&self) -> String {
        let first = 30000 + u32::from(self.octet - Self::FIRST) * 20;
        format!("{first}-{}", first + 19)
    }

    /// Removes the node networks the cluster's agents made in this network namespace (killed
    /// agents cannot): bridges `wh0aNN…` and nftables tables `wharf_0aNN…_net`/`_svc` of podCIDRs in
    /// this slot's range.
    fn remove_node_networks(&self) {
        let id = format!("0a{:02x}", self.octet);
        let bridges = Command::new("ip").args(["-o", "link", "show", "type", "bridge"]).output();
        let bridges = bridges.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        for line in bridges.lines() {
            let name = line.split_whitespace().nth(1).unwrap_or_default().trim_end_matches(':');
            if name.starts_with(&format!("wh{id}")) {
                let _ = Command::new("ip").args(["link", "del", name]).status();
            }
        }
        let tables = Command::new("nft").args(["list", "tables", "ip"]).output();
        let tables = tables.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        for table in tables.lines().filter_map(|l| l.strip_prefix("table ip ")) {
            if table.starts_with(&format!("wharf_{id}")) && (table.ends_with("_net") || table.ends_with("_svc")) {
                let _ = Command::new("nft").args(["delete", "table", "ip", table]).status();
            }
        }
    }

    /// `wharf server` flags for this slot, leaving out those `given` already sets.
    fn server_args(&self, given: &[String]) -> Vec<String> {
        let flags = [
            ("--cluster-cidr", self.cluster_cidr()),
            ("--service-cidr", self.service_cidr()),
            ("--service-node-port-range", self.node_port_range()),
            ("--gateway-listen", "127.0.0.1:0".to_string()),
        ];
        flags
            .into_iter()
            .filter(|(flag, _)| !given.iter().any(|g| g == flag || g.starts_with(&format!("{flag}="))))
            .flat_map(|(flag, value)| [flag.to_string(), value])
            .collect()
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub network: NetworkSlot,
    listen: String,
    args: Vec<String>,
    child: Option<Child>,
    /// When set, the server logs at this level into `server.log` in its data dir (see [`Cluster::log_text`]).
    log_level: Option<String>,
}

impl Cluster {
    /// Starts `wharf server` on a fresh data dir.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts `wharf server` with extra flags.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_inner(args, None)
    }

    /// Starts `wharf server` logging at `level` (a `RUST_LOG` filter) into a file the test reads
    /// with [`Cluster::log_text`].
    pub fn start_logged(args: &[&str], level: &str) -> Self {
        Self::start_inner(args, Some(level.to_string()))
    }

    /// What the server has logged so far (only for [`Cluster::start_logged`]).
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).expect("the server log")).into_owned()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn start_inner(args: &[&str], log_level: Option<String>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        // `--listen ADDR` among `args` replaces the loopback address the server listens on.
        let listen = match args.iter().position(|a| a == "--listen") {
            Some(i) => args.drain(i..i + 2).nth(1).expect("--listen takes an address"),
            None => "127.0.0.1:0".into(),
        };
        let network = NetworkSlot::take();
        let args = [network.server_args(&args), args].concat();
        let mut cluster = Cluster { dir, url: String::new(), network, listen, args, child: None, log_level };
        cluster.boot();
        cluster
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin token, as a user signing in to the dashboard pastes it.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin.token")).expect("admin.token").trim().to_string()
    }

    /// A TLS client configuration trusting only the cluster CA, without client credentials.
    pub fn tls_client_config(&self) -> rustls::ClientConfig {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let ca = std::fs::read(self.data_dir().join("pki/ca.crt")).expect("the cluster CA");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.expect("a PEM certificate")).expect("a CA certificate");
        }
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    /// A TLS connection to the API server trusting only the cluster CA, and the `host:port` it
    /// reached (for the WebSocket tests, which speak to the server as a browser does).
    pub async fn tls_connect(&self) -> (tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String) {
        let tls = self.tls_client_config();
        let address = self.url.trim_start_matches("https://").to_string();
        let tcp = tokio::net::TcpStream::connect(&address).await.expect("the server accepts");
        let host = address.rsplit_once(':').expect("host:port").0.to_string();
        let name = rustls::pki_types::ServerName::try_from(host).expect("a server name");
        let stream =
            tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls)).connect(name, tcp).await.expect("TLS handshake");
        (stream, address)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    /// Starts the server process and waits for its "listening" line.
    fn boot(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["server", "--data-dir"])
            .arg(self.dir.path())
            .args(["--listen", &self.listen])
            .args(&self.args)
            .env("RUST_LOG", self.log_level.clone().unwrap_or_else(log_filter))
            .stdout(Stdio::piped())
            .stderr(match &self.log_level {
                Some(_) => Stdio::from(
                    std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("the log file"),
                ),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("wharf starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("Wharf API server listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(30)).expect("wharf server printed its URL within 30 s");
        // Restarts reuse the port so the kubeconfig and clients stay valid.
        self.listen = url.trim_start_matches("https://").to_string();
        self.url = url;
        self.child = Some(child);
    }

    /// Kills the server with SIGKILL (no chance to clean up), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the server");
            child.wait().expect("reap the server");
        }
    }

    /// Starts the server again on the same data dir and port.
    pub fn restart(&mut self) {
        self.kill();
        self.boot();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Runs kubectl against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(args, None, &[])
    }

    /// Runs kubectl with standard input and extra environment.
    pub fn kubectl_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(kubectl_path());
        cmd.args(args).env("KUBECONFIG", self.kubeconfig()).envs(env.iter().copied());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin piped").write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl finishes")
    }

    /// Runs kubectl and returns its standard output, failing the test if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs the `wharf` binary itself against this cluster (e.g. `image ls`), returning stdout.
    pub fn ok_with_bin(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .output()
            .expect("wharf runs");
        assert!(out.status.success(), "wharf {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// `kubectl apply -f -` of `manifest`, returning stdout.
    pub fn apply(&self, manifest: &str) -> String {
        let out = self.kubectl_with(&["apply", "-f", "-"], Some(manifest), &[]);
        assert!(out.status.success(), "apply failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_with(args, stdin, &[]);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A kube-rs client for this cluster.
    pub async fn client(&self) -> kube::Client {
        let config = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig reads");
        let config =
            kube::Config::from_custom_kubeconfig(config, &Default::default()).await.expect("kubeconfig is valid");
        kube::Client::try_from(config).expect("client builds")
    }

    /// `wharf image import FILE --name NAME` into this cluster; the printed reference.
    pub fn import(&self, file: &Path, name: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["image", "import"])
            .arg(file)
            .args(["--name", name])
            .env("KUBECONFIG", self.kubeconfig())
            .output()
            .unwrap();
        assert!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().last().unwrap_or_default().to_string()
    }

    /// The pod as JSON (`null` if it cannot be read).
    pub fn pod(&self, name: &str) -> serde_json::Value {
        let out = self.kubectl(&["get", "pod", name, "-o", "json"]);
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Polls the pod until `check` holds, failing with its last state after `timeout`.
    pub fn wait_pod(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let current = self.pod(name);
            if check(&current) {
                return current;
            }
            assert!(start.elapsed() < timeout, "pod {name} never {what}; last seen:\n{current:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls `check` until it returns true or `timeout` passes.
    pub fn eventually(&self, timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

/// A second node: `wharf agent` joined to a cluster, on its own data dir. Dropping it kills it.
pub struct Agent {
    pub name: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Cluster {
    /// Starts `wharf agent --name NAME` joined to this cluster; returns once it is running
    /// (use [`Cluster::wait_nodes_ready`] to wait for its node to be Ready).
    pub fn join_agent(&self, name: &str) -> Agent {
        self.join_agent_with(name, &[])
    }

    /// [`Cluster::join_agent`] with extra `wharf agent` flags.
    pub fn join_agent_with(&self, name: &str, args: &[&str]) -> Agent {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["agent", "--server", &self.url, "--token-file"])
            .arg(self.data_dir().join("node-token"))
            .args(["--name", name, "--data-dir"])
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(if args.contains(&"--gateway-listen") { &[][..] } else { &["--gateway-listen", "127.0.0.1:0"][..] })
            .args(args)
            .env("RUST_LOG", log_filter())
            .spawn()
            .expect("wharf agent starts");
        Agent { name: name.into(), dir, child: Some(child) }
    }

    /// Waits until `count` nodes report Ready, failing the test after `timeout`.
    pub fn wait_nodes_ready(&self, count: usize, timeout: Duration) {
        let ready = self.eventually(timeout, || {
            let nodes = self.ok(&["get", "nodes", "--no-headers"]);
            nodes.lines().filter(|l| l.split_whitespace().nth(1) == Some("Ready")).count() == count
        });
        assert!(ready, "{count} nodes never became Ready:\n{}", self.ok(&["get", "nodes"]));
    }
}

impl Agent {
    /// Kills the agent with SIGKILL, as a crashed or unplugged node would stop.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the agent");
            child.wait().expect("reap the agent");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        stop_and_clean_up(self.child.take(), self.dir.path(), self.dir.path());
    }
}

/// The busybox sample image (an OCI layout), built by the samples' own script into `dir`.
pub fn busybox_layout(dir: &Path) -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/busybox-image");
    let layout = dir.join("busybox");
    let output = Command::new(&script).arg(&layout).output().expect("python3 runs samples/busybox-image");
    assert!(
        output.status.success(),
        "{} failed (it needs python3 and busybox-static: apt-get install busybox-static): {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    layout
}

/// Assembles `tests/fixtures/NAME.wat` into a `.wasm` file in `dir`.
pub fn wasm_fixture(dir: &Path, name: &str) -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.wat"));
    let bytes = wat::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Pod uids whose directories the agent with data dir `agent_dir` holds.
fn pod_uids(agent_dir: &Path) -> Vec<String> {
    let pods = agent_dir.join("pods");
    std::fs::read_dir(pods).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into()).collect()
}

/// Every cgroup dir (in any hierarchy) at or below `wharf/pod<uid>` of the pods of the agent
/// with data dir `agent_dir` (a cluster's own agent keeps `DATA_DIR/agent`).
pub fn pod_cgroups(agent_dir: &Path) -> Vec<PathBuf> {
    pod_uids(agent_dir).iter().flat_map(|uid| cgroups_of_pod(uid)).collect()
}

/// Every cgroup dir (in any hierarchy, v1 or v2) at or below the pod's, `wharf/pod<uid>`.
pub fn cgroups_of_pod(uid: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if dir.join("cgroup.procs").exists() {
            out.push(dir.to_path_buf());
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&entry.path(), out);
                }
            }
        }
    }
    let mut hierarchies = vec![PathBuf::from("/sys/fs/cgroup")];
    hierarchies.extend(std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path()));
    let mut out = Vec::new();
    for hierarchy in &hierarchies {
        walk(&hierarchy.join("wharf").join(format!("pod{uid}")), &mut out);
    }
    out
}

/// The most forks the pids cgroups of a pod have refused (`max` in `pids.events`).
pub fn pids_refused(uid: &str) -> u64 {
    cgroups_of_pod(uid)
        .iter()
        .filter_map(|dir| std::fs::read_to_string(dir.join("pids.events")).ok())
        .filter_map(|events| events.trim().strip_prefix("max ").and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap_or(0)
}

/// Whether process `pid` still runs. A zombie has ended: a container adopted after an agent
/// restart is not the new agent's child, so its init is reaped by the host's PID 1, when it will.
pub fn process_alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name, which may itself hold spaces or ')'.
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

/// The processes in the pod's cgroups (read from every hierarchy, deduplicated).
pub fn pids_of_pod(uid: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = cgroups_of_pod(uid)
        .iter()
        .flat_map(|dir| {
            std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts
}

/// Kills `child` (a server or an agent), then anything its node left running: Linux containers
/// outlive a killed agent by design, so a failed test would otherwise leak their processes,
/// mounts (under `dir`) and cgroups (of the pods of the agent with data dir `agent_dir`).
fn stop_and_clean_up(child: Option<Child>, dir: &Path, agent_dir: &Path) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
    for cgroup in pod_cgroups(agent_dir) {
        for pid in std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default().lines() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    for mount in mounts_under(dir) {
        let _ = Command::new("umount").arg("-l").arg(&mount).status();
    }
    let mut cgroups = pod_cgroups(agent_dir);
    cgroups.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for cgroup in cgroups {
        let _ = std::fs::remove_dir(&cgroup);
    }
}

impl Drop for Cluster {
    /// Stops the server and cleans up after its node.
    fn drop(&mut self) {
        stop_and_clean_up(self.child.take(), self.dir.path(), &self.dir.path().join("agent"));
        self.network.remove_node_networks();
    }
}
