//! ServiceAccounts end to end, with the real kubectl against the real binary, as root: every
//! namespace gets a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap;
//! `kubectl create token` prints a token that authenticates as `system:serviceaccount:NS:NAME`
//! until its ServiceAccount is deleted; pods run as a ServiceAccount and get its token, the
//! cluster CA and their namespace mounted at /var/run/secrets/kubernetes.io/serviceaccount — a
//! Linux container (youki, busybox) and a Wasm guest (the WAT `cat` fixture, through the
//! volume's preopen) read them, and the token they read authenticates as the pod's account.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, busybox_layout, wasm_fixture};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// kubectl as the bearer of `token` (the admin kubeconfig's server and CA, its token replaced).
fn as_token(cluster: &Cluster, token: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--token", token];
    all.extend_from_slice(args);
    cluster.kubectl(&all)
}

/// The user a token authenticates as, by `kubectl auth whoami`.
fn whoami(cluster: &Cluster, token: &str) -> Value {
    let out = as_token(cluster, token, &["auth", "whoami", "-o", "json"]);
    assert!(out.status.success(), "kubectl auth whoami failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).expect("a SelfSubjectReview")["status"]["userInfo"].clone()
}

/// Waits for the ServiceAccount controller to give `namespace` its `default` account.
fn wait_default_account(cluster: &Cluster, namespace: &str) -> f64 {
    let started = Instant::now();
    let made = cluster.eventually(Duration::from_secs(20), || {
        cluster.kubectl(&["get", "serviceaccount", "default", "-n", namespace]).status.success()
    });
    assert!(made, "namespace {namespace} never got its default ServiceAccount");
    started.elapsed().as_secs_f64()
}

#[test]
fn tokens_authenticate_as_their_service_account_until_it_is_deleted() {
    let cluster = Cluster::start();
    cluster.ok(&["create", "namespace", "team"]);
    let waited = wait_default_account(&cluster, "team");
    println!("namespace to its default ServiceAccount: {:.2} s", waited);

    // The root CA publisher: the cluster CA in every namespace.
    let ca = std::fs::read_to_string(cluster.data_dir().join("pki/ca.crt")).unwrap();
    let published = cluster.eventually(Duration::from_secs(20), || {
        let out =
            cluster.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "team", "-o", "jsonpath={.data.ca\\.crt}"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout) == ca
    });
    assert!(published, "kube-root-ca.crt never held the cluster CA in namespace team");
    // Deleted, it comes back.
    cluster.ok(&["delete", "configmap", "kube-root-ca.crt", "-n", "team"]);
    let back = cluster.eventually(Duration::from_secs(20), || {
        cluster.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "team"]).status.success()
    });
    assert!(back, "kube-root-ca.crt was not put back");
    let accounts = cluster.ok(&["get", "serviceaccounts", "-A"]);
    for namespace in ["default", "kube-system", "team"] {
        assert!(accounts.lines().any(|l| l.starts_with(namespace) && l.contains(" default ")), "{accounts}");
    }

    // kubectl create token: a token of the default account, authenticating as it.
    let token = cluster.ok(&["create", "token", "default", "-n", "team"]).trim().to_string();
    assert!(token.starts_with("eyJ") && token.split('.').count() == 3, "not a JWT: {token}");
    let version = as_token(&cluster, &token, &["get", "--raw", "/version"]);
    assert!(version.status.success(), "/version with the token: {}", String::from_utf8_lossy(&version.stderr));
    let user = whoami(&cluster, &token);
    assert_eq!(user["username"], "system:serviceaccount:team:default", "{user:#}");
    let groups: Vec<&str> = user["groups"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(groups, ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"]);

    // The expiry asked for, and Kubernetes' floor of 10 minutes.
    let request = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 1200}});
    let answer = cluster.kubectl_with(
        &["create", "--raw", "/api/v1/namespaces/team/serviceaccounts/default/token", "-f", "-"],
        Some(&request.to_string()),
        &[],
    );
    assert!(answer.status.success(), "{}", String::from_utf8_lossy(&answer.stderr));
    let answer: Value = serde_json::from_slice(&answer.stdout).unwrap();
    let expires: jiff::Timestamp = answer["status"]["expirationTimestamp"].as_str().unwrap().parse().unwrap();
    let left = expires.as_second() - jiff::Timestamp::now().as_second();
    assert!((1100..=1200).contains(&left), "a 20-minute token expires in {left} s");
    let short = cluster.fails(&["create", "token", "default", "-n", "team", "--duration", "1m"], None);
    assert!(short.contains("may not specify a duration less than 10 minutes"), "{short}");
    let missing = cluster.fails(&["create", "token", "nobody", "-n", "team"], None);
    assert!(missing.contains("serviceaccounts \"nobody\" not found"), "{missing}");

    // A token of a deleted account no longer authenticates, nor after it is made again.
    cluster.ok(&["create", "serviceaccount", "builder", "-n", "team"]);
    let builder = cluster.ok(&["create", "token", "builder", "-n", "team", "--duration", "10m"]).trim().to_string();
    assert_eq!(whoami(&cluster, &builder)["username"], "system:serviceaccount:team:builder");
    cluster.ok(&["delete", "serviceaccount", "builder", "-n", "team"]);
    let refused = as_token(&cluster, &builder, &["get", "--raw", "/version"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("Unauthorized"), "a deleted account's token: {stderr}");
    cluster.ok(&["create", "serviceaccount", "builder", "-n", "team"]);
    assert!(!as_token(&cluster, &builder, &["get", "--raw", "/version"]).status.success(), "recreated account");
    // A forged token (another key's signature) is refused the same way.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[2] = parts[2].chars().rev().collect();
    assert!(!as_token(&cluster, &parts.join("."), &["get", "--raw", "/version"]).status.success());

    // Admission: a pod naming a missing account is refused as Kubernetes refuses it; one that
    // opts out gets no token volume; a pod in a namespace made a moment ago is not refused.
    let pod = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: team\nspec:\n{extra}  \
             nodeSelector: {{nowhere: \"true\"}}\n  containers:\n  - name: main\n    image: busybox:v1\n"
        )
    };
    let refused =
        cluster.kubectl_with(&["apply", "-f", "-"], Some(&pod("ghost", "  serviceAccountName: ghost\n")), &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "pods \"ghost\" is forbidden: error looking up service account team/ghost: serviceaccount \"ghost\" not found"
        ),
        "{stderr}"
    );
    cluster.apply(&pod("opted-out", "  automountServiceAccountToken: false\n"));
    let spec = &cluster.ok(&["get", "pod", "opted-out", "-n", "team", "-o", "json"]);
    let spec: Value = serde_json::from_str(spec).unwrap();
    assert_eq!(spec["spec"]["serviceAccountName"], "default");
    assert!(spec["spec"]["volumes"].is_null(), "{:#}", spec["spec"]);
    assert!(spec["spec"]["containers"][0]["volumeMounts"].is_null(), "{:#}", spec["spec"]);
    cluster.apply(&pod("mounted", ""));
    let spec: Value =
        serde_json::from_str(&cluster.ok(&["get", "pod", "mounted", "-n", "team", "-o", "json"])).unwrap();
    let volume = &spec["spec"]["volumes"][0];
    assert!(volume["name"].as_str().unwrap().starts_with("kube-api-access-"), "{volume:#}");
    let sources = &volume["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"], serde_json::json!({"expirationSeconds": 3607, "path": "token"}));
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"], "metadata.namespace");
    let mount = &spec["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(mount["mountPath"], MOUNT);
    assert_eq!(mount["readOnly"], true);
    let fresh = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fresh\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  \
                 name: early\n  namespace: fresh\nspec:\n  nodeSelector: {nowhere: \"true\"}\n  containers:\n  - name: main\n    \
                 image: busybox:v1\n";
    cluster.apply(fresh);

    // kubectl create token --bound-object-kind Pod: the token names the pod and dies with it.
    let bound = cluster
        .ok(&[
            "create",
            "token",
            "default",
            "-n",
            "team",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "mounted",
        ])
        .trim()
        .to_string();
    let user = whoami(&cluster, &bound);
    assert_eq!(user["extra"]["authentication.kubernetes.io/pod-name"], serde_json::json!(["mounted"]), "{user:#}");
    let missing = cluster.fails(
        &["create", "token", "default", "-n", "team", "--bound-object-kind", "Pod", "--bound-object-name", "nope"],
        None,
    );
    assert!(missing.contains("pods \"nope\" not found"), "{missing}");
    cluster.ok(&["delete", "pod", "mounted", "-n", "team", "--wait=true", "--timeout=30s"]);
    assert!(!as_token(&cluster, &bound, &["get", "--raw", "/version"]).status.success(), "the pod's token outlived it");
}

/// The last line of a log that starts with `prefix`, without it.
fn line_after<'a>(log: &'a str, prefix: &str) -> Option<&'a str> {
    log.lines().rev().find_map(|l| l.strip_prefix(prefix))
}

