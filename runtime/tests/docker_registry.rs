//! The image client against a real registry: Debian's `docker-registry` (CNCF distribution) on
//! loopback over plain HTTP, with and without htpasswd Basic auth. Push, list, pull by tag and
//! by digest, pull policies, and the errors kubelet reports; Linux images unpacked and mounted
//! as the overlay a container's rootfs is (these tests run as root).

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
    typed_manifest(OCI_MANIFEST, config, config_type, layers)
}

fn typed_manifest(
    media_type: &str,
    config: &PushBlob,
    config_type: &str,
    layers: &[(&PushBlob, &str)],
) -> PushManifest {
    let layers: Vec<_> =
        layers.iter().map(|(b, t)| json!({"mediaType": t, "digest": b.digest, "size": b.size})).collect();
    let value = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": config.digest, "size": config.size},
        "layers": layers,
    });
    PushManifest { media_type: media_type.into(), bytes: serde_json::to_vec(&value).unwrap().into() }
}

/// A layer tar: names ending in `/` are directories, others files with their mode; owners are
/// uid 1000 / gid 1001 for files, root for directories.
fn layer_tar(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, mode, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_mode(*mode);
        header.set_mtime(1_700_000_000);
        let directory = name.ends_with('/');
        header.set_entry_type(if directory { tar::EntryType::Directory } else { tar::EntryType::Regular });
        header.set_uid(if directory { 0 } else { 1000 });
        header.set_gid(if directory { 0 } else { 1001 });
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn linux_config(diff_ids: &[&[u8]], architecture: &str) -> PushBlob {
    let diff_ids: Vec<String> = diff_ids.iter().map(|tar| digest(tar)).collect();
    blob(
        json!({"architecture": architecture, "os": "linux",
            "config": {"Entrypoint": ["/bin/app"], "Cmd": ["--port", "80"], "Env": ["PATH=/bin", "MODE=a=b"],
                       "WorkingDir": "/srv", "User": "1000:1001"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}})
        .to_string()
        .as_bytes(),
    )
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
    let layer_bytes = layer_tar(&[("data/", 0o755, b""), ("data/big", 0o644, &[7u8; 300_000])]);
    std::fs::File::create(&layer_path).unwrap().write_all(&layer_bytes).unwrap();
    let layer = PushBlob { source: BlobSource::File(layer_path), ..blob(&layer_bytes) };
    let linux_config = blob(
        json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
               "rootfs": {"type": "layers", "diff_ids": [digest(&layer_bytes)]}})
        .to_string()
        .as_bytes(),
    );
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

    // Linux: layers in order, with their media types, unpacked; the config as JSON.
    let linux = store.pull(&registry.reference("demo/app:linux"), &anonymous, PullPolicy::IfNotPresent).await.unwrap();
    let Runtime::Linux { layers } = &linux.runtime else { panic!("{linux:?}") };
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].media_type, "application/vnd.oci.image.layer.v1.tar");
    assert_eq!(std::fs::metadata(&layers[0].path).unwrap().len(), images.linux.0[1].size);
    assert_eq!(std::fs::read(layers[0].dir.join("data/big")).unwrap(), [7u8; 300_000]);
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

/// An overlay of `lower` dirs (bottom first) mounted read-only, unmounted on drop.
struct Overlay {
    merged: tempfile::TempDir,
}

impl Overlay {
    fn mount(lower: &[std::path::PathBuf]) -> Self {
        let merged = tempfile::tempdir().unwrap();
        let lowerdir: Vec<String> = lower.iter().rev().map(|dir| dir.display().to_string()).collect();
        let output = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &format!("lowerdir={}", lowerdir.join(":"))])
            .arg(merged.path())
            .output()
            .expect("mount runs");
        assert!(output.status.success(), "mounting the overlay (as root): {}", String::from_utf8_lossy(&output.stderr));
        Self { merged }
    }

    fn path(&self, relative: &str) -> std::path::PathBuf {
        self.merged.path().join(relative)
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.merged.path()).status();
    }
}

