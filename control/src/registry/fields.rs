//! Server-side field validation (`fieldValidation=Strict|Warn|Ignore`): duplicate fields found
//! while parsing a JSON body, and fields the kind's schema does not declare.
//!
//! kube-apiserver reports both as "strict decoding errors", one per field, in the format of
//! sigs.k8s.io/json: `unknown field "spec.template.spec.containers[0].imagee"` and
//! `duplicate field "metadata.name"` (path without a leading dot, Go-quoted). Then:
//! - **Strict**: the request fails with a 400 `BadRequest` Status whose message is
//!   `strict decoding error: ERR, ERR, ...`; on create and update the message is prefixed with
//!   `Deployment in version "v1" cannot be handled as a Deployment: ` ([`strict_error_for`]).
//! - **Warn** (the default): the request goes on and each problem becomes one response header
//!   `Warning: 299 - "unknown field \"spec.foo\""`, which kubectl prints as
//!   `Warning: unknown field "spec.foo"` ([`warnings`]).
//! - **Ignore**: nothing is reported.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::Error;
use crate::registry::schema::{self, REF_PREFIX};

/// kube-apiserver stops collecting strict errors after this many.
const MAX_ERRORS: usize = 100;

/// Parses a JSON request body, also returning the paths of duplicate fields (the last value
/// wins, as in Kubernetes), e.g. `["metadata.name"]`. Malformed JSON is a `BadRequest` with the
/// parser's message, line and column.
pub fn parse_json(body: &[u8]) -> Result<(Value, Vec<String>), Error> {
    let malformed =
        |e: serde_json::Error| Error::BadRequest(format!("couldn't get version/kind; json parse error: {e}"));
    let mut state = State { path: String::new(), duplicates: Vec::new() };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = ValueSeed { state: &mut state }.deserialize(&mut de).map_err(malformed)?;
    de.end().map_err(malformed)?;
    Ok((value, state.duplicates))
}

struct State {
    /// Path of the value being parsed, in the strict-error format.
    path: String,
    duplicates: Vec<String>,
}

struct ValueSeed<'a> {
    state: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let len = self.state.path.len();
            push_index(&mut self.state.path, items.len());
            let item = seq.next_element_seed(ValueSeed { state: &mut *self.state })?;
            self.state.path.truncate(len);
            match item {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let len = self.state.path.len();
            push_key(&mut self.state.path, &key);
            if map.contains_key(&key)
                && self.state.duplicates.len() < MAX_ERRORS
                && !self.state.duplicates.contains(&self.state.path)
            {
                self.state.duplicates.push(self.state.path.clone());
            }
            let value = access.next_value_seed(ValueSeed { state: &mut *self.state })?;
            self.state.path.truncate(len);
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn push_index(path: &mut String, index: usize) {
    path.push('[');
    path.push_str(&index.to_string());
    path.push(']');
}

/// The paths of fields of `obj` that the schema of `definition` does not declare, in
/// Kubernetes' format (`spec.replicass`, `spec.template.spec.containers[0].imagee`), in document
/// order. Maps (`additionalProperties`: labels, data) accept any key; schemas with
/// `x-kubernetes-preserve-unknown-fields` or without declared properties (`FieldsV1`,
/// `RawExtension`) accept anything. An unknown `definition` declares everything.
pub fn unknown_fields(definition: &str, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(schema) = schema::definition(definition) {
        walk(schema, obj, &mut String::new(), &mut out);
    }
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out.truncate(MAX_ERRORS);
    out
}

/// What a schema, with its `$ref`s and `allOf`/`anyOf`/`oneOf` branches followed, says about
/// the fields of an object and the items of an array.
#[derive(Default)]
struct Shape<'s> {
    properties: Vec<(&'s str, &'s Value)>,
    additional: Option<&'s Value>,
    any_key: bool,
    items: Option<&'s Value>,
}

impl<'s> Shape<'s> {
    fn of(schema: &'s Value) -> Self {
        let mut shape = Shape::default();
        shape.gather(schema, 0);
        shape
    }

