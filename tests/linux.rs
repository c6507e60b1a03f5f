//! Linux containers end to end, as root: `wharf server` with its local node runs the busybox
//! sample image (an OCI layout built from Debian's busybox-static) through the youki shim beside
//! Wasm, driven by the real kubectl — the samples, limits, cleanup after deletion, surviving an
//! agent SIGKILL, and pulling from Debian's docker-registry with an imagePullSecret.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    Cluster, busybox_layout, cgroups_of_pod, mounts_under, pids_of_pod, pids_refused, process_alive, wasm_fixture,
};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);

fn cluster(extra: &[&str]) -> Cluster {
    let mut args = vec!["--backoff-base-ms", "300"];
    args.extend_from_slice(extra);
    Cluster::start_with(&args)
}

/// A cluster with the busybox sample imported as `busybox:v1`.
fn cluster_with_busybox(extra: &[&str]) -> Cluster {
    let cluster = cluster(extra);
    let layout = busybox_layout(cluster.data_dir());
    assert_eq!(cluster.import(&layout, "busybox:v1"), "busybox:v1");
    cluster
}

fn sample(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/manifests").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

fn uid(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

fn container_status<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

fn running(pod: &Value) -> bool {
    phase(pod) == "Running" && container_status(pod, "main")["state"]["running"].is_object()
}

fn busybox_pod(name: &str, script: &str, extra_container: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n  \
         terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: busybox:v1\n    \
         command: [sh, -c, {script:?}]\n{extra_container}"
    )
}

/// The RUNTIME cell of the first row of `kubectl get pod -o wide` (columns start where their
/// header does).
fn runtime_column(table: &str) -> String {
    let header = table.lines().next().unwrap_or_default();
    let start = header.find("RUNTIME").unwrap_or_else(|| panic!("no RUNTIME column in:\n{table}"));
    let row = table.lines().nth(1).unwrap_or_default();
    row.get(start..).unwrap_or_default().split_whitespace().next().unwrap_or_default().to_string()
}

/// Deletes the pod and checks that, once the deletion returns, nothing of it is left on the node
/// (the agent releases the object last, as the kubelet does): no process, no cgroup in any
/// hierarchy, no mount (namespaces, overlay rootfs) under the data dir, no container bundle, no
/// pod dir.
fn delete_and_check_clean(cluster: &Cluster, name: &str, uid: &str, pids: &[u32]) {
    cluster.ok(&["delete", "pod", name, "--wait=true", "--timeout=60s"]);
    let pod_dir = cluster.data_dir().join("agent/pods").join(uid);
    let bundles = cluster.data_dir().join("agent/youki/containers");
    let bundles_of_pod: Vec<String> = std::fs::read_dir(&bundles)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(uid))
        .collect();
    let leftover_pids: Vec<&u32> = pids.iter().filter(|p| process_alive(**p)).collect();
    let leftover_mounts: Vec<PathBuf> = mounts_under(cluster.data_dir())
        .into_iter()
        .filter(|m| m.starts_with(&pod_dir) || m.to_string_lossy().contains(uid))
        .collect();
    assert!(
        leftover_pids.is_empty()
            && cgroups_of_pod(uid).is_empty()
            && leftover_mounts.is_empty()
            && bundles_of_pod.is_empty()
            && !pod_dir.exists(),
        "left behind after deleting {name}: processes {leftover_pids:?}, cgroups {:?}, mounts {leftover_mounts:?}, \
         bundles {bundles_of_pod:?}, pod dir exists: {}",
        cgroups_of_pod(uid),
        pod_dir.exists()
    );
}

