//! Pod Security admission and the Linux runtime's safe defaults, end to end as root: the real
//! kubectl against `wharf server` with its local node running busybox through youki and Wasm on
//! wasmtime. A namespace enforcing `restricted` refuses a plain pod with Kubernetes' message and
//! runs compliant Linux and Wasm pods; `baseline` refuses host namespaces and privileged
//! containers; `warn` warns about a Deployment and still creates it; labelling a namespace warns
//! about the pods already there. A default container has no_new_privs, a seccomp filter and the
//! default capability set; a privileged one every capability of the node; a Localhost seccomp
//! profile is the node's file; runAsNonRoot on an image that runs as root is
//! CreateContainerConfigError with kubelet's message.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Cluster, busybox_layout, wasm_fixture};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);

/// Capability names by bit number (linux/capability.h).
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// containerd's (and Docker's) default capability set.
const DEFAULT_CAPABILITIES: [&str; 14] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The names of the capabilities in a /proc status mask (`00000000a80425fb`).
fn capability_names(mask: &str) -> BTreeSet<String> {
    let bits = u64::from_str_radix(mask.trim(), 16).unwrap_or_else(|e| panic!("capability mask {mask:?}: {e}"));
    (0..64)
        .filter(|bit| bits & (1 << bit) != 0)
        .map(|bit| CAPABILITIES.get(bit).map_or_else(|| format!("CAP_{bit}"), |name| name.to_string()))
        .collect()
}

/// The value of `field` in a /proc/PID/status text.
fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
        .trim()
        .to_string()
}

fn cluster() -> Cluster {
    let cluster = Cluster::start_with(&["--backoff-base-ms", "300"]);
    let layout = busybox_layout(cluster.data_dir());
    assert_eq!(cluster.import(&layout, "busybox:v1"), "busybox:v1");
    cluster
}

/// A pod of one container `main`; `pod_sc` and `container_extra` are YAML lines already indented
/// for the pod spec (2 spaces) and the container (4 spaces).
fn pod(name: &str, namespace: &str, image: &str, command: &str, pod_extra: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n{pod_extra}  containers:\n  - name: main\n    image: {image}\n{command}\
         {container_extra}"
    )
}

fn sh(script: &str) -> String {
    format!("    command: [sh, -c, {script:?}]\n")
}

/// What restricted asks of a pod and its container.
const RESTRICTED_POD: &str = "  securityContext:\n    runAsNonRoot: true\n    runAsUser: 1000\n    seccompProfile:\n      type: RuntimeDefault\n";
const RESTRICTED_CONTAINER: &str =
    "    securityContext:\n      allowPrivilegeEscalation: false\n      capabilities:\n        drop: [ALL]\n";

/// Prints the process's identity and confinement, then stays up.
const REPORT: &str = "id -u; cat /proc/self/status; echo done; sleep 3600";

/// Waits for the container `main` to run and print its report; returns the report.
fn report(cluster: &Cluster, name: &str, namespace: &str) -> String {
    let started = Instant::now();
    let mut logs = String::new();
    let done = cluster.eventually(START, || {
        let out = cluster.kubectl(&["logs", "-n", namespace, name]);
        logs = String::from_utf8_lossy(&out.stdout).into_owned();
        logs.contains("\ndone\n")
    });
    let pod = cluster.ok(&["get", "pod", "-n", namespace, name, "-o", "json"]);
    assert!(done, "pod {namespace}/{name} never reported; logs:\n{logs}\npod:\n{pod}");
    println!("{namespace}/{name} reported after {:?}", started.elapsed());
    logs
}

fn is_running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
}

