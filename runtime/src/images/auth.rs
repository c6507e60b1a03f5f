//! Registry credentials: Wharf's own bearer token, or a username and password as an
//! imagePullSecret of type `kubernetes.io/dockerconfigjson` holds them; and the
//! `WWW-Authenticate` challenges registries answer with.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;

use super::ImageError;

/// How to authenticate to one registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
    /// Sent as `Authorization: Bearer` on every request: for Wharf's embedded registry only,
    /// since any registry it is given to sees the token.
    Bearer(String),
    /// Sent as Basic auth when the registry asks for it, or to its token service when it asks
    /// for a bearer token.
    Basic { username: String, password: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

impl Credentials {
    pub(super) fn basic_header(username: &str, password: &str) -> String {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        format!("Basic {pair}")
    }
}

/// The host a `.dockerconfigjson` key or a reference's registry stands for: no scheme, no
/// path, and Docker Hub's aliases folded into `docker.io`.
fn normalize_host(key: &str) -> &str {
    let host = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = host.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        other => other,
    }
}

/// The credentials a `.dockerconfigjson` document (`{"auths": {HOST: {...}}}`, as an
/// imagePullSecret holds it) has for `registry`, matched on the host as kubelet does without
/// wildcards. Entries give `username` and `password`, or `auth` (base64 of `user:password`);
/// entries with only an `identitytoken` are not supported and skipped.
pub fn docker_config_credentials(json: &[u8], registry: &str) -> Result<Option<Credentials>, ImageError> {
    let bad = |message: String| ImageError::Credentials(message);
    let document: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| bad(format!(".dockerconfigjson is not JSON: {e}")))?;
    let auths = document
        .get("auths")
        .and_then(|a| a.as_object())
        .ok_or_else(|| bad(".dockerconfigjson has no \"auths\" object".into()))?;
    let wanted = normalize_host(registry);
    let Some(entry) = auths.iter().find(|(key, _)| normalize_host(key) == wanted).map(|(_, entry)| entry) else {
        return Ok(None);
    };
    let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    if let (Some(username), Some(password)) = (field("username"), field("password")) {
        return Ok(Some(Credentials::Basic { username: username.into(), password: password.into() }));
    }
    if let Some(auth) = field("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| bad(format!("the auth of {registry} is not base64 of user:password")))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| bad(format!("the auth of {registry} is not base64 of user:password")))?;
        return Ok(Some(Credentials::Basic { username: username.into(), password: password.into() }));
    }
    Ok(None)
}

/// One `WWW-Authenticate` challenge: its scheme (lowercase) and parameters.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="https://auth/token",service="registry",scope="repository:x:pull"`.
pub(super) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, mut rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else { break };
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key.trim().to_ascii_lowercase(), value);
        rest = remaining;
    }
    Some(Challenge { scheme: scheme.to_ascii_lowercase(), params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_entries_match_by_host() {
        let json = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
            "registry.example.com:5000": {"username": "u", "password": "p:w", "auth": "aWdub3JlZDp4"},
            "http://127.0.0.1:5000/v2/": {"auth": "bG9jYWw6cGFzcw=="},
            "token.example.com": {"identitytoken": "x"}
        }}"#;
        let basic = |u: &str, p: &str| Some(Credentials::Basic { username: u.into(), password: p.into() });
        assert_eq!(docker_config_credentials(json, "docker.io").unwrap(), basic("hub", "secret"));
        assert_eq!(docker_config_credentials(json, "registry-1.docker.io").unwrap(), basic("hub", "secret"));
        assert_eq!(docker_config_credentials(json, "registry.example.com:5000").unwrap(), basic("u", "p:w"));
        assert_eq!(docker_config_credentials(json, "127.0.0.1:5000").unwrap(), basic("local", "pass"));
        assert_eq!(docker_config_credentials(json, "registry.example.com").unwrap(), None);
        assert_eq!(docker_config_credentials(json, "token.example.com").unwrap(), None);
        assert!(matches!(docker_config_credentials(b"{}", "x"), Err(ImageError::Credentials(_))));
        let bad = br#"{"auths": {"x": {"auth": "bm9jb2xvbg=="}}}"#;
        assert!(docker_config_credentials(bad, "x").unwrap_err().to_string().contains("user:password"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let text = format!(
            "{:?} {:?}",
            Credentials::Bearer("t0k".into()),
            Credentials::Basic { username: "me".into(), password: "pw".into() }
        );
        assert!(!text.contains("t0k") && !text.contains("pw") && text.contains("me"), "{text}");
    }

    #[test]
    fn challenges_parse_with_quotes_and_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example.com/token");
        assert_eq!(c.params["service"], "registry.example.com");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="basic-realm""#).unwrap();
        assert_eq!((c.scheme.as_str(), c.params["realm"].as_str()), ("basic", "basic-realm"));
        let c = parse_challenge(r#"Bearer realm=plain, error="invalid_token", x="a\"b""#).unwrap();
        assert_eq!((c.params["realm"].as_str(), c.params["x"].as_str()), ("plain", "a\"b"));
        assert_eq!(parse_challenge("Basic").unwrap().params.len(), 0);
        assert!(parse_challenge("  ").is_none());
    }
}