#[test]
fn the_hello_oci_sample_runs_on_youki_and_leaves_nothing_behind() {
    let cluster = cluster_with_busybox(&[]);
    let youki = cluster.ok(&["get", "nodes", "-l", "runtime.wharf.dev/youki=true", "-o", "name"]);
    assert!(youki.starts_with("node/"), "the node does not offer youki: {youki:?}");
    cluster.apply(&sample("hello-oci.yaml"));
    let pod = cluster.wait_pod("hello-oci", "ran", START, |p| {
        phase(p) == "Running" && container_status(p, "hello")["state"]["running"].is_object()
    });
    let status = container_status(&pod, "hello");
    assert!(status["containerID"].as_str().unwrap_or_default().starts_with("youki://"), "{status:#}");
    assert!(status["imageID"].as_str().unwrap_or_default().contains("busybox@sha256:"), "{status:#}");
    assert!(cluster.eventually(Duration::from_secs(10), || {
        cluster.ok(&["logs", "hello-oci"]).contains("hostname: hello-oci")
    }));
    let logs = cluster.ok(&["logs", "hello-oci"]);
    assert!(logs.starts_with("hello from a Linux container\n"), "{logs}");
    let wide = cluster.ok(&["get", "pod", "hello-oci", "-o", "wide"]);
    assert_eq!(runtime_column(&wide), "youki", "{wide}");

    let uid = uid(&pod);
    let pids = pids_of_pod(&uid);
    assert!(!pids.is_empty(), "no process in the pod's cgroups");
    delete_and_check_clean(&cluster, "hello-oci", &uid, &pids);
}

#[test]
fn a_mixed_pod_shares_an_empty_dir_between_a_linux_init_container_and_a_wasm_container() {
    let cluster = cluster_with_busybox(&[]);
    let cat = wasm_fixture(cluster.data_dir(), "cat");
    cluster.import(&cat, "cat:v1");
    cluster.apply(&sample("mixed.yaml"));
    let pod = cluster.wait_pod("mixed", "had cat done and web running", START, |p| {
        container_status(p, "cat")["state"]["terminated"]["reason"] == "Completed"
            && container_status(p, "web")["state"]["running"].is_object()
    });
    let logs = cluster.ok(&["logs", "mixed", "-c", "cat"]);
    assert_eq!(logs, "hello from the Linux init container of pod mixed\n");
    let init = &pod["status"]["initContainerStatuses"][0];
    assert!(init["containerID"].as_str().unwrap_or_default().starts_with("youki://"), "{init:#}");
    assert!(container_status(&pod, "cat")["containerID"].as_str().unwrap_or_default().starts_with("wasmtime://"));
    let wide = cluster.ok(&["get", "pod", "mixed", "-o", "wide"]);
    assert_eq!(runtime_column(&wide), "youki,wasmtime", "{wide}");
    let uid = uid(&pod);
    let pids = pids_of_pod(&uid);
    delete_and_check_clean(&cluster, "mixed", &uid, &pids);
}

#[test]
fn memory_and_pids_limits_hold_and_the_node_stays_ready() {
    let cluster = cluster_with_busybox(&["--pids-limit", "64"]);
    let limits = "    resources:\n      limits:\n        memory: 32Mi\n";
    // Doubling a shell variable grows the shell's heap until the memory cgroup kills it.
    cluster.apply(&busybox_pod("hog", "x=0123456789; while true; do x=$x$x; done", limits));
    let pod = cluster.wait_pod("hog", "was OOMKilled", START, |p| phase(p) == "Failed");
    let terminated = &container_status(&pod, "main")["state"]["terminated"];
    assert_eq!(terminated["reason"], "OOMKilled", "{terminated:#}");
    assert_eq!(terminated["exitCode"], 137, "{terminated:#}");

    // A fork bomb whose processes stay (each sleeps once it has forked what it could): it grows
    // until the pids limit refuses forks, and stays under it. The container's first process
    // execs into sleep, which needs no fork, so the container keeps running whatever fails.
    cluster.apply(&busybox_pod("bomb", "bomb() { bomb & bomb & sleep 1000; }; bomb & exec sleep 1000", ""));
    let pod = cluster.wait_pod("bomb", "ran", START, running);
    let uid = uid(&pod);
    let refused = || pids_refused(&uid);
    assert!(cluster.eventually(Duration::from_secs(20), || refused() > 0), "the pids limit never refused a fork");
    std::thread::sleep(Duration::from_secs(1));
    let processes = pids_of_pod(&uid).len();
    assert!((10..=64).contains(&processes), "{processes} processes in a container limited to 64");
    let node_ready = || {
        cluster.ok(&["get", "node", "-o", "jsonpath={.items[0].status.conditions[?(@.type==\"Ready\")].status}"])
            == "True"
    };
    assert!(node_ready(), "the node is not Ready while the bomb runs");
    let pids = pids_of_pod(&uid);
    delete_and_check_clean(&cluster, "bomb", &uid, &pids);
    assert!(node_ready(), "the node is not Ready after the bomb");
}

