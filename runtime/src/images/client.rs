//! The HTTP side of the distribution API: choosing the scheme, authenticating, fetching
//! manifests and blobs with every digest verified, listing, and pushing.
//!
//! Plain HTTP: a registry on a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`) is tried over
//! HTTPS first and over plain HTTP when HTTPS cannot connect, as Docker does for local
//! registries; any other host is reached over plain HTTP only when it is listed in
//! [`ClientOptions::insecure_registries`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{self, HeaderValue};
use reqwest::{StatusCode, Url};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::auth::{Credentials, parse_challenge};
use super::manifest::{self, Descriptor, ImageManifest, Parsed, RuntimeKind};
use super::reference::{Reference, api_host, valid_digest};
use super::{ImageError, Result};

/// Largest manifest read (the distribution spec's recommended limit).
const MAX_MANIFEST_SIZE: usize = 4 << 20;
/// Largest config blob or listing read into memory.
const MAX_DOCUMENT_SIZE: usize = 16 << 20;
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// How the client reaches registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Extra trusted root certificates (PEM, one or more), e.g. the cluster CA; the system's
    /// roots stay trusted.
    pub ca_pem: Option<String>,
    /// Registries (`host[:port]`) reached over plain HTTP only.
    pub insecure_registries: Vec<String>,
}

/// A blob to push: its digest and size, and where its bytes are.
#[derive(Debug, Clone)]
pub struct PushBlob {
    pub digest: String,
    pub size: u64,
    pub source: BlobSource,
}

#[derive(Debug, Clone)]
pub enum BlobSource {
    Bytes(Bytes),
    File(PathBuf),
}

/// A manifest to push, with its media type.
#[derive(Debug, Clone)]
pub struct PushManifest {
    pub media_type: String,
    pub bytes: Bytes,
}

/// What an image reference resolves to, without downloading its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// The digest the reference names (an index's, for a multi-platform image).
    pub digest: String,
    pub media_type: String,
    /// The image manifest this node would run.
    pub manifest_digest: String,
    pub runtime: RuntimeKind,
    /// Config and layers of that manifest, in bytes.
    pub size: u64,
}

/// A manifest as fetched, digest verified.
#[derive(Debug, Clone)]
pub(super) struct Fetched {
    pub digest: String,
    pub media_type: String,
    pub bytes: Bytes,
}

/// A reference resolved to the image manifest this node runs.
pub(super) struct Resolved {
    /// The manifest the reference names, then the chosen platform's when that one is an index.
    pub manifests: Vec<Fetched>,
    pub manifest: ImageManifest,
}

/// A registry reached and authenticated for one scope.
pub(super) struct Session {
    /// `scheme://host`
    base: String,
    /// The registry as the reference writes it, for messages.
    registry: String,
    authorization: Option<HeaderValue>,
}

impl Session {
    fn url(&self, path: &str) -> Result<Url> {
        Url::parse(&format!("{}{path}", self.base)).map_err(|e| ImageError::Invalid {
            reference: format!("{}{path}", self.registry),
            message: format!("not a valid URL: {e}"),
        })
    }
}

pub(super) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn invalid(reference: &str, message: impl Into<String>) -> ImageError {
    ImageError::Invalid { reference: reference.to_string(), message: message.into() }
}

/// A readable message from a registry's error answer: distribution `errors`, a Kubernetes
/// `Status` message, or the start of the text.
async fn error_message(status: StatusCode, response: reqwest::Response) -> String {
    let body = read_limited(response, 64 << 10).await.unwrap_or_default();
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(errors) = value.get("errors").and_then(|e| e.as_array()).filter(|e| !e.is_empty()) {
            let parts: Vec<String> = errors
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("UNKNOWN");
                    let message = e.get("message").and_then(|c| c.as_str()).unwrap_or_default();
                    format!("{code}: {message}")
                })
                .collect();
            return parts.join("; ");
        }
        if let Some(message) = value.get("message").and_then(|m| m.as_str()) {
            return message.to_string();
        }
    }
    let text: String = String::from_utf8_lossy(&body).trim().chars().take(200).collect();
    if text.is_empty() { status.to_string() } else { format!("{status}: {text}") }
}

