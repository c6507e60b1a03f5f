//! Misbehaving guests are contained and reported, and the node stays Ready: on one cluster (the
//! real `wharf` binary, the real kubectl, youki for Linux), Wasm guests that loop forever, bomb
//! their memory, recurse without end and flood their output, and busybox containers that fork
//! bomb, bomb their memory and fill an emptyDir past its sizeLimit. Each case checks what a user
//! sees through kubectl (phase, reasons, messages, events, the node's Ready condition) and prints
//! its figures (CPU held by a limit, delete latency, time to OOMKilled and to eviction, log bytes
//! on disk, the agent's memory).
//!
//! tests/agent.rs already covers a spinning guest's delete and a 4Mi memory hog under `Never`;
//! tests/linux.rs a sleeping fork bomb against `--pids-limit 64` (its `pids.events`) and a shell
//! memory bomb under `Never`. Here: the busy classic fork bomb and its clean deletion, the bombs
//! restarted under `Always`, CPU limits, deadlines, deep recursion, output floods and eviction.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Cluster, busybox_layout, cgroups_of_pod, pids_of_pod, pids_refused, process_alive};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);
/// The pids limit of this cluster's agent (its default is 1024; lower keeps the bomb light on a
/// small test machine).
const PIDS_LIMIT: usize = 128;

/// Loops forever without a host call: only epoch interruption stops it.
const LOOP: &str = r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;

/// Writes one line and exits 0.
const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "still here\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 11))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Grows its memory 1 MiB at a time and fills each new MiB; aborts (traps) when a growth is
/// refused, as an allocator does.
const MEMORY_BOMB: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start") (local $page i32)
    (loop $grow
      (local.set $page (memory.grow (i32.const 16)))
      (if (i32.eq (local.get $page) (i32.const -1)) (then unreachable))
      (memory.fill (i32.mul (local.get $page) (i32.const 65536)) (i32.const 7) (i32.const 1048576))
      (br $grow))))"#;

/// Calls itself without end.
const RECURSION: &str = r#"(module
  (memory (export "memory") 1)
  (func $down (param i32) (call $down (i32.add (local.get 0) (i32.const 1))))
  (func (export "_start") (call $down (i32.const 0))))"#;

/// Writes 64 KiB of `flooded\n` lines per call to stdout, forever.
const FLOOD: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start") (local $at i32)
    (local.set $at (i32.const 1024))
    (loop $fill
      (i64.store (local.get $at) (i64.const 0x0a6465646f6f6c66))
      (local.set $at (i32.add (local.get $at) (i32.const 8)))
      (br_if $fill (i32.lt_u (local.get $at) (i32.const 66560))))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $flood
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $flood))))"#;

fn import_wat(cluster: &Cluster, name: &str, wat: &str) {
    let bytes = wat::parse_str(wat).unwrap_or_else(|e| panic!("{name}: {e}"));
    let path = cluster.data_dir().join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(cluster.import(&path, &format!("{name}:v1")), format!("{name}:v1"));
}

fn pod(name: &str, image: &str, policy: &str, spec_extra: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: {policy}\n  \
         terminationGracePeriodSeconds: 2\n{spec_extra}  containers:\n  - name: main\n    image: {image}\n\
         {container_extra}"
    )
}

fn limits(cpu: Option<&str>, memory: Option<&str>) -> String {
    let mut out = "    resources:\n      limits:\n".to_string();
    if let Some(cpu) = cpu {
        out += &format!("        cpu: {cpu}\n");
    }
    if let Some(memory) = memory {
        out += &format!("        memory: {memory}\n");
    }
    out
}

