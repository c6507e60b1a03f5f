//! The image client against a real registry: Debian's `docker-registry` (CNCF distribution) on
//! loopback over plain HTTP, with and without htpasswd Basic auth. Push, list, pull by tag and
//! by digest, pull policies, and the errors kubelet reports.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};
use wharf_runtime::images::*;

const BINARY: &str = "/usr/bin/docker-registry";
/// `htpasswd -nbB wharf wharf-secret` (the registry reads bcrypt only).
const HTPASSWD: &str = "wharf:$2y$05$6llTz9cPYth5Gbc3DL58M.Gi2pBoVTK5wj0ARAE3mc.P2WjzdG9NG\n";
const WASM: &[u8] = b"\0asm\x01\0\0\0 a module for the test";

/// A `docker-registry` process of our own on a free loopback port, stopped on drop.
struct DockerRegistry {
    child: Child,
    dir: tempfile::TempDir,
    host: String,
}

impl DockerRegistry {
    fn start(htpasswd: bool) -> Self {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} not found: install Debian's docker-registry package (apt-get install docker-registry)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if htpasswd {
            std::fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wharf-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let registry = Self { child, dir, host };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&registry.host).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen within 15 s: {}", registry.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn reference(&self, name: &str) -> Reference {
        Reference::parse(&format!("{}/{name}", self.host), "unused.invalid").unwrap()
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn blob(bytes: &[u8]) -> PushBlob {
    PushBlob {
        digest: digest(bytes),
        size: bytes.len() as u64,
        source: BlobSource::Bytes(Bytes::copy_from_slice(bytes)),
    }
}

fn manifest(config: &PushBlob, config_type: &str, layers: &[(&PushBlob, &str)]) -> PushManifest {
    let layers: Vec<_> =
        layers.iter().map(|(b, t)| json!({"mediaType": t, "digest": b.digest, "size": b.size})).collect();
    let value = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": config.digest, "size": config.size},
        "layers": layers,
    });
    PushManifest { media_type: OCI_MANIFEST.into(), bytes: serde_json::to_vec(&value).unwrap().into() }
}

/// A Wasm artifact, a Linux image (its layer from a file) and an index of both.
struct TestImages {
    _dir: tempfile::TempDir,
    wasm: (Vec<PushBlob>, PushManifest),
    linux: (Vec<PushBlob>, PushManifest),
    index: PushManifest,
}

fn test_images() -> TestImages {
    let dir = tempfile::tempdir().unwrap();
    let wasm_config = blob(br#"{"architecture":"wasm","os":"wasip1"}"#);
    let module = blob(WASM);
    let wasm_manifest = manifest(&wasm_config, WASM_CONFIG, &[(&module, WASM_LAYER)]);

    let layer_path = dir.path().join("layer.tar");
    let layer_bytes = vec![7u8; 300_000];
    std::fs::File::create(&layer_path).unwrap().write_all(&layer_bytes).unwrap();
    let layer = PushBlob { source: BlobSource::File(layer_path), ..blob(&layer_bytes) };
    let linux_config = blob(br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]}}"#);
    let tar = "application/vnd.oci.image.layer.v1.tar";
    let linux_manifest = manifest(&linux_config, "application/vnd.oci.image.config.v1+json", &[(&layer, tar)]);

    let entry = |m: &PushManifest, architecture: &str, os: &str| {
        json!({"mediaType": OCI_MANIFEST, "digest": digest(&m.bytes), "size": m.bytes.len(),
               "platform": {"architecture": architecture, "os": os}})
    };
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [entry(&wasm_manifest, "wasm", "wasip1"), entry(&linux_manifest, "amd64", "linux")]});
    let index = PushManifest { media_type: OCI_INDEX.into(), bytes: serde_json::to_vec(&index).unwrap().into() };
    TestImages {
        _dir: dir,
        wasm: (vec![wasm_config, module], wasm_manifest),
        linux: (vec![linux_config, layer], linux_manifest),
        index,
    }
}

/// Pushes the test images as `demo/app:wasm`, `:linux` and `:multi`.
async fn push_all(client: &RegistryClient, registry: &DockerRegistry, credentials: &Credentials) -> TestImages {
    let images = test_images();
    for (tag, (blobs, manifest)) in [("wasm", &images.wasm), ("linux", &images.linux)] {
        let pushed = client
            .push(&registry.reference(&format!("demo/app:{tag}")), credentials, blobs, std::slice::from_ref(manifest))
            .await
            .unwrap_or_else(|e| panic!("push {tag}: {e}\n{}", registry.log()));
        assert_eq!(pushed, digest(&manifest.bytes));
    }
    let all: Vec<PushBlob> = images.wasm.0.iter().chain(&images.linux.0).cloned().collect();
    let manifests = [images.wasm.1.clone(), images.linux.1.clone(), images.index.clone()];
    client.push(&registry.reference("demo/app:multi"), credentials, &all, &manifests).await.unwrap();
    images
}

