//! Images end to end on the embedded registry: served over TLS behind the bearer token as the
//! API server serves it, loaded with the real `wharf image import`, listed with `wharf image
//! ls`, and pulled back by the node agent's image store.

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

/// An OCI layout with one Linux image whose layer spans many chunks.
fn write_layout(dir: &Path, layer: &[u8]) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        std::fs::write(blobs.join(&digest(bytes)[7..]), bytes).unwrap();
        json!({"digest": digest(bytes), "size": bytes.len()})
    };
    let config = put(br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/busybox"]}}"#);
    let layer = put(layer);
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer["digest"], "size": layer["size"]}]});
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
    let layer: Vec<u8> = (0..24 << 20).map(|i: u32| (i % 251) as u8).collect();
    let manifest_digest = write_layout(&layout, &layer);
    let (ok, stdout, stderr) = server.wharf(&["import", layout.to_str().unwrap(), "--name", "busybox:1.36"]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&manifest_digest) && stdout.ends_with("busybox:1.36\n"), "{stdout}");

    let store = server.store();
    let reference = Reference::parse("busybox:1.36", &server.host).unwrap();
    let image = store.pull(&reference, &server.credentials(), PullPolicy::IfNotPresent).await.unwrap();
    assert_eq!(image.manifest_digest, manifest_digest);
    let Runtime::Linux { layers } = &image.runtime else { panic!("{image:?}") };
    assert_eq!(layers[0].media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
    assert_eq!(std::fs::read(&layers[0].path).unwrap(), layer);
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