/// The names in `dir`, sorted (none if it does not exist).
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|items| items.map(|item| item.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn linux_images_with_whiteouts_are_pulled_with_a_pull_secret_and_unpacked_for_overlayfs() {
    use wharf_runtime::pull::{ImagePuller, PullProgress, RegistryPuller};

    let registry = DockerRegistry::start(true);
    let credentials = Credentials::Basic { username: "wharf".into(), password: "wharf-secret".into() };

    // Three layers: a base, then one that deletes /etc/old and replaces /data (opaque), then a
    // last one; Docker v2 media types, gzip and plain.
    let base = layer_tar(&[
        ("bin/", 0o755, b""),
        ("bin/app", 0o4755, b"#!/bin/sh\necho app\n"),
        ("etc/", 0o755, b""),
        ("etc/old", 0o644, b"old"),
        ("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n"),
        ("data/", 0o755, b""),
        ("data/a", 0o644, b"a"),
        ("data/b", 0o644, b"b"),
    ]);
    let changes = layer_tar(&[
        ("etc/", 0o755, b""),
        ("etc/.wh.old", 0o644, b""),
        ("etc/new", 0o600, b"new"),
        ("data/", 0o750, b""),
        ("data/.wh..wh..opq", 0o644, b""),
        ("data/c", 0o644, b"c"),
    ]);
    let top = layer_tar(&[("srv/", 0o755, b""), ("srv/index.html", 0o644, b"hello")]);
    let base_gz = gzip(&base);
    let top_gz = gzip(&top);
    let (base_blob, changes_blob, top_blob) = (blob(&base_gz), blob(&changes), blob(&top_gz));
    let docker_config = "application/vnd.docker.container.image.v1+json";
    let (gz, plain) =
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.diff.tar");
    let amd64_config = linux_config(&[&base, &changes, &top], "amd64");
    let amd64 = typed_manifest(
        DOCKER_MANIFEST,
        &amd64_config,
        docker_config,
        &[(&base_blob, gz), (&changes_blob, plain), (&top_blob, gz)],
    );
    // Another architecture's image, listed first in the index: this node must not take it.
    let arm_layer = layer_tar(&[("arm", 0o644, b"arm64")]);
    let arm_blob = blob(&arm_layer);
    let arm64_config = linux_config(&[&arm_layer], "arm64");
    let arm64 = typed_manifest(DOCKER_MANIFEST, &arm64_config, docker_config, &[(&arm_blob, plain)]);
    let entry = |m: &PushManifest, architecture: &str| {
        json!({"mediaType": DOCKER_MANIFEST, "digest": digest(&m.bytes), "size": m.bytes.len(),
               "platform": {"architecture": architecture, "os": "linux"}})
    };
    let index = json!({"schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [entry(&arm64, "arm64"), entry(&amd64, "amd64")]});
    let index = PushManifest { media_type: DOCKER_LIST.into(), bytes: serde_json::to_vec(&index).unwrap().into() };
    let client = RegistryClient::new(ClientOptions::default()).unwrap();
    let blobs = [amd64_config, base_blob, changes_blob, top_blob, arm64_config, arm_blob];
    client
        .push(&registry.reference("private/app:v1"), &credentials, &blobs[..4], std::slice::from_ref(&amd64))
        .await
        .unwrap_or_else(|e| panic!("push: {e}\n{}", registry.log()));
    client
        .push(&registry.reference("private/app:multi"), &credentials, &blobs, &[arm64, amd64.clone(), index])
        .await
        .unwrap();

    // The agent's puller, with the credentials of an imagePullSecret (.dockerconfigjson).
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["embedded.invalid".into()]).unwrap().cert.pem();
    let puller =
        RegistryPuller::open(&dir.path().join("images"), &["https://embedded.invalid"], &ca, "unused", &[]).unwrap();
    let image = format!("{}/private/app:v1", registry.host);
    let error = puller.pull(&image, "Always", &Vec::new(), None).await.unwrap_err();
    assert!(error.to_string().contains("unauthorized"), "{error}");
    let secret = json!({"auths": {(registry.host.clone()): {"auth": "d2hhcmY6d2hhcmYtc2VjcmV0"}}});
    let (progress, watched) = tokio::sync::watch::channel(PullProgress::default());
    let artifact = puller.pull(&image, "IfNotPresent", &vec![secret.clone()], Some(&progress)).await.unwrap();
    let total = base_gz.len() + changes.len() + top_gz.len();
    assert_eq!(
        *watched.borrow(),
        PullProgress { bytes_done: total as u64, bytes_total: total as u64, layers_done: 3, layers_total: 3 }
    );

    assert_eq!(artifact.runtime, "youki");
    assert_eq!(artifact.digest, digest(&amd64.bytes));
    assert_eq!(artifact.config.entrypoint, ["/bin/app"]);
    assert_eq!(artifact.config.cmd, ["--port", "80"]);
    assert_eq!(artifact.config.env, [("PATH".into(), "/bin".into()), ("MODE".into(), "a=b".into())]);
    assert_eq!(
        (artifact.config.working_dir.as_deref(), artifact.config.user.as_deref()),
        (Some("/srv"), Some("1000:1001"))
    );
    // Each layer unpacked once, named by its uncompressed digest, bottom first.
    let layers_root = dir.path().join("images/layers/sha256");
    let wanted: Vec<_> = [&base, &changes, &top].iter().map(|tar| layers_root.join(&digest(tar)[7..])).collect();
    assert_eq!(artifact.layers, wanted);
    assert_eq!(artifact.path, wanted[2]);

    // What a container's rootfs shows: the whiteout hides /etc/old, the opaque /data hides
    // the base's files, owners and modes as in the tars.
    {
        let merged = Overlay::mount(&artifact.layers);
        assert_eq!(entries(&merged.path("etc")), ["new", "passwd"]);
        assert_eq!(entries(&merged.path("data")), ["c"]);
        assert_eq!(std::fs::read(merged.path("srv/index.html")).unwrap(), b"hello");
        use std::os::unix::fs::MetadataExt;
        let app = std::fs::metadata(merged.path("bin/app")).unwrap();
        assert_eq!((app.mode() & 0o7777, app.uid(), app.gid()), (0o4755, 1000, 1001));
        assert_eq!(std::fs::metadata(merged.path("data")).unwrap().mode() & 0o777, 0o750);
    }

    // The multi-arch index: this node takes linux/amd64, and shares the layers already there.
    let multi = format!("{}/private/app:multi", registry.host);
    let (progress, watched) = tokio::sync::watch::channel(PullProgress::default());
    let from_index = puller.pull(&multi, "Always", &vec![secret], Some(&progress)).await.unwrap();
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(from_index.digest, artifact.digest);
        assert_eq!(from_index.layers, artifact.layers);
        assert_eq!(watched.borrow().layers_done, 3);
        assert_eq!(entries(&layers_root).len(), 3, "the layers are shared, not unpacked again");
    }
}

#[tokio::test]
async fn a_layer_that_does_not_match_its_diff_id_is_refused_and_leaves_nothing() {
    let registry = DockerRegistry::start(false);
    let (dir, store) = new_store();
    let good = layer_tar(&[("file", 0o644, b"content")]);
    let other = layer_tar(&[("file", 0o644, b"other content")]);
    let good_gz = gzip(&good);
    let layer = blob(&good_gz);
    // The config claims the layer holds `other`.
    let config = linux_config(&[&other], "amd64");
    let tar_gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    let bad = manifest(&config, "application/vnd.oci.image.config.v1+json", &[(&layer, tar_gzip)]);
    let anonymous = Credentials::Anonymous;
    client_push(&store, &registry, "bad/app:v1", &[config, layer], &bad).await;

    let error = store.pull(&registry.reference("bad/app:v1"), &anonymous, PullPolicy::Always).await.unwrap_err();
    assert!(matches!(error, ImageError::Invalid { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("its uncompressed content has digest {}", digest(&good)))
            && message.contains(&digest(&other))
            && message.contains(&format!("layer {}", digest(&good_gz))),
        "{message}"
    );
    assert_eq!(error.reason(), "ErrImagePull");
    assert!(entries(&dir.path().join("images/layers/sha256")).is_empty(), "a layer dir was left");
    assert!(entries(&dir.path().join("images/tmp")).is_empty(), "a temporary dir was left");

    // A config without diff_ids is refused before anything is unpacked.
    let config = blob(br#"{"architecture":"amd64","os":"linux","config":{}}"#);
    let layer = blob(&good_gz);
    let no_ids = manifest(&config, "application/vnd.oci.image.config.v1+json", &[(&layer, tar_gzip)]);
    client_push(&store, &registry, "bad/app:no-ids", &[config, layer], &no_ids).await;
    let error = store.pull(&registry.reference("bad/app:no-ids"), &anonymous, PullPolicy::Always).await.unwrap_err();
    assert!(error.to_string().contains("lists 0 rootfs.diff_ids for the manifest's 1 layers"), "{error}");
    assert!(entries(&dir.path().join("images/layers/sha256")).is_empty());
}

async fn client_push(
    store: &ImageStore,
    registry: &DockerRegistry,
    name: &str,
    blobs: &[PushBlob],
    manifest: &PushManifest,
) {
    store
        .client()
        .push(&registry.reference(name), &Credentials::Anonymous, blobs, std::slice::from_ref(manifest))
        .await
        .unwrap_or_else(|e| panic!("push {name}: {e}\n{}", registry.log()));
}