fn new_store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images"), ClientOptions::default()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn push_list_and_pull_over_plain_http() {
    let registry = DockerRegistry::start(false);
    let (_dir, store) = new_store();
    let anonymous = Credentials::Anonymous;
    let images = push_all(store.client(), &registry, &anonymous).await;

    assert_eq!(store.client().repositories(&registry.host, &anonymous).await.unwrap(), ["demo/app"]);
    let mut tags = store.client().tags(&registry.host, "demo/app", &anonymous).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["linux", "multi", "wasm"]);

    // Wasm: the module is the blob itself, content-addressed.
    let wasm = store.pull(&registry.reference("demo/app:wasm"), &anonymous, PullPolicy::Always).await.unwrap();
    let Runtime::Wasm { module, digest: module_digest } = &wasm.runtime else { panic!("{wasm:?}") };
    assert_eq!(std::fs::read(module).unwrap(), WASM);
    assert_eq!(*module_digest, digest(WASM));
    assert_eq!(wasm.digest, digest(&images.wasm.1.bytes));
    assert_eq!(wasm.config["os"], "wasip1");

    // Linux: layers in order, with their media types; the config as JSON.
    let linux = store.pull(&registry.reference("demo/app:linux"), &anonymous, PullPolicy::IfNotPresent).await.unwrap();
    let Runtime::Linux { layers } = &linux.runtime else { panic!("{linux:?}") };
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].media_type, "application/vnd.oci.image.layer.v1.tar");
    assert_eq!(std::fs::metadata(&layers[0].path).unwrap().len(), 300_000);
    assert_eq!(linux.config["config"]["Cmd"][0], "/bin/sh");

    // An index: this node (amd64) takes the Linux entry; the index digest is the image's.
    let multi = store.pull(&registry.reference("demo/app:multi"), &anonymous, PullPolicy::Always).await.unwrap();
    assert_eq!(multi.digest, digest(&images.index.bytes));
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(multi.manifest_digest, linux.digest);
        assert_eq!(multi.runtime, linux.runtime);
    }
    let summary = store.client().inspect(&registry.reference("demo/app:wasm"), &anonymous).await.unwrap();
    assert_eq!((summary.runtime, summary.digest.as_str()), (RuntimeKind::Wasm, wasm.digest.as_str()));

    // By digest, from a fresh store.
    let (_other_dir, other) = new_store();
    let pinned = registry.reference(&format!("demo/app@{}", wasm.digest));
    let by_digest = other.pull(&pinned, &anonymous, PullPolicy::IfNotPresent).await.unwrap();
    assert_eq!(by_digest.runtime.kind(), RuntimeKind::Wasm);

    // Errors: missing tag and repository (ErrImagePull), and Never on an image not present.
    let error = store.pull(&registry.reference("demo/app:nope"), &anonymous, PullPolicy::Always).await.unwrap_err();
    assert!(matches!(error, ImageError::NotFound { .. }), "{error}");
    assert_eq!(error.reason(), "ErrImagePull");
    assert!(error.to_string().contains("demo/app:nope"), "{error}");
    let error = store.pull(&registry.reference("nothing/here"), &anonymous, PullPolicy::Always).await.unwrap_err();
    assert!(matches!(error, ImageError::NotFound { .. }), "{error}");
    let error = other.pull(&registry.reference("demo/app:linux"), &anonymous, PullPolicy::Never).await.unwrap_err();
    assert_eq!(error.reason(), "ErrImageNeverPull");

    // With the registry gone, what is present still resolves; the rest is unreachable.
    let host = registry.host.clone();
    drop(registry);
    let reference = Reference::parse(&format!("{host}/demo/app:wasm"), "x").unwrap();
    let local = store.pull(&reference, &anonymous, PullPolicy::IfNotPresent).await.unwrap();
    assert_eq!(local, wasm);
    let error = store.pull(&reference, &anonymous, PullPolicy::Always).await.unwrap_err();
    assert!(matches!(error, ImageError::Unreachable { .. }), "{error}");
}

#[tokio::test]
async fn htpasswd_basic_auth_and_pull_secrets() {
    let registry = DockerRegistry::start(true);
    let (_dir, store) = new_store();
    let good = Credentials::Basic { username: "wharf".into(), password: "wharf-secret".into() };
    let bad = Credentials::Basic { username: "wharf".into(), password: "wrong".into() };

    let images = test_images();
    let target = registry.reference("private/app:v1");
    let error = store
        .client()
        .push(&target, &Credentials::Anonymous, &images.wasm.0, std::slice::from_ref(&images.wasm.1))
        .await;
    assert!(matches!(error, Err(ImageError::Unauthorized { .. })), "{error:?}");
    store.client().push(&target, &good, &images.wasm.0, std::slice::from_ref(&images.wasm.1)).await.unwrap();

    for credentials in [&Credentials::Anonymous, &bad] {
        let error = store.pull(&target, credentials, PullPolicy::Always).await.unwrap_err();
        assert!(matches!(error, ImageError::Unauthorized { .. }), "{credentials:?}: {error}");
        assert_eq!(error.reason(), "ErrImagePull");
    }

    // What an imagePullSecret of type kubernetes.io/dockerconfigjson holds.
    let secret =
        json!({"auths": {(format!("http://{}", registry.host)): {"username": "wharf", "password": "wharf-secret"}}});
    let from_secret =
        docker_config_credentials(secret.to_string().as_bytes(), &registry.host).unwrap().expect("an entry");
    let image = store.pull(&target, &from_secret, PullPolicy::Always).await.unwrap();
    let Runtime::Wasm { module, .. } = &image.runtime else { panic!("{image:?}") };
    assert_eq!(std::fs::read(module).unwrap(), WASM);
}

#[tokio::test]
async fn an_unreachable_registry_is_reported_as_such() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_dir, store) = new_store();
    let reference = Reference::parse(&format!("127.0.0.1:{port}/app:v1"), "x").unwrap();
    let error = store.pull(&reference, &Credentials::Anonymous, PullPolicy::Always).await.unwrap_err();
    assert!(matches!(error, ImageError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}: unreachable")), "{error}");
}
