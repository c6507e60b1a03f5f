//! The embedded OCI distribution registry: the `/v2/` API of the OCI distribution spec over a
//! directory, so one machine needs no other registry. Authentication happens before
//! [`Registry::handle`]; errors use the spec's `{"errors":[{"code","message"}]}` body, not a
//! Kubernetes `Status`. Bodies are streamed to disk, never held in memory, up to
//! [`MAX_BLOB_SIZE`] per blob and [`MAX_MANIFEST_SIZE`] per manifest.
//!
//! Served: `GET /v2/`, `GET /v2/_catalog`, `GET /v2/<name>/tags/list` (both with `n`/`last`
//! paging), `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<tag|digest>`, `GET|HEAD
//! /v2/<name>/blobs/<digest>`, and uploads: `POST /v2/<name>/blobs/uploads/` (a session, a
//! monolithic `?digest=` upload, or a `?mount=` of a blob the registry already has), `PATCH`,
//! `PUT ?digest=`, `GET` and `DELETE` on the session. Blobs are shared by all repositories, so a
//! blob is readable through any repository name; deleting a blob is not supported (it may
//! belong to several repositories).
//!
//! On one server (SQLite) the directory is the registry. When the servers of a cluster share
//! one Postgres database ([`Registry::with_shared`]), the registry's content is kept in the
//! database's shared files too, so an image pushed or imported through one server is pulled
//! through any other: every write goes to the local directory and then to the database; tags,
//! manifest links and the repository and tag lists are read from the database (another server
//! may have changed them); blobs are read from the local directory, which caches them: one
//! missing here is fetched from the database, checked against its digest (a corrupt one is
//! refused, never served), kept, then served. An upload in progress lives on the server that
//! started it, so a chunked upload must go to one server from its `POST` to its final `PUT`
//! (registry clients keep one connection, or one address, per push). A database value holds
//! less than 1 GiB, so a shared registry accepts blobs up to [`MAX_SHARED_BLOB_SIZE`] (every
//! upload path checks the same limit); see `storage.rs` for the layout.

mod storage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::storage::{Storage, digest_hex, sha256_digest, valid_name, valid_tag, valid_upload_id};

/// Largest blob accepted.
pub const MAX_BLOB_SIZE: u64 = 2 << 30;
/// Largest blob accepted by a registry whose content is shared through the database: a
/// Postgres `bytea` value holds less than 1 GiB, and its row travels in one message, so 1 MiB
/// is left for the headers.
pub const MAX_SHARED_BLOB_SIZE: u64 = (1 << 30) - (1 << 20);
/// Largest manifest accepted (the spec asks registries to take at least 4 MiB).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// An answer in the distribution spec's error format.
#[derive(Debug)]
struct OciError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl OciError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// A failure of this server: logged here, never detailed to the client.
    fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "registry: {context}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", "internal error; see the server log")
    }

    fn digest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
    }

    fn manifest_unknown(name: &str, reference: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", format!("manifest unknown: {name}:{reference}"))
    }

    fn manifest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
    }

    fn upload_unknown(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", format!("blob upload unknown: {id}"))
    }

    fn too_large(limit: u64) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID", format!("content is larger than {limit} bytes"))
    }

    fn unsupported() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", "the operation is unsupported")
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"code": self.code, "message": self.message}]}).to_string();
        (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

type Result<T, E = OciError> = std::result::Result<T, E>;

/// The answer to a `/v2/` request without valid credentials: a 401 in the distribution error
/// format with the `WWW-Authenticate` challenge registry clients expect.
pub fn unauthorized() -> Response {
    let mut response =
        OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required").into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"wharf\""));
    response.headers_mut().insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

/// What a `/v2/` path addresses.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
}

/// Splits a path into its target. Names may contain `/`, so the suffix decides.
fn parse_target(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Target::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Target::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
        return Some(Target::UploadStart(name));
    }
    let (head, last) = rest.rsplit_once('/')?;
    if let Some(name) = head.strip_suffix("/blobs/uploads") {
        return Some(Target::Upload(name, last));
    }
    if let Some(name) = head.strip_suffix("/blobs") {
        return Some(Target::Blob(name, last));
    }
    head.strip_suffix("/manifests").map(|name| Target::Manifest(name, last))
}

