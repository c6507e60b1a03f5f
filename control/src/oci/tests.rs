//! The registry driven through `handle`, as the API router calls it: no sockets.

use super::*;
use bytes::Bytes;
use http_body_util::BodyExt;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The distribution error code of an error answer.
    fn code(&self) -> String {
        self.json()["errors"][0]["code"].as_str().expect("an errors list").to_string()
    }
}

async fn call(registry: &Registry, method: &str, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Reply {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let response = registry.handle(&method, &uri.parse().unwrap(), &map, body.into()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body }
}

fn open() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry")).unwrap();
    (dir, registry)
}

async fn push_blob(registry: &Registry, name: &str, content: &[u8]) -> String {
    let digest = sha256_digest(content);
    let reply =
        call(registry, "POST", &format!("/v2/{name}/blobs/uploads/?digest={digest}"), &[], content.to_vec()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    digest
}

fn image_manifest(config: &str, layers: &[&str]) -> Vec<u8> {
    let layers: Vec<_> =
        layers.iter().map(|d| json!({"mediaType": "application/wasm", "digest": d, "size": 1})).collect();
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 1},
        "layers": layers,
    })
    .to_string()
    .into_bytes()
}

#[test]
fn paths_name_their_targets() {
    assert_eq!(parse_target("/v2/"), Some(Target::Base));
    assert_eq!(parse_target("/v2"), Some(Target::Base));
    assert_eq!(parse_target("/v2/_catalog"), Some(Target::Catalog));
    assert_eq!(parse_target("/v2/a/b/tags/list"), Some(Target::Tags("a/b")));
    assert_eq!(parse_target("/v2/a/b/manifests/v1"), Some(Target::Manifest("a/b", "v1")));
    assert_eq!(parse_target("/v2/a/blobs/sha256:x"), Some(Target::Blob("a", "sha256:x")));
    assert_eq!(parse_target("/v2/a/blobs/uploads/"), Some(Target::UploadStart("a")));
    assert_eq!(parse_target("/v2/a/blobs/uploads"), Some(Target::UploadStart("a")));
    assert_eq!(parse_target("/v2/a/blobs/uploads/id"), Some(Target::Upload("a", "id")));
    assert_eq!(parse_target("/v2/manifests/manifests/x"), Some(Target::Manifest("manifests", "x")));
    assert_eq!(parse_target("/v2/a"), None);
    assert_eq!(parse_target("/api/v1"), None);
}

#[tokio::test]
async fn base_answers_empty_json_with_the_api_version() {
    let (_dir, registry) = open();
    let reply = call(&registry, "GET", "/v2/", &[], Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({}));
    assert_eq!(reply.header("docker-distribution-api-version"), "registry/2.0");
}

