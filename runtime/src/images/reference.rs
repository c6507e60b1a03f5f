//! Image references: `hello:v1`, `library/x`, `host:port/ns/app:tag`, `app@sha256:...`.
//!
//! The first path component is a registry host when it has a `.` or a `:` or is `localhost`,
//! as Docker decides. A reference without a host names the cluster's embedded registry (the
//! `default_registry` given to [`Reference::parse`]), not Docker Hub; `docker.io/x` still
//! means Docker Hub's `library/x`.

use std::fmt;

use super::ImageError;

/// Docker Hub as written in references, and the host that serves its API.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`, as written (`docker.io` for Docker Hub).
    pub registry: String,
    /// The repository inside the registry, e.g. `library/x`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`; when present it wins over the tag.
    pub digest: Option<String>,
}

fn invalid(reference: &str, reason: &str) -> ImageError {
    ImageError::InvalidReference { reference: reference.to_string(), reason: reason.to_string() }
}

impl Reference {
    /// Parses `text`; a reference without a registry host gets `default_registry`.
    pub fn parse(text: &str, default_registry: &str) -> Result<Self, ImageError> {
        if text.is_empty() || text.len() > 4096 || text.trim() != text {
            return Err(invalid(text, "empty, too long or padded with spaces"));
        }
        let (name_tag, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                if !valid_digest(digest) {
                    return Err(invalid(text, "the digest must be sha256: and 64 lowercase hex digits"));
                }
                (name, Some(digest.to_string()))
            }
            None => (text, None),
        };
        let (name, tag) = match name_tag.rsplit_once(':') {
            // A colon after the last slash starts the tag; before it, it is the host's port.
            Some((name, tag)) if !tag.contains('/') => {
                if !valid_tag(tag) {
                    return Err(invalid(text, "a tag is up to 128 of [A-Za-z0-9_.-], not starting with . or -"));
                }
                (name, Some(tag.to_string()))
            }
            _ => (name_tag, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                if !valid_host(first) {
                    return Err(invalid(text, "invalid registry host"));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (default_registry.to_string(), name.to_string()),
        };
        if !repository.split('/').all(valid_component) {
            return Err(invalid(
                text,
                "repository components are lowercase letters and digits separated by '.', '_', '__' or '-'",
            ));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        Ok(Self { registry, repository, tag, digest })
    }

    /// What to ask the registry for: the digest if there is one, else the tag, else `latest`.
    pub fn reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The host serving the registry API (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The host serving `registry`'s API.
pub(super) fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB { DOCKER_HUB_API } else { registry }
}

pub(super) fn valid_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    component.starts_with(alnum)
        && component.ends_with(alnum)
        && component.split(alnum).all(|run| matches!(run, "" | "." | "_" | "__") || run.chars().all(|c| c == '-'))
}

/// `name[:port]` or `[v6]:port`, with DNS-ish characters.
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, port)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => ("v6", port.strip_prefix(':')),
            _ => return false,
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    name_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: &str = "127.0.0.1:6443";
    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(text: &str) -> Reference {
        Reference::parse(text, HERE).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn references_without_a_host_name_the_embedded_registry() {
        let r = parse("hello:v1");
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), (HERE, "hello", Some("v1")));
        assert_eq!(r.reference(), "v1");
        let r = parse("library/x");
        assert_eq!((r.repository.as_str(), r.tag.as_deref(), r.reference()), ("library/x", None, "latest"));
        assert_eq!(r.to_string(), "127.0.0.1:6443/library/x");
        let r = parse("my-org/app.v2/web__x");
        assert_eq!(r.repository, "my-org/app.v2/web__x");
    }

    #[test]
    fn hosts_ports_and_digests() {
        let r = parse("registry.example.com:5000/ns/app:1.2");
        assert_eq!(r.registry, "registry.example.com:5000");
        assert_eq!((r.repository.as_str(), r.tag.as_deref()), ("ns/app", Some("1.2")));
        let r = parse("localhost/app");
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("localhost", "app"));
        let r = parse(&format!("host:5000/app:v1@{DIGEST}"));
        assert_eq!((r.tag.as_deref(), r.digest.as_deref(), r.reference()), (Some("v1"), Some(DIGEST), DIGEST));
        assert_eq!(r.to_string(), format!("host:5000/app:v1@{DIGEST}"));
        let r = parse(&format!("app@{DIGEST}"));
        assert_eq!((r.registry.as_str(), r.tag.as_deref(), r.reference()), (HERE, None, DIGEST));
        let r = parse("[::1]:5000/app");
        assert_eq!(r.registry, "[::1]:5000");
        // One component with a colon is a name and a tag, as in Docker.
        let r = parse("localhost:5000");
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), (HERE, "localhost", Some("5000")));
    }

    #[test]
    fn docker_hub_gets_library_and_its_api_host() {
        let r = parse("docker.io/busybox");
        assert_eq!((r.repository.as_str(), r.api_host()), ("library/busybox", "registry-1.docker.io"));
        let r = parse("docker.io/user/app");
        assert_eq!(r.repository, "user/app");
        assert_eq!(parse("hello").api_host(), HERE);
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            " hello",
            "Hello",
            "hello:",
            "hello:-x",
            "a//b",
            "app@sha256:123",
            "app@md5:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "-app",
            "app-",
            "a___b",
            "host:port/app",
            "bad_host.com/app",
            "app/",
        ] {
            let error = Reference::parse(bad, HERE).expect_err(bad);
            assert!(matches!(error, ImageError::InvalidReference { .. }), "{bad}: {error}");
            assert_eq!(error.reason(), "InvalidImageName");
        }
    }
}
