//! Bearer tokens. For now one admin token per data dir, kept in `DIR/admin.token`; RBAC and
//! per-user tokens come with the security issue.

use std::path::Path;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::User;
use crate::error::{Error, Result};

/// A fresh random token: 32 bytes, URL-safe base64.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads the token in `path`, creating it on first use.
pub fn load_or_create(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        _ => {
            let token = generate();
            super::pki::write_private(path, &format!("{token}\n"))?;
            Ok(token)
        }
    }
    .map_err(|e: Error| Error::Internal(format!("token {}: {e}", path.display())))
}

/// The node join token: `wharf1.<sha256 of the cluster CA, hex>.<secret>`. An agent checks the
/// CA it downloads from `/cacerts` against the hash before trusting it.
pub fn load_or_create_node_token(path: &Path, ca_pem: &str) -> Result<String> {
    let ca_hash = hex(&Sha256::digest(ca_pem.as_bytes()));
    match std::fs::read_to_string(path) {
        Ok(token) if token.trim().starts_with(&format!("wharf1.{ca_hash}.")) => Ok(token.trim().to_string()),
        _ => {
            let token = format!("wharf1.{ca_hash}.{}", generate());
            super::pki::write_private(path, &format!("{token}\n"))?;
            Ok(token)
        }
    }
}

/// The CA hash a node token pins, if it is one.
pub fn node_token_ca_hash(token: &str) -> Option<&str> {
    let mut parts = token.trim().splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("wharf1"), Some(hash), Some(secret)) if hash.len() == 64 && !secret.is_empty() => Some(hash),
        _ => None,
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The prefix of the WebSocket subprotocol that carries a bearer token, as kube-apiserver reads
/// it: browsers cannot set headers on a WebSocket, so they offer
/// `base64url.bearer.authorization.k8s.io.<token, base64url without padding>`.
pub const WEBSOCKET_BEARER_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// A request's credentials as an `Authorization` value: its header's or, without one, the
/// bearer token a WebSocket request offers as a subprotocol (browsers cannot set headers on a
/// WebSocket).
pub fn authorization(headers: &http::HeaderMap) -> Option<http::HeaderValue> {
    match headers.get(http::header::AUTHORIZATION) {
        Some(value) => Some(value.clone()),
        None => http::HeaderValue::from_str(&format!("Bearer {}", websocket_bearer(headers)?)).ok(),
    }
}

/// The bearer token a WebSocket upgrade request offers as a subprotocol, decoded. None for other
/// requests, without such a protocol, or when it is offered more than once or malformed.
pub fn websocket_bearer(headers: &http::HeaderMap) -> Option<String> {
    let websocket = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    if !websocket {
        return None;
    }
    let mut offered = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().strip_prefix(WEBSOCKET_BEARER_PREFIX));
    let encoded = offered.next()?;
    if offered.next().is_some() {
        return None;
    }
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).ok()?;
    String::from_utf8(token).ok().filter(|t| !t.is_empty())
}

/// Checks presented bearer tokens against the known ones without leaking timing.
#[derive(Clone)]
pub struct Authenticator {
    admin_digest: [u8; 32],
    node_digest: Option<[u8; 32]>,
}

impl Authenticator {
    pub fn new(admin_token: &str) -> Self {
        Self { admin_digest: Sha256::digest(admin_token.as_bytes()).into(), node_digest: None }
    }

    /// Also accepts the node join token (agents); RBAC narrows what nodes may do later.
    pub fn with_node_token(mut self, node_token: &str) -> Self {
        self.node_digest = Some(Sha256::digest(node_token.as_bytes()).into());
        self
    }

    /// The user a request comes from, by its [`authorization`].
    pub fn authenticate_request(&self, headers: &http::HeaderMap) -> Option<User> {
        self.authenticate(authorization(headers)?.to_str().ok())
    }

    /// The user behind an `Authorization` header value, if it carries a valid bearer token.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<User> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Comparing digests keeps the comparison's time independent of the secret.
        let same = |known: &[u8; 32]| digest.iter().zip(known.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same(&self.admin_digest) {
            return Some(User::new("admin", [super::MASTERS]));
        }
        if self.node_digest.as_ref().is_some_and(same) {
            return Some(User::new("system:node", [super::NODES]));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_header_or_the_bearer_subprotocol() {
        use base64::Engine;
        let mut headers = http::HeaderMap::new();
        assert!(authorization(&headers).is_none());
        headers.insert(http::header::UPGRADE, "websocket".parse().unwrap());
        let bearer = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("s3cret");
        let protocols = format!("wharf.watch.v1, {WEBSOCKET_BEARER_PREFIX}{bearer}");
        headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, protocols.parse().unwrap());
        assert_eq!(authorization(&headers).unwrap(), "Bearer s3cret");
        headers.insert(http::header::AUTHORIZATION, "Bearer other".parse().unwrap());
        assert_eq!(authorization(&headers).unwrap(), "Bearer other");
    }

    #[test]
    fn only_the_admin_token_authenticates() {
        let auth = Authenticator::new("secret");
        assert_eq!(auth.authenticate(Some("Bearer secret")).unwrap().name, "admin");
        assert!(auth.authenticate(Some("Bearer other")).is_none());
        assert!(auth.authenticate(Some("Basic secret")).is_none());
        assert!(auth.authenticate(None).is_none());
    }

    #[test]
    fn websocket_requests_authenticate_with_the_bearer_subprotocol() {
        let auth = Authenticator::new("se/cr+et");
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("se/cr+et");
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::UPGRADE, "websocket".parse().unwrap());
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            format!("v5.channel.k8s.io, {WEBSOCKET_BEARER_PREFIX}{encoded}, v4.channel.k8s.io").parse().unwrap(),
        );
        assert_eq!(auth.authenticate_request(&headers).unwrap().name, "admin");
        // The Authorization header, when present, decides.
        headers.insert(http::header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(auth.authenticate_request(&headers).is_none());
        headers.remove(http::header::AUTHORIZATION);
        // Offered twice, or padded, or on a request that is not a WebSocket: not accepted.
        headers.append(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            format!("{WEBSOCKET_BEARER_PREFIX}{encoded}").parse().unwrap(),
        );
        assert!(auth.authenticate_request(&headers).is_none());
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            format!("{WEBSOCKET_BEARER_PREFIX}{encoded}=").parse().unwrap(),
        );
        assert!(auth.authenticate_request(&headers).is_none());
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            format!("{WEBSOCKET_BEARER_PREFIX}{encoded}").parse().unwrap(),
        );
        assert!(auth.authenticate_request(&headers).is_some());
        headers.remove(http::header::UPGRADE);
        assert!(auth.authenticate_request(&headers).is_none());
    }

    #[test]
    fn node_tokens_pin_the_ca_and_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let token = load_or_create_node_token(&dir.path().join("node-token"), "CA PEM").unwrap();
        assert_eq!(node_token_ca_hash(&token).unwrap(), hex(&Sha256::digest(b"CA PEM")));
        assert_eq!(load_or_create_node_token(&dir.path().join("node-token"), "CA PEM").unwrap(), token);
        let auth = Authenticator::new("admin").with_node_token(&token);
        assert_eq!(auth.authenticate(Some(&format!("Bearer {token}"))).unwrap().name, "system:node");
        assert!(node_token_ca_hash("not-a-token").is_none());
    }

    #[test]
    fn tokens_are_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let first = load_or_create(&path).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), first);
        assert!(first.len() >= 40);
    }
}