    fn gather(&mut self, schema: &'s Value, depth: usize) {
        // `$ref` chains without properties in between cannot recurse forever, but be safe.
        if depth > 32 {
            self.any_key = true;
            return;
        }
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            match target.strip_prefix(REF_PREFIX).and_then(schema::definition) {
                Some(resolved) => self.gather(resolved, depth + 1),
                None => self.any_key = true,
            }
        }
        if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            self.any_key = true;
        }
        if let Some(Value::Object(properties)) = schema.get("properties") {
            self.properties.extend(properties.iter().map(|(k, v)| (k.as_str(), v)));
        }
        match schema.get("additionalProperties") {
            Some(additional @ Value::Object(_)) => self.additional = Some(additional),
            Some(Value::Bool(true)) => self.any_key = true,
            _ => {}
        }
        if let Some(items @ Value::Object(_)) = schema.get("items") {
            self.items = Some(items);
        }
        for branches in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(list)) = schema.get(branches) {
                list.iter().for_each(|branch| self.gather(branch, depth + 1));
            }
        }
    }

    fn property(&self, name: &str) -> Option<&'s Value> {
        self.properties.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }
}

fn walk(schema: &Value, value: &Value, path: &mut String, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            let shape = Shape::of(schema);
            // Nothing declared: an opaque object such as FieldsV1 or RawExtension.
            let opaque = shape.properties.is_empty() && shape.additional.is_none();
            for (key, field) in fields {
                let len = path.len();
                push_key(path, key);
                if let Some(property) = shape.property(key) {
                    walk(property, field, path, out);
                } else if let Some(additional) = shape.additional {
                    walk(additional, field, path, out);
                } else if !(shape.any_key
                    || opaque
                    || len == 0 && matches!(key.as_str(), "apiVersion" | "kind" | "metadata"))
                {
                    out.push(path.clone());
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = Shape::of(schema).items {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    push_index(path, i);
                    walk(item_schema, item, path, out);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// The strict decoding errors, in kube-apiserver's order of kinds: unknown, then duplicate.
fn strict_errors(unknown: &[String], duplicates: &[String]) -> Vec<String> {
    let unknown = unknown.iter().map(|p| format!("unknown field {}", go_quote(p)));
    let duplicates = duplicates.iter().map(|p| format!("duplicate field {}", go_quote(p)));
    unknown.chain(duplicates).collect()
}

/// `strict decoding error: unknown field "spec.foo", duplicate field "metadata.name"`.
pub fn strict_message(unknown: &[String], duplicates: &[String]) -> String {
    format!("strict decoding error: {}", strict_errors(unknown, duplicates).join(", "))
}

/// The `fieldValidation=Strict` answer to a request with unknown or duplicate fields (a PATCH
/// whose result has them, say): 400 `BadRequest` with [`strict_message`].
pub fn strict_error(unknown: &[String], duplicates: &[String]) -> Error {
    Error::BadRequest(strict_message(unknown, duplicates))
}

/// The `fieldValidation=Strict` answer to a create or update body, as kube-apiserver words it:
/// `Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: ...`.
pub fn strict_error_for(kind: &str, version: &str, unknown: &[String], duplicates: &[String]) -> Error {
    Error::BadRequest(format!(
        "{kind} in version {} cannot be handled as a {kind}: {}",
        go_quote(version),
        strict_message(unknown, duplicates)
    ))
}

/// The values of the `Warning` headers of `fieldValidation=Warn`, one per problem:
/// `299 - "unknown field \"spec.foo\""`.
pub fn warnings(unknown: &[String], duplicates: &[String]) -> Vec<String> {
    strict_errors(unknown, duplicates).iter().map(|text| warning(text)).collect()
}

/// A `Warning` header's value, as kube-apiserver sends it: `299 - "text"` (an HTTP
/// quoted-string), which kubectl prints as `Warning: text`.
pub fn warning(text: &str) -> String {
    format!("299 - {}", header_quote(text))
}

/// Go's `strconv.Quote` for the strings that occur in field paths.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An HTTP quoted-string (RFC 9110): `"` and `\` escaped, as kube-apiserver's warning headers.
fn header_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";

    fn deployment(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec})
    }

    #[test]
    fn unknown_at_top_level_and_in_spec() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "nme": "x"}, "foo": 1, "spec": {"replicass": 3, "replicas": 1}});
        assert_eq!(unknown_fields(DEPLOYMENT, &obj), vec!["metadata.nme", "foo", "spec.replicass"]);
    }

    #[test]
    fn unknown_nested_in_list_items() {
        let obj = deployment(json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [
                {"name": "a", "image": "nginx"},
                {"name": "b", "imagee": "nginx", "ports": [{"containerPort": 80, "hostPortt": 1}]},
            ]}},
        }));
        assert_eq!(
            unknown_fields(DEPLOYMENT, &obj),
            vec!["spec.template.spec.containers[1].imagee", "spec.template.spec.containers[1].ports[0].hostPortt"]
        );
    }

    #[test]
    fn maps_accept_any_key_but_their_values_are_checked() {
        let obj = deployment(json!({
            "template": {
                "metadata": {"labels": {"anything/goes": "yes"}, "annotations": {"x": "y"}},
                "spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "example.com/gpu": "2"}}}],
                         "nodeSelector": {"disk": "ssd"}},
            },
        }));
        assert!(unknown_fields(DEPLOYMENT, &obj).is_empty());
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v", "other": "w"}});
        assert!(unknown_fields("io.k8s.api.core.v1.ConfigMap", &cm).is_empty());
    }

    #[test]
    fn opaque_and_scalar_like_schemas_accept_anything() {
        let obj = json!({
            "metadata": {"name": "p", "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}]},
            "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}],
                                     "livenessProbe": {"httpGet": {"port": "http", "path": "/"}}}]},
        });
        assert!(unknown_fields("io.k8s.api.core.v1.Pod", &obj).is_empty());
    }

    #[test]
    fn wharf_function_fields_through_optional_references() {
        let obj = json!({
            "apiVersion": "wharf.dev/v1", "kind": "Function", "metadata": {"name": "f"},
            "spec": {"image": "hello.wasm", "route": {"path": "/", "hots": "x"}, "scale": {"minReplicas": 0},
                     "env": [{"name": "A", "valeu": "1"}]},
        });
        assert_eq!(unknown_fields("dev.wharf.v1.Function", &obj), vec!["spec.route.hots", "spec.env[0].valeu"]);
        assert!(unknown_fields("no.such.Definition", &obj).is_empty());
    }

    #[test]
    fn duplicates_at_nested_paths() {
        let body = br#"{"metadata": {"name": "a", "labels": {"x": "1", "x": "2"}, "name": "b"},
            "spec": {"containers": [{"name": "c"}, {"name": "d", "image": "i", "image": "j"}]}}"#;
        let (value, duplicates) = parse_json(body).unwrap();
        assert_eq!(duplicates, vec!["metadata.labels.x", "metadata.name", "spec.containers[1].image"]);
        assert_eq!(value["metadata"]["name"], "b", "the last one wins");
        assert_eq!(value["spec"]["containers"][1]["image"], "j");
        let (plain, none) = parse_json(br#"{"a": [1, 2.5, -3, true, null, "s"], "b": {}}"#).unwrap();
        assert_eq!(plain, json!({"a": [1, 2.5, -3, true, null, "s"], "b": {}}));
        assert!(none.is_empty());
    }

    #[test]
    fn top_level_duplicate_and_unicode_keys() {
        let (_, duplicates) =
            parse_json("{\"kind\": \"Pod\", \"kind\": \"Pod\", \"é\": 1, \"é\": 2}".as_bytes()).unwrap();
        assert_eq!(duplicates, vec!["kind", "é"]);
    }

    #[test]
    fn malformed_json_names_the_line() {
        let Err(Error::BadRequest(message)) = parse_json(b"{\n  \"kind\": \"Pod\",\n  \"spec\": {\n}") else {
            panic!("expected BadRequest");
        };
        assert!(message.contains("line 4"), "{message}");
        let Err(Error::BadRequest(message)) = parse_json(b"{\"a\": 1} x") else { panic!("trailing characters") };
        assert!(message.contains("trailing characters at line 1 column 10"), "{message}");
        assert!(matches!(parse_json(b""), Err(Error::BadRequest(_))));
    }

    #[test]
    fn messages_match_kube_apiserver() {
        let unknown = vec!["spec.foo".to_string()];
        let duplicates = vec!["metadata.name".to_string()];
        assert_eq!(
            strict_error(&unknown, &duplicates).to_string(),
            r#"strict decoding error: unknown field "spec.foo", duplicate field "metadata.name""#
        );
        let error = strict_error_for("Deployment", "v1", &unknown, &[]);
        assert_eq!(error.code(), 400);
        assert_eq!(
            error.status()["message"],
            r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo""#
        );
        assert_eq!(
            warnings(&unknown, &duplicates),
            vec![r#"299 - "unknown field \"spec.foo\"""#, r#"299 - "duplicate field \"metadata.name\"""#]
        );
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\x01""#);
    }
}
