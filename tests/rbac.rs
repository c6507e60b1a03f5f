//! RBAC end to end, with the real kubectl against `wharf server`: users acting through
//! `kubectl --as` (impersonated by the admin) and through client certificates minted with
//! `openssl` from the cluster CA. A user with no bindings is Forbidden with Kubernetes' message;
//! `view` in one namespace lets them read there only; `edit` lets them create Deployments; a
//! ClusterRole labelled aggregate-to-view extends `view` live; `kubectl auth can-i` (and
//! `--list`) and `whoami` answer; escalation is refused; impersonation needs `impersonate`; the
//! embedded registry lets every user pull and only those granted it push.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::Cluster;
use serde_json::Value;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// `kubectl ARGS --as USER`.
fn as_user(cluster: &Cluster, user: &str, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--as", user]);
    cluster.kubectl(&all)
}

/// `kubectl auth can-i ARGS`' answer.
fn can_i(cluster: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend(args);
    stdout(&cluster.kubectl(&all))
}

fn forbidden(out: &Output) -> String {
    assert!(!out.status.success(), "expected Forbidden, got:\n{}", stdout(out));
    let err = stderr(out);
    // `kubectl get` prints the Status as `Error from server (Forbidden): ...`, `kubectl create
    // KIND` as `error: failed to create KIND: ...`; both carry the server's message.
    assert!(
        err.contains("Error from server (Forbidden)") || err.contains(" is forbidden: "),
        "not a Forbidden error:\n{err}"
    );
    err
}

fn succeeded(out: &Output) -> String {
    assert!(out.status.success(), "kubectl failed:\n{}", stderr(out));
    stdout(out)
}

