//! ServiceAccount tokens: JWTs (ES256) signed by a key the control plane makes once in
//! `DATA_DIR/pki/sa.key`, as kube-apiserver's `--service-account-signing-key-file`. A token names
//! its ServiceAccount (and, when bound, the pod) by name and uid; it authenticates only while
//! those objects still exist with those uids (Kubernetes' bound-token semantics), before its
//! expiry, with this issuer and an audience of the API server's.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::User;
use crate::error::{Error, Result};
use crate::store::{ObjectKey, Store};

/// The issuer (`iss`) of the tokens, and the API server's audience, as kubeadm configures them.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// `system:serviceaccount:NS:NAME`.
pub const USER_PREFIX: &str = "system:serviceaccount:";
/// Every ServiceAccount's group; each is also in `system:serviceaccounts:NS`.
pub const ALL_GROUP: &str = "system:serviceaccounts";
/// The `extra` keys of a pod-bound token's user.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";
/// Where kube-apiserver's ServiceAccount key is kept in the data dir's `pki`.
pub const KEY_FILE: &str = "sa.key";

/// The signing key; the verifying half is derived from it.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    key_id: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

fn key_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("ServiceAccount key: {what}: {e}"))
}

impl SigningKey {
    /// Reads `DIR/sa.key` (PKCS#8 PEM), creating it (0600) on first use.
    pub fn load_or_create(pki_dir: &Path) -> Result<Self> {
        use rustls::pki_types::PrivatePkcs8KeyDer;
        use rustls::pki_types::pem::PemObject;
        let path = pki_dir.join(KEY_FILE);
        if !path.exists() {
            std::fs::create_dir_all(pki_dir).map_err(|e| key_error("cannot create the pki dir", e))?;
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|e| key_error("cannot generate", e))?;
            super::pki::write_private(&path, &pem("PRIVATE KEY", pkcs8.as_ref()))?;
        }
        let der = PrivatePkcs8KeyDer::from_pem_file(&path).map_err(|e| key_error("cannot read", e))?;
        Self::from_pkcs8(der.secret_pkcs8_der())
    }

    /// A key from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| key_error("unreadable", e))?;
        let key_id = b64(&Sha256::digest(pair.public_key().as_ref()));
        Ok(Self { pair, key_id, rng })
    }

    /// A fresh key held only in memory (tests).
    pub fn generate() -> Result<Self> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|e| key_error("cannot generate", e))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    fn sign(&self, claims: &Claims) -> Result<String> {
        let header = serde_json::json!({"alg": "ES256", "kid": self.key_id});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(&serde_json::to_vec(claims).map_err(|e| key_error("claims", e))?)
        );
        let signature = self.pair.sign(&self.rng, signing_input.as_bytes()).map_err(|e| key_error("cannot sign", e))?;
        Ok(format!("{signing_input}.{}", b64(signature.as_ref())))
    }

    /// The claims of a token this key signed, if its signature holds (nothing else checked).
    fn verify(&self, token: &str) -> Option<Claims> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        let header: serde_json::Value = serde_json::from_slice(&unb64(header)?).ok()?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("ES256") {
            return None;
        }
        let public = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, self.pair.public_key());
        public.verify(signing_input.as_bytes(), &unb64(signature)?).ok()?;
        serde_json::from_slice(&unb64(payload)?).ok()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// An object a token names: its name and uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// The private claims, under `kubernetes.io` as Kubernetes writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<ObjectRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    iss: String,
    jti: String,
    nbf: i64,
    sub: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
}

/// What a token is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub namespace: String,
    pub service_account: ObjectRef,
    /// The pod the token is bound to: it stops authenticating when that pod is gone.
    pub pod: Option<ObjectRef>,
    /// The node the bound pod runs on, recorded in the token (not checked).
    pub node: Option<ObjectRef>,
    /// Empty: the API server's own audience.
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
}

/// A signed token and when it expires (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub token: String,
    pub expires: i64,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// Signs a token for `spec`, valid from now for `spec.expiration_seconds`.
pub fn issue(key: &SigningKey, spec: &TokenSpec) -> Result<Issued> {
    let now = now();
    let expires = now + spec.expiration_seconds;
    let audiences = if spec.audiences.is_empty() { vec![ISSUER.to_string()] } else { spec.audiences.clone() };
    let claims = Claims {
        aud: audiences,
        exp: expires,
        iat: now,
        iss: ISSUER.into(),
        jti: uuid::Uuid::new_v4().to_string(),
        nbf: now,
        sub: format!("{USER_PREFIX}{}:{}", spec.namespace, spec.service_account.name),
        kubernetes: KubernetesClaims {
            namespace: spec.namespace.clone(),
            serviceaccount: spec.service_account.clone(),
            pod: spec.pod.clone(),
            node: spec.node.clone(),
        },
    };
    Ok(Issued { token: key.sign(&claims)?, expires })
}

/// The uid of the stored object at `resource/namespace/name`.
fn stored_uid(store: &Store, resource: &str, namespace: &str, name: &str) -> Option<String> {
    let stored = store.get(&ObjectKey::new(resource, namespace, name))?;
    // An object being deleted still exists until its finalizers are done, as in Kubernetes,
    // but a bound token's pod that is terminating no longer authenticates.
    let metadata = stored.object.get("metadata")?;
    if resource == "pods" && metadata.get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return None;
    }
    metadata.get("uid")?.as_str().map(str::to_string)
}