/// The media type a manifest declares, else the one it was sent with.
fn manifest_media_type(manifest: &serde_json::Value, headers: &HeaderMap) -> Option<String> {
    if let Some(declared) = manifest.get("mediaType").and_then(|v| v.as_str()) {
        return Some(declared.to_string());
    }
    let sent = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())?;
    let sent = sent.split(';').next().unwrap_or_default().trim();
    (!sent.is_empty()).then(|| sent.to_string())
}

/// The digests a manifest needs: blobs (config, layers) or child manifests (an index's entries).
fn references(manifest: &serde_json::Value, media_type: &str) -> Result<(Vec<String>, Vec<String>)> {
    let digests = |key: &str| -> Result<Vec<String>> {
        let descriptors = match manifest.get(key) {
            None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
            Some(serde_json::Value::Array(list)) => list.iter().collect(),
            Some(one @ serde_json::Value::Object(_)) => vec![one],
            Some(_) => return Err(OciError::manifest_invalid(format!("{key} must be a descriptor or a list"))),
        };
        descriptors
            .into_iter()
            .map(|d| match d.get("digest").and_then(|v| v.as_str()) {
                Some(digest) if digest_hex(digest).is_some() => Ok(digest.to_string()),
                Some(digest) => Err(OciError::manifest_invalid(format!("unsupported digest {digest:?} in {key}"))),
                None => Err(OciError::manifest_invalid(format!("a descriptor in {key} has no digest"))),
            })
            .collect()
    };
    if manifest.get("schemaVersion").and_then(|v| v.as_i64()) != Some(2) {
        return Err(OciError::manifest_invalid("schemaVersion must be 2"));
    }
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            if manifest.get("config").is_none() {
                return Err(OciError::manifest_invalid("an image manifest needs a config"));
            }
            let mut blobs = digests("config")?;
            blobs.extend(digests("layers")?);
            Ok((blobs, Vec::new()))
        }
        OCI_INDEX | DOCKER_LIST => Ok((Vec::new(), digests("manifests")?)),
        other => Err(OciError::manifest_invalid(format!("unsupported manifest media type {other:?}"))),
    }
}

fn response(status: StatusCode, headers: Vec<(HeaderName, String)>, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// `Range` of an upload holding `size` bytes, as distribution clients read it.
fn range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// How far a hashed upload has got; lost on restart, then rebuilt from the file.
struct UploadState {
    size: u64,
    hasher: Sha256,
}

/// The registry over one directory. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Registry {
    storage: Storage,
    uploads: Mutex<HashMap<String, UploadState>>,
    max_blob_size: u64,
}

impl Registry {
    /// Opens (creating if needed) the registry kept under `root`, e.g. `DATA_DIR/registry`.
    pub fn open(root: PathBuf) -> Result<Self, crate::Error> {
        let storage = Storage::open(root.clone())
            .map_err(|e| crate::Error::Internal(format!("cannot open the registry in {}: {e}", root.display())))?;
        Ok(Self { storage, uploads: Mutex::new(HashMap::new()), max_blob_size: MAX_BLOB_SIZE })
    }

    /// Keeps the registry's content in `shared` too (write-through), so every server of a
    /// cluster on one database serves every image; `None` keeps it on this server's disk only.
    /// Blobs are then limited to [`MAX_SHARED_BLOB_SIZE`].
    pub fn with_shared(mut self, shared: Option<crate::store::SharedFiles>) -> Self {
        if shared.is_some() {
            self.max_blob_size = self.max_blob_size.min(MAX_SHARED_BLOB_SIZE);
        }
        self.storage.set_shared(shared);
        self
    }

    /// Answers one `/v2/...` request.
    pub async fn handle(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: Body) -> Response {
        let mut response = match self.route(method, uri, headers, body).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
        response.headers_mut().insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        response
    }

