//! What a request asks for: the resource path (group, version, namespace, name, subresource),
//! the query options Kubernetes defines, the wanted output format, and the decoded body.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::registry::kinds::{self, ResourceInfo, Subresource};

/// A request path resolved against the resource table.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: &'static ResourceInfo,
    /// The namespace in the path (None for cluster-scoped resources and all-namespace lists).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<Subresource>,
}

/// Parses `/api/v1/...` or `/apis/GROUP/VERSION/...`. `Ok(None)` means "not a resource path".
pub fn parse_path(path: &str) -> Result<Option<Target>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Ok(None),
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let find = |plural: &str| kinds::lookup(group, version, plural).ok_or(Error::NoRoute);
    let sub = |resource: &ResourceInfo, name: &str| -> Result<Subresource> {
        resource.subresources.iter().copied().find(|s| s.name() == name).ok_or(Error::NoRoute)
    };
    let namespaced_collection = |plural: &str| kinds::lookup(group, version, plural).filter(|r| r.namespaced);
    let target = match rest {
        ["namespaces", ns, plural, tail @ ..] if namespaced_collection(plural).is_some() => {
            let resource = find(plural)?;
            let (name, subresource) = match tail {
                [] => (None, None),
                [name] => (Some(name.to_string()), None),
                [name, s] => (Some(name.to_string()), Some(sub(resource, s)?)),
                [name, s, ..] if proxied(resource, s) => (Some(name.to_string()), Some(Subresource::Proxy)),
                _ => return Err(Error::NoRoute),
            };
            Target { resource, namespace: Some(ns.to_string()), name, subresource }
        }
        [plural, tail @ ..] => {
            let resource = find(plural)?;
            let (name, subresource) = match tail {
                [] => (None, None),
                [name] if !resource.namespaced => (Some(name.to_string()), None),
                [name, s] if !resource.namespaced => (Some(name.to_string()), Some(sub(resource, s)?)),
                [name, s, ..] if !resource.namespaced && proxied(resource, s) => {
                    (Some(name.to_string()), Some(Subresource::Proxy))
                }
                _ => return Err(Error::NoRoute),
            };
            Target { resource, namespace: None, name, subresource }
        }
        [] => return Ok(None),
    };
    Ok(Some(target))
}

/// Whether `segment` is a `proxy` subresource of `resource`, which may have a path under it.
fn proxied(resource: &ResourceInfo, segment: &str) -> bool {
    segment == Subresource::Proxy.name() && resource.has(Subresource::Proxy)
}

/// The path under a `{name}/proxy` subresource in the raw request `path`: `/a/b` for
/// `.../{name}/proxy/a/b`, `/` for `.../proxy/`, empty for `.../proxy`.
pub fn proxy_subpath<'a>(path: &'a str, target: &Target) -> &'a str {
    let name = target.name.as_deref().unwrap_or_default();
    let scope = target.namespace.as_ref().map(|ns| format!("/namespaces/{ns}")).unwrap_or_default();
    let prefix = format!("{}{scope}/{}/{name}/proxy", target.resource.gv_path(), target.resource.plural);
    path.strip_prefix(&prefix).filter(|rest| rest.is_empty() || rest.starts_with('/')).unwrap_or_default()
}

/// Query parameters, as sent (later values win, except `dryRun` which only needs to appear).
#[derive(Debug, Default)]
pub struct Query {
    values: HashMap<String, String>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| Error::BadRequest(format!("malformed query: {e}")))?;
        Ok(Self { values: pairs.into_iter().collect() })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    pub fn number(&self, key: &str) -> Result<Option<i64>> {
        self.get(key)
            .map(|v| v.parse::<i64>().map_err(|_| Error::BadRequest(format!("invalid value for {key}: {v:?}"))))
            .transpose()
    }

    /// `dryRun=All` (the only value Kubernetes accepts).
    pub fn dry_run(&self) -> Result<bool> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => {
                Err(Error::BadRequest(format!("Invalid dry run value: {other:?}; supported values: \"All\"")))
            }
        }
    }

    pub fn field_validation(&self) -> Result<FieldValidation> {
        match self.get("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(Error::BadRequest(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            ))),
        }
    }
}

/// What to do with unknown or duplicate fields in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// What a client wants back for reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    /// `meta.k8s.io/v1` Table; rows carry the object as configured by `includeObject`.
    Table(IncludeObject),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// Reads the Accept header: tables when the client lists `as=Table` first among what we serve.
pub fn output(headers: &HeaderMap, query: &Query) -> Result<Output> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    for choice in accept.split(',') {
        let params: Vec<&str> = choice.split(';').map(str::trim).collect();
        if params.contains(&"as=Table") {
            if params.contains(&"v=v1") && params.contains(&"g=meta.k8s.io") {
                let include = match query.get("includeObject") {
                    None | Some("Metadata") => IncludeObject::Metadata,
                    Some("Object") => IncludeObject::Object,
                    Some("None") => IncludeObject::None,
                    Some(other) => return Err(Error::BadRequest(format!("invalid includeObject: {other:?}"))),
                };
                return Ok(Output::Table(include));
            }
            continue;
        }
        return Ok(Output::Json);
    }
    Ok(Output::Json)
}

/// The media type of a request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A decoded object body, with the duplicate fields seen while decoding it.
pub struct Body {
    pub object: Value,
    pub duplicates: Vec<String>,
}