/// The body, refusing more than `limit` bytes.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> std::result::Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Err(format!("larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| wharf_shim::error_chain(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Talks to OCI distribution registries. One per process: it keeps connections and the scheme
/// each registry answered on.
pub struct RegistryClient {
    http: reqwest::Client,
    insecure: Vec<String>,
    schemes: Mutex<HashMap<String, &'static str>>,
}

impl RegistryClient {
    pub fn new(options: ClientOptions) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are skipped, as browsers and curl do.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if let Some(pem) = &options.ca_pem {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| ImageError::Credentials(format!("the CA certificate is not valid PEM: {e}")))?;
            if certificates.is_empty() {
                return Err(ImageError::Credentials("the CA PEM holds no certificate".into()));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| ImageError::Credentials(format!("the CA certificate is unusable: {e}")))?;
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ImageError::Credentials(format!("TLS versions: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                ImageError::Credentials(format!("cannot set up the HTTP client: {}", wharf_shim::error_chain(&e)))
            })?;
        Ok(Self { http, insecure: options.insecure_registries, schemes: Mutex::new(HashMap::new()) })
    }

    /// `GET /v2/` on the registry's scheme, finding that scheme on first contact.
    async fn ping(&self, registry: &str, authorization: Option<&HeaderValue>) -> Result<(String, reqwest::Response)> {
        let host = api_host(registry);
        let cached = self.schemes.lock().expect("scheme cache lock").get(host).copied();
        let schemes: &[&'static str] = match cached {
            Some("http") => &["http"],
            Some(_) => &["https"],
            None if self.insecure.iter().any(|h| h == host || h == registry) => &["http"],
            None if is_loopback(host) => &["https", "http"],
            None => &["https"],
        };
        let mut failure = String::new();
        for scheme in schemes {
            let base = format!("{scheme}://{host}");
            let mut request = self.http.get(format!("{base}/v2/"));
            if let Some(authorization) = authorization {
                request = request.header(header::AUTHORIZATION, authorization.clone());
            }
            match request.send().await {
                Ok(response) => {
                    self.schemes.lock().expect("scheme cache lock").insert(host.to_string(), scheme);
                    return Ok((base, response));
                }
                Err(e) if failure.is_empty() => failure = wharf_shim::error_chain(&e),
                Err(_) => {}
            }
        }
        Err(ImageError::Unreachable { registry: registry.to_string(), message: failure })
    }

    /// Reaches `registry` and authenticates for `scope` (`repository:NAME:pull`, ...).
    pub(super) async fn session(&self, registry: &str, scope: &str, credentials: &Credentials) -> Result<Session> {
        let preset = match credentials {
            Credentials::Bearer(token) => Some(
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| ImageError::Credentials("the bearer token has invalid characters".into()))?,
            ),
            _ => None,
        };
        let (base, ping) = self.ping(registry, preset.as_ref()).await?;
        let mut session = Session { base, registry: registry.to_string(), authorization: preset };
        match ping.status() {
            status if status.is_success() => {}
            StatusCode::UNAUTHORIZED => {
                session.authorization = Some(self.authorize(&session, ping, scope, credentials).await?)
            }
            status => {
                let message = error_message(status, ping).await;
                return Err(ImageError::Registry { registry: registry.to_string(), status: status.as_u16(), message });
            }
        }
        Ok(session)
    }

    /// Answers the registry's `WWW-Authenticate` challenge: a token from its token service for
    /// a `Bearer` challenge (Basic credentials, if any, go to that service), else Basic auth.
    async fn authorize(
        &self,
        session: &Session,
        ping: reqwest::Response,
        scope: &str,
        credentials: &Credentials,
    ) -> Result<HeaderValue> {
        let unauthorized = |message: String| ImageError::Unauthorized { registry: session.registry.clone(), message };
        let challenges: Vec<_> = ping
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(parse_challenge)
            .collect();
        if let Credentials::Bearer(_) = credentials {
            return Err(unauthorized(error_message(StatusCode::UNAUTHORIZED, ping).await));
        }
        let realm = challenges
            .iter()
            .filter(|c| c.scheme == "bearer")
            .find_map(|c| Some((Url::parse(c.params.get("realm")?).ok()?, c.params.get("service"))))
            .filter(|(realm, _)| matches!(realm.scheme(), "http" | "https"));
        if let Some((mut realm, service)) = realm {
            {
                let mut query = realm.query_pairs_mut();
                if let Some(service) = service {
                    query.append_pair("service", service);
                }
                query.append_pair("scope", scope);
            }
            let mut request = self.http.get(realm.clone());
            if let Credentials::Basic { username, password } = credentials {
                request = request.basic_auth(username, Some(password));
            }
            let response = request.send().await.map_err(|e| ImageError::Unreachable {
                registry: session.registry.clone(),
                message: format!("token service {realm}: {}", wharf_shim::error_chain(&e)),
            })?;
            let status = response.status();
            if !status.is_success() {
                return Err(unauthorized(format!("token service: {}", error_message(status, response).await)));
            }
            let body =
                read_limited(response, 1 << 20).await.map_err(|e| unauthorized(format!("token service: {e}")))?;
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let token = answer
                .get("token")
                .or_else(|| answer.get("access_token"))
                .and_then(|t| t.as_str())
                .ok_or_else(|| unauthorized("the token service answered without a token".into()))?;
            return HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| unauthorized("the token service answered an unusable token".into()));
        }
        match credentials {
            Credentials::Basic { username, password } => {
                HeaderValue::from_str(&Credentials::basic_header(username, password))
                    .map_err(|_| ImageError::Credentials("the username or password has invalid characters".into()))
            }
            _ => Err(unauthorized("the registry requires credentials and none were given".into())),
        }
    }

    /// Sends `request` with the session's authorization; network failures are `Unreachable`.
    async fn send(&self, session: &Session, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let request = match &session.authorization {
            Some(authorization) => request.header(header::AUTHORIZATION, authorization.clone()),
            None => request,
        };
        request.send().await.map_err(|e| ImageError::Unreachable {
            registry: session.registry.clone(),
            message: wharf_shim::error_chain(&e),
        })
    }

    /// The response if it succeeded; otherwise the error it stands for.
    async fn check(&self, session: &Session, response: reqwest::Response, what: &str) -> Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let message = error_message(status, response).await;
        let registry = session.registry.clone();
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ImageError::Unauthorized { registry, message },
            StatusCode::NOT_FOUND => ImageError::NotFound { reference: what.to_string(), message },
            _ => ImageError::Registry { registry, status: status.as_u16(), message },
        })
    }

    /// Fetches a manifest by tag or digest and verifies its digest.
    pub(super) async fn fetch_manifest(&self, session: &Session, repository: &str, reference: &str) -> Result<Fetched> {
        let separator = if reference.starts_with("sha256:") { '@' } else { ':' };
        let what = format!("{}/{repository}{separator}{reference}", session.registry);
        let url = session.url(&format!("/v2/{repository}/manifests/{reference}"))?;
        let response = self.send(session, self.http.get(url).header(header::ACCEPT, manifest::ACCEPT)).await?;
        let response = self.check(session, response, &what).await?;
        let announced = response.headers().get(DOCKER_CONTENT_DIGEST).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes =
            read_limited(response, MAX_MANIFEST_SIZE).await.map_err(|e| invalid(&what, format!("manifest: {e}")))?;
        let digest = sha256(&bytes);
        if separator == '@' && reference != digest {
            return Err(invalid(&what, format!("the registry sent a manifest whose digest is {digest}")));
        }
        if let Some(announced) = announced.filter(|a| a.starts_with("sha256:") && *a != digest) {
            return Err(invalid(&what, format!("the manifest's digest is {digest}, the registry says {announced}")));
        }
        let declared = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string));
        let media_type = declared
            .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or_default().trim().to_string()))
            .unwrap_or_default();
        Ok(Fetched { digest, media_type, bytes: bytes.into() })
    }

    /// Resolves `reference` to the image manifest this node runs (choosing from an index).
    pub(super) async fn resolve(&self, session: &Session, reference: &Reference) -> Result<Resolved> {
        let what = reference.to_string();
        let top = self.fetch_manifest(session, &reference.repository, reference.reference()).await?;
        match manifest::parse(&top.bytes).map_err(|m| invalid(&what, m))? {
            Parsed::Image(manifest) => Ok(Resolved { manifests: vec![top], manifest }),
            Parsed::Index(index) => {
                let entry = manifest::choose(&index).map_err(|m| invalid(&what, m))?;
                let child = self.fetch_manifest(session, &reference.repository, &entry.digest).await?;
                match manifest::parse(&child.bytes).map_err(|m| invalid(&what, m))? {
                    Parsed::Image(manifest) => Ok(Resolved { manifests: vec![top, child], manifest }),
                    Parsed::Index(_) => Err(invalid(&what, "an index inside an index is not supported")),
                }
            }
        }
    }

    async fn get_blob(&self, session: &Session, repository: &str, blob: &Descriptor) -> Result<reqwest::Response> {
        let what = format!("{}/{repository}@{}", session.registry, blob.digest);
        if !valid_digest(&blob.digest) {
            return Err(invalid(&what, "unsupported digest (only sha256 is)"));
        }
        let url = session.url(&format!("/v2/{repository}/blobs/{}", blob.digest))?;
        let response = self.send(session, self.http.get(url)).await?;
        self.check(session, response, &what).await
    }

    /// A small blob (a config) read into memory, digest verified.
    pub(super) async fn blob_bytes(&self, session: &Session, repository: &str, blob: &Descriptor) -> Result<Vec<u8>> {
        let what = format!("{}/{repository}@{}", session.registry, blob.digest);
        let response = self.get_blob(session, repository, blob).await?;
        let bytes = read_limited(response, MAX_DOCUMENT_SIZE).await.map_err(|e| invalid(&what, e))?;
        if sha256(&bytes) != blob.digest {
            return Err(invalid(&what, format!("the registry sent content whose digest is {}", sha256(&bytes))));
        }
        Ok(bytes)
    }

    /// Downloads a blob into `temp`, checks its size and digest, then renames it to `dest`;
    /// `received` is told the size of each chunk as it arrives.
    pub(super) async fn download(
        &self,
        session: &Session,
        repository: &str,
        blob: &Descriptor,
        dest: &Path,
        temp: &Path,
        received: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let what = format!("{}/{repository}@{}", session.registry, blob.digest);
        let mut response = self.get_blob(session, repository, blob).await?;
        let io = |e: std::io::Error| ImageError::Io { path: temp.to_path_buf(), source: e };
        let result = async {
            let file = tokio::fs::File::create(temp).await.map_err(io)?;
            let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = response.chunk().await.map_err(|e| ImageError::Unreachable {
                registry: session.registry.clone(),
                message: format!("{what}: {}", wharf_shim::error_chain(&e)),
            })? {
                size += chunk.len() as u64;
                if size > blob.size {
                    return Err(invalid(&what, format!("the registry sent more than the {} bytes listed", blob.size)));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io)?;
                received(chunk.len() as u64);
            }
            if size != blob.size {
                return Err(invalid(&what, format!("the registry sent {size} of the {} bytes listed", blob.size)));
            }
            let digest = format!("sha256:{:x}", hasher.finalize());
            if digest != blob.digest {
                return Err(invalid(&what, format!("the registry sent content whose digest is {digest}")));
            }
            file.flush().await.map_err(io)?;
            file.into_inner().sync_all().await.map_err(io)?;
            tokio::fs::rename(temp, dest).await.map_err(|e| ImageError::Io { path: dest.to_path_buf(), source: e })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(temp).await;
        }
        result
    }

    /// What `reference` resolves to on its registry: digests, runtime and size, without layers.
    pub async fn inspect(&self, reference: &Reference, credentials: &Credentials) -> Result<ImageSummary> {
        let scope = format!("repository:{}:pull", reference.repository);
        let session = self.session(&reference.registry, &scope, credentials).await?;
        let resolved = self.resolve(&session, reference).await?;
        let config = self.blob_bytes(&session, &reference.repository, &resolved.manifest.config).await?;
        let config = serde_json::from_slice(&config).unwrap_or(serde_json::Value::Null);
        let top = &resolved.manifests[0];
        let image = resolved.manifests.last().expect("at least the top manifest");
        Ok(ImageSummary {
            digest: top.digest.clone(),
            media_type: top.media_type.clone(),
            manifest_digest: image.digest.clone(),
            runtime: manifest::runtime_kind(&resolved.manifest, &config),
            size: resolved.manifest.config.size + resolved.manifest.layers.iter().map(|l| l.size).sum::<u64>(),
        })
    }

    /// Every repository of `registry` (`GET /v2/_catalog`, all pages).
    pub async fn repositories(&self, registry: &str, credentials: &Credentials) -> Result<Vec<String>> {
        let session = self.session(registry, "registry:catalog:*", credentials).await?;
        self.list(&session, "/v2/_catalog", "repositories").await
    }

    /// Every tag of `repository` (`GET /v2/NAME/tags/list`, all pages).
    pub async fn tags(&self, registry: &str, repository: &str, credentials: &Credentials) -> Result<Vec<String>> {
        let session = self.session(registry, &format!("repository:{repository}:pull"), credentials).await?;
        self.list(&session, &format!("/v2/{repository}/tags/list"), "tags").await
    }

    async fn list(&self, session: &Session, path: &str, key: &str) -> Result<Vec<String>> {
        let what = format!("{}{path}", session.registry);
        let mut all: Vec<String> = Vec::new();
        loop {
            let mut url = session.url(path)?;
            url.query_pairs_mut().append_pair("n", "1000");
            if let Some(last) = all.last() {
                url.query_pairs_mut().append_pair("last", last);
            }
            let response = self.send(session, self.http.get(url)).await?;
            let response = self.check(session, response, &what).await?;
            let more = response.headers().contains_key(header::LINK);
            let body = read_limited(response, MAX_DOCUMENT_SIZE).await.map_err(|e| invalid(&what, e))?;
            let body: serde_json::Value = serde_json::from_slice(&body).map_err(|e| invalid(&what, e.to_string()))?;
            // Registries answer `"tags": null` for a repository without tags.
            let page: Vec<String> = body
                .get(key)
                .and_then(|v| v.as_array())
                .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let done = page.is_empty() || !more;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Pushes `blobs` (skipping those the registry has), then `manifests` in order: all but
    /// the last by digest (an index's children), the last by the target's tag. Returns the
    /// last manifest's digest.
    pub async fn push(
        &self,
        target: &Reference,
        credentials: &Credentials,
        blobs: &[PushBlob],
        manifests: &[PushManifest],
    ) -> Result<String> {
        self.push_with_progress(target, credentials, blobs, manifests, &|_, _| {}).await
    }

    /// [`RegistryClient::push`], calling `pushed(blob, uploaded)` as each blob is done;
    /// `uploaded` is false when the registry already had it.
    pub async fn push_with_progress(
        &self,
        target: &Reference,
        credentials: &Credentials,
        blobs: &[PushBlob],
        manifests: &[PushManifest],
        pushed: &(dyn Fn(&PushBlob, bool) + Send + Sync),
    ) -> Result<String> {
        let what = target.to_string();
        let Some((last, children)) = manifests.split_last() else {
            return Err(invalid(&what, "nothing to push: no manifest"));
        };
        let digest = sha256(&last.bytes);
        if target.digest.as_ref().is_some_and(|wanted| *wanted != digest) {
            return Err(invalid(&what, format!("the manifest's digest is {digest}")));
        }
        let scope = format!("repository:{}:pull,push", target.repository);
        let session = self.session(&target.registry, &scope, credentials).await?;
        for blob in blobs {
            let uploaded = self.push_blob(&session, &target.repository, blob).await?;
            pushed(blob, uploaded);
        }
        for child in children {
            self.put_manifest(&session, &target.repository, child, &sha256(&child.bytes)).await?;
        }
        self.put_manifest(&session, &target.repository, last, target.tag.as_deref().unwrap_or(&digest)).await?;
        Ok(digest)
    }

    /// Uploads `blob` unless the registry has it; true if it was uploaded.
    async fn push_blob(&self, session: &Session, repository: &str, blob: &PushBlob) -> Result<bool> {
        let what = format!("{}/{repository}@{}", session.registry, blob.digest);
        if !valid_digest(&blob.digest) {
            return Err(invalid(&what, "unsupported digest (only sha256 is)"));
        }
        let url = session.url(&format!("/v2/{repository}/blobs/{}", blob.digest))?;
        let present = self.send(session, self.http.head(url)).await?;
        if present.status().is_success() {
            return Ok(false);
        }
        if present.status() != StatusCode::NOT_FOUND {
            self.check(session, present, &what).await?;
        }
        let url = session.url(&format!("/v2/{repository}/blobs/uploads/"))?;
        let started = self.send(session, self.http.post(url)).await?;
        let started = self.check(session, started, &what).await?;
        let location = started.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            ImageError::Registry {
                registry: session.registry.clone(),
                status: started.status().as_u16(),
                message: "the upload was accepted without a Location".into(),
            }
        })?;
        let mut url = started.url().join(location).map_err(|e| invalid(&what, format!("upload location: {e}")))?;
        url.query_pairs_mut().append_pair("digest", &blob.digest);
        let body = match &blob.source {
            BlobSource::Bytes(bytes) => reqwest::Body::from(bytes.clone()),
            BlobSource::File(path) => {
                let file =
                    tokio::fs::File::open(path).await.map_err(|e| ImageError::Io { path: path.clone(), source: e })?;
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10))
            }
        };
        let same_origin = url.origin() == started.url().origin();
        let request = self
            .http
            .put(url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, blob.size)
            .body(body);
        // Credentials go only to the registry itself, not to storage it redirects uploads to.
        let response = if same_origin {
            self.send(session, request).await?
        } else {
            request.send().await.map_err(|e| ImageError::Unreachable {
                registry: session.registry.clone(),
                message: wharf_shim::error_chain(&e),
            })?
        };
        self.check(session, response, &what).await?;
        Ok(true)
    }

    async fn put_manifest(
        &self,
        session: &Session,
        repository: &str,
        manifest: &PushManifest,
        reference: &str,
    ) -> Result<()> {
        let what = format!("{}/{repository}:{reference}", session.registry);
        let url = session.url(&format!("/v2/{repository}/manifests/{reference}"))?;
        let request =
            self.http.put(url).header(header::CONTENT_TYPE, manifest.media_type.as_str()).body(manifest.bytes.clone());
        let response = self.send(session, request).await?;
        self.check(session, response, &what).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:6443", "127.1.2.3:1", "[::1]:5000"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["example.com", "10.0.0.1:5000", "[2001:db8::1]:5000", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn a_bad_ca_is_refused() {
        let options = ClientOptions { ca_pem: Some("not a certificate".into()), ..Default::default() };
        assert!(matches!(RegistryClient::new(options), Err(ImageError::Credentials(_))));
    }
}