    async fn route(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: Body) -> Result<Response> {
        let target = parse_target(uri.path())
            .ok_or_else(|| OciError::new(StatusCode::NOT_FOUND, "UNSUPPORTED", "no such registry endpoint"))?;
        let query: HashMap<String, String> = serde_urlencoded::from_str(uri.query().unwrap_or_default())
            .map_err(|e| OciError::new(StatusCode::BAD_REQUEST, "UNSUPPORTED", format!("bad query: {e}")))?;
        let name = match target {
            Target::Base | Target::Catalog => "",
            Target::Tags(name)
            | Target::Manifest(name, _)
            | Target::Blob(name, _)
            | Target::UploadStart(name)
            | Target::Upload(name, _) => name,
        };
        if !name.is_empty() && !valid_name(name) {
            return Err(OciError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", format!("invalid name {name:?}")));
        }
        let head = *method == Method::HEAD;
        match (target, method.clone()) {
            (Target::Base, Method::GET | Method::HEAD) => {
                Ok(response(StatusCode::OK, vec![(header::CONTENT_TYPE, "application/json".into())], "{}".into()))
            }
            (Target::Catalog, Method::GET) => {
                let repositories = self.storage.repositories().await.map_err(|e| OciError::internal("catalog", e))?;
                Ok(page(uri.path(), "repositories", repositories, &query, json!({})))
            }
            (Target::Tags(name), Method::GET) => {
                let exists =
                    self.storage.repository_exists(name).await.map_err(|e| OciError::internal("repository", e))?;
                if !exists {
                    return Err(OciError::new(
                        StatusCode::NOT_FOUND,
                        "NAME_UNKNOWN",
                        format!("repository name not known to registry: {name}"),
                    ));
                }
                let tags = self.storage.tags(name).await.map_err(|e| OciError::internal("tags", e))?;
                Ok(page(uri.path(), "tags", tags, &query, json!({"name": name})))
            }
            (Target::Manifest(name, reference), Method::GET | Method::HEAD) => {
                self.get_manifest(name, reference, head).await
            }
            (Target::Manifest(name, reference), Method::PUT) => self.put_manifest(name, reference, headers, body).await,
            (Target::Manifest(name, reference), Method::DELETE) => self.delete_manifest(name, reference).await,
            (Target::Blob(_, digest), Method::GET | Method::HEAD) => self.get_blob(digest, head).await,
            (Target::UploadStart(name), Method::POST) => self.start_upload(name, &query, body).await,
            (Target::Upload(name, id), Method::PATCH) => self.patch_upload(name, id, headers, body).await,
            (Target::Upload(name, id), Method::PUT) => self.finish_upload(name, id, &query, body).await,
            (Target::Upload(name, id), Method::GET) => self.upload_status(name, id).await,
            (Target::Upload(_, id), Method::DELETE) => {
                self.cancel_upload(id).await?;
                Ok(response(StatusCode::NO_CONTENT, Vec::new(), Body::empty()))
            }
            _ => Err(OciError::unsupported()),
        }
    }

    /// The digest `reference` names in `name`, with the manifest's media type.
    async fn resolve(&self, name: &str, reference: &str) -> Result<(String, String)> {
        let digest = if reference.contains(':') {
            if digest_hex(reference).is_none() {
                return Err(OciError::digest_invalid(format!("invalid digest {reference:?}")));
            }
            reference.to_string()
        } else if valid_tag(reference) {
            match self.storage.tag(name, reference).await.map_err(|e| OciError::internal("read tag", e))? {
                Some(digest) => digest,
                None => return Err(OciError::manifest_unknown(name, reference)),
            }
        } else {
            return Err(OciError::new(StatusCode::BAD_REQUEST, "TAG_INVALID", format!("invalid tag {reference:?}")));
        };
        match self.storage.manifest_link(name, &digest).await.map_err(|e| OciError::internal("read link", e))? {
            Some(media_type) => Ok((digest, media_type)),
            None => Err(OciError::manifest_unknown(name, reference)),
        }
    }

    async fn get_manifest(&self, name: &str, reference: &str, head: bool) -> Result<Response> {
        let (digest, media_type) = self.resolve(name, reference).await?;
        if !self.storage.cache_blob(&digest).await.map_err(|e| OciError::internal("fetch manifest", e))? {
            return Err(OciError::internal("read manifest", format!("the manifest {digest} is linked but missing")));
        }
        let bytes = tokio::fs::read(self.storage.blob_path(&digest))
            .await
            .map_err(|e| OciError::internal(&format!("read manifest {digest}"), e))?;
        let headers = vec![
            (header::CONTENT_TYPE, media_type),
            (header::CONTENT_LENGTH, bytes.len().to_string()),
            (DOCKER_CONTENT_DIGEST, digest),
        ];
        Ok(response(StatusCode::OK, headers, if head { Body::empty() } else { bytes.into() }))
    }

    async fn put_manifest(&self, name: &str, reference: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
        let bytes = match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_MANIFEST_SIZE)).await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(OciError::too_large(MAX_MANIFEST_SIZE as u64));
            }
            Err(e) => return Err(OciError::manifest_invalid(format!("cannot read the manifest: {e}"))),
        };
        let digest = sha256_digest(&bytes);
        let tag = if reference.contains(':') {
            if reference != digest {
                return Err(OciError::digest_invalid(format!("the manifest's digest is {digest}, not {reference}")));
            }
            None
        } else if valid_tag(reference) {
            Some(reference)
        } else {
            return Err(OciError::new(StatusCode::BAD_REQUEST, "TAG_INVALID", format!("invalid tag {reference:?}")));
        };
        let manifest: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| OciError::manifest_invalid(format!("not JSON: {e}")))?;
        let media_type = manifest_media_type(&manifest, headers)
            .ok_or_else(|| OciError::manifest_invalid("the manifest has no mediaType and no Content-Type"))?;
        let (blobs, children) = references(&manifest, &media_type)?;
        for blob in &blobs {
            if !self.storage.blob_exists(blob).await.map_err(|e| OciError::internal("blob", e))? {
                return Err(OciError::new(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_BLOB_UNKNOWN",
                    format!("blob unknown to registry: {blob}"),
                ));
            }
        }
        for child in &children {
            let linked = self.storage.manifest_link(name, child).await.map_err(|e| OciError::internal("link", e))?;
            if linked.is_none() {
                return Err(OciError::new(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_BLOB_UNKNOWN",
                    format!("manifest unknown to {name}: {child}"),
                ));
            }
        }
        self.storage
            .put_manifest(name, &digest, &media_type, &bytes)
            .await
            .map_err(|e| OciError::internal("store manifest", e))?;
        if let Some(tag) = tag {
            self.storage.set_tag(name, tag, &digest).await.map_err(|e| OciError::internal("tag", e))?;
        }
        let headers =
            vec![(header::LOCATION, format!("/v2/{name}/manifests/{digest}")), (DOCKER_CONTENT_DIGEST, digest)];
        Ok(response(StatusCode::CREATED, headers, Body::empty()))
    }

    async fn delete_manifest(&self, name: &str, reference: &str) -> Result<Response> {
        let deleted = if reference.contains(':') {
            if digest_hex(reference).is_none() {
                return Err(OciError::digest_invalid(format!("invalid digest {reference:?}")));
            }
            self.storage.delete_manifest(name, reference).await
        } else if valid_tag(reference) {
            self.storage.delete_tag(name, reference).await
        } else {
            return Err(OciError::new(StatusCode::BAD_REQUEST, "TAG_INVALID", format!("invalid tag {reference:?}")));
        };
        match deleted.map_err(|e| OciError::internal("delete manifest", e))? {
            true => Ok(response(StatusCode::ACCEPTED, Vec::new(), Body::empty())),
            false => Err(OciError::manifest_unknown(name, reference)),
        }
    }

    async fn get_blob(&self, digest: &str, head: bool) -> Result<Response> {
        if digest_hex(digest).is_none() {
            return Err(OciError::digest_invalid(format!("invalid digest {digest:?}")));
        }
        let unknown = || OciError::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", format!("blob unknown: {digest}"));
        if !self.storage.cache_blob(digest).await.map_err(|e| OciError::internal("fetch blob", e))? {
            return Err(unknown());
        }
        let file = match tokio::fs::File::open(self.storage.blob_path(digest)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(unknown()),
            Err(e) => return Err(OciError::internal("open blob", e)),
        };
        let size = file.metadata().await.map_err(|e| OciError::internal("stat blob", e))?.len();
        let headers = vec![
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
            (DOCKER_CONTENT_DIGEST, digest.to_string()),
        ];
        let body = if head {
            Body::empty()
        } else {
            Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10))
        };
        Ok(response(StatusCode::OK, headers, body))
    }

    fn blob_created(name: &str, digest: &str) -> Response {
        let headers =
            vec![(header::LOCATION, format!("/v2/{name}/blobs/{digest}")), (DOCKER_CONTENT_DIGEST, digest.into())];
        response(StatusCode::CREATED, headers, Body::empty())
    }

    fn upload_accepted(status: StatusCode, name: &str, id: &str, size: u64) -> Response {
        let headers = vec![
            (header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}")),
            (header::RANGE, range(size)),
            (DOCKER_UPLOAD_UUID, id.to_string()),
            (header::CONTENT_LENGTH, "0".to_string()),
        ];
        response(status, headers, Body::empty())
    }

    async fn start_upload(&self, name: &str, query: &HashMap<String, String>, body: Body) -> Result<Response> {
        if let Some(digest) = query.get("mount").filter(|d| digest_hex(d).is_some()) {
            // Blobs are shared, so a mount succeeds whenever the registry has the blob at all.
            if self.storage.blob_exists(digest).await.map_err(|e| OciError::internal("blob", e))? {
                return Ok(Self::blob_created(name, digest));
            }
        }
        if let Some(digest) = query.get("digest") {
            if digest_hex(digest).is_none() {
                return Err(OciError::digest_invalid(format!("invalid digest {digest:?}")));
            }
            let temp = self.storage.temp_path();
            let result = self.receive(&temp, body, UploadState { size: 0, hasher: Sha256::new() }).await;
            return self.commit(name, &temp, result, digest).await;
        }
        let id = uuid::Uuid::new_v4().to_string();
        tokio::fs::File::create(self.storage.upload_path(&id))
            .await
            .map_err(|e| OciError::internal("create upload", e))?;
        Ok(Self::upload_accepted(StatusCode::ACCEPTED, name, &id, 0))
    }

    /// Appends `body` to the file at `path` (created if missing), continuing `state`'s hash.
    async fn receive(&self, path: &Path, body: Body, mut state: UploadState) -> Result<UploadState> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|e| OciError::internal("open upload", e))?;
        let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                OciError::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", format!("cannot read the body: {e}"))
            })?;
            state.size += chunk.len() as u64;
            if state.size > self.max_blob_size {
                return Err(OciError::too_large(self.max_blob_size));
            }
            state.hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| OciError::internal("write upload", e))?;
        }
        file.flush().await.map_err(|e| OciError::internal("write upload", e))?;
        file.into_inner().sync_all().await.map_err(|e| OciError::internal("sync upload", e))?;
        Ok(state)
    }

    /// Checks a received file against `expected` and moves it into the blob store.
    async fn commit(&self, name: &str, file: &Path, received: Result<UploadState>, expected: &str) -> Result<Response> {
        let verdict = match received {
            Ok(state) => {
                let actual = format!("sha256:{:x}", state.hasher.finalize());
                if actual == expected {
                    Ok(())
                } else {
                    Err(OciError::digest_invalid(format!("the content's digest is {actual}, not {expected}")))
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = verdict {
            let _ = tokio::fs::remove_file(file).await;
            return Err(e);
        }
        self.storage.commit_blob(file, expected).await.map_err(|e| OciError::internal("commit blob", e))?;
        Ok(Self::blob_created(name, expected))
    }

    /// The upload's saved hash state, or one rebuilt by reading what it holds so far.
    async fn upload_state(&self, id: &str) -> Result<UploadState> {
        let path = self.storage.upload_path(id);
        let size = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OciError::upload_unknown(id)),
            Err(e) => return Err(OciError::internal("stat upload", e)),
        };
        let saved = self.uploads.lock().expect("upload map lock").remove(id);
        if let Some(state) = saved.filter(|s| s.size == size) {
            return Ok(state);
        }
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| OciError::internal("open upload", e))?;
        let mut state = UploadState { size: 0, hasher: Sha256::new() };
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = file.read(&mut buffer).await.map_err(|e| OciError::internal("read upload", e))?;
            if read == 0 {
                break;
            }
            state.hasher.update(&buffer[..read]);
            state.size += read as u64;
        }
        Ok(state)
    }

    async fn patch_upload(&self, name: &str, id: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
        if !valid_upload_id(id) {
            return Err(OciError::upload_unknown(id));
        }
        let state = self.upload_state(id).await?;
        if let Some(content_range) = headers.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()) {
            let start = content_range.split('-').next().and_then(|s| s.trim().parse::<u64>().ok());
            if start != Some(state.size) {
                let mut response = OciError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "BLOB_UPLOAD_INVALID",
                    format!("the upload holds {} bytes; Content-Range {content_range} does not follow", state.size),
                )
                .into_response();
                if let Ok(value) = HeaderValue::from_str(&range(state.size)) {
                    response.headers_mut().insert(header::RANGE, value);
                }
                self.uploads.lock().expect("upload map lock").insert(id.to_string(), state);
                return Ok(response);
            }
        }
        let state = self.receive(&self.storage.upload_path(id), body, state).await?;
        let size = state.size;
        self.uploads.lock().expect("upload map lock").insert(id.to_string(), state);
        Ok(Self::upload_accepted(StatusCode::ACCEPTED, name, id, size))
    }

    async fn finish_upload(
        &self,
        name: &str,
        id: &str,
        query: &HashMap<String, String>,
        body: Body,
    ) -> Result<Response> {
        if !valid_upload_id(id) {
            return Err(OciError::upload_unknown(id));
        }
        let Some(digest) = query.get("digest").filter(|d| digest_hex(d).is_some()) else {
            return Err(OciError::digest_invalid("the upload's ?digest= is missing or invalid"));
        };
        let state = self.upload_state(id).await?;
        let path = self.storage.upload_path(id);
        let received = self.receive(&path, body, state).await;
        self.commit(name, &path, received, digest).await
    }

    async fn upload_status(&self, name: &str, id: &str) -> Result<Response> {
        if !valid_upload_id(id) {
            return Err(OciError::upload_unknown(id));
        }
        match tokio::fs::metadata(self.storage.upload_path(id)).await {
            Ok(meta) => Ok(Self::upload_accepted(StatusCode::NO_CONTENT, name, id, meta.len())),
            Err(_) => Err(OciError::upload_unknown(id)),
        }
    }

    async fn cancel_upload(&self, id: &str) -> Result<()> {
        if !valid_upload_id(id) {
            return Err(OciError::upload_unknown(id));
        }
        self.uploads.lock().expect("upload map lock").remove(id);
        tokio::fs::remove_file(self.storage.upload_path(id)).await.map_err(|_| OciError::upload_unknown(id))
    }
}

/// A sorted list answered with the spec's `n`/`last` paging and a `Link` to the next page.
fn page(
    path: &str,
    key: &str,
    items: Vec<String>,
    query: &HashMap<String, String>,
    mut body: serde_json::Value,
) -> Response {
    let last = query.get("last");
    let mut items: Vec<String> = items.into_iter().filter(|item| last.is_none_or(|last| item > last)).collect();
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_string())];
    if let Some(n) = query.get("n").and_then(|n| n.parse::<usize>().ok()).filter(|n| items.len() > *n) {
        items.truncate(n);
        if let Some(last) = items.last() {
            headers.push((header::LINK, format!("<{path}?n={n}&last={last}>; rel=\"next\"")));
        }
    }
    body[key] = json!(items);
    response(StatusCode::OK, headers, body.to_string().into())
}

#[cfg(test)]
mod tests;