#[test]
fn namespaces_enforce_and_warn_the_pod_security_standards() {
    let cluster = cluster();
    let ticker = cluster.import(&wasm_fixture(cluster.data_dir(), "ticker"), "ticker:v1");

    // A pod from before the namespace enforced anything; labelling it enforce=restricted warns.
    cluster.ok(&["create", "namespace", "locked"]);
    cluster.apply(&pod("old", "locked", "busybox:v1", &sh("sleep 3600"), "", ""));
    let out = cluster.kubectl(&["label", "namespace", "locked", "pod-security.kubernetes.io/enforce=restricted"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "Warning: existing pods in namespace \"locked\" violate the new PodSecurity enforce level \"restricted:latest\""
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "Warning: old: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
        ),
        "{stderr}"
    );
    let stderr = cluster.fails(&["label", "namespace", "locked", "pod-security.kubernetes.io/warn=strict"], None);
    assert!(stderr.contains("Unsupported value: \"strict\""), "{stderr}");

    // A plain pod is refused with Kubernetes' message.
    let plain = pod("plain", "locked", "busybox:v1", &sh("sleep 3600"), "", "");
    let stderr = cluster.fails(&["apply", "-f", "-"], Some(&plain));
    let expected = "pods \"plain\" is forbidden: violates PodSecurity \"restricted:latest\": \
        allowPrivilegeEscalation != false (container \"main\" must set securityContext.allowPrivilegeEscalation=false), \
        unrestricted capabilities (container \"main\" must set securityContext.capabilities.drop=[\"ALL\"]), \
        runAsNonRoot != true (pod or container \"main\" must set securityContext.runAsNonRoot=true), \
        seccompProfile (pod or container \"main\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";
    assert!(stderr.contains("Error from server (Forbidden)") && stderr.contains(expected), "{stderr}");
    assert!(!cluster.kubectl(&["get", "pod", "-n", "locked", "plain"]).status.success());

    // A compliant Linux pod is admitted and runs confined.
    cluster.apply(&pod("compliant", "locked", "busybox:v1", &sh(REPORT), RESTRICTED_POD, RESTRICTED_CONTAINER));
    let logs = report(&cluster, "compliant", "locked");
    assert!(logs.starts_with("1000\n"), "{logs}");
    assert_eq!(status_field(&logs, "NoNewPrivs"), "1");
    assert_eq!(status_field(&logs, "Seccomp"), "2");
    assert_eq!(capability_names(&status_field(&logs, "CapEff")), BTreeSet::new());

    // So is a compliant Wasm pod: the fields are the same.
    cluster.apply(&pod("wasm", "locked", &ticker, "", RESTRICTED_POD, RESTRICTED_CONTAINER));
    let ran = cluster.eventually(START, || {
        String::from_utf8_lossy(&cluster.kubectl(&["logs", "-n", "locked", "wasm"]).stdout).contains("tick")
    });
    assert!(ran, "{}", cluster.ok(&["get", "pod", "-n", "locked", "wasm", "-o", "yaml"]));
    let wasm: Value = serde_json::from_str(&cluster.ok(&["get", "pod", "-n", "locked", "wasm", "-o", "json"])).unwrap();
    assert!(is_running(&wasm), "{wasm:#}");
    // And a Wasm pod is held to the standard like any other.
    let stderr = cluster.fails(&["apply", "-f", "-"], Some(&pod("wasm-plain", "locked", &ticker, "", "", "")));
    assert!(
        stderr.contains("pods \"wasm-plain\" is forbidden: violates PodSecurity \"restricted:latest\""),
        "{stderr}"
    );

    // baseline refuses host namespaces and privileged containers, and admits a plain pod.
    cluster.ok(&["create", "namespace", "base"]);
    cluster.ok(&["label", "namespace", "base", "pod-security.kubernetes.io/enforce=baseline"]);
    let host = pod("host", "base", "busybox:v1", &sh("sleep 3600"), "  hostNetwork: true\n", "");
    let stderr = cluster.fails(&["apply", "-f", "-"], Some(&host));
    assert!(
        stderr.contains(
            "pods \"host\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
        ),
        "{stderr}"
    );
    let privileged =
        pod("priv", "base", "busybox:v1", &sh("sleep 3600"), "", "    securityContext:\n      privileged: true\n");
    let stderr = cluster.fails(&["apply", "-f", "-"], Some(&privileged));
    assert!(
        stderr.contains(
            "pods \"priv\" is forbidden: violates PodSecurity \"baseline:latest\": privileged \
             (container \"main\" must not set securityContext.privileged=true)"
        ),
        "{stderr}"
    );
    cluster.apply(&pod("fine", "base", "busybox:v1", &sh("sleep 3600"), "", ""));

    // warn=restricted: a Deployment is warned about and still created, and so are its pods.
    cluster.ok(&["create", "namespace", "relaxed"]);
    cluster.ok(&["label", "namespace", "relaxed", "pod-security.kubernetes.io/warn=restricted"]);
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: relaxed\nspec:\n  \
        replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        \
        app: web\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        \
        image: busybox:v1\n        command: [sleep, '3600']\n";
    let out = cluster.kubectl_with(&["apply", "-f", "-"], Some(deployment), &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("deployment.apps/web created"), "{stdout}");
    assert!(
        stderr.contains(
            "Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false \
             (container \"main\" must set securityContext.allowPrivilegeEscalation=false)"
        ),
        "{stderr}"
    );
    let created = cluster.eventually(START, || {
        cluster.ok(&["get", "pods", "-n", "relaxed", "-l", "app=web", "-o", "name"]).lines().count() == 1
    });
    assert!(created, "the Deployment's pod was never created");
    // A pod there is admitted with the warning.
    let out = cluster.kubectl_with(
        &["apply", "-f", "-"],
        Some(&pod("warned", "relaxed", "busybox:v1", &sh("sleep 3600"), "", "")),
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Warning: would violate PodSecurity \"restricted:latest\": "), "{stderr}");

    // A Deployment in the enforcing namespace is warned about, created, and its ReplicaSet's
    // pods are refused: the refusal is its FailedCreate event.
    let blocked = deployment.replace("name: web", "name: blocked").replace("namespace: relaxed", "namespace: locked");
    let out = cluster.kubectl_with(&["apply", "-f", "-"], Some(&blocked), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Warning: would violate PodSecurity \"restricted:latest\": "), "{stderr}");
    let mut events = String::new();
    let refused = cluster.eventually(START, || {
        events = cluster.ok(&["get", "events", "-n", "locked", "-o", "json"]);
        events.contains("FailedCreate") && events.contains("violates PodSecurity \\\"restricted:latest\\\"")
    });
    assert!(refused, "no FailedCreate event for the refused pods:\n{events}");

    for namespace in ["locked", "base", "relaxed"] {
        cluster.ok(&["delete", "namespace", namespace, "--wait=false"]);
    }
}

