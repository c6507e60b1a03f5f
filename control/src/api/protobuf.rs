//! Decoding of `application/vnd.kubernetes.protobuf` request bodies into the Kubernetes JSON
//! object the API server works with. client-go (1.31+) sends built-in kinds this way, with no
//! JSON fallback.
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` envelope whose `typeMeta` names the kind
//! and whose `raw` is the object's message. Field numbers and types come from a table that
//! `build.rs` derives from the `k8s-pb` crate's prost sources; the JSON name of each field is the
//! matching property of the kind's OpenAPI definition (prost snake-cased Kubernetes' names).
//!
//! Emptiness follows Go: its protobuf marshaller writes every non-pointer field, zero or not,
//! while its JSON omits empty ones. So empty strings, zero numbers and `false` are dropped,
//! except for the fields in [`KEEP_ZERO`]. A message on the wire is always kept (`emptyDir: {}`
//! selects a volume type; Go's JSON never omits structs either), except a zero `Time`, which Go
//! writes as `null`.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::Error;
use crate::registry::kinds::RESOURCES;
use crate::registry::schema;

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Scalar fields whose zero or `false` is kept: the `*int32`, `*int64` and `*bool` fields of the
/// served kinds (and of `DeleteOptions`) where an explicit zero differs from absence, which means
/// a default. Other zeros are either the default itself (`hostPort`, `stdin`, `paused`) or
/// invalid (`containerPort`, `port`). Not applied inside `…Status` messages: observed state is
/// the server's to write, and there the same names (`replicas`, `ready`) are plain counters.
const KEEP_ZERO: &[&str] = &[
    "activeDeadlineSeconds",
    "allocateLoadBalancerNodePorts",
    "allowPrivilegeEscalation",
    "automountServiceAccountToken",
    "backoffLimit",
    "backoffLimitPerIndex",
    "blockOwnerDeletion",
    "completions",
    "controller",
    "defaultMode",
    "deletionGracePeriodSeconds",
    "enableServiceLinks",
    "failedJobsHistoryLimit",
    "fsGroup",
    "gracePeriodSeconds",
    "hostUsers",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "immutable",
    "leaseTransitions",
    "manualSelector",
    "maxFailedIndexes",
    "mode",
    "optional",
    "orphanDependents",
    "parallelism",
    "priority",
    "privileged",
    "progressDeadlineSeconds",
    "readOnlyRootFilesystem",
    "ready",
    "replicas",
    "revisionHistoryLimit",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "serving",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "startingDeadlineSeconds",
    "successfulJobsHistoryLimit",
    "suspend",
    "terminating",
    "terminationGracePeriodSeconds",
    "tolerationSeconds",
    "ttlSecondsAfterFinished",
];

/// Nesting deeper than any Kubernetes object; guards the recursion against hostile bodies.
const MAX_DEPTH: usize = 64;

/// Decodes a `application/vnd.kubernetes.protobuf` body (magic + `runtime.Unknown` envelope)
/// into the JSON object Kubernetes would have decoded, with `apiVersion` and `kind` set from the
/// envelope.
pub fn decode(body: &[u8]) -> Result<Value, Error> {
    let bad = |detail: String| Error::BadRequest(format!("invalid protobuf body: {detail}"));
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| bad("it does not start with the magic `k8s\\0`".into()))?;
    let unknown = Envelope::parse(envelope).map_err(bad)?;
    if !unknown.content_encoding.is_empty() {
        return Err(bad(format!("unsupported contentEncoding {:?}", unknown.content_encoding)));
    }
    if unknown.kind.is_empty() {
        return Err(bad("the envelope names no kind".into()));
    }
    let message = definition(&unknown.api_version, &unknown.kind)
        .and_then(|d| TABLE.by_definition.get(&d.to_ascii_lowercase()).copied())
        .ok_or_else(|| {
            bad(format!("apiVersion {:?} kind {:?} has no protobuf encoding here", unknown.api_version, unknown.kind))
        })?;
    let object = match decode_message(unknown.raw, message, 0).map_err(bad)? {
        Value::Object(object) => object,
        _ => return Err(bad(format!("{} is not an object", unknown.kind))),
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(unknown.api_version));
    out.insert("kind".into(), Value::String(unknown.kind));
    out.extend(object);
    Ok(Value::Object(out))
}

/// The OpenAPI definition a protobuf envelope's apiVersion and kind name.
fn definition(api_version: &str, kind: &str) -> Option<&'static str> {
    match (api_version, kind) {
        // client-go encodes DeleteOptions in the group-version of the client that sends it.
        (_, "DeleteOptions") => Some("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
        ("autoscaling/v1", "Scale") => Some("io.k8s.api.autoscaling.v1.Scale"),
        ("v1", "Binding") => Some("io.k8s.api.core.v1.Binding"),
        ("policy/v1", "Eviction") => Some("io.k8s.api.policy.v1.Eviction"),
        ("authentication.k8s.io/v1", "TokenRequest") => Some("io.k8s.api.authentication.v1.TokenRequest"),
        _ => RESOURCES.iter().find(|r| r.kind == kind && r.api_version() == api_version).map(|r| r.definition),
    }
}

// The generated table (`static MESSAGES: &[Message]`) and the types it is written in.
include!(concat!(env!("OUT_DIR"), "/protobuf_table.rs"));

/// One protobuf message of `k8s-pb`.
struct Message {
    /// The OpenAPI package, e.g. `io.k8s.api.core.v1`.
    package: &'static str,
    /// The Rust name, e.g. `PodIp` for `PodIP`.
    name: &'static str,
    /// Sorted by tag.
    fields: &'static [Field],
}

struct Field {
    tag: u32,
    /// The Rust (snake case) name.
    name: &'static str,
    label: Label,
    /// For a map, the value's type.
    ty: Ty,
}

#[derive(Clone, Copy)]
enum Label {
    Single,
    Repeated,
    /// A map, with the key's type.
    Map(Ty),
}

/// Every protobuf scalar type, though today's Kubernetes messages use only some of them.
#[allow(dead_code)]
#[derive(Clone, Copy)]
enum Ty {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
    /// Index into `MESSAGES`.
    Message(u16),
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Clone, Copy)]
enum Special {
    /// `meta.v1.Time` {seconds=1, nanos=2}: RFC 3339 to the second, `null` when zero.
    Time,
    /// `meta.v1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `meta.v1.Timestamp`: RFC 3339 with as many fractional digits as needed.
    Timestamp,
    /// `meta.v1.Duration` {duration=1}: nanoseconds, written the way Go prints a duration.
    Duration,
    /// `resource.Quantity` {string=1}.
    Quantity,
    /// `intstr.IntOrString` {type=1 (0 int, 1 string), intVal=2, strVal=3}.
    IntOrString,
    /// `runtime.RawExtension` {raw=1} and `meta.v1.FieldsV1` {Raw=1}: embedded JSON.
    RawJson,
}