fn busybox(name: &str, policy: &str, script: &str, spec_extra: &str, container_extra: &str) -> String {
    pod(name, "busybox:v1", policy, spec_extra, &format!("    command: [sh, -c, {script:?}]\n{container_extra}"))
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

fn main_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

fn uid(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

fn node_ready(cluster: &Cluster) -> bool {
    let jsonpath = "jsonpath={.items[0].status.conditions[?(@.type==\"Ready\")].status}";
    cluster.ok(&["get", "nodes", "-o", jsonpath]) == "True"
}

/// (reason, message) of the events about the pod `name`.
fn events(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    let selector = format!("involvedObject.name={name}");
    let list: Value =
        serde_json::from_str(&cluster.ok(&["get", "events", "--field-selector", &selector, "-o", "json"])).unwrap();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    items.iter().map(|e| (text(&e["reason"]), text(&e["message"]))).collect()
}

/// Waits for an event with `reason` about the pod `name` (the agent writes events in the
/// background); its message.
fn event(cluster: &Cluster, name: &str, reason: &str) -> String {
    let mut seen = Vec::new();
    let found = cluster.eventually(Duration::from_secs(30), || {
        seen = events(cluster, name);
        seen.iter().any(|(r, _)| r == reason)
    });
    assert!(found, "no {reason} event about {name}: {seen:?}");
    seen.into_iter().find(|(r, _)| r == reason).map(|(_, m)| m).unwrap_or_default()
}

/// `kubectl delete pod NAME` to its end; how long it took.
fn delete(cluster: &Cluster, name: &str) -> Duration {
    let started = Instant::now();
    cluster.ok(&["delete", "pod", name, "--wait=true", "--timeout=60s"]);
    started.elapsed()
}

/// CPU time (user + system) the process `pid` has used.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server's /proc stat");
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').expect("a stat line").1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf runs");
    let per_sec: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100);
    Duration::from_secs_f64(ticks as f64 / per_sec as f64)
}

/// The resident memory of the process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
    kib.and_then(|k| k.parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// Share of one core the server process used while `during` ran (and how long that was).
fn cpu_share(pid: u32, during: impl FnOnce()) -> f64 {
    let (cpu, wall) = (cpu_time(pid), Instant::now());
    during();
    (cpu_time(pid) - cpu).as_secs_f64() / wall.elapsed().as_secs_f64()
}

/// The files of the container `main`'s log (every attempt and rotation) of pod `name`.
fn log_files(cluster: &Cluster, name: &str) -> Vec<PathBuf> {
    let logs = cluster.data_dir().join("agent/logs");
    let dirs = std::fs::read_dir(&logs).into_iter().flatten().flatten();
    let pod_dir = dirs
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("default_{name}_"))));
    let Some(dir) = pod_dir else { return Vec::new() };
    std::fs::read_dir(dir.join("main")).into_iter().flatten().flatten().map(|e| e.path()).collect()
}

fn size_of(files: &[PathBuf]) -> u64 {
    files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Waits until the pod's container has been restarted after ending with `reason`; the time from
/// `since` to when that was first seen.
fn restarted_after(cluster: &Cluster, name: &str, reason: &str, since: Instant) -> (Value, Duration) {
    let pod = cluster.wait_pod(name, &format!("was restarted after {reason}"), START, |p| {
        main_status(p)["restartCount"].as_i64().unwrap_or(0) >= 1
            && main_status(p)["lastState"]["terminated"]["reason"] == reason
    });
    (pod, since.elapsed())
}

#[test]
fn misbehaving_guests_are_contained_and_reported_and_the_node_stays_ready() {
    let test_started = Instant::now();
    let pids_limit = PIDS_LIMIT.to_string();
    let cluster = Cluster::start_with(&["--backoff-base-ms", "300", "--pids-limit", &pids_limit]);
    let layout = busybox_layout(cluster.data_dir());
    assert_eq!(cluster.import(&layout, "busybox:v1"), "busybox:v1");
    for (name, wat) in
        [("loop", LOOP), ("hello", HELLO), ("membomb", MEMORY_BOMB), ("recursion", RECURSION), ("flood", FLOOD)]
    {
        import_wat(&cluster, name, wat);
    }
    assert!(cluster.eventually(START, || node_ready(&cluster)), "the node never became Ready");
    let server = cluster.pid();
    let rss_before = rss(server);

    // An infinite loop under limits.cpu 100m, measured alone: the server process (which runs the
    // node's Wasm guests) uses about a tenth of a core more than idle, not a whole one.
    let idle = cpu_share(server, || std::thread::sleep(Duration::from_secs(2)));
    cluster.apply(&pod("spin", "loop:v1", "Never", "", &limits(Some("100m"), None)));
    cluster.wait_pod("spin", "ran", START, |p| phase(p) == "Running");
    let spinning = cpu_share(server, || std::thread::sleep(Duration::from_secs(4)));
    println!("wasm loop: server CPU {idle:.3} cores idle, {spinning:.3} cores with the loop at limits.cpu 100m");
    assert!(spinning - idle < 0.5, "a loop limited to 100m took {:.2} cores (idle {idle:.2})", spinning - idle);
    // Other pods keep working beside it.
    cluster.apply(&pod("beside", "hello:v1", "Never", "", ""));
    cluster.wait_pod("beside", "completed beside the loop", START, |p| phase(p) == "Succeeded");
    let asked = Instant::now();
    assert_eq!(cluster.ok(&["logs", "beside"]), "still here\n");
    println!("kubectl logs of a quiet pod: {} ms", asked.elapsed().as_millis());
    assert_eq!(phase(&cluster.pod("spin")), "Running");
    assert!(node_ready(&cluster), "the node is not Ready beside a looping guest");
    let latency = delete(&cluster, "spin");
    println!("wasm loop: kubectl delete pod took {} ms (grace period 2 s)", latency.as_millis());
    delete(&cluster, "beside");
    // The flood alone too, so its figures (the server's CPU among them) are its own.
    wasm_flood(&cluster);

    // Everything else at once, while a sampler records the server's largest RSS.
    let done = AtomicBool::new(false);
    let rss_peak = AtomicU64::new(rss_before);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                rss_peak.fetch_max(rss(server), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let cases = [
            s.spawn(|| wasm_deadline(&cluster)),
            s.spawn(|| wasm_memory_bomb(&cluster)),
            s.spawn(|| wasm_recursion(&cluster)),
            s.spawn(|| linux_fork_bomb(&cluster)),
            s.spawn(|| linux_memory_bomb(&cluster)),
            s.spawn(|| empty_dir_over_its_limit(&cluster)),
            s.spawn(|| memory_empty_dir_is_a_tmpfs_of_its_size_limit(&cluster)),
        ];
        let failed = cases.into_iter().filter_map(|c| c.join().err()).count();
        done.store(true, Ordering::Relaxed);
        assert_eq!(failed, 0, "{failed} guest case(s) failed (see above)");
    });
    let peak = rss_peak.load(Ordering::Relaxed);
    println!(
        "agent: server RSS {:.1} MiB before, {:.1} MiB at most during the guests, {:.1} MiB after",
        mib(rss_before),
        mib(peak),
        mib(rss(server))
    );
    assert!(peak < rss_before + (256 << 20), "the server grew from {rss_before} to {peak} bytes");
    assert!(node_ready(&cluster), "the node is not Ready after the guests");
    println!("guests: whole file {:.1} s", test_started.elapsed().as_secs_f64());
}

