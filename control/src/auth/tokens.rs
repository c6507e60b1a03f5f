//! Bearer tokens. For now one admin token per data dir, kept in `DIR/admin.token`; RBAC and
//! per-user tokens come with the security issue.

use std::path::Path;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

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

/// Checks presented bearer tokens against the known ones without leaking timing.
#[derive(Clone)]
pub struct Authenticator {
    admin_digest: [u8; 32],
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl Authenticator {
    pub fn new(admin_token: &str) -> Self {
        Self { admin_digest: Sha256::digest(admin_token.as_bytes()).into() }
    }

    /// The user behind an `Authorization` header value, if it carries a valid bearer token.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<User> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Comparing digests keeps the comparison's time independent of the secret.
        let same = digest.iter().zip(self.admin_digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        same.then(|| User {
            name: "admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_admin_token_authenticates() {
        let auth = Authenticator::new("secret");
        assert_eq!(auth.authenticate(Some("Bearer secret")).unwrap().name, "admin");
        assert!(auth.authenticate(Some("Bearer other")).is_none());
        assert!(auth.authenticate(Some("Basic secret")).is_none());
        assert!(auth.authenticate(None).is_none());
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