#[tokio::test]
async fn monolithic_upload_is_verified_and_shared_across_repositories() {
    let (_dir, registry) = open();
    let wrong = sha256_digest(b"other");
    let reply = call(&registry, "POST", &format!("/v2/a/blobs/uploads/?digest={wrong}"), &[], "data").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "DIGEST_INVALID");
    assert_eq!(call(&registry, "HEAD", &format!("/v2/a/blobs/{wrong}"), &[], Body::empty()).await.status, 404);

    let digest = push_blob(&registry, "a", b"data").await;
    let head = call(&registry, "HEAD", &format!("/v2/a/blobs/{digest}"), &[], Body::empty()).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), "4");
    assert_eq!(head.header("docker-content-digest"), digest);
    assert!(head.body.is_empty());
    // Content-addressed: the same blob through another repository name.
    let get = call(&registry, "GET", &format!("/v2/other/name/blobs/{digest}"), &[], Body::empty()).await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(&get.body[..], b"data");

    let missing = call(&registry, "GET", &format!("/v2/a/blobs/{}", sha256_digest(b"x")), &[], Body::empty()).await;
    assert_eq!((missing.status, missing.code().as_str()), (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"));
    let bad = call(&registry, "GET", "/v2/a/blobs/sha256:nothex", &[], Body::empty()).await;
    assert_eq!((bad.status, bad.code().as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    let delete = call(&registry, "DELETE", &format!("/v2/a/blobs/{digest}"), &[], Body::empty()).await;
    assert_eq!((delete.status, delete.code().as_str()), (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"));
}

#[tokio::test]
async fn chunked_upload_checks_ranges_and_survives_a_restart() {
    let (dir, registry) = open();
    let start = call(&registry, "POST", "/v2/app/blobs/uploads/", &[], Body::empty()).await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let location = start.header("location").to_string();
    assert!(location.starts_with("/v2/app/blobs/uploads/"), "{location}");
    assert_eq!(start.header("range"), "0-0");

    let first = call(&registry, "PATCH", &location, &[("content-range", "0-4")], "hello").await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(first.header("range"), "0-4");
    let out_of_order = call(&registry, "PATCH", &location, &[("content-range", "2-6")], "xxxxx").await;
    assert_eq!(out_of_order.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(out_of_order.header("range"), "0-4");
    let second = call(&registry, "PATCH", &location, &[], " wor").await;
    assert_eq!(second.header("range"), "0-8");
    let status = call(&registry, "GET", &location, &[], Body::empty()).await;
    assert_eq!((status.status, status.header("range")), (StatusCode::NO_CONTENT, "0-8"));

    // A new process has no hash state in memory and rebuilds it from the file.
    drop(registry);
    let registry = Registry::open(dir.path().join("registry")).unwrap();
    let digest = sha256_digest(b"hello world");
    let wrong = call(&registry, "PUT", &format!("{location}?digest={}", sha256_digest(b"no")), &[], "ld").await;
    assert_eq!((wrong.status, wrong.code().as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    // A failed finish discards the upload.
    let gone = call(&registry, "PATCH", &location, &[], "x").await;
    assert_eq!((gone.status, gone.code().as_str()), (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"));

    let start = call(&registry, "POST", "/v2/app/blobs/uploads", &[], Body::empty()).await;
    let location = start.header("location").to_string();
    call(&registry, "PATCH", &location, &[], "hello wor").await;
    let done = call(&registry, "PUT", &format!("{location}?digest={digest}"), &[], "ld").await;
    assert_eq!(done.status, StatusCode::CREATED);
    assert_eq!(done.header("location"), format!("/v2/app/blobs/{digest}"));
    assert_eq!(done.header("docker-content-digest"), digest);
    let get = call(&registry, "GET", &format!("/v2/app/blobs/{digest}"), &[], Body::empty()).await;
    assert_eq!(&get.body[..], b"hello world");
    assert_eq!(call(&registry, "GET", &location, &[], Body::empty()).await.status, StatusCode::NOT_FOUND);

    let cancelled = call(&registry, "POST", "/v2/app/blobs/uploads/", &[], Body::empty()).await;
    let location = cancelled.header("location").to_string();
    assert_eq!(call(&registry, "DELETE", &location, &[], Body::empty()).await.status, StatusCode::NO_CONTENT);
    assert_eq!(call(&registry, "DELETE", &location, &[], Body::empty()).await.status, StatusCode::NOT_FOUND);
    let traversal = call(&registry, "PATCH", "/v2/app/blobs/uploads/..%2F..%2Fx", &[], "x").await;
    assert_eq!(traversal.code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn blobs_over_the_limit_are_refused() {
    let (_dir, mut registry) = open();
    registry.max_blob_size = 8;
    let digest = sha256_digest(b"0123456789");
    let reply = call(&registry, "POST", &format!("/v2/a/blobs/uploads/?digest={digest}"), &[], "0123456789").await;
    assert_eq!((reply.status, reply.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"));
    assert_eq!(call(&registry, "HEAD", &format!("/v2/a/blobs/{digest}"), &[], Body::empty()).await.status, 404);
    let big = vec![b'{'; MAX_MANIFEST_SIZE + 1];
    let reply = call(&registry, "PUT", "/v2/a/manifests/v1", &[], big).await;
    assert_eq!((reply.status, reply.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"));
}

#[tokio::test]
async fn manifests_need_their_blobs_and_are_served_by_tag_and_digest() {
    let (_dir, registry) = open();
    let config = sha256_digest(b"{}");
    let layer = sha256_digest(b"\0asm");
    let manifest = image_manifest(&config, &[&layer]);
    let digest = sha256_digest(&manifest);

    let missing = call(&registry, "PUT", "/v2/lib/hello/manifests/v1", &[], manifest.clone()).await;
    assert_eq!((missing.status, missing.code().as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"));
    assert!(missing.json()["errors"][0]["message"].as_str().unwrap().contains(&config));
    push_blob(&registry, "lib/hello", b"{}").await;
    push_blob(&registry, "lib/hello", b"\0asm").await;

    let wrong = call(&registry, "PUT", &format!("/v2/lib/hello/manifests/{config}"), &[], manifest.clone()).await;
    assert_eq!(wrong.code(), "DIGEST_INVALID");
    let put = call(&registry, "PUT", "/v2/lib/hello/manifests/v1", &[], manifest.clone()).await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_eq!(put.header("docker-content-digest"), digest);
    assert_eq!(put.header("location"), format!("/v2/lib/hello/manifests/{digest}"));

    for reference in ["v1", digest.as_str()] {
        let get = call(&registry, "GET", &format!("/v2/lib/hello/manifests/{reference}"), &[], Body::empty()).await;
        assert_eq!(get.status, StatusCode::OK);
        assert_eq!(get.header("content-type"), OCI_MANIFEST);
        assert_eq!(get.header("docker-content-digest"), digest);
        assert_eq!(&get.body[..], &manifest[..]);
        let head = call(&registry, "HEAD", &format!("/v2/lib/hello/manifests/{reference}"), &[], Body::empty()).await;
        assert_eq!(head.header("content-length"), manifest.len().to_string());
        assert!(head.body.is_empty());
    }
    // Linked to lib/hello only, although the blob is shared.
    let elsewhere = call(&registry, "GET", &format!("/v2/other/manifests/{digest}"), &[], Body::empty()).await;
    assert_eq!((elsewhere.status, elsewhere.code().as_str()), (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"));
    let unknown = call(&registry, "GET", "/v2/lib/hello/manifests/v2", &[], Body::empty()).await;
    assert_eq!(unknown.code(), "MANIFEST_UNKNOWN");

    // A Docker v2 manifest without mediaType takes its type from Content-Type.
    let mut docker: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    docker.as_object_mut().unwrap().remove("mediaType");
    let docker = docker.to_string();
    let put =
        call(&registry, "PUT", "/v2/lib/hello/manifests/docker", &[("content-type", DOCKER_MANIFEST)], docker).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let get = call(&registry, "GET", "/v2/lib/hello/manifests/docker", &[], Body::empty()).await;
    assert_eq!(get.header("content-type"), DOCKER_MANIFEST);

    for bad in [&b"not json"[..], br#"{"schemaVersion":1,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#] {
        let reply = call(&registry, "PUT", "/v2/lib/hello/manifests/bad", &[], bad.to_vec()).await;
        assert_eq!((reply.status, reply.code().as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"));
    }
    let untyped = call(&registry, "PUT", "/v2/lib/hello/manifests/bad", &[], r#"{"schemaVersion":2}"#).await;
    assert_eq!(untyped.code(), "MANIFEST_INVALID");
}

#[tokio::test]
async fn an_index_needs_its_manifests_in_the_same_repository() {
    let (_dir, registry) = open();
    let config = push_blob(&registry, "app", b"{}").await;
    let manifest = image_manifest(&config, &[]);
    let child = sha256_digest(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": manifest.len(),
                       "platform": {"architecture": "wasm", "os": "wasip1"}}],
    })
    .to_string();
    let early = call(&registry, "PUT", "/v2/app/manifests/multi", &[], index.clone()).await;
    assert_eq!(early.code(), "MANIFEST_BLOB_UNKNOWN");
    let put = call(&registry, "PUT", &format!("/v2/app/manifests/{child}"), &[], manifest).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let put = call(&registry, "PUT", "/v2/app/manifests/multi", &[], index).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let get = call(&registry, "GET", "/v2/app/manifests/multi", &[], Body::empty()).await;
    assert_eq!(get.header("content-type"), OCI_INDEX);
}

#[tokio::test]
async fn tags_catalog_and_deletes() {
    let (_dir, registry) = open();
    let config = push_blob(&registry, "x", b"{}").await;
    let one = image_manifest(&config, &[]);
    let mut two: serde_json::Value = serde_json::from_slice(&one).unwrap();
    two["annotations"] = json!({"n": "2"});
    let two = two.to_string().into_bytes();
    for (name, tag, manifest) in
        [("b/nested/deep", "v1", &one), ("a", "v1", &one), ("a", "latest", &one), ("a", "v2", &two)]
    {
        let put = call(&registry, "PUT", &format!("/v2/{name}/manifests/{tag}"), &[], manifest.clone()).await;
        assert_eq!(put.status, StatusCode::CREATED);
    }
    let catalog = call(&registry, "GET", "/v2/_catalog", &[], Body::empty()).await;
    assert_eq!(catalog.json(), json!({"repositories": ["a", "b/nested/deep"]}));
    let first = call(&registry, "GET", "/v2/_catalog?n=1", &[], Body::empty()).await;
    assert_eq!(first.json(), json!({"repositories": ["a"]}));
    assert_eq!(first.header("link"), "</v2/_catalog?n=1&last=a>; rel=\"next\"");
    let next = call(&registry, "GET", "/v2/_catalog?n=1&last=a", &[], Body::empty()).await;
    assert_eq!(next.json(), json!({"repositories": ["b/nested/deep"]}));
    assert!(next.headers.get("link").is_none());

    let tags = call(&registry, "GET", "/v2/a/tags/list", &[], Body::empty()).await;
    assert_eq!(tags.json(), json!({"name": "a", "tags": ["latest", "v1", "v2"]}));
    let paged = call(&registry, "GET", "/v2/a/tags/list?n=2&last=latest", &[], Body::empty()).await;
    assert_eq!(paged.json(), json!({"name": "a", "tags": ["v1", "v2"]}));
    let unknown = call(&registry, "GET", "/v2/nope/tags/list", &[], Body::empty()).await;
    assert_eq!((unknown.status, unknown.code().as_str()), (StatusCode::NOT_FOUND, "NAME_UNKNOWN"));

    // Deleting a tag keeps the manifest; deleting the digest drops every tag on it.
    assert_eq!(call(&registry, "DELETE", "/v2/a/manifests/v2", &[], Body::empty()).await.status, 202);
    assert_eq!(call(&registry, "DELETE", "/v2/a/manifests/v2", &[], Body::empty()).await.status, 404);
    let digest = sha256_digest(&one);
    assert_eq!(call(&registry, "DELETE", &format!("/v2/a/manifests/{digest}"), &[], Body::empty()).await.status, 202);
    let tags = call(&registry, "GET", "/v2/a/tags/list", &[], Body::empty()).await;
    assert_eq!(tags.json(), json!({"name": "a", "tags": []}));
    let gone = call(&registry, "GET", &format!("/v2/a/manifests/{digest}"), &[], Body::empty()).await;
    assert_eq!(gone.code(), "MANIFEST_UNKNOWN");
    // Still there for the other repository.
    let kept = call(&registry, "GET", "/v2/b/nested/deep/manifests/v1", &[], Body::empty()).await;
    assert_eq!(kept.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_names_methods_and_paths_answer_spec_errors() {
    let (_dir, registry) = open();
    let reply = call(&registry, "GET", "/v2/Upper/tags/list", &[], Body::empty()).await;
    assert_eq!((reply.status, reply.code().as_str()), (StatusCode::BAD_REQUEST, "NAME_INVALID"));
    let reply = call(&registry, "GET", "/v2/a/../b/tags/list", &[], Body::empty()).await;
    assert_eq!(reply.code(), "NAME_INVALID");
    let reply = call(&registry, "POST", "/v2/a/manifests/v1", &[], Body::empty()).await;
    assert_eq!((reply.status, reply.code().as_str()), (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"));
    let reply = call(&registry, "GET", "/v2/a", &[], Body::empty()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header("content-type"), "application/json");
    let reply = call(&registry, "PUT", "/v2/a/manifests/bad%tag", &[], "{}").await;
    assert_eq!(reply.code(), "TAG_INVALID");

    let denied = unauthorized();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(denied.headers()[header::WWW_AUTHENTICATE], "Bearer realm=\"wharf\"");
}

// --- Two servers sharing one registry through Postgres --------------------------------------

/// Runs `test` with the shared files of a fresh database `wharf_t_<random>` on the test
/// Postgres (and their pool), then drops the database, also when the test fails.
async fn with_shared_files<F, Fut>(test: F)
where
    F: FnOnce(crate::store::SharedFiles, sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    let url = std::env::var("WHARF_TEST_DATABASE_URL")
        .expect("set WHARF_TEST_DATABASE_URL (scripts/test starts Debian's postgresql)");
    let options: PgConnectOptions = url.parse().expect("WHARF_TEST_DATABASE_URL is a postgres:// URL");
    let admin =
        PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await.expect("connect to Postgres");
    let database = format!("wharf_t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).execute(&admin).await.unwrap();
    let pool = PgPoolOptions::new().max_connections(2).connect_with(options.database(&database)).await.unwrap();
    let outcome = match crate::store::SharedFiles::init(pool.clone()).await {
        Ok(files) => tokio::spawn(test(files, pool.clone())).await.map_err(|e| e.into_panic()),
        Err(e) => Err(Box::new(format!("shared files: {e}")) as Box<dyn std::any::Any + Send>),
    };
    pool.close().await;
    let dropped =
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {database} WITH (FORCE)"))).execute(&admin).await;
    admin.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    dropped.expect("drop the test database");
}

/// Two servers' registries: each its own directory, one database.
fn two_servers(files: &crate::store::SharedFiles) -> (tempfile::TempDir, Registry, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let a = Registry::open(dir.path().join("a")).unwrap().with_shared(Some(files.clone()));
    let b = Registry::open(dir.path().join("b")).unwrap().with_shared(Some(files.clone()));
    (dir, a, b)
}

#[tokio::test]
async fn an_image_pushed_through_one_server_is_pulled_through_another() {
    with_shared_files(|files, _| async move {
        let (dir, a, b) = two_servers(&files);
        assert_eq!((a.max_blob_size, b.max_blob_size), (MAX_SHARED_BLOB_SIZE, MAX_SHARED_BLOB_SIZE));
        // A monolithic upload and a chunked one, both through server a.
        let config = push_blob(&a, "lib/app", b"{}").await;
        let start = call(&a, "POST", "/v2/lib/app/blobs/uploads/", &[], Body::empty()).await;
        let location = start.header("location").to_string();
        assert_eq!(call(&a, "PATCH", &location, &[], "\0asm").await.status, StatusCode::ACCEPTED);
        let layer = sha256_digest(b"\0asm layer");
        let done = call(&a, "PUT", &format!("{location}?digest={layer}"), &[], " layer").await;
        assert_eq!(done.status, StatusCode::CREATED, "{:?}", done.body);
        let manifest = image_manifest(&config, &[&layer]);
        let digest = sha256_digest(&manifest);
        let put = call(&a, "PUT", "/v2/lib/app/manifests/v1", &[], manifest.clone()).await;
        assert_eq!(put.status, StatusCode::CREATED, "{:?}", put.body);

        // Server b has none of it on disk and serves all of it.
        let b_blobs = dir.path().join("b/blobs/sha256");
        assert!(!b_blobs.join(digest_hex(&layer).unwrap()).exists());
        for reference in ["v1", digest.as_str()] {
            let get = call(&b, "GET", &format!("/v2/lib/app/manifests/{reference}"), &[], Body::empty()).await;
            assert_eq!(get.status, StatusCode::OK, "{reference}: {:?}", get.body);
            assert_eq!(get.header("content-type"), OCI_MANIFEST);
            assert_eq!(get.header("docker-content-digest"), digest);
            assert_eq!(&get.body[..], &manifest[..]);
        }
        let head = call(&b, "HEAD", &format!("/v2/lib/app/blobs/{config}"), &[], Body::empty()).await;
        assert_eq!((head.status, head.header("content-length")), (StatusCode::OK, "2"));
        // Two pulls at once on b: one fetch, both served.
        let uri = format!("/v2/lib/app/blobs/{layer}");
        let (get, again) =
            tokio::join!(call(&b, "GET", &uri, &[], Body::empty()), call(&b, "GET", &uri, &[], Body::empty()));
        assert_eq!((get.status, &get.body[..]), (StatusCode::OK, &b"\0asm layer"[..]));
        assert_eq!((again.status, &again.body[..]), (StatusCode::OK, &b"\0asm layer"[..]));
        assert!(b.storage.fetching.lock().unwrap().is_empty());
        // Fetched once, then kept in b's cache.
        assert_eq!(std::fs::read(b_blobs.join(digest_hex(&layer).unwrap())).unwrap(), b"\0asm layer");

        let tags = call(&b, "GET", "/v2/lib/app/tags/list", &[], Body::empty()).await;
        assert_eq!(tags.json(), json!({"name": "lib/app", "tags": ["v1"]}));
        let catalog = call(&b, "GET", "/v2/_catalog", &[], Body::empty()).await;
        assert_eq!(catalog.json(), json!({"repositories": ["lib/app"]}));
        // Server b knows the blobs a received: a mount and a manifest in another repository.
        let mount =
            call(&b, "POST", &format!("/v2/other/blobs/uploads/?mount={config}&from=lib/app"), &[], Body::empty())
                .await;
        assert_eq!(mount.status, StatusCode::CREATED);
        let bare = image_manifest(&config, &[]);
        assert_eq!(call(&b, "PUT", "/v2/other/manifests/v1", &[], bare).await.status, StatusCode::CREATED);
        let catalog = call(&a, "GET", "/v2/_catalog", &[], Body::empty()).await;
        assert_eq!(catalog.json(), json!({"repositories": ["lib/app", "other"]}));

        // The shared limit holds on every upload path, and a refused blob is stored nowhere.
        let mut small = Registry::open(dir.path().join("c")).unwrap().with_shared(Some(files.clone()));
        small.max_blob_size = 8;
        let big = sha256_digest(b"0123456789");
        let reply = call(&small, "POST", &format!("/v2/a/blobs/uploads/?digest={big}"), &[], "0123456789").await;
        assert_eq!((reply.status, reply.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"));
        let start = call(&small, "POST", "/v2/a/blobs/uploads/", &[], Body::empty()).await;
        let location = start.header("location").to_string();
        let reply = call(&small, "PUT", &format!("{location}?digest={big}"), &[], "0123456789").await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(call(&b, "HEAD", &format!("/v2/a/blobs/{big}"), &[], Body::empty()).await.status, 404);
        assert!(files.get(&format!("registry/blobs/sha256/{}", digest_hex(&big).unwrap())).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn tags_moved_or_deleted_on_one_server_are_seen_by_another() {
    with_shared_files(|files, _| async move {
        let (_dir, a, b) = two_servers(&files);
        let config = push_blob(&a, "app", b"{}").await;
        let one = image_manifest(&config, &[]);
        let mut two: serde_json::Value = serde_json::from_slice(&one).unwrap();
        two["annotations"] = json!({"n": "2"});
        let two = two.to_string().into_bytes();
        let (one_digest, two_digest) = (sha256_digest(&one), sha256_digest(&two));
        for (tag, manifest) in [("latest", &one), ("v1", &one), ("v2", &two)] {
            let put = call(&a, "PUT", &format!("/v2/app/manifests/{tag}"), &[], manifest.clone()).await;
            assert_eq!(put.status, StatusCode::CREATED);
        }
        let latest = call(&b, "HEAD", "/v2/app/manifests/latest", &[], Body::empty()).await;
        assert_eq!(latest.header("docker-content-digest"), one_digest);

        // Retag through b: a sees the tag's new manifest.
        let put = call(&b, "PUT", "/v2/app/manifests/latest", &[], two.clone()).await;
        assert_eq!(put.status, StatusCode::CREATED);
        let latest = call(&a, "GET", "/v2/app/manifests/latest", &[], Body::empty()).await;
        assert_eq!((latest.header("docker-content-digest"), &latest.body[..]), (two_digest.as_str(), &two[..]));

        // A tag deleted through a is gone on b.
        assert_eq!(call(&a, "DELETE", "/v2/app/manifests/v2", &[], Body::empty()).await.status, 202);
        let gone = call(&b, "GET", "/v2/app/manifests/v2", &[], Body::empty()).await;
        assert_eq!((gone.status, gone.code().as_str()), (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"));
        assert_eq!(call(&b, "DELETE", "/v2/app/manifests/v2", &[], Body::empty()).await.status, 404);
        let tags = call(&b, "GET", "/v2/app/tags/list", &[], Body::empty()).await;
        assert_eq!(tags.json(), json!({"name": "app", "tags": ["latest", "v1"]}));

        // A manifest deleted through b, with its tags, is gone on a.
        let delete = call(&b, "DELETE", &format!("/v2/app/manifests/{one_digest}"), &[], Body::empty()).await;
        assert_eq!(delete.status, 202);
        let gone = call(&a, "GET", &format!("/v2/app/manifests/{one_digest}"), &[], Body::empty()).await;
        assert_eq!(gone.code(), "MANIFEST_UNKNOWN");
        assert_eq!(call(&a, "GET", "/v2/app/manifests/v1", &[], Body::empty()).await.code(), "MANIFEST_UNKNOWN");
        let tags = call(&a, "GET", "/v2/app/tags/list", &[], Body::empty()).await;
        assert_eq!(tags.json(), json!({"name": "app", "tags": ["latest"]}));
        let kept = call(&a, "GET", &format!("/v2/app/manifests/{two_digest}"), &[], Body::empty()).await;
        assert_eq!(kept.status, StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_shared_blob_is_refused_not_served() {
    with_shared_files(|files, _| async move {
        let (dir, a, b) = two_servers(&files);
        let layer = push_blob(&a, "app", b"the real layer").await;
        let config = push_blob(&a, "app", b"{}").await;
        let manifest = image_manifest(&config, &[&layer]);
        let digest = sha256_digest(&manifest);
        assert_eq!(call(&a, "PUT", "/v2/app/manifests/v1", &[], manifest.clone()).await.status, 201);
        let hex = digest_hex(&layer).unwrap();
        files.put(&format!("registry/blobs/sha256/{hex}"), b"tampered").await.unwrap();
        files.put(&format!("registry/blobs/sha256/{}", digest_hex(&digest).unwrap()), b"{}").await.unwrap();

        for method in ["GET", "HEAD"] {
            let reply = call(&b, method, &format!("/v2/app/blobs/{layer}"), &[], Body::empty()).await;
            assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{method}");
            assert!(!reply.body.windows(8).any(|w| w == b"tampered"));
        }
        let reply = call(&b, "GET", "/v2/app/manifests/v1", &[], Body::empty()).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        // Nothing corrupt was cached on b.
        assert!(!dir.path().join("b/blobs/sha256").join(hex).exists());
        assert!(!dir.path().join("b/blobs/sha256").join(digest_hex(&digest).unwrap()).exists());
        // Server a verified its copies when they were pushed and still serves them.
        let get = call(&a, "GET", &format!("/v2/app/blobs/{layer}"), &[], Body::empty()).await;
        assert_eq!((get.status, &get.body[..]), (StatusCode::OK, &b"the real layer"[..]));
        let get = call(&a, "GET", "/v2/app/manifests/v1", &[], Body::empty()).await;
        assert_eq!((get.status, &get.body[..]), (StatusCode::OK, &manifest[..]));
    })
    .await;
}

#[tokio::test]
async fn a_write_the_database_refuses_fails_and_leaves_no_blob_behind() {
    with_shared_files(|files, pool| async move {
        let (dir, a, _b) = two_servers(&files);
        let config = push_blob(&a, "app", b"{}").await;
        pool.close().await;
        let content = b"never shared";
        let digest = sha256_digest(content);
        let reply = call(&a, "POST", &format!("/v2/app/blobs/uploads/?digest={digest}"), &[], &content[..]).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        // Not kept here either: a retry uploads it again rather than finding a local-only blob.
        assert!(!dir.path().join("a/blobs/sha256").join(digest_hex(&digest).unwrap()).exists());
        assert_eq!(call(&a, "HEAD", &format!("/v2/app/blobs/{digest}"), &[], Body::empty()).await.status, 500);
        let manifest = image_manifest(&config, &[]);
        let reply = call(&a, "PUT", "/v2/app/manifests/v1", &[], manifest).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(call(&a, "GET", "/v2/app/tags/list", &[], Body::empty()).await.status, 500);
    })
    .await;
}