/// activeDeadlineSeconds ends a looping guest: Failed, DeadlineExceeded.
fn wasm_deadline(cluster: &Cluster) {
    let started = Instant::now();
    cluster.apply(&pod("deadline", "loop:v1", "Never", "  activeDeadlineSeconds: 5\n", ""));
    let p = cluster.wait_pod("deadline", "failed at its deadline", START, |p| phase(p) == "Failed");
    println!("wasm deadline: activeDeadlineSeconds 5 → Failed after {} ms", started.elapsed().as_millis());
    assert_eq!(p["status"]["reason"], "DeadlineExceeded", "{:#}", p["status"]);
    assert_eq!(p["status"]["message"], "Pod was active on the node longer than the specified deadline");
    // Stopped (or never started, when the node was slower to start it than the deadline).
    assert!(!main_status(&p)["state"]["running"].is_object(), "{:#}", main_status(&p));
    assert_eq!(event(cluster, "deadline", "DeadlineExceeded"), p["status"]["message"].as_str().unwrap());
    delete(cluster, "deadline");
}

/// memory.grow in a loop under limits.memory 32Mi: OOMKilled, restarted (restartPolicy Always).
fn wasm_memory_bomb(cluster: &Cluster) {
    let started = Instant::now();
    cluster.apply(&pod("membomb", "membomb:v1", "Always", "", &limits(None, Some("32Mi"))));
    let (p, took) = restarted_after(cluster, "membomb", "OOMKilled", started);
    println!("wasm memory bomb: OOMKilled and restarted {} ms after apply", took.as_millis());
    assert_eq!(main_status(&p)["lastState"]["terminated"]["exitCode"], 137, "{:#}", main_status(&p));
    assert_eq!(phase(&p), "Running");
    delete(cluster, "membomb");
}

/// Unbounded recursion traps with a stack overflow, reported in the terminated state.
fn wasm_recursion(cluster: &Cluster) {
    cluster.apply(&pod("recursion", "recursion:v1", "Never", "", ""));
    let p = cluster.wait_pod("recursion", "failed", START, |p| phase(p) == "Failed");
    let terminated = &main_status(&p)["state"]["terminated"];
    assert_eq!(terminated["reason"], "Error", "{terminated:#}");
    let message = terminated["message"].as_str().unwrap_or_default();
    assert!(message.contains("call stack exhausted"), "{terminated:#}");
    println!("wasm recursion: terminated {}: {}", terminated["exitCode"], message.lines().next().unwrap_or_default());
    delete(cluster, "recursion");
}

