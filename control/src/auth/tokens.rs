//! Bearer tokens: the admin token (`DIR/admin.token`), the node join token (`DIR/node-token`),
//! Wharf tokens (`wharf-<id>.<secret>`, kept as Secrets `kube-system/wharf-token-<id>` holding
//! the secret's SHA-256, never the secret), and the chain that maps a request's credentials —
//! client certificate or bearer token — to a [`User`].

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use serde_json::{Value, json};

use super::User;
use super::client_cert::ClientCertificate;
use super::service_account::SigningKey;
use crate::error::{Error, Result};
use crate::store::{ObjectKey, Store};

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

/// A token that pins the cluster CA: `wharf1.<sha256 of the CA PEM, hex>.<secret>`, read from
/// `path` (made on first use, or anew when it pins another CA). Both join tokens have this form:
/// the node token (`DIR/node-token`: an agent checks the CA it downloads from `/cacerts` against
/// the hash) and the server token (`DIR/server.token`: a joining server checks the CA
/// `/wharf/v1/server-join` answers with).
pub fn load_or_create_pinned_token(path: &Path, ca_pem: &str) -> Result<String> {
    let ca_hash = ca_hash(ca_pem);
    match std::fs::read_to_string(path) {
        Ok(token) if token.trim().starts_with(&format!("wharf1.{ca_hash}.")) => Ok(token.trim().to_string()),
        _ => {
            let token = format!("wharf1.{ca_hash}.{}", generate());
            super::pki::write_private(path, &format!("{token}\n"))?;
            Ok(token)
        }
    }
}

/// The hash a pinned token names for `ca_pem`: its SHA-256, lower-case hex.
pub fn ca_hash(ca_pem: &str) -> String {
    hex(&Sha256::digest(ca_pem.as_bytes()))
}

/// The CA hash a node or server token pins, if it is one.
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

/// The join token's user: it may only exchange itself for a node credential.
pub const BOOTSTRAP_USER: &str = "system:bootstrap:wharf";
/// The join token's group, which the default policy lets `POST /wharf/v1/node-credentials`.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";

/// Authenticates requests: a verified client certificate, else the bearer token of the
/// `Authorization` header (or a WebSocket's bearer subprotocol), tried against the admin token,
/// the join token, Wharf tokens (looked up by id in the store, no scan) and ServiceAccount tokens.
#[derive(Clone)]
pub struct Authenticator {
    admin_digest: [u8; 32],
    join_digest: Option<[u8; 32]>,
    store: Option<Store>,
    /// Verifies ServiceAccount tokens (and signs them for TokenRequests).
    service_accounts: Option<Arc<SigningKey>>,
}

impl Authenticator {
    pub fn new(admin_token: &str) -> Self {
        Self {
            admin_digest: Sha256::digest(admin_token.as_bytes()).into(),
            join_digest: None,
            store: None,
            service_accounts: None,
        }
    }

    /// Also accepts the node join token, as [`BOOTSTRAP_USER`] in [`BOOTSTRAPPERS`].
    pub fn with_join_token(mut self, join_token: &str) -> Self {
        self.join_digest = Some(Sha256::digest(join_token.as_bytes()).into());
        self
    }

    /// Also accepts the Wharf tokens whose Secrets `store` holds.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Also accepts the ServiceAccount tokens `key` signed (those of existing accounts and pods).
    pub fn with_service_account_key(mut self, key: Arc<SigningKey>) -> Self {
        self.service_accounts = Some(key);
        self
    }

    /// The key that signs ServiceAccount tokens, if this server issues them.
    pub fn service_account_key(&self) -> Option<&SigningKey> {
        self.service_accounts.as_deref()
    }

    /// The user a request comes from: its verified client certificate (which serve.rs puts in
    /// the request's extensions), else its [`authorization`].
    pub fn authenticate_request(&self, headers: &http::HeaderMap, extensions: &http::Extensions) -> Option<User> {
        if let Some(certificate) = extensions.get::<ClientCertificate>() {
            return Some(certificate.user().clone());
        }
        self.authenticate(authorization(headers)?.to_str().ok())
    }