#[test]
fn running_containers_survive_an_agent_sigkill_and_are_adopted_once() {
    let mut cluster = cluster_with_busybox(&[]);
    let script = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done";
    cluster.apply(&busybox_pod("survivor", script, ""));
    let before = cluster.wait_pod("survivor", "ran", START, running);
    let uid = uid(&before);
    let pids = pids_of_pod(&uid);
    // The shell, started first; its `sleep 0.2` children come and go.
    let shell = *pids.first().expect("the container's processes");

    let old_endpoint = agent_port(&cluster);
    cluster.kill();
    std::thread::sleep(Duration::from_secs(1));
    assert!(process_alive(shell), "the container died with the agent");
    cluster.restart();
    // The pod's status still says running from before the kill; `kubectl logs` needs the new
    // agent's endpoint on the Node.
    let registered = cluster.eventually(START, || agent_port(&cluster) != old_endpoint);
    assert!(registered, "the restarted agent never registered its endpoint (still port {old_endpoint})");
    let after = cluster.wait_pod("survivor", "was reported running again", START, |p| {
        running(p) && container_status(p, "main")["ready"] == true
    });
    let (was, now) = (container_status(&before, "main"), container_status(&after, "main"));
    assert_eq!(now["containerID"], was["containerID"], "the container was replaced");
    assert_eq!(now["restartCount"], 0);
    assert_eq!(now["state"]["running"]["startedAt"], was["state"]["running"]["startedAt"]);
    assert_eq!(pids_of_pod(&uid).first(), Some(&shell), "the container's shell changed");
    // Output goes on into the same log after the restart.
    let ticks = |logs: &str| logs.lines().filter(|l| l.starts_with("tick ")).count();
    let seen = ticks(&cluster.ok(&["logs", "survivor"]));
    assert!(cluster.eventually(Duration::from_secs(10), || ticks(&cluster.ok(&["logs", "survivor"])) > seen + 5));
    let processes = pids_of_pod(&uid);
    assert!(processes.len() <= 2, "more processes than one shell and its sleep: {processes:?}");
    delete_and_check_clean(&cluster, "survivor", &uid, &pids);
}

/// The port of the endpoint the node's agent registered on its Node.
fn agent_port(cluster: &Cluster) -> String {
    cluster.ok(&["get", "nodes", "-o", "jsonpath={.items[0].status.daemonEndpoints.kubeletEndpoint.Port}"])
}

/// Debian's docker-registry on a free loopback port with htpasswd auth, stopped on drop.
struct Registry {
    child: Child,
    host: String,
    _dir: tempfile::TempDir,
}

/// `htpasswd -nbB wharf wharf-secret` (the registry reads bcrypt only).
const HTPASSWD: &str = "wharf:$2y$05$6llTz9cPYth5Gbc3DL58M.Gi2pBoVTK5wj0ARAE3mc.P2WjzdG9NG\n";

impl Registry {
    fn start() -> Self {
        let binary = "/usr/bin/docker-registry";
        assert!(Path::new(binary).exists(), "{binary} not found: apt-get install docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        std::fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\nhttp:\n  addr: {host}\n\
             auth:\n  htpasswd:\n    realm: wharf-test\n    path: {htpasswd}\n",
            data = dir.path().join("data").display(),
            htpasswd = dir.path().join("htpasswd").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry { child, host, _dir: dir };
        let up = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            std::net::TcpStream::connect(&registry.host).is_ok()
        });
        assert!(up, "docker-registry did not listen on {}", registry.host);
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn images_pull_from_docker_registry_with_an_image_pull_secret() {
    let registry = Registry::start();
    let cluster = cluster(&["--insecure-registry", &registry.host]);
    let layout = busybox_layout(cluster.data_dir());
    let skopeo = "/usr/bin/skopeo";
    assert!(Path::new(skopeo).exists(), "{skopeo} not found: apt-get install skopeo");
    let pushed = Command::new(skopeo)
        .args(["copy", "--insecure-policy", "--dest-tls-verify=false", "--dest-creds", "wharf:wharf-secret"])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{}/tools/busybox:v1", registry.host))
        .output()
        .unwrap();
    assert!(pushed.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&pushed.stderr));