/// Decodes a JSON or YAML body into an object.
pub fn decode(headers: &HeaderMap, bytes: &[u8]) -> Result<Body> {
    match content_type(headers).as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            // serde_yaml stops at 128 levels only after libyaml has parsed the whole body: a
            // small body of deeply nested flow collections would hold a worker for seconds.
            if yaml_flow_depth(bytes) > MAX_YAML_DEPTH {
                return Err(Error::BadRequest("error decoding YAML: recursion limit exceeded".into()));
            }
            let object: Value =
                serde_yaml::from_slice(bytes).map_err(|e| Error::BadRequest(format!("error decoding YAML: {e}")))?;
            Ok(Body { object, duplicates: Vec::new() })
        }
        super::protobuf::MEDIA_TYPE => Ok(Body { object: super::protobuf::decode(bytes)?, duplicates: Vec::new() }),
        "" | "application/json" | "*/*" => {
            let (object, duplicates) = crate::registry::fields::parse_json(bytes)?;
            Ok(Body { object, duplicates })
        }
        other => Err(Error::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other})"
        ))),
    }
}

/// Deeper than serde_yaml's own recursion limit (128), so nothing it accepts is refused.
const MAX_YAML_DEPTH: usize = 200;

/// The deepest nesting of YAML flow collections (`[`, `{`) in a body, outside quoted scalars and
/// comments; stops counting once past [`MAX_YAML_DEPTH`].
fn yaml_flow_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() && deepest <= MAX_YAML_DEPTH {
        match bytes[i] {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'#' if i == 0 || bytes[i - 1].is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if i == 0 || !bytes[i - 1].is_ascii_alphanumeric() => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_targets() {
        let t = parse_path("/api/v1/namespaces/default/pods/web/status").unwrap().unwrap();
        assert_eq!(
            (t.resource.plural, t.namespace.as_deref(), t.name.as_deref()),
            ("pods", Some("default"), Some("web"))
        );
        assert_eq!(t.subresource, Some(Subresource::Status));

        let t = parse_path("/apis/apps/v1/deployments").unwrap().unwrap();
        assert_eq!((t.resource.kind, t.namespace, t.name), ("Deployment", None, None));

        let t = parse_path("/api/v1/namespaces/kube-system").unwrap().unwrap();
        assert_eq!((t.resource.kind, t.name.as_deref()), ("Namespace", Some("kube-system")));

        let t = parse_path("/api/v1/namespaces/x/status").unwrap().unwrap();
        assert_eq!((t.resource.kind, t.subresource), ("Namespace", Some(Subresource::Status)));

        let t = parse_path("/apis/apps/v1/namespaces/a/deployments/d/scale").unwrap().unwrap();
        assert_eq!(t.subresource, Some(Subresource::Scale));
    }

    #[test]
    fn proxy_paths_keep_what_is_under_them() {
        let path = "/apis/wharf.dev/v1/namespaces/proxy/functions/f/proxy/a/b/";
        let t = parse_path(path).unwrap().unwrap();
        assert_eq!(
            (t.resource.kind, t.name.as_deref(), t.subresource),
            ("Function", Some("f"), Some(Subresource::Proxy))
        );
        assert_eq!(proxy_subpath(path, &t), "/a/b/");
        let path = "/apis/wharf.dev/v1/namespaces/d/functions/f/proxy";
        assert_eq!(proxy_subpath(path, &parse_path(path).unwrap().unwrap()), "");
        let path = "/api/v1/nodes/n1/proxy/metrics/resource";
        let t = parse_path(path).unwrap().unwrap();
        assert_eq!((t.resource.kind, t.subresource), ("Node", Some(Subresource::Proxy)));
        assert_eq!(proxy_subpath(path, &t), "/metrics/resource");
        assert!(matches!(parse_path("/api/v1/namespaces/a/pods/p/log/x"), Err(Error::NoRoute)));
    }

    #[test]
    fn deeply_nested_yaml_is_refused_before_parsing() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/yaml".parse().unwrap());
        let deep = format!("spec: {}1{}\n", "[".repeat(20_000), "]".repeat(20_000));
        let e = decode(&headers, deep.as_bytes()).err().expect("refused");
        assert!(matches!(e, Error::BadRequest(ref m) if m.contains("recursion limit")), "{e:?}");
        // Brackets in quoted scalars and comments do not count; real manifests decode.
        let quoted = format!(
            "a: \"{}\"\nb: '{}' # {}\nc: [[1], {{d: [2]}}]\n",
            "[".repeat(500),
            "{".repeat(500),
            "[".repeat(500)
        );
        let body = decode(&headers, quoted.as_bytes()).expect("decodes");
        assert_eq!(body.object["c"][1]["d"][0], 2);
    }

    #[test]
    fn unknown_paths_are_not_found() {
        assert!(matches!(parse_path("/api/v1/widgets"), Err(Error::NoRoute)));
        assert!(matches!(parse_path("/api/v1/namespaces/a/pods/p/exec2"), Err(Error::NoRoute)));
        assert!(matches!(parse_path("/api/v1/nodes/n/scale"), Err(Error::NoRoute)));
        assert!(parse_path("/healthz").unwrap().is_none());
        assert!(parse_path("/api/v1").unwrap().is_none());
    }

    #[test]
    fn table_output_is_chosen_from_accept() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        let q = Query::parse(Some("includeObject=Object")).unwrap();
        assert_eq!(output(&headers, &q).unwrap(), Output::Table(IncludeObject::Object));
        headers.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert_eq!(output(&headers, &q).unwrap(), Output::Json);
    }
}