    /// The user behind an `Authorization` header value, if it carries a valid bearer token.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<User> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.authenticate_token(token)
    }

    /// The user a bearer token stands for.
    pub fn authenticate_token(&self, token: &str) -> Option<User> {
        if token.starts_with(WHARF_TOKEN_PREFIX) {
            return self.wharf_token(&WharfToken::parse(token)?);
        }
        if looks_like_jwt(token) {
            return super::service_account::authenticate(
                self.store.as_ref()?,
                self.service_accounts.as_deref()?,
                token,
            );
        }
        // Comparing digests keeps the comparison's time independent of the secret.
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if same_digest(&digest, &self.admin_digest) {
            return Some(User::new("admin", [super::MASTERS]));
        }
        if self.join_digest.as_ref().is_some_and(|known| same_digest(&digest, known)) {
            return Some(User::new(BOOTSTRAP_USER, [BOOTSTRAPPERS]));
        }
        None
    }

    /// A Wharf token's user, when its Secret exists, the secret's digest matches and it has not
    /// expired.
    fn wharf_token(&self, token: &WharfToken) -> Option<User> {
        let secrets = crate::registry::kinds::lookup("", "v1", "secrets")?;
        let key = ObjectKey::new(secrets.storage_key(), TOKEN_NAMESPACE, token.secret_name());
        let stored = self.store.as_ref()?.get(&key)?;
        let grant = TokenGrant::from_secret(&stored.object)?;
        let known = grant.digest?;
        let presented: [u8; 32] = Sha256::digest(token.secret.as_bytes()).into();
        if !same_digest(&presented, &known) || grant.expired_at(jiff::Timestamp::now()) {
            return None;
        }
        Some(User::new(grant.user, grant.groups))
    }
}

/// Whether a presented token is `known`, in time independent of either (their digests are
/// compared).
pub fn same_token(presented: &str, known: &str) -> bool {
    same_digest(&Sha256::digest(presented.as_bytes()).into(), &Sha256::digest(known.as_bytes()).into())
}

/// Compares two digests in time independent of where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a bearer token has a JWT's shape: three base64url parts, the first a JSON object
/// (`eyJ` is `{"` encoded).
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// How Wharf tokens start.
pub const WHARF_TOKEN_PREFIX: &str = "wharf-";
/// The type of the Secrets that hold Wharf tokens.
pub const TOKEN_SECRET_TYPE: &str = "wharf.dev/token";
/// The prefix of their names: `wharf-token-<id>`.
pub const TOKEN_SECRET_PREFIX: &str = "wharf-token-";
/// Where they live.
pub const TOKEN_NAMESPACE: &str = "kube-system";

/// Refuses a write of a Wharf token's Secret by anyone but `system:masters`: the Secret names
/// the token's user and groups, so whoever may write Secrets in kube-system could otherwise mint
/// a token for any group (Kubernetes limits bootstrap tokens' groups for the same reason).
pub fn check_token_secret_write(
    user: &User,
    namespace: &str,
    object: &serde_json::Value,
    old: Option<&serde_json::Value>,
) -> Result<()> {
    let is_token = |secret: &serde_json::Value| secret["type"] == TOKEN_SECRET_TYPE;
    if namespace != TOKEN_NAMESPACE || user.in_group(super::MASTERS) || !(is_token(object) || old.is_some_and(is_token))
    {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "secrets {:?} is forbidden: only system:masters may write Secrets of type {TOKEN_SECRET_TYPE} (use `wharf token create`)",
        object["metadata"]["name"].as_str().unwrap_or_default()
    )))
}
/// Characters in a token's id.
pub const TOKEN_ID_LEN: usize = 6;
/// Fewest characters in a token's secret (generated ones have [`GENERATED_SECRET_LEN`]).
pub const MIN_SECRET_LEN: usize = 32;
const GENERATED_SECRET_LEN: usize = 40;
const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A Wharf token, `wharf-<id>.<secret>`: the id names its Secret, the secret proves it.
#[derive(Clone, PartialEq, Eq)]
pub struct WharfToken {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for WharfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WharfToken({}, <redacted>)", self.id)
    }
}

fn random_chars(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| TOKEN_ALPHABET[rand::Rng::random_range(&mut rng, 0..TOKEN_ALPHABET.len())] as char).collect()
}

impl WharfToken {
    /// A new token: a random id and a random secret of 40 characters of `[a-z0-9]`.
    pub fn generate() -> Self {
        Self { id: random_chars(TOKEN_ID_LEN), secret: random_chars(GENERATED_SECRET_LEN) }
    }

    /// Reads `wharf-<id>.<secret>`: an id of 6 `[a-z0-9]`, a secret of 32 or more URL-safe
    /// characters.
    pub fn parse(text: &str) -> Option<Self> {
        let (id, secret) = text.trim().strip_prefix(WHARF_TOKEN_PREFIX)?.split_once('.')?;
        let id_ok = valid_token_id(id);
        let secret_ok = secret.len() >= MIN_SECRET_LEN
            && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (id_ok && secret_ok).then(|| Self { id: id.into(), secret: secret.into() })
    }

