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