#[test]
fn roles_and_bindings_decide_what_users_may_do() {
    let cluster = Cluster::start_with(&["--no-agent"]);
    cluster.ok(&["create", "namespace", "team"]);
    cluster.ok(&["create", "namespace", "other"]);

    // The default policy is there, as kubectl shows RBAC objects.
    let roles = cluster.ok(&["get", "clusterroles"]);
    assert!(roles.lines().next().unwrap().split_whitespace().eq(["NAME", "CREATED", "AT"]), "{roles}");
    for name in ["cluster-admin", "admin", "edit", "view", "system:basic-user", "wharf:registry-pusher"] {
        assert!(roles.lines().any(|l| l.starts_with(&format!("{name} "))), "no {name}:\n{roles}");
    }
    let view: Value = serde_json::from_str(&cluster.ok(&["get", "clusterrole", "view", "-o", "json"])).unwrap();
    assert_eq!(view["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"], "true");
    assert!(view["aggregationRule"]["clusterRoleSelectors"].is_array());
    assert!(view["rules"].as_array().is_some_and(|r| !r.is_empty()), "view is aggregated: {view:#}");

    // No bindings: Forbidden, in Kubernetes' words.
    let err = forbidden(&as_user(&cluster, "alice", &["get", "pods", "-n", "team"]));
    assert!(
        err.contains(
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "team""#
        ),
        "{err}"
    );
    assert_eq!(can_i(&cluster, &["list", "pods", "-n", "team", "--as", "alice"]), "no");

    // view in team: read there, not elsewhere, and no writes.
    cluster.ok(&["create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice", "-n", "team"]);
    succeeded(&as_user(&cluster, "alice", &["get", "pods", "-n", "team"]));
    forbidden(&as_user(&cluster, "alice", &["get", "pods", "-n", "other"]));
    forbidden(&as_user(&cluster, "alice", &["get", "pods", "-A"]));
    let err = forbidden(&as_user(&cluster, "alice", &["create", "configmap", "c", "-n", "team"]));
    assert!(err.contains(r#"cannot create resource "configmaps""#), "{err}");
    forbidden(&as_user(&cluster, "alice", &["get", "secrets", "-n", "team"]));
    assert_eq!(can_i(&cluster, &["list", "pods", "-n", "team", "--as", "alice"]), "yes");
    assert_eq!(can_i(&cluster, &["create", "deployments", "-n", "team", "--as", "alice"]), "no");
    let wide = cluster.ok(&["get", "rolebindings", "-n", "team", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"], "{wide}");
    let row: Vec<&str> = wide.lines().find(|l| l.starts_with("alice-view")).unwrap().split_whitespace().collect();
    assert_eq!((row[1], row[3]), ("ClusterRole/view", "alice"), "{wide}");

    // edit: Deployments may be created.
    cluster.ok(&["create", "rolebinding", "alice-edit", "--clusterrole=edit", "--user=alice", "-n", "team"]);
    assert_eq!(can_i(&cluster, &["create", "deployments", "-n", "team", "--as", "alice"]), "yes");
    succeeded(&as_user(&cluster, "alice", &["create", "deployment", "web", "--image=nginx", "-n", "team"]));
    forbidden(&as_user(&cluster, "alice", &["create", "deployment", "web", "--image=nginx", "-n", "other"]));
    let list = cluster.ok(&["auth", "can-i", "--list", "-n", "team", "--as", "alice"]);
    for line in ["deployments.apps", "pods ", "functions.wharf.dev", "selfsubjectaccessreviews.authorization.k8s.io"] {
        assert!(list.lines().any(|l| l.starts_with(line)), "can-i --list lacks {line}:\n{list}");
    }
    assert!(list.contains("/api/*"), "discovery URLs are listed:\n{list}");
    let other = cluster.ok(&["auth", "can-i", "--list", "-n", "other", "--as", "alice"]);
    assert!(!other.lines().any(|l| l.starts_with("deployments.apps")), "{other}");

    // whoami, impersonated: the user and system:authenticated.
    let me: Value =
        serde_json::from_str(&cluster.ok(&["auth", "whoami", "--as", "alice", "--as-group", "dev", "-o", "json"]))
            .expect("whoami prints JSON");
    assert_eq!(me["status"]["userInfo"]["username"], "alice");
    let groups = me["status"]["userInfo"]["groups"].as_array().unwrap();
    assert!(groups.contains(&"dev".into()) && groups.contains(&"system:authenticated".into()), "{me:#}");

    // Aggregation, live: a new ClusterRole labelled aggregate-to-view extends view (and so edit).
    cluster.apply(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: secret-reader
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
"#,
    );
    cluster.ok(&["create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob", "-n", "team"]);
    assert!(
        cluster.eventually(Duration::from_secs(20), || as_user(&cluster, "bob", &["get", "secrets", "-n", "team"])
            .status
            .success()),
        "view never gained the secret-reader rules"
    );

    // Escalation: carol administers team; she may grant what she holds, not more.
    cluster.ok(&["create", "rolebinding", "carol-admin", "--clusterrole=admin", "--user=carol", "-n", "team"]);
    succeeded(&as_user(
        &cluster,
        "carol",
        &["create", "role", "pod-reader", "--verb=get", "--resource=pods", "-n", "team"],
    ));
    let err = forbidden(&as_user(
        &cluster,
        "carol",
        &["create", "role", "node-reader", "--verb=get", "--resource=nodes", "-n", "team"],
    ));
    assert!(err.contains("is attempting to grant RBAC permissions not currently held"), "{err}");
    assert!(err.contains(r#"Resources:["nodes"]"#), "{err}");
    let err = forbidden(&as_user(
        &cluster,
        "carol",
        &["create", "rolebinding", "mine", "--clusterrole=cluster-admin", "--user=carol", "-n", "team"],
    ));
    assert!(err.contains("is attempting to grant RBAC permissions not currently held"), "{err}");
    succeeded(&as_user(
        &cluster,
        "carol",
        &["create", "rolebinding", "dave-view", "--clusterrole=view", "--user=dave", "-n", "team"],
    ));
    succeeded(&as_user(&cluster, "dave", &["get", "pods", "-n", "team"]));

    // Validation, with Kubernetes' field paths.
    let err = cluster.fails(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: bad\n  namespace: team\nrules:\n- apiGroups: [\"\"]\n  resources: [\"pods\"]\n",
        ),
    );
    assert!(err.contains("rules[0].verbs: Required value: verbs must contain at least one value"), "{err}");

    // TokenReview and SubjectAccessReview, as the admin.
    let review = format!(
        r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{}"}}}}"#,
        cluster.admin_token()
    );
    let out = cluster.kubectl_with(&["create", "-f", "-", "-o", "json"], Some(&review), &[]);
    let review: Value = serde_json::from_str(&succeeded(&out)).unwrap();
    assert_eq!(review["status"]["authenticated"], true);
    assert_eq!(review["status"]["user"]["username"], "admin");
    let sar = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"alice","resourceAttributes":{"namespace":"team","verb":"create","group":"apps","resource":"deployments"}}}"#;
    let out = cluster.kubectl_with(&["create", "-f", "-", "-o", "json"], Some(sar), &[]);
    let sar_answer: Value = serde_json::from_str(&succeeded(&out)).unwrap();
    assert_eq!(sar_answer["status"]["allowed"], true, "{sar_answer:#}");
    let out = cluster.kubectl_with(&["create", "-f", "-", "-o", "json", "--as", "alice"], Some(sar), &[]);
    forbidden(&out);
}

/// A kubeconfig for `user` in `groups` with a client certificate signed by the cluster CA.
fn certificate_kubeconfig(cluster: &Cluster, user: &str, groups: &[&str]) -> PathBuf {
    let pki = cluster.data_dir().join("pki");
    let dir = cluster.data_dir().join(format!("user-{user}"));
    std::fs::create_dir_all(&dir).unwrap();
    let subject: String =
        std::iter::once(format!("/CN={user}")).chain(groups.iter().map(|g| format!("/O={g}"))).collect();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl runs (install the Debian package openssl to run the RBAC tests)");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "key.pem",
        "-subj",
        &subject,
        "-out",
        "csr.pem",
    ]);
    std::fs::write(dir.join("ext.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    let ca = pki.join("ca.crt");
    let ca_key = pki.join("ca.key");
    run(&[
        "x509",
        "-req",
        "-in",
        "csr.pem",
        "-CA",
        ca.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-CAcreateserial",
        "-CAserial",
        "serial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: wharf\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {user}\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: wharf\n  context:\n    cluster: wharf\n    user: {user}\ncurrent-context: wharf\n",
        cluster.url,
        ca.display(),
        dir.join("cert.pem").display(),
        dir.join("key.pem").display(),
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, config).unwrap();
    path
}

/// kubectl with another kubeconfig.
fn kubectl_as(cluster: &Cluster, kubeconfig: &Path, args: &[&str]) -> Output {
    let config = kubeconfig.to_str().unwrap();
    cluster.kubectl_with(args, None, &[("KUBECONFIG", config)])
}

/// The HTTP status of a registry request made as `user` (the admin impersonating them).
fn registry_status(cluster: &Cluster, user: &str, method: &str, path: &str) -> String {
    let ca = cluster.data_dir().join("pki/ca.crt");
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, "--cacert"])
        .arg(&ca)
        .args(["-H", &format!("Authorization: Bearer {}", cluster.admin_token())])
        .args(["-H", &format!("Impersonate-User: {user}")])
        .arg(format!("{}{path}", cluster.url))
        .output()
        .expect("curl runs (install the Debian package curl to run the RBAC tests)");
    stdout(&out)
}

#[test]
fn impersonation_and_the_registry_need_permission() {
    let cluster = Cluster::start_with(&["--no-agent"]);
    cluster.ok(&["create", "namespace", "team"]);

    // A certificate user: who they are, and Forbidden without bindings.
    let erin = certificate_kubeconfig(&cluster, "erin", &["dev"]);
    let me: Value =
        serde_json::from_str(&succeeded(&kubectl_as(&cluster, &erin, &["auth", "whoami", "-o", "json"]))).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "erin");
    let err = forbidden(&kubectl_as(&cluster, &erin, &["get", "pods", "-n", "team"]));
    assert!(err.contains(r#"User "erin" cannot list resource "pods""#), "{err}");

    // Impersonating without the verb: Kubernetes' message.
    let err = forbidden(&kubectl_as(&cluster, &erin, &["get", "pods", "-n", "team", "--as", "frank"]));
    assert!(
        err.contains(r#"users "frank" is forbidden: User "erin" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{err}"
    );
    // Allowed to impersonate frank only: the request then acts as frank (who may read team).
    cluster.ok(&[
        "create",
        "clusterrole",
        "impersonate-frank",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=frank",
    ]);
    cluster.ok(&[
        "create",
        "clusterrolebinding",
        "erin-impersonates",
        "--clusterrole=impersonate-frank",
        "--user=erin",
    ]);
    let err = forbidden(&kubectl_as(&cluster, &erin, &["get", "pods", "-n", "team", "--as", "frank"]));
    assert!(err.contains(r#"User "frank" cannot list resource "pods""#), "{err}");
    cluster.ok(&["create", "rolebinding", "frank-view", "--clusterrole=view", "--user=frank", "-n", "team"]);
    succeeded(&kubectl_as(&cluster, &erin, &["get", "pods", "-n", "team", "--as", "frank"]));
    let err = forbidden(&kubectl_as(&cluster, &erin, &["get", "pods", "-n", "team", "--as", "gina"]));
    assert!(err.contains(r#"users "gina" is forbidden"#), "{err}");
    let err =
        forbidden(&kubectl_as(&cluster, &erin, &["get", "pods", "-n", "team", "--as", "frank", "--as-group", "ops"]));
    assert!(err.contains(r#"groups "ops" is forbidden: User "erin" cannot impersonate resource "groups""#), "{err}");

    // The registry: every user pulls; pushing needs wharf:registry-pusher.
    assert_eq!(registry_status(&cluster, "viewer", "GET", "/v2/"), "200");
    assert_eq!(registry_status(&cluster, "viewer", "POST", "/v2/demo/blobs/uploads/"), "403");
    cluster.ok(&["create", "clusterrolebinding", "ci-push", "--clusterrole=wharf:registry-pusher", "--user=ci"]);
    assert_eq!(registry_status(&cluster, "ci", "POST", "/v2/demo/blobs/uploads/"), "202");
}