    /// The token as presented: `wharf-<id>.<secret>`.
    pub fn expose(&self) -> String {
        format!("{WHARF_TOKEN_PREFIX}{}.{}", self.id, self.secret)
    }

    /// The name of the Secret that holds it.
    pub fn secret_name(&self) -> String {
        format!("{TOKEN_SECRET_PREFIX}{}", self.id)
    }

    /// The SHA-256 of the secret, as the Secret keeps it.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.secret.as_bytes()).into()
    }
}

/// Whether `id` is a token id: 6 of `[a-z0-9]`.
pub fn valid_token_id(id: &str) -> bool {
    id.len() == TOKEN_ID_LEN && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Who a Wharf token authenticates as, until when, and what for: a token Secret's contents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenGrant {
    pub user: String,
    pub groups: Vec<String>,
    pub expiration: Option<jiff::Timestamp>,
    pub description: String,
    /// The SHA-256 of the secret (None when the Secret holds none that reads).
    pub digest: Option<[u8; 32]>,
}

impl TokenGrant {
    pub fn expired_at(&self, now: jiff::Timestamp) -> bool {
        self.expiration.is_some_and(|expiration| expiration <= now)
    }

    /// The Secret `kube-system/wharf-token-<id>` granting this to `token` (its digest only).
    pub fn to_secret(&self, token: &WharfToken) -> Value {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut data = serde_json::Map::new();
        data.insert("token-id".into(), b64(&token.id).into());
        data.insert("secret-sha256".into(), b64(&hex(&token.digest())).into());
        data.insert("user".into(), b64(&self.user).into());
        if !self.groups.is_empty() {
            data.insert("groups".into(), b64(&self.groups.join(",")).into());
        }
        if let Some(expiration) = self.expiration {
            data.insert("expiration".into(), b64(&expiration.to_string()).into());
        }
        if !self.description.is_empty() {
            data.insert("description".into(), b64(&self.description).into());
        }
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": token.secret_name(), "namespace": TOKEN_NAMESPACE},
            "type": TOKEN_SECRET_TYPE,
            "data": data,
        })
    }

    /// Reads a token Secret; None when it is not one (another type, no user).
    pub fn from_secret(secret: &Value) -> Option<Self> {
        if secret["type"] != TOKEN_SECRET_TYPE || secret["metadata"].get("deletionTimestamp").is_some() {
            return None;
        }
        let field = |key: &str| -> Option<String> {
            let encoded = secret["data"][key].as_str()?;
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).ok()?).ok()
        };
        let user = field("user").filter(|u| !u.is_empty())?;
        let groups = field("groups")
            .map(|g| g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        // An expiration that does not read has passed: a token is never valid longer than meant.
        let expiration =
            field("expiration").map(|text| text.trim().parse::<jiff::Timestamp>().unwrap_or(jiff::Timestamp::MIN));
        let digest = field("secret-sha256").and_then(|h| unhex(h.trim()));
        Some(Self { user, groups, expiration, description: field("description").unwrap_or_default(), digest })
    }
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_masters_write_token_secrets() {
        let secret = serde_json::json!({"metadata": {"name": "wharf-token-abc123"}, "type": TOKEN_SECRET_TYPE});
        let plain = serde_json::json!({"metadata": {"name": "x"}, "type": "Opaque"});
        let editor = User::new("eve", ["dev"]);
        let admin = User::new("admin", [crate::auth::MASTERS]);
        assert!(check_token_secret_write(&editor, TOKEN_NAMESPACE, &secret, None).is_err());
        // Nor may a token's Secret be turned into another type, or another Secret into one.
        assert!(check_token_secret_write(&editor, TOKEN_NAMESPACE, &plain, Some(&secret)).is_err());
        assert!(check_token_secret_write(&editor, TOKEN_NAMESPACE, &plain, None).is_ok());
        assert!(check_token_secret_write(&editor, "default", &secret, None).is_ok());
        assert!(check_token_secret_write(&admin, TOKEN_NAMESPACE, &secret, None).is_ok());
    }

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
        assert_eq!(auth.authenticate_request(&headers, &http::Extensions::new()).unwrap().name, "admin");
        // The Authorization header, when present, decides.
        headers.insert(http::header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(auth.authenticate_request(&headers, &http::Extensions::new()).is_none());
        headers.remove(http::header::AUTHORIZATION);
        // Offered twice, or padded, or on a request that is not a WebSocket: not accepted.
        headers.append(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            format!("{WEBSOCKET_BEARER_PREFIX}{encoded}").parse().unwrap(),
        );
        assert!(auth.authenticate_request(&headers, &http::Extensions::new()).is_none());
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            format!("{WEBSOCKET_BEARER_PREFIX}{encoded}=").parse().unwrap(),
        );
        assert!(auth.authenticate_request(&headers, &http::Extensions::new()).is_none());
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            format!("{WEBSOCKET_BEARER_PREFIX}{encoded}").parse().unwrap(),
        );
        assert!(auth.authenticate_request(&headers, &http::Extensions::new()).is_some());
        headers.remove(http::header::UPGRADE);
        assert!(auth.authenticate_request(&headers, &http::Extensions::new()).is_none());
    }

    #[test]
    fn node_tokens_pin_the_ca_and_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let token = load_or_create_pinned_token(&dir.path().join("node-token"), "CA PEM").unwrap();
        assert_eq!(node_token_ca_hash(&token).unwrap(), hex(&Sha256::digest(b"CA PEM")));
        assert_eq!(load_or_create_pinned_token(&dir.path().join("node-token"), "CA PEM").unwrap(), token);
        let auth = Authenticator::new("admin").with_join_token(&token);
        let user = auth.authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(user.name, BOOTSTRAP_USER);
        assert!(user.in_group(BOOTSTRAPPERS) && !user.in_group(crate::auth::NODES));
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

    #[test]
    fn wharf_tokens_have_an_id_and_a_long_secret() {
        let token = WharfToken::generate();
        assert!(valid_token_id(&token.id));
        assert_eq!(token.secret.len(), GENERATED_SECRET_LEN);
        assert_eq!(WharfToken::parse(&token.expose()).unwrap(), token);
        assert_eq!(token.secret_name(), format!("wharf-token-{}", token.id));
        assert!(!format!("{token:?}").contains(&token.secret));
        let secret = "a".repeat(32);
        assert!(WharfToken::parse(&format!("wharf-abc123.{secret}")).is_some());
        for bad in [
            format!("wharf-abc12.{secret}"),
            format!("wharf-ABC123.{secret}"),
            format!("wharf-abc1234.{secret}"),
            format!("wharf-abc123.{}", &secret[1..]),
            format!("wharf-abc123{secret}"),
            format!("wharf-abc123.{secret}.x"),
            format!("other-abc123.{secret}"),
        ] {
            assert!(WharfToken::parse(&bad).is_none(), "{bad}");
        }
        assert_ne!(WharfToken::generate(), WharfToken::generate());
    }

    #[test]
    fn token_secrets_keep_the_digest_and_the_grant() {
        let token = WharfToken::generate();
        let grant = TokenGrant {
            user: "jane".into(),
            groups: vec!["dev".into(), "ops".into()],
            expiration: Some("2030-01-02T03:04:05Z".parse().unwrap()),
            description: "CI".into(),
            digest: None,
        };
        let secret = grant.to_secret(&token);
        assert_eq!(secret["type"], TOKEN_SECRET_TYPE);
        assert_eq!(secret["metadata"]["namespace"], TOKEN_NAMESPACE);
        assert!(!secret.to_string().contains(&token.secret));
        let read = TokenGrant::from_secret(&secret).unwrap();
        assert_eq!(read, TokenGrant { digest: Some(token.digest()), ..grant });
        let mut other = secret.clone();
        other["type"] = "Opaque".into();
        assert!(TokenGrant::from_secret(&other).is_none());
    }

    #[test]
    fn tokens_expire() {
        let now: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let grant = |expiration: Option<&str>| TokenGrant {
            expiration: expiration.map(|e| e.parse().unwrap()),
            ..Default::default()
        };
        assert!(!grant(None).expired_at(now));
        assert!(!grant(Some("2030-01-01T00:00:01Z")).expired_at(now));
        assert!(grant(Some("2030-01-01T00:00:00Z")).expired_at(now));
        assert!(grant(Some("2029-12-31T23:59:59Z")).expired_at(now));
        // An expiration that does not read counts as passed.
        let token = WharfToken::generate();
        let mut secret = TokenGrant { user: "u".into(), ..Default::default() }.to_secret(&token);
        secret["data"]["expiration"] = base64::engine::general_purpose::STANDARD.encode("soon").into();
        assert!(TokenGrant::from_secret(&secret).unwrap().expired_at(now));
    }

    #[test]
    fn jwts_are_told_apart() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("wharf-abc123.secret"));
        assert!(!looks_like_jwt("eyJ.a.b.c"));
        assert!(!looks_like_jwt("plain"));
    }
}