#[test]
fn linux_and_wasm_pods_read_their_mounted_token() {
    let cluster = Cluster::start_with(&["--backoff-base-ms", "300"]);
    let layout = busybox_layout(cluster.data_dir());
    assert_eq!(cluster.import(&layout, "busybox:v1"), "busybox:v1");
    assert_eq!(cluster.import(&wasm_fixture(cluster.data_dir(), "cat"), "cat:v1"), "cat:v1");
    let ca = std::fs::read_to_string(cluster.data_dir().join("pki/ca.crt")).unwrap();

    // Linux: busybox prints what it finds at the mount and that it cannot write there. Its
    // namespace is made in the same apply: the pod waits for the namespace's default account
    // and CA to be made instead of failing.
    let script = format!(
        "echo token=$(cat {MOUNT}/token); echo namespace=$(cat {MOUNT}/namespace); \
         echo files=$(ls {MOUNT} | tr '\\n' ' '); cat {MOUNT}/ca.crt; \
         touch {MOUNT}/x 2>/dev/null && echo writable=yes || echo writable=no"
    );
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: reader\n  namespace: apps\nspec:\n  restartPolicy: Never\n  \
         terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: busybox:v1\n    \
         command: [sh, -c, {script:?}]\n"
    );
    let applied = Instant::now();
    cluster.apply(&manifest);
    let done = cluster.eventually(START, || {
        cluster.ok(&["get", "pod", "reader", "-n", "apps", "-o", "jsonpath={.status.phase}"]) == "Succeeded"
    });
    let log = String::from_utf8_lossy(&cluster.kubectl(&["logs", "reader", "-n", "apps"]).stdout).into_owned();
    assert!(
        done,
        "the Linux pod did not succeed; log:\n{log}\n{}",
        cluster.ok(&["get", "pod", "reader", "-n", "apps", "-o", "yaml"])
    );
    println!("Linux pod in a new namespace: apply to Succeeded {:.2} s", applied.elapsed().as_secs_f64());
    assert_eq!(line_after(&log, "namespace="), Some("apps"), "{log}");
    assert_eq!(line_after(&log, "files="), Some("ca.crt namespace token"), "{log}");
    assert_eq!(line_after(&log, "writable="), Some("no"), "{log}");
    assert!(log.contains(ca.trim()), "the mounted ca.crt is not the cluster CA:\n{log}");
    let token = line_after(&log, "token=").expect("a token line").to_string();
    // Bound to a pod that has ended but still exists: it authenticates as the pod's account.
    let user = whoami(&cluster, &token);
    assert_eq!(user["username"], "system:serviceaccount:apps:default", "{user:#}");
    let pod_uid = cluster.ok(&["get", "pod", "reader", "-n", "apps", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(user["extra"]["authentication.kubernetes.io/pod-name"], serde_json::json!(["reader"]));
    assert_eq!(user["extra"]["authentication.kubernetes.io/pod-uid"], serde_json::json!([pod_uid]));

    // Wasm: the cat fixture prints the namespace file and the token through the preopen.
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: guest\n  namespace: apps\nspec:\n  restartPolicy: Never\n  \
         containers:\n  - name: cat\n    image: cat:v1\n    args: [{MOUNT}/namespace, {MOUNT}/token]\n"
    );
    let applied = Instant::now();
    cluster.apply(&manifest);
    let done = cluster.eventually(START, || {
        cluster.ok(&["get", "pod", "guest", "-n", "apps", "-o", "jsonpath={.status.phase}"]) == "Succeeded"
    });
    let log = String::from_utf8_lossy(&cluster.kubectl(&["logs", "guest", "-n", "apps"]).stdout).into_owned();
    assert!(
        done,
        "the Wasm pod did not succeed; log:\n{log}\n{}",
        cluster.ok(&["get", "pod", "guest", "-n", "apps", "-o", "yaml"])
    );
    println!("Wasm pod: apply to Succeeded {:.2} s", applied.elapsed().as_secs_f64());
    let wasm_token = log
        .trim_end()
        .strip_prefix("apps")
        .unwrap_or_else(|| panic!("the guest's log starts with its namespace: {log}"));
    assert!(wasm_token.starts_with("eyJ"), "the guest's log: {log}");
    let user = whoami(&cluster, wasm_token);
    assert_eq!(user["username"], "system:serviceaccount:apps:default", "{user:#}");
    assert_eq!(user["extra"]["authentication.kubernetes.io/pod-name"], serde_json::json!(["guest"]));

    // Deleting the pod ends its token's life.
    cluster.ok(&["delete", "pod", "reader", "guest", "-n", "apps", "--wait=true", "--timeout=60s"]);
    let refused = as_token(&cluster, &token, &["get", "--raw", "/version"]);
    assert!(!refused.status.success(), "a deleted pod's token still authenticates");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"));
}