impl Special {
    fn of(message: &Message) -> Option<Special> {
        Some(match (message.package, message.name) {
            ("io.k8s.apimachinery.pkg.apis.meta.v1", "Time") => Special::Time,
            ("io.k8s.apimachinery.pkg.apis.meta.v1", "MicroTime") => Special::MicroTime,
            ("io.k8s.apimachinery.pkg.apis.meta.v1", "Timestamp") => Special::Timestamp,
            ("io.k8s.apimachinery.pkg.apis.meta.v1", "Duration") => Special::Duration,
            ("io.k8s.apimachinery.pkg.apis.meta.v1", "FieldsV1") => Special::RawJson,
            ("io.k8s.apimachinery.pkg.api.resource", "Quantity") => Special::Quantity,
            ("io.k8s.apimachinery.pkg.util.intstr", "IntOrString") => Special::IntOrString,
            ("io.k8s.apimachinery.pkg.runtime", "RawExtension") => Special::RawJson,
            _ => return None,
        })
    }
}

/// How a field appears in JSON.
enum JsonName {
    Name(String),
    /// An embedded Go struct (`json:",inline"`, e.g. `Volume.volumeSource`): its fields are the
    /// parent's.
    Inline,
}

/// What the decoder derives from the generated table and the OpenAPI definitions, once.
struct Table {
    /// Per message, per field.
    names: Vec<Vec<JsonName>>,
    special: Vec<Option<Special>>,
    /// Lowercased `package.Name` → message, as definition names differ in case from prost's
    /// (`PodIP`, `PodIp`).
    by_definition: HashMap<String, usize>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let definitions: HashMap<String, &'static Value> =
        schema::definitions().iter().map(|(name, def)| (name.to_ascii_lowercase(), def)).collect();
    let mut by_definition = HashMap::new();
    let mut properties = Vec::with_capacity(MESSAGES.len());
    for (i, message) in MESSAGES.iter().enumerate() {
        let key = format!("{}.{}", message.package, message.name).to_ascii_lowercase();
        properties.push(definitions.get(&key).and_then(|d| d["properties"].as_object()));
        by_definition.insert(key, i);
    }
    // Inlined structs take their parent's properties; repeat for inlines within inlines.
    loop {
        let mut changed = false;
        for (i, message) in MESSAGES.iter().enumerate() {
            for field in message.fields {
                if let (Some(parent), Some(child)) = (properties[i], inlined(field, properties[i]))
                    && properties[child].is_none()
                {
                    properties[child] = Some(parent);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let names = MESSAGES
        .iter()
        .zip(&properties)
        .map(|(message, props)| message.fields.iter().map(|f| json_name(f, *props)).collect())
        .collect();
    Table { names, special: MESSAGES.iter().map(Special::of).collect(), by_definition }
});

/// A field name with underscores removed and lowercased: `pod_ips` and `podIPs` agree.
fn squash(name: &str) -> String {
    name.chars().filter(|c| *c != '_').map(|c| c.to_ascii_lowercase()).collect()
}

fn property<'a>(field: &Field, properties: &'a Map<String, Value>) -> Option<&'a String> {
    let wanted = squash(field.name);
    properties.keys().find(|k| squash(k) == wanted)
}

/// The message `field` embeds inline (Go's `json:",inline"`, e.g. `Volume.volumeSource`): a
/// message field that is not a property, most of whose own fields are properties of the parent
/// (a message field merely newer than the served OpenAPI shares few of them).
fn inlined(field: &Field, properties: Option<&Map<String, Value>>) -> Option<usize> {
    let (Label::Single, Ty::Message(m), Some(properties)) = (field.label, field.ty, properties) else { return None };
    let child = &MESSAGES[m as usize];
    let shared = child.fields.iter().filter(|f| property(f, properties).is_some()).count();
    let inline =
        property(field, properties).is_none() && Special::of(child).is_none() && shared * 2 > child.fields.len();
    inline.then_some(m as usize)
}

/// The JSON name of `field`: the OpenAPI property that is its name with underscores removed and
/// case ignored, or inline; failing that (no definition, or a field newer than the served
/// OpenAPI), the lowerCamelCase of the Rust name.
fn json_name(field: &Field, properties: Option<&Map<String, Value>>) -> JsonName {
    if let Some(name) = properties.and_then(|p| property(field, p)) {
        return JsonName::Name(name.clone());
    }
    if inlined(field, properties).is_some() {
        return JsonName::Inline;
    }
    let mut name = String::with_capacity(field.name.len());
    let mut upper = false;
    for c in field.name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                name.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => name.push(c),
        }
    }
    JsonName::Name(name)
}

/// A field's value as it was on the wire.
#[derive(Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Iterates over the fields of an encoded message.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for (i, byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i == 9 && *byte > 1 {
                    break;
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.buf.len() < 10 { "truncated varint".into() } else { "varint overflows 64 bits".into() })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!("truncated: {n} bytes announced, {} left", self.buf.len()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field's number and value; `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u32, Wire<'a>)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).ok().filter(|t| *t > 0).ok_or_else(|| format!("invalid field key {key}"))?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length overflows".to_string())?;
                Wire::Bytes(self.take(len)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"))),
            wire => return Err(format!("field {tag}: unsupported wire type {wire}")),
        };
        Ok(Some((tag, value)))
    }
}

/// The `runtime.Unknown` envelope: typeMeta=1 {apiVersion=1, kind=2}, raw=2,
/// contentEncoding=3, contentType=4.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Envelope<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, String> {
        let mut envelope =
            Envelope { api_version: String::new(), kind: String::new(), raw: &[], content_encoding: String::new() };
        let mut reader = Reader::new(buf);
        while let Some((tag, wire)) = reader.field()? {
            match (tag, wire) {
                (1, Wire::Bytes(type_meta)) => {
                    let mut reader = Reader::new(type_meta);
                    while let Some((tag, wire)) = reader.field()? {
                        match (tag, wire) {
                            (1, Wire::Bytes(b)) => envelope.api_version = utf8(b)?.to_string(),
                            (2, Wire::Bytes(b)) => envelope.kind = utf8(b)?.to_string(),
                            _ => {}
                        }
                    }
                }
                (2, Wire::Bytes(raw)) => envelope.raw = raw,
                (3, Wire::Bytes(b)) => envelope.content_encoding = utf8(b)?.to_string(),
                (4, Wire::Bytes(_)) => {}
                (1..=4, _) => return Err(format!("runtime.Unknown field {tag} has the wrong wire type")),
                _ => {}
            }
        }
        Ok(envelope)
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "a string is not valid UTF-8".to_string())
}