/// The ServiceAccount user behind `token`: its signature, issuer, audience and validity window
/// hold, its ServiceAccount exists with the uid it names, and so does its pod when it is bound
/// to one.
pub fn authenticate(store: &Store, key: &SigningKey, token: &str) -> Option<User> {
    if !super::tokens::looks_like_jwt(token) {
        return None;
    }
    let claims = key.verify(token)?;
    let now = now();
    // A minute's leeway for clocks, as Kubernetes allows.
    if claims.iss != ISSUER || !claims.aud.iter().any(|a| a == ISSUER) || claims.exp + 60 < now || claims.nbf > now + 60
    {
        return None;
    }
    let k = &claims.kubernetes;
    if claims.sub != format!("{USER_PREFIX}{}:{}", k.namespace, k.serviceaccount.name) {
        return None;
    }
    if stored_uid(store, "serviceaccounts", &k.namespace, &k.serviceaccount.name)? != k.serviceaccount.uid {
        return None;
    }
    if let Some(pod) = &k.pod
        && stored_uid(store, "pods", &k.namespace, &pod.name)? != pod.uid
    {
        return None;
    }
    Some(user(&claims))
}

fn user(claims: &Claims) -> User {
    let k = &claims.kubernetes;
    let mut user = User::new(claims.sub.clone(), [ALL_GROUP.to_string(), format!("{ALL_GROUP}:{}", k.namespace)]);
    user.uid = k.serviceaccount.uid.clone();
    if let Some(pod) = &k.pod {
        user.extra.insert(EXTRA_POD_NAME.into(), vec![pod.name.clone()]);
        user.extra.insert(EXTRA_POD_UID.into(), vec![pod.uid.clone()]);
    }
    if let Some(node) = &k.node {
        user.extra.insert(EXTRA_NODE_NAME.into(), vec![node.name.clone()]);
    }
    user.extra.insert(EXTRA_CREDENTIAL_ID.into(), vec![format!("JTI={}", claims.jti)]);
    user
}

/// `(namespace, name)` of a `system:serviceaccount:NS:NAME` user.
pub fn parse_username(name: &str) -> Option<(&str, &str)> {
    let (namespace, name) = name.strip_prefix(USER_PREFIX)?.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreOptions, Write};
    use serde_json::json;

    async fn put(store: &Store, resource: &str, namespace: &str, name: &str, uid: &str) {
        let object = json!({"metadata": {"name": name, "namespace": namespace, "uid": uid}});
        let key = ObjectKey::new(resource, namespace, name);
        let _ = store.write(Write::Delete { key: key.clone(), expected_rev: None }).await;
        store.write(Write::Create { key, object }).await.unwrap();
    }

    fn spec(pod: Option<ObjectRef>) -> TokenSpec {
        TokenSpec {
            namespace: "team".into(),
            service_account: ObjectRef { name: "builder".into(), uid: "sa-1".into() },
            pod,
            node: None,
            audiences: vec![],
            expiration_seconds: 3600,
        }
    }

    #[tokio::test]
    async fn tokens_authenticate_while_their_objects_exist() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("pki")).unwrap();
        // The key is kept and private.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("pki").join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = SigningKey::load_or_create(&dir.path().join("pki")).unwrap();
        assert_eq!(again.key_id, key.key_id);

        let token = issue(&key, &spec(None)).unwrap().token;
        assert!(authenticate(&store, &key, &token).is_none(), "no ServiceAccount yet");
        put(&store, "serviceaccounts", "team", "builder", "sa-1").await;
        let user = authenticate(&store, &again, &token).unwrap();
        assert_eq!(user.name, "system:serviceaccount:team:builder");
        assert_eq!(user.uid, "sa-1");
        assert_eq!(user.groups, ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"]);
        assert_eq!(parse_username(&user.name), Some(("team", "builder")));

        // Recreated under the same name: a new uid, the old token is dead.
        put(&store, "serviceaccounts", "team", "builder", "sa-2").await;
        assert!(authenticate(&store, &key, &token).is_none());
        put(&store, "serviceaccounts", "team", "builder", "sa-1").await;

        let pod = ObjectRef { name: "web".into(), uid: "pod-1".into() };
        let bound = issue(&key, &spec(Some(pod))).unwrap().token;
        assert!(authenticate(&store, &key, &bound).is_none(), "no pod yet");
        put(&store, "pods", "team", "web", "pod-1").await;
        let user = authenticate(&store, &key, &bound).unwrap();
        assert_eq!(user.extra[EXTRA_POD_NAME], ["web"]);
        assert_eq!(user.extra[EXTRA_POD_UID], ["pod-1"]);
        store.write(Write::Delete { key: ObjectKey::new("pods", "team", "web"), expected_rev: None }).await.unwrap();
        assert!(authenticate(&store, &key, &bound).is_none(), "pod gone");
    }

    #[tokio::test]
    async fn forged_expired_and_foreign_tokens_do_not_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
        put(&store, "serviceaccounts", "team", "builder", "sa-1").await;
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        assert!(authenticate(&store, &key, &issue(&other, &spec(None)).unwrap().token).is_none());
        let expired = TokenSpec { expiration_seconds: -120, ..spec(None) };
        assert!(authenticate(&store, &key, &issue(&key, &expired).unwrap().token).is_none());
        let foreign = TokenSpec { audiences: vec!["vault".into()], ..spec(None) };
        assert!(authenticate(&store, &key, &issue(&key, &foreign).unwrap().token).is_none());
        // A changed payload breaks the signature.
        let token = issue(&key, &spec(None)).unwrap().token;
        assert!(authenticate(&store, &key, &token).is_some());
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value = serde_json::from_slice(&unb64(parts[1]).unwrap()).unwrap();
        claims["kubernetes.io"]["namespace"] = json!("other");
        let forged = format!("{}.{}.{}", parts[0], b64(claims.to_string().as_bytes()), parts[2]);
        assert!(authenticate(&store, &key, &forged).is_none());
        assert!(authenticate(&store, &key, "not-a-jwt").is_none());
        assert!(authenticate(&store, &key, "eyJ.x.y").is_none());
    }
}
