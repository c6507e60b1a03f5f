//! Images end to end on the embedded registry: served over TLS behind the bearer token as the
//! API server serves it, loaded with the real `wharf image import`, listed with `wharf image
//! ls`, and pulled back (and unpacked) by the node agent's image store; the busybox sample image
//! and a `docker save` archive imported into a running `wharf server`.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::header;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use wharf_control::auth::{pki, tokens};
use wharf_control::oci::{self, Registry};
use wharf_runtime::images::*;

const WASM: &[u8] = b"\0asm\x01\0\0\0 the module's bytes";

/// The registry behind a bearer token over TLS on a free loopback port, and a kubeconfig for it.
struct Server {
    dir: tempfile::TempDir,
    host: String,
    ca_pem: String,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki::load_or_create(&dir.path().join("pki"), &["127.0.0.1".into()]).unwrap();
        let token = tokens::generate();
        let registry = Arc::new(Registry::open(dir.path().join("registry")).unwrap());
        let auth = tokens::Authenticator::new(&token);
        let app = Router::new().fallback(move |request: Request| {
            let (registry, auth) = (registry.clone(), auth.clone());
            async move {
                let (parts, body) = request.into_parts();
                let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                if auth.authenticate(authorization).is_none() {
                    return oci::unauthorized();
                }
                registry.handle(&parts.method, &parts.uri, &parts.headers, body).await
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(wharf_control::api::serve::serve(listener, pki.server_config, app, async {
            let _ = stopped.await;
        }));
        let kubeconfig = json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "wharf",
            "clusters": [{"name": "wharf", "cluster": {"server": format!("https://{host}"),
                "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem)}}],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "wharf", "context": {"cluster": "wharf", "user": "admin"}}],
        });
        std::fs::write(dir.path().join("kubeconfig.yaml"), serde_yaml::to_string(&kubeconfig).unwrap()).unwrap();
        Self { dir, host, ca_pem: pki.ca_pem, token, stop: Some(stop) }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    fn store(&self) -> ImageStore {
        let options = ClientOptions { ca_pem: Some(self.ca_pem.clone()), ..Default::default() };
        ImageStore::open(self.dir.path().join(format!("node-{}", next_id())), options).unwrap()
    }

    fn credentials(&self) -> Credentials {
        Credentials::Bearer(self.token.clone())
    }

    /// Runs `wharf image ARGS` with `KUBECONFIG` set; returns (success, stdout, stderr).
    async fn wharf(&self, args: &[&str]) -> (bool, String, String) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("image")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .output()
            .await
            .expect("wharf runs");
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
        (output.status.success(), text(output.stdout), text(output.stderr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn next_id() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_file_is_imported_listed_and_pulled() {
    let server = Server::start().await;
    let module = server.dir.path().join("hello.wasm");
    std::fs::write(&module, WASM).unwrap();
    let (ok, stdout_ok, stderr) = server.wharf(&["import", module.to_str().unwrap(), "--name", "demo/hello:v1"]).await;
    assert!(ok, "{stdout_ok}{stderr}");
    assert_eq!(stdout_ok.lines().last(), Some("demo/hello:v1"), "{stdout_ok}");

    let (ok, table, stderr) = server.wharf(&["ls", "--kubeconfig", server.kubeconfig().to_str().unwrap()]).await;
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "RUNTIME", "SIZE", "DIGEST"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..3], ["demo/hello", "v1", "wasm"], "{table}");
    assert!(row[row.len() - 1].starts_with("sha256:") && stdout_ok.contains(row[row.len() - 1]), "{table}");

    // The node agent resolves the same short name to the embedded registry.
    let store = server.store();
    let reference = Reference::parse("demo/hello:v1", &server.host).unwrap();
    let image = store.pull(&reference, &server.credentials(), PullPolicy::Always).await.unwrap();
    let Runtime::Wasm { module: path, digest: module_digest } = &image.runtime else { panic!("{image:?}") };
    assert_eq!(std::fs::read(path).unwrap(), WASM);
    assert_eq!(*module_digest, digest(WASM));
    assert_eq!(image.config["architecture"], "wasm");

    // Importing the same file again changes nothing.
    let (ok, again, _) = server.wharf(&["import", module.to_str().unwrap(), "--name", "demo/hello:v1"]).await;
    assert!(ok);
    assert_eq!(again, stdout_ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_fail_with_their_name() {
    let server = Server::start().await;
    let fake = server.dir.path().join("x.wasm");
    std::fs::write(&fake, "not wasm").unwrap();
    let (ok, _, stderr) = server.wharf(&["import", fake.to_str().unwrap(), "--name", "x:v1"]).await;
    assert!(!ok);
    assert_eq!(stderr.trim(), format!("error: {}: not a WebAssembly file", fake.display()));
    let (ok, _, stderr) = server.wharf(&["import", fake.to_str().unwrap(), "--name", "Bad:v1"]).await;
    assert!(!ok && stderr.contains("--name Bad:v1"), "{stderr}");
    let (ok, _, stderr) = server.wharf(&["import", fake.to_str().unwrap(), "--name", "example.com/x:v1"]).await;
    assert!(!ok && stderr.contains("not the cluster's"), "{stderr}");
    let (ok, _, stderr) = server.wharf(&["ls", "--kubeconfig", "/nonexistent/kubeconfig"]).await;
    assert!(!ok && stderr.contains("/nonexistent/kubeconfig: cannot read the kubeconfig"), "{stderr}");
    let (ok, stdout, stderr) = server.wharf(&["ls"]).await;
    assert!(ok && stdout.is_empty() && stderr.contains("No images"), "{stdout}{stderr}");
}

/// A layer tar of regular files (mode 0644, owned by root).
fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn linux_config(layers: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    json!({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/bin/busybox"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    .to_string()
    .into_bytes()
}

/// An OCI layout with one Linux image whose layer (a plain tar) spans many chunks.
fn write_layout(dir: &Path, layer: &[u8]) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        std::fs::write(blobs.join(&digest(bytes)[7..]), bytes).unwrap();
        json!({"digest": digest(bytes), "size": bytes.len()})
    };
    let config = put(&linux_config(&[layer]));
    let layer = put(layer);
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer["digest"], "size": layer["size"]}]});
    let manifest = put(manifest.to_string().as_bytes());
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST,
        "digest": manifest["digest"], "size": manifest["size"], "annotations": {"org.opencontainers.image.ref.name": "1.36"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest["digest"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oci_layout_is_imported_and_pulled_as_linux() {
    let server = Server::start().await;
    let layout = server.dir.path().join("busybox-layout");
    let content: Vec<u8> = (0..24 << 20).map(|i: u32| (i % 251) as u8).collect();
    let layer = layer_tar(&[("data/big", &content)]);
    let manifest_digest = write_layout(&layout, &layer);
    let (ok, stdout, stderr) = server.wharf(&["import", layout.to_str().unwrap(), "--name", "busybox:1.36"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&manifest_digest) && stdout.ends_with("busybox:1.36\n"), "{stdout}");

    let store = server.store();
    let reference = Reference::parse("busybox:1.36", &server.host).unwrap();
    let image = store.pull(&reference, &server.credentials(), PullPolicy::IfNotPresent).await.unwrap();
    assert_eq!(image.manifest_digest, manifest_digest);
    let Runtime::Linux { layers } = &image.runtime else { panic!("{image:?}") };
    assert_eq!(layers[0].media_type, "application/vnd.oci.image.layer.v1.tar");
    assert_eq!(std::fs::read(&layers[0].path).unwrap(), layer);
    assert_eq!(std::fs::read(layers[0].dir.join("data/big")).unwrap(), content);
    assert_eq!(image.config["config"]["Entrypoint"][0], "/bin/busybox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_needs_the_token_and_the_cluster_ca() {
    let server = Server::start().await;
    let module = server.dir.path().join("m.wasm");
    std::fs::write(&module, WASM).unwrap();
    let (ok, _, stderr) = server.wharf(&["import", module.to_str().unwrap(), "--name", "m:v1"]).await;
    assert!(ok, "{stderr}");
    let reference = Reference::parse("m:v1", &server.host).unwrap();

    let store = server.store();
    let error = store.pull(&reference, &Credentials::Anonymous, PullPolicy::Always).await.unwrap_err();
    assert!(matches!(error, ImageError::Unauthorized { .. }), "{error}");
    let error = store.pull(&reference, &Credentials::Bearer("wrong".into()), PullPolicy::Always).await.unwrap_err();
    assert!(matches!(error, ImageError::Unauthorized { .. }), "{error}");

    let without_ca = ImageStore::open(server.dir.path().join("no-ca"), ClientOptions::default()).unwrap();
    let error = without_ca.pull(&reference, &server.credentials(), PullPolicy::Always).await.unwrap_err();
    assert!(matches!(error, ImageError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains("certificate"), "{error}");
}

/// The node's view of a running cluster's registry: address, CA and token from its kubeconfig.
fn cluster_store(cluster: &common::Cluster, root: &Path) -> (ImageStore, String, Credentials) {
    let kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(cluster.kubeconfig()).unwrap()).unwrap();
    let ca = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"].as_str().unwrap();
    let ca_pem = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(ca).unwrap()).unwrap();
    let token = kubeconfig["users"][0]["user"]["token"].as_str().unwrap().to_string();
    let options = ClientOptions { ca_pem: Some(ca_pem), ..Default::default() };
    let host = cluster.url.trim_start_matches("https://").to_string();
    (ImageStore::open(root, options).unwrap(), host, Credentials::Bearer(token))
}

/// `wharf image ARGS` against `cluster`; returns (success, stdout, stderr).
fn wharf_image(cluster: &common::Cluster, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("image")
        .args(args)
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .expect("wharf runs");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

/// A legacy `docker save` tar (`manifest.json`, `<id>.json`, `<id>/layer.tar`) of two layers.
fn write_docker_save(path: &Path, layers: &[&[u8]]) {
    let config = linux_config(layers);
    let config_name = format!("{}.json", &digest(&config)[7..]);
    let layer_names: Vec<String> = (0..layers.len()).map(|i| format!("layer{i}/layer.tar")).collect();
    let manifest = json!([{"Config": config_name, "RepoTags": ["saved:v1"], "Layers": layer_names}]).to_string();
    let mut files: Vec<(&str, &[u8])> = vec![("manifest.json", manifest.as_bytes()), (&config_name, &config)];
    files.extend(layer_names.iter().map(String::as_str).zip(layers.iter().copied()));
    std::fs::write(path, layer_tar(&files)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_busybox_sample_and_a_docker_save_are_imported_into_a_running_cluster() {
    let cluster = common::Cluster::start();
    let work = tempfile::tempdir().unwrap();

    // The busybox sample: progress per blob on stderr, the reference last on stdout.
    let layout = common::busybox_layout(work.path());
    let (ok, stdout, stderr) = wharf_image(&cluster, &["import", layout.to_str().unwrap(), "--name", "busybox:v1"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().last(), Some("busybox:v1"), "{stdout}");
    let pushed: Vec<&str> = stderr.lines().filter(|l| l.starts_with("sha256:") && l.ends_with(" pushed")).collect();
    assert_eq!(pushed.len(), 2, "the config and the layer: {stderr}");
    let (ok, _, again) = wharf_image(&cluster, &["import", layout.to_str().unwrap(), "--name", "busybox:v1"]);
    assert!(ok && again.lines().filter(|l| l.ends_with(" already present")).count() == 2, "{again}");

    // A docker save archive: a base layer and one on top.
    let base = layer_tar(&[("etc/motd", b"saved by docker\n"), ("bin/tool", b"base")]);
    let top = layer_tar(&[("bin/tool", b"top")]);
    let archive = work.path().join("saved.tar");
    write_docker_save(&archive, &[&base, &top]);
    let (ok, stdout, stderr) = wharf_image(&cluster, &["import", archive.to_str().unwrap(), "--name", "saved:v1"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().last(), Some("saved:v1"), "{stdout}");

    let (ok, table, stderr) = wharf_image(&cluster, &["ls"]);
    assert!(ok, "{stderr}");
    let rows: Vec<Vec<&str>> = table.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    let row = |name: &str| rows.iter().find(|r| r[0] == name).unwrap_or_else(|| panic!("no {name} in\n{table}"));
    assert_eq!(row("busybox")[..3], ["busybox", "v1", "linux"], "{table}");
    assert_eq!(row("saved")[..3], ["saved", "v1", "linux"], "{table}");

    // What the node gets: busybox unpacked with its applets, users and /tmp.
    let (store, host, credentials) = cluster_store(&cluster, &work.path().join("node"));
    let image = store.pull(&Reference::parse("busybox:v1", &host).unwrap(), &credentials, PullPolicy::Always).await;
    let image = image.unwrap();
    assert_eq!(image.config["config"]["Cmd"], json!(["sh"]));
    let Runtime::Linux { layers } = &image.runtime else { panic!("{image:?}") };
    let rootfs = &layers[0].dir;
    let busybox = std::fs::metadata(rootfs.join("bin/busybox")).unwrap();
    assert_eq!((busybox.mode() & 0o7777, busybox.uid()), (0o755, 0));
    for applet in ["sh", "echo", "cat", "sleep", "httpd", "wget", "id", "hostname", "tar"] {
        assert_eq!(std::fs::read_link(rootfs.join("bin").join(applet)).unwrap(), Path::new("busybox"), "{applet}");
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:") && passwd.contains("nobody:x:65534:65534:"), "{passwd}");
    assert!(std::fs::read_to_string(rootfs.join("etc/group")).unwrap().contains(":65534:"));
    assert_eq!(std::fs::metadata(rootfs.join("tmp")).unwrap().mode() & 0o7777, 0o1777);

    // The docker save's layers, unpacked bottom first.
    let saved = store.pull(&Reference::parse("saved:v1", &host).unwrap(), &credentials, PullPolicy::Always).await;
    let saved = saved.unwrap();
    let Runtime::Linux { layers } = &saved.runtime else { panic!("{saved:?}") };
    assert_eq!(layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(), [digest(&base), digest(&top)]);
    assert_eq!(std::fs::read(layers[0].dir.join("etc/motd")).unwrap(), b"saved by docker\n");
    assert_eq!(std::fs::read(layers[1].dir.join("bin/tool")).unwrap(), b"top");
}

#[test]
fn the_busybox_sample_is_reproducible() {
    let work = tempfile::tempdir().unwrap();
    let first = std::fs::read(common::busybox_layout(&work.path().join("a")).join("index.json")).unwrap();
    let second = std::fs::read(common::busybox_layout(&work.path().join("b")).join("index.json")).unwrap();
    assert_eq!(first, second);
    let index: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert!(index["manifests"][0]["digest"].as_str().unwrap().starts_with("sha256:"), "{index}");
}

/// The Wasm half of samples/manifests/mixed.yaml, without a Rust Wasm target: the cat fixture
/// prints a file of a mounted volume, found through the volume's preopen, and exits 1 for a
/// file it cannot open.
#[test]
fn the_cat_fixture_prints_files_of_a_mounted_volume() {
    let cluster = common::Cluster::start();
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cat.wat");
    let module = cluster.data_dir().join("cat.wasm");
    std::fs::write(&module, wat::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()))).unwrap();
    let (ok, _, stderr) = wharf_image(&cluster, &["import", module.to_str().unwrap(), "--name", "cat:v1"]);
    assert!(ok, "{stderr}");
    cluster.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: files\ndata:\n  message: |\n    written before the pod\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata:\n  name: cat\nspec:\n  restartPolicy: Never\n  containers:\n  - name: cat\n    \
         image: cat:v1\n    args: [/data/message, /data/missing]\n    volumeMounts:\n    - {name: files, mountPath: /data}\n  \
         volumes:\n  - name: files\n    configMap: {name: files}\n",
    );
    let finished = cluster.eventually(std::time::Duration::from_secs(60), || {
        cluster.ok(&["get", "pod", "cat", "-o", "jsonpath={.status.phase}"]) == "Failed"
    });
    let logs = cluster.ok(&["logs", "cat"]);
    assert!(finished, "the pod did not fail on the missing file; logs:\n{logs}");
    assert_eq!(logs, "written before the pod\ncat: /data/missing: cannot open\n");
    let code =
        cluster.ok(&["get", "pod", "cat", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}"]);
    assert_eq!(code, "1");
}