/// Decodes the message `index` of `MESSAGES` from `buf`.
fn decode_message(buf: &[u8], index: usize, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("messages nested too deeply".into());
    }
    if let Some(special) = TABLE.special[index] {
        return decode_special(special, buf).map_err(|e| format!("{}: {e}", MESSAGES[index].name));
    }
    let message = &MESSAGES[index];
    let mut out = Map::new();
    let mut reader = Reader::new(buf);
    while let Some((tag, wire)) = reader.field().map_err(|e| format!("{}: {e}", message.name))? {
        // Unknown fields are skipped, as Go's decoder does.
        let Ok(i) = message.fields.binary_search_by_key(&tag, |f| f.tag) else { continue };
        let field = &message.fields[i];
        let context = |e: String| format!("{}.{}: {e}", message.name, field.name);
        let name = match &TABLE.names[index][i] {
            JsonName::Name(name) => name,
            JsonName::Inline => {
                let (Ty::Message(m), Wire::Bytes(bytes)) = (field.ty, wire) else {
                    return Err(context("wrong wire type".into()));
                };
                if let Value::Object(fields) = decode_message(bytes, m as usize, depth + 1)? {
                    merge(&mut out, fields);
                }
                continue;
            }
        };
        match field.label {
            Label::Single => {
                let value = decode_value(field.ty, wire, depth).map_err(context)?;
                let keep_zero = || !message.name.ends_with("Status") && KEEP_ZERO.contains(&name.as_str());
                let keep = match value {
                    Value::Null => false,
                    _ if matches!(field.ty, Ty::Message(_)) => true,
                    Value::String(ref s) => !s.is_empty(),
                    Value::Bool(b) => b || keep_zero(),
                    Value::Number(ref n) => n.as_f64() != Some(0.0) || keep_zero(),
                    _ => true,
                };
                if !keep {
                    out.remove(name.as_str());
                    continue;
                }
                match (out.get_mut(name.as_str()), value) {
                    // A message seen twice is merged, as protobuf does.
                    (Some(Value::Object(old)), Value::Object(new)) => merge(old, new),
                    (_, value) => {
                        out.insert(name.clone(), value);
                    }
                }
            }
            Label::Repeated => {
                let list = out.entry(name.clone()).or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(list) = list else { unreachable!("repeated fields are arrays") };
                match (wire, packed_width(field.ty)) {
                    (Wire::Bytes(bytes), Some(width)) => {
                        let mut packed = Reader::new(bytes);
                        while !packed.buf.is_empty() {
                            let wire = match width {
                                0 => Wire::Varint(packed.varint().map_err(context)?),
                                4 => Wire::Fixed32(u32::from_le_bytes(
                                    packed.take(4).map_err(context)?.try_into().expect("4 bytes"),
                                )),
                                _ => Wire::Fixed64(u64::from_le_bytes(
                                    packed.take(8).map_err(context)?.try_into().expect("8 bytes"),
                                )),
                            };
                            list.push(decode_value(field.ty, wire, depth).map_err(context)?);
                        }
                    }
                    _ => list.push(decode_value(field.ty, wire, depth).map_err(context)?),
                }
            }
            Label::Map(key_ty) => {
                let Wire::Bytes(entry) = wire else { return Err(context("wrong wire type".into())) };
                let (mut key, mut value) = (None, None);
                let mut reader = Reader::new(entry);
                while let Some((tag, wire)) = reader.field().map_err(context)? {
                    match tag {
                        1 => key = Some(decode_value(key_ty, wire, depth).map_err(context)?),
                        2 => value = Some(decode_value(field.ty, wire, depth).map_err(context)?),
                        _ => {}
                    }
                }
                let key = match key {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let value = match value {
                    Some(value) => value,
                    None => decode_value(field.ty, Wire::Bytes(&[]), depth)
                        .or_else(|_| decode_value(field.ty, Wire::Varint(0), depth))
                        .map_err(context)?,
                };
                let map = out.entry(name.clone()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(key, value);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Merges a message decoded again into its earlier occurrence: fields replace, lists append,
/// messages and maps merge.
fn merge(old: &mut Map<String, Value>, new: Map<String, Value>) {
    for (key, value) in new {
        match (old.get_mut(&key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => merge(old, new),
            (Some(Value::Array(old)), Value::Array(new)) => old.extend(new),
            (_, value) => {
                old.insert(key, value);
            }
        }
    }
}

/// The element width of a packed repeated field (0 for varints), `None` if it cannot be packed.
fn packed_width(ty: Ty) -> Option<usize> {
    match ty {
        Ty::Int32 | Ty::Int64 | Ty::Uint32 | Ty::Uint64 | Ty::Sint32 | Ty::Sint64 | Ty::Bool => Some(0),
        Ty::Fixed32 | Ty::Sfixed32 | Ty::Float => Some(4),
        Ty::Fixed64 | Ty::Sfixed64 | Ty::Double => Some(8),
        Ty::String | Ty::Bytes | Ty::Message(_) => None,
    }
}

/// One value of type `ty`, rendered as Kubernetes' JSON does.
fn decode_value(ty: Ty, wire: Wire, depth: usize) -> Result<Value, String> {
    let zigzag = |v: u64| ((v >> 1) as i64) ^ -((v & 1) as i64);
    // Truncating casts are protobuf's own rules: int32 travels as a sign-extended varint.
    Ok(match (ty, wire) {
        (Ty::Int32, Wire::Varint(v)) => Value::from(v as i32),
        (Ty::Int64, Wire::Varint(v)) => Value::from(v as i64),
        (Ty::Uint32, Wire::Varint(v)) => Value::from(v as u32),
        (Ty::Uint64, Wire::Varint(v)) => Value::from(v),
        (Ty::Sint32, Wire::Varint(v)) => Value::from(zigzag(v) as i32),
        (Ty::Sint64, Wire::Varint(v)) => Value::from(zigzag(v)),
        (Ty::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        (Ty::Fixed32, Wire::Fixed32(v)) => Value::from(v),
        (Ty::Sfixed32, Wire::Fixed32(v)) => Value::from(v as i32),
        (Ty::Fixed64, Wire::Fixed64(v)) => Value::from(v),
        (Ty::Sfixed64, Wire::Fixed64(v)) => Value::from(v as i64),
        (Ty::Float, Wire::Fixed32(v)) => float(f64::from(f32::from_bits(v)))?,
        (Ty::Double, Wire::Fixed64(v)) => float(f64::from_bits(v))?,
        (Ty::String, Wire::Bytes(b)) => Value::String(utf8(b)?.to_string()),
        (Ty::Bytes, Wire::Bytes(b)) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        (Ty::Message(m), Wire::Bytes(b)) => decode_message(b, m as usize, depth + 1)?,
        _ => return Err("wrong wire type".into()),
    })
}

fn float(f: f64) -> Result<Value, String> {
    Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("{f} has no JSON form"))
}

fn decode_special(special: Special, buf: &[u8]) -> Result<Value, String> {
    let mut fields: [Option<Wire>; 4] = [None; 4];
    let mut reader = Reader::new(buf);
    while let Some((tag, wire)) = reader.field()? {
        if let Some(slot) = fields.get_mut(tag as usize) {
            *slot = Some(wire);
        }
    }
    let int = |tag: usize| match fields[tag] {
        None => Ok(0),
        Some(Wire::Varint(v)) => Ok(v as i64),
        Some(_) => Err(format!("field {tag}: wrong wire type")),
    };
    let bytes = |tag: usize| match fields[tag] {
        None => Ok(&[][..]),
        Some(Wire::Bytes(b)) => Ok(b),
        Some(_) => Err(format!("field {tag}: wrong wire type")),
    };
    Ok(match special {
        Special::Time | Special::MicroTime | Special::Timestamp => {
            let (seconds, nanos) = (int(1)?, int(2)? as i32);
            if seconds == 0 && nanos == 0 {
                return Ok(Value::Null);
            }
            let time = jiff::Timestamp::new(seconds, nanos).map_err(|e| format!("invalid time: {e}"))?;
            let format = match special {
                Special::Time => "%Y-%m-%dT%H:%M:%SZ",
                Special::MicroTime => "%Y-%m-%dT%H:%M:%S%.6fZ",
                _ => "%Y-%m-%dT%H:%M:%S%.fZ",
            };
            Value::String(time.strftime(format).to_string())
        }
        Special::Duration => Value::String(go_duration(int(1)?)),
        Special::Quantity => match utf8(bytes(1)?)? {
            "" => Value::String("0".into()),
            quantity => Value::String(quantity.into()),
        },
        Special::IntOrString => match int(1)? {
            1 => Value::String(utf8(bytes(3)?)?.into()),
            _ => Value::from(int(2)? as i32),
        },
        Special::RawJson => match bytes(1)? {
            [] => Value::Null,
            raw => serde_json::from_slice(raw).map_err(|e| format!("embedded object is not JSON: {e}"))?,
        },
    })
}

/// A duration in nanoseconds as Go's `time.Duration.String` writes it: `1h2m3.5s`, `1.5ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    /// `value / unit` with its fraction, trailing zeros trimmed.
    fn fraction(value: u64, unit: u64) -> String {
        let (whole, rest) = (value / unit, value % unit);
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        format!("{whole}.{:0digits$}", rest).trim_end_matches('0').to_string()
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let body = match n {
        0 => return "0s".into(),
        1..1_000 => format!("{n}ns"),
        1_000..1_000_000 => format!("{}µs", fraction(n, 1_000)),
        1_000_000..1_000_000_000 => format!("{}ms", fraction(n, 1_000_000)),
        _ => {
            let seconds = format!("{}s", fraction(n % 60_000_000_000, 1_000_000_000));
            let minutes = n / 60_000_000_000;
            match (minutes / 60, minutes % 60) {
                (0, 0) => seconds,
                (0, m) => format!("{m}m{seconds}"),
                (h, m) => format!("{h}h{m}m{seconds}"),
            }
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use k8s_pb::api::apps::v1 as apps;
    use k8s_pb::api::batch::v1 as batch;
    use k8s_pb::api::coordination::v1 as coordination;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use prost::Message as _;
    use serde_json::json;

    use super::*;

    /// A body as client-go's protobuf serializer writes it.
    fn body(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
            raw: Some(object.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    fn s(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    fn map<V>(entries: &[(&str, V)]) -> BTreeMap<String, V>
    where
        V: Clone,
    {
        entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn quantity(q: &str) -> Quantity {
        Quantity { string: s(q) }
    }

    /// ObjectMeta with the non-pointer fields Go always writes, empty.
    fn go_meta(name: &str, namespace: &str) -> meta::ObjectMeta {
        meta::ObjectMeta {
            name: s(name),
            generate_name: s(""),
            namespace: s(namespace),
            self_link: s(""),
            uid: s(""),
            resource_version: s(""),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }
    }

    /// A container as `kubectl create deployment` or `kubectl run` builds it, with Go's empties.
    fn go_container(name: &str, image: &str) -> core::Container {
        core::Container {
            name: s(name),
            image: s(image),
            working_dir: s(""),
            resources: Some(core::ResourceRequirements::default()),
            termination_message_path: s(""),
            image_pull_policy: s(""),
            stdin: Some(false),
            stdin_once: Some(false),
            tty: Some(false),
            termination_message_policy: s(""),
            ..Default::default()
        }
    }

    /// A PodSpec with Go's empties.
    fn go_pod_spec(containers: Vec<core::Container>) -> core::PodSpec {
        core::PodSpec {
            containers,
            restart_policy: s(""),
            dns_policy: s(""),
            service_account_name: s(""),
            service_account: s(""),
            node_name: s(""),
            host_network: Some(false),
            host_pid: Some(false),
            host_ipc: Some(false),
            hostname: s(""),
            subdomain: s(""),
            scheduler_name: s(""),
            priority_class_name: s(""),
            ..Default::default()
        }
    }

    fn go_template(labels: &[(&str, &str)], spec: core::PodSpec) -> core::PodTemplateSpec {
        let mut metadata = go_meta("", "");
        metadata.labels = map(labels).into_iter().map(|(k, v)| (k, v.to_string())).collect();
        core::PodTemplateSpec { metadata: Some(metadata), spec: Some(spec) }
    }

    fn bad_request(result: Result<Value, Error>) -> String {
        match result {
            Err(Error::BadRequest(message)) => message,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    #[test]
    fn config_map_with_data_binary_data_and_managed_fields() {
        let mut metadata = go_meta("settings", "default");
        metadata.managed_fields = vec![meta::ManagedFieldsEntry {
            manager: s("kubectl-create"),
            operation: s("Update"),
            api_version: s("v1"),
            time: Some(meta::Time { seconds: Some(1_704_164_645), nanos: Some(0) }),
            fields_type: s("FieldsV1"),
            fields_v1: Some(meta::FieldsV1 { raw: Some(br#"{"f:data":{"f:mode":{}}}"#.to_vec()) }),
            subresource: s(""),
        }];
        let config_map = core::ConfigMap {
            metadata: Some(metadata),
            data: map(&[("mode", "prod".to_string()), ("empty", String::new())]),
            binary_data: map(&[("blob", vec![0u8, 1, 2, 255])]),
            immutable: None,
        };
        let decoded = decode(&body("v1", "ConfigMap", &config_map)).unwrap();
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "settings",
                    "namespace": "default",
                    "managedFields": [{
                        "manager": "kubectl-create",
                        "operation": "Update",
                        "apiVersion": "v1",
                        "time": "2024-01-02T03:04:05Z",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:data": {"f:mode": {}}},
                    }],
                },
                "data": {"empty": "", "mode": "prod"},
                "binaryData": {"blob": "AAEC/w=="},
            })
        );
        let keys: Vec<&String> = decoded.as_object().unwrap().keys().collect();
        assert_eq!(keys[..2], ["apiVersion", "kind"], "apiVersion and kind come first");
    }

    #[test]
    fn secret_bytes_are_base64_and_immutable_false_is_kept() {
        let secret = core::Secret {
            metadata: Some(go_meta("creds", "default")),
            immutable: Some(false),
            data: map(&[("password", b"hunter2".to_vec()), ("empty", Vec::new())]),
            string_data: BTreeMap::new(),
            r#type: s("Opaque"),
        };
        assert_eq!(
            decode(&body("v1", "Secret", &secret)).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds", "namespace": "default"},
                "immutable": false,
                "data": {"empty": "", "password": "aHVudGVyMg=="},
                "type": "Opaque",
            })
        );
    }

    /// `kubectl create deployment web --image=nginx --replicas=0 --port=80`, plus env and resources.
    #[test]
    fn deployment_as_kubectl_creates_it() {
        let mut container = go_container("nginx", "nginx");
        container.ports = vec![core::ContainerPort {
            name: s(""),
            host_port: Some(0),
            container_port: Some(80),
            protocol: s("TCP"),
            host_ip: s(""),
        }];
        container.env = vec![core::EnvVar { name: s("MODE"), value: s("prod"), value_from: None }];
        container.resources = Some(core::ResourceRequirements {
            limits: map(&[("cpu", quantity("500m")), ("memory", quantity("128Mi"))]),
            requests: map(&[("cpu", quantity("250m"))]),
            claims: Vec::new(),
        });
        let mut metadata = go_meta("web", "default");
        metadata.labels = map(&[("app", "web".to_string())]);
        let deployment = apps::Deployment {
            metadata: Some(metadata),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: map(&[("app", "web".to_string())]),
                    match_expressions: Vec::new(),
                }),
                template: Some(go_template(&[("app", "web")], go_pod_spec(vec![container]))),
                strategy: Some(apps::DeploymentStrategy { r#type: s(""), rolling_update: None }),
                min_ready_seconds: Some(0),
                revision_history_limit: None,
                paused: Some(false),
                progress_deadline_seconds: None,
            }),
            status: Some(apps::DeploymentStatus {
                observed_generation: Some(0),
                replicas: Some(0),
                updated_replicas: Some(0),
                ready_replicas: Some(0),
                available_replicas: Some(0),
                unavailable_replicas: Some(0),
                ..Default::default()
            }),
        };
        assert_eq!(
            decode(&body("apps/v1", "Deployment", &deployment)).unwrap(),
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [{
                                "name": "nginx",
                                "image": "nginx",
                                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                "env": [{"name": "MODE", "value": "prod"}],
                                "resources": {
                                    "limits": {"cpu": "500m", "memory": "128Mi"},
                                    "requests": {"cpu": "250m"},
                                },
                            }],
                        },
                    },
                    "strategy": {},
                },
                "status": {},
            })
        );
    }

    #[test]
    fn service_target_port_int_or_string() {
        let port = |name: &str, port: i32, target: IntOrString| core::ServicePort {
            name: s(name),
            protocol: s("TCP"),
            app_protocol: None,
            port: Some(port),
            target_port: Some(target),
            node_port: Some(0),
        };
        let service = core::Service {
            metadata: Some(go_meta("web", "default")),
            spec: Some(core::ServiceSpec {
                ports: vec![
                    port("80-8080", 80, IntOrString { r#type: Some(0), int_val: Some(8080), str_val: s("") }),
                    port("https", 443, IntOrString { r#type: Some(1), int_val: Some(0), str_val: s("https") }),
                    port("same", 81, IntOrString { r#type: Some(0), int_val: Some(0), str_val: s("") }),
                ],
                selector: map(&[("app", "web".to_string())]),
                cluster_ip: s(""),
                r#type: s("ClusterIP"),
                session_affinity: s(""),
                load_balancer_ip: s(""),
                external_name: s(""),
                external_traffic_policy: s(""),
                health_check_node_port: Some(0),
                publish_not_ready_addresses: Some(false),
                ..Default::default()
            }),
            status: Some(core::ServiceStatus {
                load_balancer: Some(core::LoadBalancerStatus::default()),
                conditions: Vec::new(),
            }),
        };
        assert_eq!(
            decode(&body("v1", "Service", &service)).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "ports": [
                        {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                        {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https"},
                        // Go's JSON writes a zero IntOrString too; defaulting turns it into `port`.
                        {"name": "same", "protocol": "TCP", "port": 81, "targetPort": 0},
                    ],
                    "selector": {"app": "web"},
                    "type": "ClusterIP",
                },
                "status": {"loadBalancer": {}},
            })
        );
    }

    fn job_spec() -> batch::JobSpec {
        let mut pod = go_pod_spec(vec![core::Container {
            command: vec!["sh".into(), "-c".into(), "date".into()],
            volume_mounts: vec![core::VolumeMount {
                name: s("scratch"),
                read_only: Some(false),
                mount_path: s("/scratch"),
                sub_path: s(""),
                mount_propagation: None,
                sub_path_expr: s(""),
                recursive_read_only: None,
            }],
            ..go_container("job", "busybox")
        }]);
        pod.restart_policy = s("OnFailure");
        pod.volumes = vec![core::Volume {
            name: s("scratch"),
            volume_source: Some(core::VolumeSource {
                empty_dir: Some(core::EmptyDirVolumeSource { medium: s(""), size_limit: None }),
                ..Default::default()
            }),
        }];
        batch::JobSpec {
            parallelism: None,
            completions: None,
            active_deadline_seconds: None,
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(0),
            template: Some(go_template(&[], pod)),
            ..Default::default()
        }
    }

    fn expected_job_spec() -> Value {
        json!({
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 0,
            "template": {
                "metadata": {},
                "spec": {
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                    "containers": [{
                        "name": "job",
                        "image": "busybox",
                        "command": ["sh", "-c", "date"],
                        "resources": {},
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                    }],
                    "restartPolicy": "OnFailure",
                },
            },
        })
    }

    #[test]
    fn cron_job_keeps_pointer_zeros_and_empty_dir() {
        let cron_job = batch::CronJob {
            metadata: Some(go_meta("tick", "default")),
            spec: Some(batch::CronJobSpec {
                schedule: s("*/1 * * * *"),
                time_zone: None,
                starting_deadline_seconds: None,
                concurrency_policy: s(""),
                suspend: Some(false),
                job_template: Some(batch::JobTemplateSpec {
                    metadata: Some(go_meta("tick", "")),
                    spec: Some(job_spec()),
                }),
                successful_jobs_history_limit: Some(0),
                failed_jobs_history_limit: None,
            }),
            status: Some(batch::CronJobStatus::default()),
        };
        assert_eq!(
            decode(&body("batch/v1", "CronJob", &cron_job)).unwrap(),
            json!({
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "tick", "namespace": "default"},
                "spec": {
                    "schedule": "*/1 * * * *",
                    "suspend": false,
                    "jobTemplate": {"metadata": {"name": "tick"}, "spec": expected_job_spec()},
                    "successfulJobsHistoryLimit": 0,
                },
                "status": {},
            })
        );
    }

    /// `kubectl create job run-1 --from=cronjob/tick`.
    #[test]
    fn job_from_cron_job() {
        let mut metadata = go_meta("run-1", "default");
        metadata.annotations = map(&[("cronjob.kubernetes.io/instantiate", "manual".to_string())]);
        metadata.owner_references = vec![meta::OwnerReference {
            api_version: s("batch/v1"),
            kind: s("CronJob"),
            name: s("tick"),
            uid: s("0b8e3c1e-1111-2222-3333-444455556666"),
            controller: Some(true),
            block_owner_deletion: None,
        }];
        let job = batch::Job {
            metadata: Some(metadata),
            spec: Some(job_spec()),
            status: Some(batch::JobStatus {
                active: Some(0),
                succeeded: Some(0),
                failed: Some(0),
                ..Default::default()
            }),
        };
        assert_eq!(
            decode(&body("batch/v1", "Job", &job)).unwrap(),
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": "run-1",
                    "namespace": "default",
                    "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                    "ownerReferences": [{
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "tick",
                        "uid": "0b8e3c1e-1111-2222-3333-444455556666",
                        "controller": true,
                    }],
                },
                "spec": expected_job_spec(),
                "status": {},
            })
        );
    }

    /// `kubectl run -it shell --image=busybox`, with a few more set fields.
    #[test]
    fn pod_with_times_and_security_context() {
        let mut metadata = go_meta("shell", "default");
        metadata.creation_timestamp = Some(meta::Time { seconds: Some(1_704_164_645), nanos: Some(0) });
        metadata.deletion_timestamp = Some(meta::Time { seconds: Some(1_704_164_700), nanos: Some(0) });
        metadata.deletion_grace_period_seconds = Some(0);
        let mut container = go_container("shell", "busybox");
        (container.stdin, container.stdin_once, container.tty) = (Some(true), Some(true), Some(true));
        container.security_context = Some(core::SecurityContext {
            run_as_user: Some(0),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        });
        let mut spec = go_pod_spec(vec![container]);
        spec.restart_policy = s("Always");
        spec.termination_grace_period_seconds = Some(0);
        spec.security_context = Some(core::PodSecurityContext {
            supplemental_groups: vec![0, 1000],
            fs_group: Some(0),
            ..Default::default()
        });
        let pod = core::Pod {
            metadata: Some(metadata),
            spec: Some(spec),
            status: Some(core::PodStatus {
                phase: s(""),
                start_time: Some(meta::Time { seconds: Some(-1), nanos: Some(0) }),
                ..Default::default()
            }),
        };
        assert_eq!(
            decode(&body("v1", "Pod", &pod)).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "shell",
                    "namespace": "default",
                    "creationTimestamp": "2024-01-02T03:04:05Z",
                    "deletionTimestamp": "2024-01-02T03:05:00Z",
                    "deletionGracePeriodSeconds": 0,
                },
                "spec": {
                    "containers": [{
                        "name": "shell",
                        "image": "busybox",
                        "resources": {},
                        "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false},
                        "stdin": true,
                        "stdinOnce": true,
                        "tty": true,
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 0,
                    "securityContext": {"supplementalGroups": [0, 1000], "fsGroup": 0},
                },
                "status": {"startTime": "1969-12-31T23:59:59Z"},
            })
        );
    }

    #[test]
    fn lease_micro_time() {
        let lease = coordination::Lease {
            metadata: Some(go_meta("node-a", "kube-node-lease")),
            spec: Some(coordination::LeaseSpec {
                holder_identity: s("node-a"),
                lease_duration_seconds: Some(40),
                renew_time: Some(meta::MicroTime { seconds: Some(1_704_164_645), nanos: Some(123_456_789) }),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        assert_eq!(
            decode(&body("coordination.k8s.io/v1", "Lease", &lease)).unwrap()["spec"],
            json!({
                "holderIdentity": "node-a",
                "leaseDurationSeconds": 40,
                "renewTime": "2024-01-02T03:04:05.123456Z",
                "leaseTransitions": 0,
            })
        );
    }

    #[test]
    fn delete_options_from_any_group_version() {
        let options = meta::DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(meta::Preconditions { uid: s("u-1"), resource_version: None }),
            orphan_dependents: None,
            propagation_policy: s("Foreground"),
            dry_run: vec!["All".into()],
            ignore_store_read_error_with_cluster_breaking_potential: None,
        };
        for api_version in ["v1", "meta.k8s.io/v1", "apps/v1"] {
            assert_eq!(
                decode(&body(api_version, "DeleteOptions", &options)).unwrap(),
                json!({
                    "apiVersion": api_version,
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": "u-1"},
                    "propagationPolicy": "Foreground",
                    "dryRun": ["All"],
                })
            );
        }
    }

    #[test]
    fn scale_and_binding() {
        let scale = k8s_pb::api::autoscaling::v1::Scale {
            metadata: Some(go_meta("web", "default")),
            spec: Some(k8s_pb::api::autoscaling::v1::ScaleSpec { replicas: Some(0) }),
            status: Some(k8s_pb::api::autoscaling::v1::ScaleStatus { replicas: Some(0), selector: s("") }),
        };
        assert_eq!(
            decode(&body("autoscaling/v1", "Scale", &scale)).unwrap(),
            json!({
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"replicas": 0},
                "status": {},
            })
        );
        let binding = core::Binding {
            metadata: Some(go_meta("shell", "default")),
            target: Some(core::ObjectReference { kind: s("Node"), name: s("node-a"), ..Default::default() }),
        };
        assert_eq!(
            decode(&body("v1", "Binding", &binding)).unwrap()["target"],
            json!({"kind": "Node", "name": "node-a"})
        );
    }

    #[test]
    fn packed_and_unpacked_repeated_scalars_decode_alike() {
        // PodSecurityContext.supplementalGroups (field 4, int64): Go writes it unpacked.
        let unpacked = core::PodSecurityContext { supplemental_groups: vec![1, 300], ..Default::default() };
        let packed = [0x22, 0x03, 0x01, 0xac, 0x02];
        let spec = |context: Vec<u8>| {
            // PodSpec.securityContext is field 14; Pod.spec field 2.
            let spec = [vec![0x72, context.len() as u8], context].concat();
            let pod = [vec![0x12, spec.len() as u8], spec].concat();
            let unknown = Unknown {
                type_meta: Some(TypeMeta { api_version: s("v1"), kind: s("Pod") }),
                raw: Some(pod),
                ..Default::default()
            };
            decode(&[MAGIC, &unknown.encode_to_vec()].concat()).unwrap()["spec"]["securityContext"].clone()
        };
        let expected = json!({"supplementalGroups": [1, 300]});
        assert_eq!(spec(unpacked.encode_to_vec()), expected);
        assert_eq!(spec(packed.to_vec()), expected);
    }

    #[test]
    fn unknown_fields_are_skipped_and_negative_int32_decodes() {
        let container = core::ContainerPort { container_port: Some(-1), ..Default::default() };
        // Field 99 (varint) is not part of ContainerPort.
        let raw = [container.encode_to_vec(), vec![0x98, 0x06, 0x01]].concat();
        let mut reader = Reader::new(&raw);
        assert!(reader.field().unwrap().is_some());
        let index = TABLE.by_definition["io.k8s.api.core.v1.containerport"];
        assert_eq!(decode_message(&raw, index, 0).unwrap(), json!({"containerPort": -1}));
    }

    #[test]
    fn bad_bodies_are_bad_requests() {
        let config_map = core::ConfigMap { metadata: Some(go_meta("c", "default")), ..Default::default() };
        let good = body("v1", "ConfigMap", &config_map);
        assert!(bad_request(decode(b"{\"kind\": \"ConfigMap\"}")).contains("magic"));
        assert!(bad_request(decode(&good[..good.len() - 3])).contains("truncated"));
        assert!(bad_request(decode(&[MAGIC, &[0x0a, 0x05, 0x0a]].concat())).contains("truncated"));
        assert!(bad_request(decode(&[MAGIC, &[0x0a, 0xff]].concat())).contains("truncated"));
        assert!(bad_request(decode(&[MAGIC, &[0xff; 11]].concat())).contains("overflows"));
        assert!(bad_request(decode(&body("v1", "Widget", &config_map))).contains("\"Widget\""));
        assert!(bad_request(decode(&body("wharf.dev/v1", "Function", &config_map))).contains("no protobuf"));
        assert!(bad_request(decode(MAGIC)).contains("no kind"));
        // ConfigMap.data (field 2) is a map: a varint there has the wrong wire type.
        let unknown = Unknown {
            type_meta: Some(TypeMeta { api_version: s("v1"), kind: s("ConfigMap") }),
            raw: Some(vec![0x10, 0x01]),
            ..Default::default()
        };
        assert!(bad_request(decode(&[MAGIC, &unknown.encode_to_vec()].concat())).contains("ConfigMap.data"));
        let gzip = Unknown { content_encoding: s("gzip"), ..unknown };
        assert!(bad_request(decode(&[MAGIC, &gzip.encode_to_vec()].concat())).contains("contentEncoding"));
    }

    #[test]
    fn raw_extension_duration_and_timestamp() {
        let index = |name: &str| TABLE.by_definition[&name.to_ascii_lowercase()];
        let raw = k8s_pb::apimachinery::pkg::runtime::RawExtension { raw: Some(br#"{"a":[1]}"#.to_vec()) };
        let raw_index = index("io.k8s.apimachinery.pkg.runtime.RawExtension");
        assert_eq!(decode_message(&raw.encode_to_vec(), raw_index, 0).unwrap(), json!({"a": [1]}));
        let not_json = k8s_pb::apimachinery::pkg::runtime::RawExtension { raw: Some(b"k8s\0".to_vec()) };
        assert!(decode_message(&not_json.encode_to_vec(), raw_index, 0).unwrap_err().contains("not JSON"));
        let duration = meta::Duration { duration: Some(90_500_000_000) };
        let duration_index = index("io.k8s.apimachinery.pkg.apis.meta.v1.Duration");
        assert_eq!(decode_message(&duration.encode_to_vec(), duration_index, 0).unwrap(), json!("1m30.5s"));
        let timestamp = meta::Timestamp { seconds: Some(1_704_164_645), nanos: Some(500_000_000) };
        let timestamp_index = index("io.k8s.apimachinery.pkg.apis.meta.v1.Timestamp");
        assert_eq!(
            decode_message(&timestamp.encode_to_vec(), timestamp_index, 0).unwrap(),
            json!("2024-01-02T03:04:05.5Z")
        );
    }

    #[test]
    fn go_durations() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (2_000_000, "2ms"),
            (1_000_000_000, "1s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
            (-90_000_000_000, "-1m30s"),
        ] {
            assert_eq!(go_duration(nanos), text);
        }
    }

    #[test]
    fn special_messages_have_the_field_numbers_the_decoder_reads() {
        let fields = |package: &str, name: &str| -> Vec<(u32, &str)> {
            let m = MESSAGES.iter().find(|m| m.package == package && m.name == name).expect(name);
            m.fields.iter().map(|f| (f.tag, f.name)).collect()
        };
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1";
        for time in ["Time", "MicroTime", "Timestamp"] {
            assert_eq!(fields(meta, time), [(1, "seconds"), (2, "nanos")]);
        }
        assert_eq!(fields(meta, "Duration"), [(1, "duration")]);
        assert_eq!(fields(meta, "FieldsV1"), [(1, "raw")]);
        assert_eq!(fields("io.k8s.apimachinery.pkg.runtime", "RawExtension"), [(1, "raw")]);
        assert_eq!(fields("io.k8s.apimachinery.pkg.api.resource", "Quantity"), [(1, "string")]);
        assert_eq!(
            fields("io.k8s.apimachinery.pkg.util.intstr", "IntOrString"),
            [(1, "type"), (2, "int_val"), (3, "str_val")]
        );
        assert_eq!(
            fields("io.k8s.apimachinery.pkg.runtime", "Unknown"),
            [(1, "type_meta"), (2, "raw"), (3, "content_encoding"), (4, "content_type")]
        );
    }

    /// Every field of every message a served kind reaches has a JSON name from the OpenAPI
    /// definitions (or is an inlined Go struct), and every nested message type agrees with the
    /// schema. Fields newer than the served OpenAPI fall back to lowerCamelCase: review the names
    /// when this list grows with a k8s-pb upgrade (an acronym would be spelled wrong).
    #[test]
    fn served_kinds_map_onto_their_openapi_definitions() {
        const NEWER_THAN_OPENAPI: &[&str] = &[
            "Container.restart_policy_rules",
            "ContainerExtendedResourceRequest",
            "ContainerRestartRule",
            "ContainerRestartRuleOnExitCodes",
            "EnvVarSource.file_key_ref",
            "EphemeralContainerCommon.restart_policy_rules",
            "FileKeySelector",
            "NodeStatus.declared_features",
            "PodCertificateProjection",
            "PodExtendedResourceClaimStatus",
            "PodSpec.hostname_override",
            "PodSpec.workload_ref",
            "PodStatus.allocated_resources",
            "PodStatus.extended_resource_claim_status",
            "PodStatus.resources",
            "VolumeProjection.pod_certificate",
            "WorkloadReference",
            // The protobuf wrapper of one `extra` value (a string list) of the reviews' user
            // info; JSON writes the list itself, so OpenAPI has no definition of it.
            "ExtraValue",
        ];
        let mut roots: Vec<&str> =
            RESOURCES.iter().map(|r| r.definition).filter(|d| !d.starts_with("dev.wharf")).collect();
        roots.extend([
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "io.k8s.api.autoscaling.v1.Scale",
            "io.k8s.api.core.v1.Binding",
        ]);
        let own_properties = |index: usize| {
            let message = &MESSAGES[index];
            let name = format!("{}.{}", message.package, message.name);
            schema::definitions().iter().find(|(k, _)| k.eq_ignore_ascii_case(&name)).map(|(_, d)| &d["properties"])
        };
        // (message, the properties its fields are named from: its own, or its inliner's)
        let mut queue: Vec<(usize, Option<&Value>)> = roots
            .iter()
            .map(|d| *TABLE.by_definition.get(&d.to_ascii_lowercase()).unwrap_or_else(|| panic!("no message for {d}")))
            .map(|index| (index, own_properties(index)))
            .collect();
        let (mut seen, mut problems) = (HashSet::new(), Vec::new());
        while let Some((index, properties)) = queue.pop() {
            let message = &MESSAGES[index];
            if !seen.insert(index) || TABLE.special[index].is_some() {
                continue;
            }
            for (field, json) in message.fields.iter().zip(&TABLE.names[index]) {
                if let Ty::Message(m) = field.ty {
                    let inherited = if matches!(json, JsonName::Inline) { properties } else { None };
                    queue.push((m as usize, own_properties(m as usize).or(inherited)));
                }
            }
            let Some(properties) = properties else {
                problems.push(message.name.to_string());
                continue;
            };
            for (field, json) in message.fields.iter().zip(&TABLE.names[index]) {
                let JsonName::Name(name) = json else { continue };
                let Some(property) = properties.get(name) else {
                    problems.push(format!("{}.{}", message.name, field.name));
                    continue;
                };
                let (referenced, schema) = schema::resolve(property);
                let element = schema.get("items").or(schema.get("additionalProperties"));
                let referenced = referenced.or_else(|| element.and_then(|e| schema::resolve(e).0));
                if let (Ty::Message(m), Some(referenced)) = (field.ty, referenced) {
                    let nested = &MESSAGES[m as usize];
                    if !referenced.eq_ignore_ascii_case(&format!("{}.{}", nested.package, nested.name)) {
                        problems.push(format!(
                            "{}.{name} is {} but the schema says {referenced}",
                            message.name, nested.name
                        ));
                    }
                }
            }
        }
        assert!(seen.len() > 100, "only {} messages reached", seen.len());
        problems.retain(|p| !NEWER_THAN_OPENAPI.contains(&p.as_str()));
        assert!(problems.is_empty(), "fields without an OpenAPI property:\n{}", problems.join("\n"));
    }

    #[test]
    fn inlined_structs_take_their_parents_names() {
        let names = |definition: &str| -> Vec<String> {
            let index = TABLE.by_definition[&definition.to_ascii_lowercase()];
            TABLE.names[index]
                .iter()
                .map(|n| match n {
                    JsonName::Name(name) => name.clone(),
                    JsonName::Inline => "(inline)".into(),
                })
                .collect()
        };
        assert_eq!(names("io.k8s.api.core.v1.Volume"), ["name", "(inline)"]);
        assert!(names("io.k8s.api.core.v1.VolumeSource").contains(&"downwardAPI".to_string()));
        assert!(names("io.k8s.api.core.v1.VolumeSource").contains(&"scaleIO".to_string()));
        assert!(names("io.k8s.api.core.v1.Probe").contains(&"(inline)".to_string()));
        assert!(names("io.k8s.api.core.v1.ProbeHandler").contains(&"httpGet".to_string()));
        assert!(names("io.k8s.api.core.v1.PodSpec").contains(&"hostIPC".to_string()));
        assert!(names("io.k8s.api.core.v1.ServiceSpec").contains(&"externalIPs".to_string()));
    }
}