    let image = format!("{}/tools/busybox:v1", registry.host);
    let pod = |name: &str, secret: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n{secret}  \
             containers:\n  - name: main\n    image: {image}\n    command: [sh, -c, 'echo pulled; sleep 3600']\n"
        )
    };
    cluster.apply(&pod("anonymous", ""));
    cluster.wait_pod("anonymous", "failed to pull", START, |p| {
        let reason = &container_status(p, "main")["state"]["waiting"]["reason"];
        reason == "ErrImagePull" || reason == "ImagePullBackOff"
    });
    // The waiting message may already be the back-off's; the Failed event keeps the registry's answer.
    let failed = || cluster.ok(&["get", "events", "--field-selector", "involvedObject.name=anonymous,reason=Failed"]);
    assert!(cluster.eventually(Duration::from_secs(10), || failed().contains("unauthorized")), "{}", failed());

    cluster.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", registry.host),
        "--docker-username=wharf",
        "--docker-password=wharf-secret",
    ]);
    cluster.apply(&pod("authorized", "  imagePullSecrets:\n  - name: regcred\n"));
    let pod = cluster.wait_pod("authorized", "ran", START, running);
    assert!(container_status(&pod, "main")["imageID"].as_str().unwrap_or_default().contains("tools/busybox@sha256:"));
    assert!(cluster.eventually(Duration::from_secs(10), || cluster.ok(&["logs", "authorized"]) == "pulled\n"));
    let events = cluster.ok(&["get", "events", "--field-selector", "involvedObject.name=authorized"]);
    assert!(events.contains("Pulled"), "{events}");
}

#[test]
fn exec_http_and_tcp_probes_drive_readiness_and_restarts_of_linux_containers() {
    let cluster = cluster_with_busybox(&[]);
    // httpd serves /www from inside the pod's network namespace; readiness asks it over HTTP,
    // startup checks the port, liveness reads a file by exec. The test removes that file itself,
    // so each state it waits for holds until it acts (no window a slow machine could miss).
    let manifest = r#"apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:v1
    command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && touch /tmp/healthy && httpd -p 8080 -h /www && sleep 3600']
    ports:
    - name: http
      containerPort: 8080
    readinessProbe:
      httpGet: {path: /index.html, port: http}
      periodSeconds: 1
    startupProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
      failureThreshold: 10
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
"#;
    cluster.apply(manifest);
    let ready = cluster.wait_pod("probed", "was ready", START, |p| {
        container_status(p, "main")["ready"] == true && container_status(p, "main")["started"] == true
    });
    assert_eq!(container_status(&ready, "main")["restartCount"], 0);
    cluster.ok(&["exec", "probed", "--", "rm", "/tmp/healthy"]);
    let restarted = cluster.wait_pod("probed", "was restarted by its liveness probe", START, |p| {
        container_status(p, "main")["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    let last = &container_status(&restarted, "main")["lastState"]["terminated"];
    assert!(last.is_object(), "{restarted:#}");
    let events = cluster.ok(&["get", "events", "--field-selector", "involvedObject.name=probed"]);
    assert!(events.contains("Liveness probe failed"), "{events}");
    assert!(events.contains("failed liveness probe, will be restarted"), "{events}");
    // The new attempt makes the file again and becomes ready through the same probes.
    cluster.wait_pod("probed", "was ready again", START, |p| {
        container_status(p, "main")["ready"] == true && container_status(p, "main")["restartCount"] == 1
    });
    let uid = uid(&restarted);
    let pids = pids_of_pod(&uid);
    delete_and_check_clean(&cluster, "probed", &uid, &pids);
}