#[test]
fn linux_containers_are_confined_by_default() {
    let cluster = cluster();

    // A default container: unprivileged, the default capability set, seccomp and no_new_privs.
    cluster.apply(&pod("plain", "default", "busybox:v1", &sh(REPORT), "", ""));
    let logs = report(&cluster, "plain", "default");
    assert!(logs.starts_with("0\n"), "{logs}");
    assert_eq!(status_field(&logs, "NoNewPrivs"), "1");
    assert_eq!(status_field(&logs, "Seccomp"), "2");
    let expected: BTreeSet<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    assert_eq!(capability_names(&status_field(&logs, "CapEff")), expected);
    assert_eq!(capability_names(&status_field(&logs, "CapBnd")), expected);

    // The securityContext adds and drops; allowPrivilegeEscalation: true lifts no_new_privs.
    let tuned = "    securityContext:\n      allowPrivilegeEscalation: true\n      capabilities:\n        \
        add: [NET_ADMIN]\n        drop: [NET_RAW, MKNOD]\n";
    cluster.apply(&pod("tuned", "default", "busybox:v1", &sh(REPORT), "", tuned));
    let logs = report(&cluster, "tuned", "default");
    assert_eq!(status_field(&logs, "NoNewPrivs"), "0");
    assert_eq!(status_field(&logs, "Seccomp"), "2");
    let mut tuned_caps = expected.clone();
    tuned_caps.insert("NET_ADMIN".into());
    tuned_caps.remove("NET_RAW");
    tuned_caps.remove("MKNOD");
    assert_eq!(capability_names(&status_field(&logs, "CapEff")), tuned_caps);

    // A privileged container (its namespace allows it) has every capability the node has, no
    // seccomp filter and no no_new_privs.
    cluster.ok(&["create", "namespace", "system"]);
    cluster.ok(&["label", "namespace", "system", "pod-security.kubernetes.io/enforce=privileged"]);
    let privileged = "    securityContext:\n      privileged: true\n";
    cluster.apply(&pod("privileged", "system", "busybox:v1", &sh(REPORT), "", privileged));
    let logs = report(&cluster, "privileged", "system");
    let node = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        capability_names(&status_field(&logs, "CapEff")),
        capability_names(&status_field(&node, "CapBnd")),
        "a privileged container has the node's full set"
    );
    assert_eq!(status_field(&logs, "NoNewPrivs"), "0");
    assert_eq!(status_field(&logs, "Seccomp"), "0");

    // A Localhost seccomp profile is the node's file below its seccomp directory.
    let profiles = cluster.data_dir().join("agent/seccomp/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("deny-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    let localhost = "    securityContext:\n      seccompProfile:\n        type: Localhost\n        \
        localhostProfile: profiles/deny-mkdir.json\n";
    let script = format!("mkdir /tmp/made 2>&1 || echo refused; {REPORT}");
    cluster.apply(&pod("localhost", "default", "busybox:v1", &sh(&script), "", localhost));
    let logs = report(&cluster, "localhost", "default");
    assert!(logs.contains("Operation not permitted\nrefused\n"), "{logs}");
    assert_eq!(status_field(&logs, "Seccomp"), "2");
    let missing = localhost.replace("deny-mkdir.json", "missing.json");
    cluster.apply(&pod("no-profile", "default", "busybox:v1", &sh("sleep 3600"), "", &missing));
    let refused = cluster.wait_pod("no-profile", "refused to start", START, |pod| {
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerError"
    });
    let message = refused["status"]["containerStatuses"][0]["state"]["waiting"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot load seccomp profile") && message.contains("missing.json"), "{message}");

    // runAsNonRoot on an image that runs as root: kubelet's refusal.
    let non_root = "  securityContext:\n    runAsNonRoot: true\n";
    cluster.apply(&pod("nonroot", "default", "busybox:v1", &sh("id -u; sleep 3600"), non_root, ""));
    let refused = cluster.wait_pod("nonroot", "refused to start", START, |pod| {
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let waiting = &refused["status"]["containerStatuses"][0]["state"]["waiting"];
    let uid = refused["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        waiting["message"],
        format!(
            "container has runAsNonRoot and image will run as root (pod: \"nonroot_default({uid})\", container: main)"
        )
    );
    let table = cluster.ok(&["get", "pod", "nonroot"]);
    assert!(table.contains("CreateContainerConfigError"), "{table}");
    let logs = cluster.kubectl(&["logs", "nonroot"]);
    assert!(String::from_utf8_lossy(&logs.stdout).is_empty(), "the container must never have run");

    // With a non-root user it runs.
    let as_user = "  securityContext:\n    runAsNonRoot: true\n    runAsUser: 4242\n";
    cluster.apply(&pod("nonroot-ok", "default", "busybox:v1", &sh(REPORT), as_user, ""));
    let logs = report(&cluster, "nonroot-ok", "default");
    assert!(logs.starts_with("4242\n"), "{logs}");

    cluster.ok(&["delete", "namespace", "system", "--wait=false"]);
}