/// A guest writing lines as fast as it can: its log on disk stays within 5 files of 10 MiB,
/// `kubectl logs --tail` answers, and the API too.
fn wasm_flood(cluster: &Cluster) {
    cluster.apply(&pod("flood", "flood:v1", "Never", "", ""));
    cluster.wait_pod("flood", "ran", START, |p| phase(p) == "Running");
    let started = Instant::now();
    let mut tail_ms = Vec::new();
    let mut largest = 0;
    let server_cpu = cpu_share(cluster.pid(), || {
        while started.elapsed() < Duration::from_secs(10) {
            let asked = Instant::now();
            let tail = cluster.ok(&["logs", "flood", "--tail=3"]);
            tail_ms.push(asked.elapsed().as_millis());
            assert_eq!(tail, "flooded\nflooded\nflooded\n");
            largest = largest.max(size_of(&log_files(cluster, "flood")));
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let asked = Instant::now();
    assert!(node_ready(cluster), "the node is not Ready during the flood");
    let get_ms = asked.elapsed().as_millis();
    let files = log_files(cluster, "flood");
    let kept = size_of(&files);
    println!(
        "wasm flood: 10 s of output; log on disk {:.1} MiB in {} files (at most {:.1} MiB seen); kubectl logs \
         --tail=3 took {:?} ms; kubectl get nodes {get_ms} ms; server CPU {server_cpu:.2} cores",
        mib(kept),
        files.len(),
        mib(largest),
        tail_ms
    );
    assert!(kept > 10 << 20, "the flood wrote only {kept} bytes: it never rotated");
    assert!(largest <= 5 * (10 << 20) + (64 << 10), "the log grew to {largest} bytes");
    assert!(files.len() <= 5, "{files:?}");
    let latency = delete(cluster, "flood");
    println!("wasm flood: kubectl delete pod took {} ms", latency.as_millis());
}

/// A busy fork bomb (every process forks two copies of itself, then spins) is held by the pids
/// limit, its CPU by limits.cpu; the pod deletes cleanly, leaving no process and no cgroup.
fn linux_fork_bomb(cluster: &Cluster) {
    let script = "bomb() { bomb & bomb & while :; do :; done; }; bomb & exec sleep 1000";
    cluster.apply(&busybox("forkbomb", "Never", script, "", &limits(Some("500m"), Some("128Mi"))));
    let p = cluster.wait_pod("forkbomb", "ran", START, |p| phase(p) == "Running");
    let uid = uid(&p);
    let refused = || pids_refused(&uid);
    let mut most = 0;
    let mut seen = Vec::new();
    let held = cluster.eventually(Duration::from_secs(20), || {
        let pids = pids_of_pod(&uid);
        most = most.max(pids.len());
        seen.extend(pids);
        refused() > 0
    });
    assert!(held, "the pids limit never refused a fork (at most {most} processes seen)");
    for _ in 0..10 {
        let pids = pids_of_pod(&uid);
        most = most.max(pids.len());
        seen.extend(pids);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(most <= PIDS_LIMIT, "{most} processes in a container limited to {PIDS_LIMIT}");
    assert!(node_ready(cluster), "the node is not Ready during the fork bomb");
    assert_eq!(phase(&cluster.pod("forkbomb")), "Running");
    let refusals = refused();
    let latency = delete(cluster, "forkbomb");
    seen.sort_unstable();
    seen.dedup();
    let clean = cluster.eventually(Duration::from_secs(20), || {
        cgroups_of_pod(&uid).is_empty() && seen.iter().all(|pid| !process_alive(*pid))
    });
    println!(
        "linux fork bomb: at most {most} processes (pids limit {PIDS_LIMIT}), {} forks refused; kubectl delete pod \
         took {} ms",
        refusals,
        latency.as_millis()
    );
    assert!(clean, "left behind by the fork bomb: cgroups {:?}", cgroups_of_pod(&uid));
}

/// A shell doubling a string under limits.memory 32Mi: OOMKilled, restarted.
fn linux_memory_bomb(cluster: &Cluster) {
    let started = Instant::now();
    let script = "x=0123456789; while true; do x=$x$x; done";
    cluster.apply(&busybox("linux-membomb", "Always", script, "", &limits(None, Some("32Mi"))));
    let (p, took) = restarted_after(cluster, "linux-membomb", "OOMKilled", started);
    println!("linux memory bomb: OOMKilled and restarted {} ms after apply", took.as_millis());
    assert_eq!(main_status(&p)["lastState"]["terminated"]["exitCode"], 137, "{:#}", main_status(&p));
    assert!(node_ready(cluster));
    delete(cluster, "linux-membomb");
}

const SCRATCH: &str = "    volumeMounts:\n    - name: scratch\n      mountPath: /scratch\n";

/// dd past an emptyDir's sizeLimit 1Mi: the pod is evicted as the kubelet does.
fn empty_dir_over_its_limit(cluster: &Cluster) {
    let volumes = "  volumes:\n  - name: scratch\n    emptyDir: {sizeLimit: 1Mi}\n";
    let script = "dd if=/dev/zero of=/scratch/fill bs=64k count=32; exec sleep 1000";
    let started = Instant::now();
    cluster.apply(&busybox("evict", "Always", script, volumes, SCRATCH));
    let p = cluster.wait_pod("evict", "was evicted", START, |p| phase(p) == "Failed");
    println!("emptyDir filled past sizeLimit 1Mi: evicted {} ms after apply", started.elapsed().as_millis());
    assert_eq!(p["status"]["reason"], "Evicted", "{:#}", p["status"]);
    let message = p["status"]["message"].as_str().unwrap_or_default();
    assert_eq!(message.trim_end(), "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\".");
    assert!(main_status(&p)["state"]["terminated"].is_object(), "{:#}", main_status(&p));
    assert_eq!(main_status(&p)["restartCount"], 0, "an evicted pod's container restarted");
    assert_eq!(event(cluster, "evict", "Evicted"), message);
    let conditions = p["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let disrupted = conditions.iter().find(|c| c["type"] == "DisruptionTarget");
    assert!(
        disrupted.is_some_and(|c| c["status"] == "True" && c["reason"] == "TerminationByKubelet"),
        "{conditions:#?}"
    );
    let uid = uid(&p);
    delete(cluster, "evict");
    let gone = cluster.eventually(Duration::from_secs(20), || pids_of_pod(&uid).is_empty());
    assert!(gone, "the evicted pod's processes stay");
}

/// A `medium: Memory` emptyDir is a tmpfs of its sizeLimit, as on Kubernetes: a write past it
/// fails with ENOSPC (so usage never exceeds the limit and the pod is not evicted), and the
/// mount goes with the pod.
fn memory_empty_dir_is_a_tmpfs_of_its_size_limit(cluster: &Cluster) {
    let volumes = "  volumes:\n  - name: scratch\n    emptyDir: {medium: Memory, sizeLimit: 1Mi}\n";
    let script = "dd if=/dev/zero of=/scratch/fill bs=64k count=32; du -k /scratch; exec sleep 1000";
    cluster.apply(&busybox("ram", "Always", script, volumes, SCRATCH));
    let p = cluster.wait_pod("ram", "ran", START, |p| main_status(p)["state"]["running"].is_object());
    let filled = cluster.eventually(Duration::from_secs(20), || cluster.ok(&["logs", "ram"]).contains("/scratch"));
    let logs = cluster.ok(&["logs", "ram"]);
    assert!(filled && logs.contains("No space left on device"), "{logs}");
    let used_kib: u64 = logs
        .lines()
        .find(|l| l.ends_with("/scratch"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(used_kib <= 1024, "{used_kib} KiB in a 1Mi tmpfs");
    // Past two eviction checks, still running.
    std::thread::sleep(2 * Duration::from_secs(2) + Duration::from_secs(1));
    let p2 = cluster.pod("ram");
    assert_eq!(phase(&p2), "Running", "{:#}", p2["status"]);
    println!("emptyDir medium Memory sizeLimit 1Mi: a tmpfs, dd stopped by ENOSPC at {used_kib} KiB, not evicted");
    let uid = uid(&p);
    let pod_dir = cluster.data_dir().join("agent/pods").join(&uid);
    assert!(!common::mounts_under(&pod_dir.join("volumes")).is_empty(), "no tmpfs under {}", pod_dir.display());
    delete(cluster, "ram");
    let clean =
        cluster.eventually(Duration::from_secs(20), || common::mounts_under(&pod_dir).is_empty() && !pod_dir.exists());
    assert!(clean, "left behind: mounts {:?}", common::mounts_under(&pod_dir));
}
