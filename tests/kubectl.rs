//! The real kubectl against the real `wharf` binary: the quick start, apply round trips, the
//! everyday commands, watches and bad input, as a user would run them.

mod common;

use std::time::Duration;

use common::Cluster;
use serde_json::Value;

const DEMO: &str = include_str!("../samples/manifests/demo-app.yaml");

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("kubectl printed JSON")
}

#[test]
fn quick_start_commands_work() {
    let cluster = Cluster::start();
    let version = cluster.ok(&["version", "-o", "json"]);
    assert_eq!(json(&version)["serverVersion"]["major"], "1");

    let resources = cluster.ok(&["api-resources"]);
    for line in ["pods", "deployments", "functions", "runtimeclasses", "leases"] {
        assert!(resources.contains(line), "api-resources lacks {line}:\n{resources}");
    }
    let functions = resources.lines().find(|l| l.starts_with("functions")).unwrap();
    assert!(functions.contains("fn") && functions.contains("wharf.dev/v1") && functions.contains("Function"));

    let namespaces = cluster.ok(&["get", "ns", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.contains(&format!("namespace/{ns}")), "{namespaces}");
    }
}

#[test]
fn apply_is_idempotent_updates_in_place_and_keeps_patches() {
    let cluster = Cluster::start();
    let created = cluster.apply(DEMO);
    for line in [
        "namespace/demo created",
        "configmap/settings created",
        "secret/creds created",
        "deployment.apps/web created",
        "service/web created",
        "job.batch/once created",
    ] {
        assert!(created.contains(line), "{created}");
    }
    let again = cluster.apply(DEMO);
    assert_eq!(again.matches("unchanged").count(), 6, "{again}");

    // Someone else adds an env var and an annotation; a later apply must keep both.
    cluster.ok(&[
        "patch", "deployment", "web", "-n", "demo", "--type=strategic", "-p",
        r#"{"metadata":{"annotations":{"team":"blue"}},"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"EXTRA","value":"1"}]}]}}}}"#,
    ]);
    let changed = cluster.apply(&DEMO.replace("ticker:v1", "ticker:v2"));
    assert!(changed.contains("deployment.apps/web configured"), "{changed}");
    assert_eq!(changed.matches("unchanged").count(), 5, "{changed}");

    let deploy = json(&cluster.ok(&["get", "deploy", "web", "-n", "demo", "-o", "json"]));
    assert_eq!(deploy["metadata"]["generation"], 3, "two spec changes after creation");
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ticker:v2");
    let mut env: Vec<&str> = container["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    env.sort();
    assert_eq!(env, ["EXTRA", "GREETING"]);
    assert_eq!(deploy["metadata"]["annotations"]["team"], "blue");
}

#[test]
fn everyday_commands_behave_as_on_a_real_cluster() {
    let cluster = Cluster::start();
    cluster.apply(DEMO);

    let all = cluster.ok(&["get", "all", "-n", "demo"]);
    for name in ["service/web", "deployment.apps/web", "job.batch/once"] {
        assert!(all.contains(name), "{all}");
    }
    let wide = cluster.ok(&["get", "deploy", "-n", "demo", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]);
    assert!(wide.contains("ticker:v1") && wide.contains("app=web"), "{wide}");

    let yaml = cluster.ok(&["get", "cm", "settings", "-n", "demo", "-o", "yaml"]);
    let cm: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(cm["data"]["GREETING"], "hello");
    assert!(cm["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert_eq!(cluster.ok(&["get", "svc", "web", "-n", "demo", "-o", "jsonpath={.spec.ports[0].port}"]), "80");
    assert_eq!(cluster.ok(&["get", "deploy", "-n", "demo", "-o", "name"]).trim(), "deployment.apps/web");

    cluster.ok(&["label", "cm", "settings", "-n", "demo", "tier=gold"]);
    assert!(cluster.ok(&["get", "cm", "-n", "demo", "--show-labels"]).contains("tier=gold"));
    assert_eq!(cluster.ok(&["get", "cm", "-n", "demo", "-l", "tier=gold", "-o", "name"]).trim(), "configmap/settings");
    assert_eq!(own(&cluster.ok(&["get", "cm", "-n", "demo", "-l", "tier!=gold", "-o", "name"])), "");
    assert_eq!(
        cluster.ok(&["get", "cm", "-n", "demo", "--field-selector", "metadata.name=settings", "-o", "name"]).trim(),
        "configmap/settings"
    );
    cluster.ok(&["annotate", "deploy", "web", "-n", "demo", "owner=ops"]);

    cluster.ok(&["patch", "deploy", "web", "-n", "demo", "--type=merge", "-p", r#"{"spec":{"replicas":3}}"#]);
    cluster.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "demo",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    // A patch may not change an object's type; the object stays readable as it was.
    for (patch_type, patch) in [
        ("merge", r#"{"apiVersion":7,"kind":["Pod"]}"#),
        ("strategic", r#"{"kind":"Pod"}"#),
        ("json", r#"[{"op":"replace","path":"/apiVersion","value":"v1"}]"#),
    ] {
        let stderr = cluster
            .fails(&["patch", "deploy", "web", "-n", "demo", &format!("--type={patch_type}"), "-p", patch], None);
        assert!(stderr.contains("Error from server (BadRequest)"), "{patch_type} patch {patch}: {stderr}");
    }
    let web = json(&cluster.ok(&["get", "deploy", "web", "-n", "demo", "-o", "json"]));
    assert_eq!((web["apiVersion"].as_str(), web["kind"].as_str()), (Some("apps/v1"), Some("Deployment")));
    cluster.ok(&["scale", "deploy", "web", "-n", "demo", "--replicas=5"]);
    assert_eq!(cluster.ok(&["get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.replicas}"]), "5");

    let described = cluster.ok(&["describe", "deploy", "web", "-n", "demo"]);
    assert!(described.contains("owner: ops") && described.contains("5 desired"), "{described}");

    // replace with what get returns, edited; then edit through an EDITOR.
    let current = cluster.ok(&["get", "cm", "settings", "-n", "demo", "-o", "yaml"]);
    let replaced = current.replace("GREETING: hello", "GREETING: howdy");
    let out = cluster.kubectl_with(&["replace", "-f", "-"], Some(&replaced), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let edit =
        cluster.kubectl_with(&["edit", "cm", "settings", "-n", "demo"], None, &[("EDITOR", "sed -i s/howdy/hey/")]);
    assert!(edit.status.success(), "{}", String::from_utf8_lossy(&edit.stderr));
    assert_eq!(cluster.ok(&["get", "cm", "settings", "-n", "demo", "-o", "jsonpath={.data.GREETING}"]), "hey");

    // Typed create commands (client-go sends these as protobuf).
    cluster.ok(&["create", "configmap", "c2", "-n", "demo", "--from-literal=a=b"]);
    cluster.ok(&["create", "secret", "generic", "s2", "-n", "demo", "--from-literal=x=y"]);
    cluster.ok(&["create", "deployment", "d2", "-n", "demo", "--image=nginx:1", "--replicas=0"]);
    cluster.ok(&["create", "job", "j2", "-n", "demo", "--image=busybox", "--", "echo", "hi"]);
    assert_eq!(cluster.ok(&["get", "secret", "s2", "-n", "demo", "-o", "jsonpath={.data.x}"]), "eQ==");
    assert_eq!(cluster.ok(&["get", "deploy", "d2", "-n", "demo", "-o", "jsonpath={.spec.replicas}"]), "0");

    // diff: nothing to show, then a change (kubectl diff exits 1 when there is one).
    let changed = cluster.kubectl_with(&["diff", "-f", "-"], Some(&DEMO.replace("ticker:v1", "ticker:v9")), &[]);
    assert_eq!(changed.status.code(), Some(1), "{}", String::from_utf8_lossy(&changed.stderr));
    assert!(String::from_utf8_lossy(&changed.stdout).contains("+        image: ticker:v9"));

    let explained = cluster.ok(&["explain", "pods.spec.containers"]);
    assert!(explained.contains("FIELD: containers <[]Container>") && explained.contains("-required-"), "{explained}");

    // The namespace goes first and takes its contents with it, so later deletes may find nothing.
    let deleted = cluster.kubectl_with(&["delete", "--ignore-not-found", "-f", "-"], Some(DEMO), &[]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    assert!(
        cluster
            .eventually(Duration::from_secs(20), || cluster.kubectl(&["get", "ns", "demo"]).status.code() == Some(1))
    );
    assert_eq!(cluster.ok(&["get", "cm,secret,deploy,job", "-n", "demo", "-o", "name"]).trim(), "");
}

/// `kubectl get -o name` output without the `kube-root-ca.crt` ConfigMap every namespace has.
fn own(names: &str) -> String {
    names.lines().filter(|l| *l != "configmap/kube-root-ca.crt").collect::<Vec<_>>().join("\n")
}

#[test]
fn deleting_a_namespace_deletes_its_contents_first() {
    let cluster = Cluster::start();
    cluster.apply(DEMO);
    cluster.ok(&["create", "configmap", "extra", "-n", "demo", "--from-literal=a=b"]);
    cluster.ok(&["delete", "ns", "demo"]);
    assert!(cluster.kubectl(&["get", "ns", "demo"]).status.code() == Some(1), "namespace gone once delete returns");
    assert_eq!(cluster.ok(&["get", "all,cm,secret", "-n", "demo", "-o", "name"]).trim(), "");
    // The namespace can be made again, empty.
    cluster.ok(&["create", "ns", "demo"]);
    assert_eq!(own(&cluster.ok(&["get", "cm", "-n", "demo", "-o", "name"])), "");
    // The namespaces the cluster itself lives in stay, even through `delete namespaces --all`.
    for system in ["default", "kube-system", "kube-public"] {
        let stderr = cluster.fails(&["delete", "namespace", system], None);
        assert!(
            stderr.contains(&format!("namespaces \"{system}\" is forbidden: this namespace may not be deleted")),
            "{stderr}"
        );
    }
    cluster.kubectl(&["delete", "namespaces", "--all", "--wait=false"]);
    let left = cluster.ok(&["get", "namespaces", "-o", "name"]);
    for system in ["default", "kube-system", "kube-public"] {
        assert!(left.contains(&format!("namespace/{system}\n")), "{system} was deleted: {left}");
    }
    assert!(
        cluster.ok(&["get", "lease", "-n", "kube-system", "wharf-controller-manager", "-o", "name"]).contains("lease")
    );
    // kube-node-lease may be deleted, and is made again (nodes renew their leases in it).
    let again = cluster.eventually(Duration::from_secs(40), || {
        let phase = cluster.kubectl(&["get", "namespace", "kube-node-lease", "-o", "jsonpath={.status.phase}"]);
        phase.stdout == b"Active"
    });
    assert!(again, "kube-node-lease was not made again after it was deleted");
}

#[test]
fn watch_shows_added_modified_and_deleted() {
    let cluster = Cluster::start();
    cluster.ok(&["create", "configmap", "w1", "--from-literal=a=1"]);
    let mut watch = std::process::Command::new(common::kubectl_path())
        .args(["get", "cm", "-w", "--output-watch-events", "--no-headers"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    cluster.ok(&["label", "cm", "w1", "x=y"]);
    cluster.ok(&["delete", "cm", "w1"]);
    std::thread::sleep(Duration::from_millis(700));
    watch.kill().unwrap();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let events: Vec<&str> = text.lines().collect();
    assert!(events.len() >= 3, "{text}");
    assert!(events[0].starts_with("ADDED"), "{text}");
    assert!(events.iter().any(|e| e.starts_with("MODIFIED") && e.contains("w1")), "{text}");
    assert!(events.last().unwrap().starts_with("DELETED"), "{text}");
}

#[test]
fn bad_input_gets_clear_errors_and_writes_nothing() {
    let cluster = Cluster::start();

    let malformed = cluster
        .fails(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [\n"));
    assert!(malformed.contains("error converting YAML to JSON"), "{malformed}");

    let unknown = cluster.fails(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: Widget\nmetadata:\n  name: x\n"));
    assert!(unknown.contains(r#"no matches for kind "Widget" in version "v1""#), "{unknown}");

    let bad_name =
        cluster.fails(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n"));
    assert!(bad_name.contains("is invalid") && bad_name.contains("metadata.name"), "{bad_name}");

    let no_containers = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: empty\nspec:\n  selector:\n    matchLabels: {app: x}\n  template:\n    metadata:\n      labels: {app: x}\n    spec:\n      containers: []\n";
    let invalid = cluster.fails(&["apply", "-f", "-"], Some(no_containers));
    assert!(
        invalid.contains(r#"The Deployment "empty" is invalid"#)
            && invalid.contains("spec.template.spec.containers: Required value"),
        "{invalid}"
    );

    let typo = cluster
        .fails(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndatta:\n  a: b\n"));
    assert!(typo.contains(r#"unknown field "datta""#), "{typo}");

    // A stale resourceVersion loses: take the object, let someone else change it, replace.
    cluster.ok(&["create", "configmap", "race", "--from-literal=a=1"]);
    let stale = cluster.ok(&["get", "cm", "race", "-o", "yaml"]);
    cluster.ok(&["label", "cm", "race", "winner=other"]);
    let conflict = cluster.fails(&["replace", "-f", "-"], Some(&stale.replace("a: \"1\"", "a: \"2\"")));
    assert!(conflict.contains("Conflict") || conflict.contains("the object has been modified"), "{conflict}");
    assert_eq!(cluster.ok(&["get", "cm", "race", "-o", "jsonpath={.data.a}"]), "1");

    // Over the 3 MiB body limit.
    let big =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: huge\ndata:\n  blob: {}\n", "x".repeat(4 << 20));
    let too_large = cluster.fails(&["create", "-f", "-"], Some(&big));
    assert!(too_large.to_lowercase().contains("too large"), "{too_large}");

    // Nothing of the refused writes was stored.
    let names = cluster.ok(&["get", "cm,deploy", "-o", "name"]);
    assert_eq!(own(&names), "configmap/race", "{names}");
}

#[test]
fn dry_run_answers_without_storing() {
    let cluster = Cluster::start();
    let out = cluster.ok(&["create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server", "-o", "name"]);
    assert_eq!(out.trim(), "configmap/dry");
    assert_eq!(cluster.kubectl(&["get", "cm", "dry"]).status.code(), Some(1));
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let cluster = Cluster::start();
    cluster.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n");
    cluster.ok(&["delete", "cm", "held", "--wait=false"]);
    let held = json(&cluster.ok(&["get", "cm", "held", "-o", "json"]));
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    cluster.ok(&["patch", "cm", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    assert_eq!(cluster.kubectl(&["get", "cm", "held"]).status.code(), Some(1), "gone with its last finalizer");
}

#[test]
fn lists_page_with_limit_and_continue() {
    let cluster = Cluster::start();
    let manifest: String =
        (0..7).map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: page-{i}\n---\n")).collect();
    cluster.apply(&manifest);
    // kubectl fetches in chunks of 2 and follows the continue tokens.
    let names = cluster.ok(&["get", "cm", "--chunk-size=2", "-o", "name"]);
    assert_eq!(names.lines().filter(|l| l.starts_with("configmap/page-")).count(), 7, "{names}");
    let out = cluster.kubectl(&["get", "--raw", "/api/v1/namespaces/default/configmaps?limit=3"]);
    let page = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert!(page["metadata"]["continue"].is_string());
    cluster.ok(&["delete", "cm", "--all"]);
    assert_eq!(own(&cluster.ok(&["get", "cm", "-o", "name"])), "");
}
