//! Per-kind validation of objects about to be written, with kube-apiserver's field paths, reasons
//! and messages. Objects are walked as JSON, so a value of the wrong type is a
//! `FieldValueTypeInvalid` cause, never a panic; the API refuses a body that does not decode as its
//! kind's type before it gets here ([`super::schema::decode`]).
//!
//! Callers run [`super::defaults::apply`] first: as in Kubernetes, fields that defaulting always
//! fills (restartPolicy, dnsPolicy, port protocols, ...) are reported as required when empty.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::net::IpAddr;

use base64::Engine;
use serde_json::{Map, Value};

use crate::Cause;
use crate::registry::kinds::ResourceInfo;

/// Validates an object about to be created (`old` None) or updated (`old` the stored object),
/// returning every problem as a [`Cause`] with its field path. Empty means valid.
pub fn validate(resource: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut v = V::default();
    if !obj.is_object() {
        v.push(type_invalid("", obj, "object"));
        return v.errs;
    }
    let core = matches!(resource.group, "" | "apps" | "batch");
    v.meta(obj, name_rule(resource), resource.namespaced, core);
    if let Some(old) = old {
        v.meta_update(obj, old);
    }
    match (resource.group, resource.kind) {
        ("", "Pod") => v.pod(obj, old),
        ("", "Service") => v.service(obj, old),
        ("", "ConfigMap") => v.config_map(obj, old),
        ("", "Secret") => v.secret(obj, old),
        ("", "Namespace") => v.namespace(obj),
        ("", "Node") => v.node(obj, old),
        ("", "Endpoints") => v.endpoints(obj),
        ("", "Event") => v.core_event(obj),
        ("events.k8s.io", "Event") => v.events_event(obj, old.is_none()),
        ("apps", "Deployment") => v.deployment(obj, old),
        ("apps", "ReplicaSet") => v.replica_set(obj, old),
        ("apps", "DaemonSet") => v.daemon_set(obj, old),
        ("apps", "StatefulSet") => v.stateful_set(obj, old),
        ("batch", "Job") => v.job(obj, old),
        ("batch", "CronJob") => v.cron_job(obj, old),
        ("coordination.k8s.io", "Lease") => v.lease(obj),
        ("discovery.k8s.io", "EndpointSlice") => v.endpoint_slice(obj),
        ("node.k8s.io", "RuntimeClass") => v.runtime_class(obj, old),
        ("wharf.dev", "Function") => v.function(obj),
        ("rbac.authorization.k8s.io", _) => v.errs.extend(super::rbac::validate(resource, obj, old)),
        ("", "ResourceQuota" | "LimitRange") => v.errs.extend(super::quota::validate(resource, obj)),
        _ => {}
    }
    v.errs
}

// ---------------------------------------------------------------------------------------------
// Causes, paths and value rendering

const NEGATIVE: &str = "must be greater than or equal to 0";
const IMMUTABLE: &str = "field is immutable";
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const INVALID_CIDR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const FILE_MODE: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const MAX_DATA_SIZE: usize = 1024 * 1024;
const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

static NULL: Value = Value::Null;

fn child(p: &str, k: &str) -> String {
    if p.is_empty() { k.to_string() } else { format!("{p}.{k}") }
}

fn index(p: &str, i: usize) -> String {
    format!("{p}[{i}]")
}

fn keyed(p: &str, k: &str) -> String {
    format!("{p}[{k}]")
}

fn required_msg(field: impl Into<String>, detail: &str) -> Cause {
    let mut c = Cause::required(field);
    if !detail.is_empty() {
        c.message = format!("Required value: {detail}");
    }
    c
}

/// `Invalid value: <rendered>: detail`, for values Kubernetes prints unquoted (numbers, structs).
fn invalid_raw(field: impl Into<String>, rendered: impl Display, detail: impl Display) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {rendered}: {detail}"),
        field: field.into(),
    }
}

fn duplicate_raw(field: impl Into<String>, rendered: impl Display) -> Cause {
    Cause { reason: "FieldValueDuplicate".into(), message: format!("Duplicate value: {rendered}"), field: field.into() }
}

fn not_found(field: impl Into<String>, value: &str) -> Cause {
    Cause { reason: "FieldValueNotFound".into(), message: format!("Not found: {}", quote(value)), field: field.into() }
}

fn too_long(field: impl Into<String>, max: usize) -> Cause {
    Cause {
        reason: "FieldValueTooLong".into(),
        message: format!("Too long: must have at most {max} bytes"),
        field: field.into(),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The message kube-apiserver gives for a schema type mismatch.
fn type_invalid(field: &str, v: &Value, want: &str) -> Cause {
    let shown = if field.is_empty() { "body" } else { field };
    Cause {
        reason: "FieldValueTypeInvalid".into(),
        message: format!(
            "Invalid value: \"{}\": {shown} in body must be of type {want}: {}",
            json_type(v),
            short_json(v)
        ),
        field: field.into(),
    }
}

fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 200 {
        return s;
    }
    let mut end = 200;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn quote(s: &str) -> String {
    Value::from(s).to_string()
}

/// Go's `%#v` of a `map[string]string`: keys sorted, `(nil)` when absent.
fn go_map(entries: Option<&[(&str, &str)]>) -> String {
    let Some(entries) = entries else { return "map[string]string(nil)".into() };
    let sorted: BTreeMap<&str, &str> = entries.iter().copied().collect();
    let body: Vec<String> = sorted.iter().map(|(k, v)| format!("{}:{}", quote(k), quote(v))).collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push_str(&format!("'{e}', "));
    }
    s.push_str(&format!("regex used for validation is '{fmt}')"));
    s
}

// ---------------------------------------------------------------------------------------------
// String formats (k8s.io/apimachinery/pkg/util/validation)

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_subdomain_chars(s: &str) -> bool {
    s.split('.').all(is_label_chars)
}

fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_label_chars(s) {
        if is_subdomain_chars(s) {
            errs.push("must not contain dots".into());
        } else {
            errs.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !is_subdomain_chars(s) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_label_chars(s) || !s.as_bytes()[0].is_ascii_lowercase() {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

fn is_qualified_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A label key, annotation key or other "qualified name": `[prefix/]name`.
fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".into());
            } else {
                errs.extend(dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !is_qualified_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !s.is_empty() && !is_qualified_part(s) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn config_map_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')) {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    match s {
        "." => errs.push("must not be '.'".into()),
        ".." => errs.push("must not be '..'".into()),
        _ if s.starts_with("..") => errs.push("must not start with '..'".into()),
        _ => {}
    }
    errs
}

/// An IANA service name as used for port names.
fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push(max_len_error(15));
    }
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// Environment variable names as Kubernetes accepts them since RelaxedEnvironmentVariableValidation.
fn env_var_name(s: &str) -> Vec<String> {
    if s.is_empty() {
        return vec!["environment variable name must be non-empty".into()];
    }
    if s.bytes().any(|c| !(0x20..=0x7e).contains(&c) || c == b'=') {
        return vec![
            "a valid environment variable name must consist only of printable ASCII characters other than '='".into(),
        ];
    }
    Vec::new()
}

fn percent(s: &str) -> Vec<String> {
    let digits = s.strip_suffix('%').unwrap_or("");
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return vec![regex_error(
            "a valid percent string must be a numeric string followed by an ending '%'",
            "[0-9]+%",
            &["1%", "93%"],
        )];
    }
    Vec::new()
}

fn valid_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

fn valid_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else { return false };
    let Ok(ip) = ip.parse::<IpAddr>() else { return false };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u32>().is_ok_and(|b| b <= max) && !bits.starts_with('+')
}

/// How a kind's names are checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    /// Only what a URL path segment can carry (legacy Events).
    PathSegment,
}

fn name_rule(resource: &ResourceInfo) -> NameRule {
    match (resource.group, resource.kind) {
        ("", "Namespace") | ("apps", "StatefulSet") => NameRule::Label,
        // Functions name the Services and hostnames the gateway routes to.
        ("", "Service") | ("wharf.dev", "Function") => NameRule::Dns1035,
        ("", "Event") | ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

fn check_name(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    // A generateName prefix may end in '-': check it as if a suffix followed.
    let masked;
    let name = if prefix && name.len() > 1 && name.ends_with('-') {
        masked = format!("{}a", &name[..name.len() - 1]);
        masked.as_str()
    } else {
        name
    };
    match rule {
        NameRule::Subdomain => dns1123_subdomain(name),
        NameRule::Label => dns1123_label(name),
        NameRule::Dns1035 => dns1035_label(name),
        NameRule::PathSegment => match name {
            "." | ".." => vec![format!("may not be '{name}'")],
            _ => ["/", "%"].iter().filter(|c| name.contains(**c)).map(|c| format!("may not contain '{c}'")).collect(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Quantities (k8s.io/apimachinery/pkg/api/resource)

const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A parsed Kubernetes quantity, kept exact: `digits × 10^exp`, negated if `neg`.
#[derive(Clone, Debug)]
pub struct Quantity {
    neg: bool,
    /// Decimal digits, most significant first, without leading or trailing zeros (empty is 0).
    digits: Vec<u8>,
    exp: i64,
    format: Format,
}

/// How a quantity was written, which its canonical form keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Plain or with an SI suffix: `1500`, `100m`, `2G`.
    DecimalSi,
    /// With a power-of-two suffix: `128Mi`.
    BinarySi,
    /// With an exponent: `1e3`.
    DecimalExponent,
}

impl Quantity {
    /// Parses `100m`, `1.5`, `128Mi`, `1G`, `1e3`... with Kubernetes' rules and errors.
    pub fn parse(s: &str) -> Result<Quantity, String> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(QUANTITY_FORMAT.into());
        }
        let mut pos = 0;
        let mut neg = false;
        match b[0] {
            b'-' => {
                neg = true;
                pos = 1;
            }
            b'+' => pos = 1,
            _ => {}
        }
        let int_start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_part = &s[int_start..pos];
        let mut frac_part = "";
        if pos < b.len() && b[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_part = &s[frac_start..pos];
        }
        let suffix_start = pos;
        while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
            pos += 1;
        }
        if pos < b.len() && matches!(b[pos], b'-' | b'+') {
            pos += 1;
        }
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos < b.len() {
            return Err(QUANTITY_FORMAT.into());
        }
        let suffix = &s[suffix_start..];
        let format = match suffix {
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => Format::BinarySi,
            _ if suffix.starts_with(['e', 'E']) && suffix.len() > 1 => Format::DecimalExponent,
            _ => Format::DecimalSi,
        };
        let (binary, dec_exp): (u32, i64) = match suffix {
            "" => (0, 0),
            "n" => (0, -9),
            "u" => (0, -6),
            "m" => (0, -3),
            "k" => (0, 3),
            "M" => (0, 6),
            "G" => (0, 9),
            "T" => (0, 12),
            "P" => (0, 15),
            "E" => (0, 18),
            "Ki" => (1, 0),
            "Mi" => (2, 0),
            "Gi" => (3, 0),
            "Ti" => (4, 0),
            "Pi" => (5, 0),
            "Ei" => (6, 0),
            _ if suffix.len() > 1 && (suffix.starts_with('e') || suffix.starts_with('E')) => {
                match suffix[1..].parse::<i32>() {
                    Ok(e) => (0, i64::from(e)),
                    Err(_) => return Err("unable to parse quantity's suffix".into()),
                }
            }
            _ => return Err("unable to parse quantity's suffix".into()),
        };
        let mut digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).map(|c| c - b'0').collect();
        let mut exp = dec_exp - frac_part.len() as i64;
        for _ in 0..binary {
            mul_small(&mut digits, 1024);
        }
        let first = digits.iter().position(|d| *d != 0).unwrap_or(digits.len());
        digits.drain(..first);
        while digits.last() == Some(&0) {
            digits.pop();
            exp += 1;
        }
        if digits.is_empty() {
            neg = false;
            exp = 0;
        }
        Ok(Quantity { neg, digits, exp, format })
    }

    /// Rounds away from zero to a multiple of `10^scale`, as Kubernetes does to resource lists
    /// (scale -3) and to anything below a nano (scale -9).
    pub fn round_up(mut self, scale: i64) -> Quantity {
        if self.digits.is_empty() || self.exp >= scale {
            return self;
        }
        let drop = usize::try_from(scale - self.exp).unwrap_or(usize::MAX);
        // The dropped digits end in a non-zero digit, so rounding up always adds one.
        let mut kept: Vec<u8> =
            if drop >= self.digits.len() { Vec::new() } else { self.digits[..self.digits.len() - drop].to_vec() };
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, 1);
                break;
            }
            i -= 1;
            if kept[i] == 9 {
                kept[i] = 0;
            } else {
                kept[i] += 1;
                break;
            }
        }
        self.exp = scale;
        while kept.last() == Some(&0) {
            kept.pop();
            self.exp += 1;
        }
        self.digits = kept;
        self
    }

    /// The form kube-apiserver stores and prints: `500m` for `0.5`, `1Gi` for `1024Mi`, `1k` for
    /// `1000`; the format written (decimal, binary, exponent) is kept when it is exact.
    pub fn canonical(&self) -> String {
        let q = self.clone().round_up(-9);
        if q.digits.is_empty() {
            return "0".into();
        }
        let sign = if q.neg { "-" } else { "" };
        let as_int = |q: &Quantity| -> Vec<u8> {
            let mut n = q.digits.clone();
            n.extend(std::iter::repeat_n(0, usize::try_from(q.exp).unwrap_or(0)));
            n
        };
        let binary = q.format == Format::BinarySi && q.is_integer() && q.magnitude() >= 4 && {
            let n = as_int(&q);
            n.len() > 4 || n.as_slice() >= [1, 0, 2, 4].as_slice()
        };
        if binary {
            let mut n = as_int(&q);
            let mut power = 0;
            while power < 6 && n.len() >= 4 {
                match div_small(&n, 1024) {
                    Some(quotient) => {
                        n = quotient;
                        power += 1;
                    }
                    None => break,
                }
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            let number: String = n.iter().map(|d| char::from(b'0' + d)).collect();
            return format!("{sign}{number}{suffix}");
        }
        // The largest multiple of three not above the exponent keeps the mantissa whole; past
        // `E` only the exponent form can say it (`1e1000000000` must not become a billion digits).
        let scale = match q.format {
            Format::DecimalExponent => q.exp.div_euclid(3) * 3,
            _ => (q.exp.div_euclid(3) * 3).min(18),
        };
        let mut mantissa = q.digits.clone();
        mantissa.extend(std::iter::repeat_n(0, usize::try_from(q.exp - scale).unwrap_or(0)));
        let number: String = mantissa.iter().map(|d| char::from(b'0' + d)).collect();
        let suffix = match (q.format, scale) {
            (Format::DecimalExponent, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".into(),
            (_, -6) => "u".into(),
            (_, -3) => "m".into(),
            (_, 3) => "k".into(),
            (_, 6) => "M".into(),
            (_, 9) => "G".into(),
            (_, 12) => "T".into(),
            (_, 15) => "P".into(),
            (_, 18) => "E".into(),
            _ => String::new(),
        };
        format!("{sign}{number}{suffix}")
    }

    /// Parses a quantity written as a JSON string or number.
    pub fn from_json(v: &Value) -> Result<Quantity, String> {
        match v {
            Value::String(s) => Quantity::parse(s.trim()),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => Err(QUANTITY_FORMAT.into()),
        }
    }

    /// The value in thousandths, rounded up (cpu `500m` → 500, memory `1Ki` → 1_024_000),
    /// saturating at the bounds of i128.
    pub fn milli_value(&self) -> i128 {
        let mut value: i128 = 0;
        for d in &self.digits {
            value = value.saturating_mul(10).saturating_add(*d as i128);
        }
        let shift = self.exp + 3;
        if shift >= 0 {
            for _ in 0..shift.min(40) {
                value = value.saturating_mul(10);
            }
        } else {
            let divisor = 10i128.saturating_pow((-shift).min(38) as u32);
            value = (value + divisor - 1) / divisor;
        }
        if self.neg { -value } else { value }
    }

    pub fn is_negative(&self) -> bool {
        self.neg
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Whether the value is a whole number.
    pub fn is_integer(&self) -> bool {
        self.exp >= 0 || self.digits.is_empty()
    }

    /// Magnitude order: the power of ten just above the most significant digit.
    fn magnitude(&self) -> i64 {
        self.digits.len() as i64 + self.exp
    }

    fn cmp_abs(&self, other: &Quantity) -> Ordering {
        if self.digits.is_empty() || other.digits.is_empty() {
            return self.digits.len().min(1).cmp(&other.digits.len().min(1));
        }
        self.magnitude().cmp(&other.magnitude()).then_with(|| {
            let n = self.digits.len().max(other.digits.len());
            (0..n)
                .map(|i| self.digits.get(i).copied().unwrap_or(0).cmp(&other.digits.get(i).copied().unwrap_or(0)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.neg, other.neg) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_abs(other),
            (true, true) => other.cmp_abs(self),
        }
    }
}

/// `digits / d` when it divides exactly.
fn div_small(digits: &[u8], d: u32) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(digits.len());
    let mut rem = 0u32;
    for digit in digits {
        let x = rem * 10 + u32::from(*digit);
        out.push((x / d) as u8);
        rem = x % d;
    }
    if rem != 0 {
        return None;
    }
    let first = out.iter().position(|d| *d != 0).unwrap_or(out.len());
    out.drain(..first);
    Some(out)
}

fn mul_small(digits: &mut Vec<u8>, m: u32) {
    let mut carry = 0u32;
    for d in digits.iter_mut().rev() {
        let x = u32::from(*d) * m + carry;
        *d = (x % 10) as u8;
        carry = x / 10;
    }
    while carry > 0 {
        digits.insert(0, (carry % 10) as u8);
        carry /= 10;
    }
}

// ---------------------------------------------------------------------------------------------
// Durations (Go's time.ParseDuration) and cron schedules (robfig/cron's standard parser)

/// Parses a Go duration such as `30s`, `1h30m` or `1.5h` into seconds.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    let err = || format!("time: invalid duration {}", quote(s));
    let mut rest = s;
    let mut neg = false;
    if let Some(r) = rest.strip_prefix('-') {
        neg = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(0.0);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(err());
        }
        let value: f64 = num.parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration {}", quote(s))),
            unit => return Err(format!("time: unknown unit {} in duration {}", quote(unit), quote(s))),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(if neg { -total } else { total })
}

/// Checks a CronJob schedule with the CronJob controller's own parser (robfig/cron's messages).
fn parse_cron(spec: &str) -> Result<(), String> {
    crate::controllers::cronjob::schedule::parse(spec).map(|_| ())
}

/// Why a time zone name is refused: characters Kubernetes does not allow per component, `Local`,
/// or a name the tz database (/usr/share/zoneinfo) does not hold.
fn time_zone_error(tz: &str) -> Option<String> {
    let unknown = || Some(format!("unknown time zone {tz}"));
    for part in tz.split('/') {
        let ok_chars = !part.is_empty()
            && part.len() <= 14
            && part.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'));
        if part == "." || part == ".." || part.starts_with('-') || !ok_chars {
            return unknown();
        }
    }
    if tz.eq_ignore_ascii_case("Local") {
        return Some("timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones".into());
    }
    if jiff::tz::TimeZone::get(tz).is_ok() { None } else { unknown() }
}

// ---------------------------------------------------------------------------------------------
// The walker: typed reads that report type mismatches against their field

/// A value that may be an integer or a string (`IntOrString`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum IntStr<'a> {
    Int(i64),
    Str(&'a str),
}

impl Display for IntStr<'_> {
    // IntOrString prints through its String method: unquoted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntStr::Int(n) => write!(f, "{n}"),
            IntStr::Str(s) => write!(f, "{s}"),
        }
    }
}

impl IntStr<'_> {
    /// The number an int or percentage stands for (Kubernetes' getIntOrPercentValue).
    fn amount(&self) -> i64 {
        match self {
            IntStr::Int(n) => *n,
            IntStr::Str(s) => {
                if percent(s).is_empty() {
                    s.trim_end_matches('%').parse().unwrap_or(0)
                } else {
                    s.parse().unwrap_or(0)
                }
            }
        }
    }
}

/// A parsed, validated label selector.
struct Selector<'a> {
    labels: Vec<(&'a str, &'a str)>,
    has_labels: bool,
    exprs: Vec<(&'a str, &'a str, Vec<&'a str>)>,
    /// Whether it converts to a selector (all operators known).
    valid: bool,
}

impl Selector<'_> {
    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.exprs.is_empty()
    }

    fn matches(&self, labels: &[(&str, &str)]) -> bool {
        let get = |k: &str| labels.iter().find(|(lk, _)| *lk == k).map(|(_, v)| *v);
        self.labels.iter().all(|(k, v)| get(k) == Some(*v))
            && self.exprs.iter().all(|(k, op, values)| match *op {
                "In" => get(k).is_some_and(|v| values.contains(&v)),
                "NotIn" => get(k).is_none_or(|v| !values.contains(&v)),
                "Exists" => get(k).is_some(),
                "DoesNotExist" => get(k).is_none(),
                _ => false,
            })
    }

    /// Go's `%#v` of a `metav1.LabelSelector`, as kube-apiserver prints it.
    fn go(&self) -> String {
        let labels = go_map(self.has_labels.then_some(self.labels.as_slice()));
        let exprs = if self.exprs.is_empty() {
            "[]v1.LabelSelectorRequirement(nil)".to_string()
        } else {
            let items: Vec<String> = self
                .exprs
                .iter()
                .map(|(k, op, values)| {
                    let values = if values.is_empty() {
                        "[]string(nil)".to_string()
                    } else {
                        format!("[]string{{{}}}", values.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", "))
                    };
                    format!("v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}", quote(k), quote(op))
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        };
        format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
    }
}

#[derive(Default)]
struct V {
    errs: Vec<Cause>,
}

impl V {
    fn push(&mut self, c: Cause) {
        self.errs.push(c);
    }

    /// `o[k]` when present, non-null and of the wanted JSON type; a type cause otherwise.
    fn typed<'a>(&mut self, o: &'a Value, p: &str, k: &str, want: &str, ok: fn(&Value) -> bool) -> Option<&'a Value> {
        let v = o.as_object()?.get(k)?;
        if v.is_null() {
            return None;
        }
        if ok(v) {
            Some(v)
        } else {
            self.push(type_invalid(&child(p, k), v, want));
            None
        }
    }

    fn str<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> Option<&'a str> {
        self.typed(o, p, k, "string", Value::is_string).and_then(Value::as_str)
    }

    /// A string field, empty when absent (Go's zero value).
    fn string<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> &'a str {
        self.str(o, p, k).unwrap_or("")
    }

    fn int(&mut self, o: &Value, p: &str, k: &str) -> Option<i64> {
        let v = self.typed(o, p, k, "integer", |v| v.is_i64() || v.is_u64())?;
        let n = v.as_i64();
        if n.is_none() {
            self.push(type_invalid(&child(p, k), v, "int64"));
        }
        n
    }

    /// An int32 field: out-of-range numbers are a type error, as in decoding.
    fn int32(&mut self, o: &Value, p: &str, k: &str) -> Option<i64> {
        let n = self.int(o, p, k)?;
        if i32::try_from(n).is_err() {
            self.push(type_invalid(&child(p, k), &o[k], "int32"));
            return None;
        }
        Some(n)
    }

    fn bool(&mut self, o: &Value, p: &str, k: &str) -> Option<bool> {
        self.typed(o, p, k, "boolean", Value::is_boolean).and_then(Value::as_bool)
    }

    fn obj<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> Option<&'a Value> {
        self.typed(o, p, k, "object", Value::is_object)
    }

    /// An object field, or null (which reads as empty) when absent or mistyped.
    fn section<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> &'a Value {
        self.obj(o, p, k).unwrap_or(&NULL)
    }

    fn int_str<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> Option<IntStr<'a>> {
        let v = self.typed(o, p, k, "integer-or-string", |v| v.is_string() || v.is_i64() || v.is_u64())?;
        match v {
            Value::String(s) => Some(IntStr::Str(s)),
            _ => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
                Some(n) => Some(IntStr::Int(i64::from(n))),
                None => {
                    self.push(type_invalid(&child(p, k), v, "int32"));
                    None
                }
            },
        }
    }

    fn array<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> &'a [Value] {
        self.typed(o, p, k, "array", Value::is_array).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The object items of an array field with their paths; other items are type causes.
    fn items<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> Vec<(String, &'a Value)> {
        let base = child(p, k);
        let mut out = Vec::new();
        for (i, item) in self.array(o, p, k).iter().enumerate() {
            if item.is_object() {
                out.push((index(&base, i), item));
            } else {
                self.push(type_invalid(&index(&base, i), item, "object"));
            }
        }
        out
    }

    fn strings<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> Vec<(String, &'a str)> {
        let base = child(p, k);
        let mut out = Vec::new();
        for (i, item) in self.array(o, p, k).iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push((index(&base, i), s)),
                None => self.push(type_invalid(&index(&base, i), item, "string")),
            }
        }
        out
    }

    /// A `map[string]string` field; None when absent.
    fn str_map<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> Option<Vec<(&'a str, &'a str)>> {
        let m = self.obj(o, p, k)?.as_object()?;
        let base = child(p, k);
        let mut out = Vec::new();
        for (key, v) in m {
            match v {
                Value::String(s) => out.push((key.as_str(), s.as_str())),
                Value::Null => {}
                _ => self.push(type_invalid(&keyed(&base, key), v, "string")),
            }
        }
        Some(out)
    }

    fn nonneg(&mut self, o: &Value, p: &str, k: &str) {
        if let Some(n) = self.int(o, p, k)
            && n < 0
        {
            self.push(invalid_raw(child(p, k), n, NEGATIVE));
        }
    }

    fn nonneg32(&mut self, o: &Value, p: &str, k: &str) {
        if let Some(n) = self.int32(o, p, k)
            && n < 0
        {
            self.push(invalid_raw(child(p, k), n, NEGATIVE));
        }
    }

    /// A required enumerated string: Required when empty, NotSupported when unknown.
    fn one_of(&mut self, o: &Value, p: &str, k: &str, allowed: &[&str]) -> Option<String> {
        let s = self.string(o, p, k);
        if s.is_empty() {
            self.push(Cause::required(child(p, k)));
            None
        } else if !allowed.contains(&s) {
            self.push(Cause::not_supported(child(p, k), s, allowed));
            None
        } else {
            Some(s.to_string())
        }
    }

    /// An optional enumerated string: NotSupported when set to something unknown.
    fn opt_one_of(&mut self, o: &Value, p: &str, k: &str, allowed: &[&str]) {
        if let Some(s) = self.str(o, p, k)
            && !allowed.contains(&s)
        {
            self.push(Cause::not_supported(child(p, k), s, allowed));
        }
    }

    fn name_like(&mut self, path: &str, value: &str, msgs: Vec<String>) {
        for m in msgs {
            self.push(Cause::invalid(path, value, m));
        }
    }

    fn port_num(&mut self, path: &str, n: i64) {
        if !(1..=65535).contains(&n) {
            self.push(invalid_raw(path, n, PORT_RANGE));
        }
    }

    fn port_num_or_name(&mut self, o: &Value, p: &str, k: &str) {
        let path = child(p, k);
        match self.int_str(o, p, k) {
            Some(IntStr::Int(n)) => self.port_num(&path, n),
            Some(IntStr::Str(s)) => self.name_like(&path, s, port_name(s)),
            None => {
                if o.get(k).is_none_or(Value::is_null) {
                    self.push(invalid_raw(path, 0, PORT_RANGE));
                }
            }
        }
    }

    // -- metadata ----------------------------------------------------------------------------

    fn labels(&mut self, o: &Value, p: &str, k: &str) -> Option<Vec<(String, String)>> {
        let entries = self.str_map(o, p, k)?;
        let path = child(p, k);
        for (key, value) in &entries {
            self.name_like(&path, key, qualified_name(key));
            for m in label_value(value) {
                self.push(Cause::invalid(&path, value, m));
            }
        }
        Some(entries.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn annotations(&mut self, o: &Value, p: &str, k: &str) {
        let Some(entries) = self.str_map(o, p, k) else { return };
        let path = child(p, k);
        let mut size = 0;
        for (key, value) in &entries {
            self.name_like(&path, key, qualified_name(&key.to_lowercase()));
            size += key.len() + value.len();
        }
        if size > MAX_ANNOTATIONS_SIZE {
            self.push(too_long(path, MAX_ANNOTATIONS_SIZE));
        }
    }

    fn meta(&mut self, obj: &Value, rule: NameRule, namespaced: bool, kube_finalizers: bool) {
        let m = self.section(obj, "", "metadata");
        let p = "metadata";
        let generate = self.string(m, p, "generateName");
        if !generate.is_empty() {
            self.name_like("metadata.generateName", generate, check_name(rule, generate, true));
        }
        let name = self.string(m, p, "name");
        if name.is_empty() {
            self.push(required_msg("metadata.name", "name or generateName is required"));
        } else {
            self.name_like("metadata.name", name, check_name(rule, name, false));
        }
        let ns = self.string(m, p, "namespace");
        if namespaced {
            if ns.is_empty() {
                self.push(Cause::required("metadata.namespace"));
            } else {
                self.name_like("metadata.namespace", ns, dns1123_label(ns));
            }
        } else if !ns.is_empty() {
            self.push(Cause::forbidden("metadata.namespace", "not allowed on this type"));
        }
        self.nonneg(m, p, "generation");
        self.labels(m, p, "labels");
        self.annotations(m, p, "annotations");
        for (ip, r) in self.items(m, p, "ownerReferences") {
            let api_version = self.string(r, &ip, "apiVersion");
            if api_version.rsplit('/').next().unwrap_or("").is_empty() {
                self.push(Cause::invalid(child(&ip, "apiVersion"), api_version, "version must not be empty"));
            }
            for field in ["kind", "name", "uid"] {
                if self.string(r, &ip, field).is_empty() {
                    self.push(Cause::invalid(child(&ip, field), "", "must not be empty"));
                }
            }
        }
        let finalizers = self.strings(m, p, "finalizers");
        for (fp, f) in &finalizers {
            self.name_like("metadata.finalizers", f, qualified_name(f));
            if kube_finalizers && !f.contains('/') && !matches!(*f, "kubernetes" | "orphan" | "foregroundDeletion") {
                self.push(Cause::invalid(
                    fp,
                    *f,
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
        let has = |n: &str| finalizers.iter().any(|(_, f)| *f == n);
        if has("orphan") && has("foregroundDeletion") {
            let list: Vec<String> = finalizers.iter().map(|(_, f)| quote(f)).collect();
            self.push(invalid_raw(
                "metadata.finalizers",
                format!("[]string{{{}}}", list.join(", ")),
                "finalizer orphan and foregroundDeletion cannot be both set",
            ));
        }
    }

    fn meta_update(&mut self, obj: &Value, old: &Value) {
        let m = &obj["metadata"];
        let om = &old["metadata"];
        for field in ["name", "namespace"] {
            let new = m[field].as_str().unwrap_or("");
            if new != om[field].as_str().unwrap_or("") {
                self.push(Cause::invalid(format!("metadata.{field}"), new, IMMUTABLE));
            }
        }
        // The server carries these over when a client leaves them out; a different value is a change.
        for field in ["uid", "creationTimestamp", "deletionTimestamp"] {
            if let Some(new) = m[field].as_str()
                && Some(new) != om[field].as_str()
            {
                self.push(Cause::invalid(format!("metadata.{field}"), new, IMMUTABLE));
            }
        }
        if om.get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
            let old_f: HashSet<&str> =
                om["finalizers"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let mut added: Vec<&str> = m["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|f| !old_f.contains(f))
                .collect();
            added.sort_unstable();
            added.dedup();
            if !added.is_empty() {
                let list: Vec<String> = added.iter().map(|f| quote(f)).collect();
                self.push(Cause::forbidden(
                    "metadata.finalizers",
                    format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        list.join(", ")
                    ),
                ));
            }
        }
    }

    fn label_selector<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> Option<Selector<'a>> {
        let sel = self.obj(o, p, k)?;
        let sp = child(p, k);
        let has_labels = sel.get("matchLabels").is_some_and(|v| !v.is_null());
        let labels = self.str_map(sel, &sp, "matchLabels").unwrap_or_default();
        let lp = child(&sp, "matchLabels");
        for (key, value) in &labels {
            self.name_like(&lp, key, qualified_name(key));
            for m in label_value(value) {
                self.push(Cause::invalid(&lp, value, m));
            }
        }
        let mut exprs = Vec::new();
        let mut valid = true;
        for (ep, e) in self.items(sel, &sp, "matchExpressions") {
            let key = self.string(e, &ep, "key");
            let op = self.string(e, &ep, "operator");
            let values: Vec<&str> = self.strings(e, &ep, "values").into_iter().map(|(_, v)| v).collect();
            match op {
                "In" | "NotIn" => {
                    if values.is_empty() {
                        self.push(required_msg(
                            child(&ep, "values"),
                            "must be specified when `operator` is 'In' or 'NotIn'",
                        ));
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !values.is_empty() {
                        self.push(Cause::forbidden(
                            child(&ep, "values"),
                            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                        ));
                    }
                }
                _ => {
                    valid = false;
                    self.push(Cause::invalid(child(&ep, "operator"), op, "not a valid selector operator"));
                }
            }
            self.name_like(&child(&ep, "key"), key, qualified_name(key));
            for (i, value) in values.iter().enumerate() {
                for m in label_value(value) {
                    self.push(Cause::invalid(index(&child(&ep, "values"), i), *value, m));
                }
            }
            exprs.push((key, op, values));
        }
        Some(Selector { labels, has_labels, exprs, valid })
    }

    fn tolerations(&mut self, o: &Value, p: &str, k: &str) {
        for (tp, t) in self.items(o, p, k) {
            let key = self.string(t, &tp, "key");
            let op = self.string(t, &tp, "operator");
            let value = self.string(t, &tp, "value");
            let effect = self.string(t, &tp, "effect");
            if !key.is_empty() {
                self.name_like(&child(&tp, "key"), key, qualified_name(key));
            } else if op != "Exists" {
                self.push(Cause::invalid(
                    child(&tp, "operator"),
                    op,
                    "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                ));
            }
            if self.int(t, &tp, "tolerationSeconds").is_some() && effect != "NoExecute" {
                self.push(Cause::invalid(
                    child(&tp, "effect"),
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                ));
            }
            match op {
                "Equal" | "" => {
                    let errs = label_value(value);
                    if !errs.is_empty() {
                        self.push(Cause::invalid(child(&tp, "operator"), value, errs.join(";")));
                    }
                }
                "Exists" => {
                    if !value.is_empty() {
                        self.push(Cause::invalid(
                            child(&tp, "operator"),
                            value,
                            "value must be empty when `operator` is 'Exists'",
                        ));
                    }
                }
                _ => self.push(Cause::not_supported(child(&tp, "operator"), op, &["Equal", "Exists"])),
            }
            if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                self.push(Cause::not_supported(
                    child(&tp, "effect"),
                    effect,
                    &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                ));
            }
        }
    }

    /// Resource quantities of `o[k]` (limits, requests, capacity...), each parsed or reported.
    fn quantities<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> Vec<(&'a str, Quantity, String)> {
        let Some(m) = self.obj(o, p, k).and_then(Value::as_object) else { return Vec::new() };
        let base = child(p, k);
        let mut out = Vec::new();
        for (name, v) in m {
            let path = keyed(&base, name);
            let raw = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            if !(v.is_string() || v.is_number()) {
                self.push(type_invalid(&path, v, "quantity"));
                continue;
            }
            match Quantity::from_json(v) {
                Ok(q) => {
                    if q.is_negative() {
                        self.push(Cause::invalid(&path, &raw, NEGATIVE));
                    }
                    out.push((name.as_str(), q, raw));
                }
                Err(e) => self.push(Cause::invalid(&path, &raw, e)),
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Pod specs, in pods and in templates

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Whether requests may be below limits (everything but extended resources and hugepages).
fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_hugepages(name)
}

fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || is_hugepages(name)
}

fn is_standard_resource(name: &str) -> bool {
    const STANDARD: &[&str] = &[
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "storage",
        "requests.storage",
        "services.nodeports",
        "services.loadbalancers",
    ];
    STANDARD.contains(&name) || is_hugepages(name) || name.starts_with("requests.hugepages-")
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

const ENV_RESOURCE_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// Where a pod spec sits, which changes a few rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PodIn {
    Pod,
    Template,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ContainerKind {
    Regular,
    Init,
}

impl V {
    /// Validates a pod spec at `p`; `extra_volumes` are names mounts may use besides the
    /// spec's own volumes (a StatefulSet's claim templates).
    fn pod_spec(&mut self, spec: &Value, p: &str, within: PodIn, extra_volumes: &[String]) {
        match self.int(spec, p, "terminationGracePeriodSeconds") {
            Some(n) if n < 0 => self.push(invalid_raw(child(p, "terminationGracePeriodSeconds"), n, NEGATIVE)),
            Some(_) => {}
            None => {
                if spec.get("terminationGracePeriodSeconds").is_none_or(Value::is_null) {
                    self.push(Cause::required(child(p, "terminationGracePeriodSeconds")));
                }
            }
        }
        let mut volumes = self.volumes(spec, p);
        volumes.extend(extra_volumes.iter().map(|n| (n.clone(), "persistentVolumeClaim".to_string())));

        let cp = child(p, "containers");
        let containers = self.items(spec, p, "containers");
        if containers.is_empty() {
            self.push(Cause::required(&cp));
        }
        let mut names: HashSet<String> = HashSet::new();
        let mut host_ports: HashSet<String> = HashSet::new();
        for (path, c) in &containers {
            self.container(c, path, &volumes, within, ContainerKind::Regular, &mut host_ports);
            let name = c["name"].as_str().unwrap_or("");
            if !names.insert(name.to_string()) {
                self.push(Cause::duplicate(child(path, "name"), name));
            }
        }
        for (path, c) in self.items(spec, p, "initContainers") {
            let mut own_ports = HashSet::new();
            self.container(c, &path, &volumes, within, ContainerKind::Init, &mut own_ports);
            let name = c["name"].as_str().unwrap_or("");
            if names.contains(name) {
                self.push(Cause::duplicate(child(&path, "name"), name));
            } else if !name.is_empty() {
                names.insert(name.to_string());
            }
        }
        if !self.array(spec, p, "ephemeralContainers").is_empty() && within == PodIn::Template {
            self.push(Cause::forbidden(
                child(p, "ephemeralContainers"),
                "ephemeral containers not allowed in pod template",
            ));
        }
        if self.bool(spec, p, "hostNetwork") == Some(true) {
            for (path, c) in &containers {
                for (pp, port) in self.items(c, path, "ports") {
                    let host = port["hostPort"].as_i64().unwrap_or(0);
                    let container = port["containerPort"].as_i64().unwrap_or(0);
                    if (within == PodIn::Pod || host != 0) && host != container {
                        self.push(invalid_raw(
                            child(&pp, "hostPort"),
                            host,
                            "must match `containerPort` when `hostNetwork` is true",
                        ));
                    }
                }
            }
        }
        self.one_of(spec, p, "restartPolicy", &["Always", "OnFailure", "Never"]);
        let dns = self.one_of(spec, p, "dnsPolicy", &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]);
        if dns.as_deref() == Some("None") {
            match self.obj(spec, p, "dnsConfig") {
                None => {
                    self.push(required_msg(child(p, "dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None"))
                }
                Some(cfg) => {
                    if self.array(cfg, &child(p, "dnsConfig"), "nameservers").is_empty() {
                        self.push(required_msg(
                            child(&child(p, "dnsConfig"), "nameservers"),
                            "must provide at least one DNS nameserver when `dnsPolicy` is None",
                        ));
                    }
                }
            }
        }
        if let Some(cfg) = self.obj(spec, p, "dnsConfig") {
            let dp = child(p, "dnsConfig");
            for (np, ns) in self.strings(cfg, &dp, "nameservers") {
                if !valid_ip(ns) {
                    self.push(Cause::invalid(np, ns, INVALID_IP));
                }
            }
        }
        self.labels(spec, p, "nodeSelector");
        let sc = self.section(spec, p, "securityContext");
        let scp = child(p, "securityContext");
        for field in ["runAsUser", "runAsGroup", "fsGroup"] {
            if let Some(n) = self.int(sc, &scp, field)
                && !(0..=4_294_967_295).contains(&n)
            {
                self.push(invalid_raw(child(&scp, field), n, "must be between 0 and 4294967295, inclusive"));
            }
        }
        for (field, rule) in [
            ("serviceAccountName", NameRule::Subdomain),
            ("nodeName", NameRule::Subdomain),
            ("priorityClassName", NameRule::Subdomain),
            ("runtimeClassName", NameRule::Subdomain),
            ("hostname", NameRule::Label),
            ("subdomain", NameRule::Label),
        ] {
            let value = self.string(spec, p, field);
            if !value.is_empty() || (field == "runtimeClassName" && spec[field].is_string()) {
                self.name_like(&child(p, field), value, check_name(rule, value, false));
            }
        }
        if let Some(n) = self.int(spec, p, "activeDeadlineSeconds")
            && !(1..=i64::from(i32::MAX)).contains(&n)
        {
            self.push(invalid_raw(
                child(p, "activeDeadlineSeconds"),
                n,
                format!("must be between 1 and {}, inclusive", i32::MAX),
            ));
        }
        self.tolerations(spec, p, "tolerations");
        if spec.get("preemptionPolicy").is_some_and(|v| !v.is_null()) {
            self.one_of(spec, p, "preemptionPolicy", &["PreemptLowerPriority", "Never"]);
        }
        let mut gates = HashSet::new();
        for (gp, g) in self.items(spec, p, "schedulingGates") {
            let name = self.string(g, &gp, "name");
            self.name_like(&gp, name, qualified_name(name));
            if !gates.insert(name) {
                self.push(Cause::duplicate(&gp, name));
            }
        }
        for (name, q, raw) in self.quantities(spec, p, "overhead") {
            let path = keyed(&child(p, "overhead"), name);
            self.container_resource_name(name, &path);
            if !is_native_resource(name) && !q.is_integer() {
                self.push(Cause::invalid(&path, &raw, "must be an integer"));
            }
        }
        if let Some(os) = self.obj(spec, p, "os") {
            let op = child(p, "os");
            match self.string(os, &op, "name") {
                "" => self.push(required_msg(child(&op, "name"), "cannot be empty")),
                "linux" | "windows" => {}
                other => self.push(Cause::not_supported(&op, other, &["linux", "windows"])),
            }
        }
    }

    /// The spec's volumes; returns the valid ones by name with their source type.
    fn volumes(&mut self, spec: &Value, p: &str) -> HashMap<String, String> {
        let mut valid = HashMap::new();
        let mut seen = HashSet::new();
        for (vp, vol) in self.items(spec, p, "volumes") {
            let before = self.errs.len();
            let sources: Vec<&String> = vol
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| k.as_str() != "name" && !v.is_null())
                .map(|(k, _)| k)
                .collect();
            match sources.split_first() {
                None => self.push(required_msg(&vp, "must specify a volume type")),
                Some((first, rest)) => {
                    self.volume_source(vol, &vp, first);
                    for extra in rest {
                        self.push(Cause::forbidden(child(&vp, extra), "may not specify more than 1 volume type"));
                    }
                }
            }
            let name = self.string(vol, &vp, "name");
            let np = child(&vp, "name");
            if name.is_empty() {
                self.push(Cause::required(&np));
            } else {
                self.name_like(&np, name, dns1123_label(name));
            }
            if seen.contains(name) {
                self.push(Cause::duplicate(&np, name));
            }
            if self.errs.len() == before {
                seen.insert(name);
                valid.insert(name.to_string(), sources.first().map(|s| s.to_string()).unwrap_or_default());
            }
        }
        valid
    }

    fn volume_source(&mut self, vol: &Value, vp: &str, kind: &str) {
        let Some(src) = self.obj(vol, vp, kind) else { return };
        let sp = child(vp, kind);
        let require = |v: &mut V, field: &str| {
            if v.string(src, &sp, field).is_empty() {
                v.push(Cause::required(child(&sp, field)));
            }
        };
        match kind {
            "hostPath" => require(self, "path"),
            "secret" => require(self, "secretName"),
            "configMap" => require(self, "name"),
            "persistentVolumeClaim" => require(self, "claimName"),
            "nfs" => {
                require(self, "server");
                require(self, "path");
            }
            "emptyDir" => {
                if let Some(v) = src.get("sizeLimit").filter(|v| !v.is_null())
                    && Quantity::from_json(v).is_ok_and(|q| q.is_negative())
                {
                    self.push(Cause::forbidden(
                        child(&sp, "sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
            _ => {}
        }
        if let Some(mode) = self.int32(src, &sp, "defaultMode")
            && !(0..=0o777).contains(&mode)
        {
            self.push(invalid_raw(child(&sp, "defaultMode"), mode, FILE_MODE));
        }
    }

    fn container(
        &mut self,
        c: &Value,
        p: &str,
        volumes: &HashMap<String, String>,
        within: PodIn,
        kind: ContainerKind,
        host_ports: &mut HashSet<String>,
    ) {
        let name = self.string(c, p, "name");
        if name.is_empty() {
            self.push(Cause::required(child(p, "name")));
        } else {
            self.name_like(&child(p, "name"), name, dns1123_label(name));
        }
        let image = self.string(c, p, "image");
        if image.is_empty() {
            self.push(Cause::required(child(p, "image")));
        } else if within == PodIn::Pod && image.trim() != image {
            self.push(Cause::invalid(child(p, "image"), image, "must not have leading or trailing whitespace"));
        }
        self.one_of(c, p, "terminationMessagePolicy", &["File", "FallbackToLogsOnError"]);
        self.container_ports(c, p, host_ports);
        self.env(c, p);
        self.volume_mounts(c, p, volumes);
        self.one_of(c, p, "imagePullPolicy", &["Always", "IfNotPresent", "Never"]);
        self.resources(c, p);
        let sc = self.section(c, p, "securityContext");
        let scp = child(p, "securityContext");
        for field in ["runAsUser", "runAsGroup"] {
            if let Some(n) = self.int(sc, &scp, field)
                && !(0..=4_294_967_295).contains(&n)
            {
                self.push(invalid_raw(child(&scp, field), n, "must be between 0 and 4294967295, inclusive"));
            }
        }
        let restart = self.str(c, p, "restartPolicy");
        let probes_allowed = match kind {
            ContainerKind::Regular => {
                if restart.is_some() {
                    self.push(Cause::forbidden(child(p, "restartPolicy"), "may not be set for non-init containers"));
                }
                true
            }
            ContainerKind::Init => {
                if let Some(r) = restart
                    && r != "Always"
                {
                    self.push(Cause::not_supported(child(p, "restartPolicy"), r, &["Always"]));
                }
                restart == Some("Always")
            }
        };
        if probes_allowed {
            if let Some(lc) = self.obj(c, p, "lifecycle") {
                let lp = child(p, "lifecycle");
                for hook in ["postStart", "preStop"] {
                    if let Some(h) = self.obj(lc, &lp, hook) {
                        self.handler(h, &child(&lp, hook), false);
                    }
                }
            }
            self.probe(c, p, "livenessProbe");
            self.probe(c, p, "readinessProbe");
            self.probe(c, p, "startupProbe");
        } else {
            for field in ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"] {
                if c.get(field).is_some_and(|v| !v.is_null()) {
                    self.push(Cause::forbidden(
                        child(p, field),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }

    fn container_ports(&mut self, c: &Value, p: &str, host_ports: &mut HashSet<String>) {
        let mut names = HashSet::new();
        for (pp, port) in self.items(c, p, "ports") {
            let name = self.string(port, &pp, "name");
            if !name.is_empty() {
                let errs = port_name(name);
                if !errs.is_empty() {
                    self.name_like(&child(&pp, "name"), name, errs);
                } else if !names.insert(name) {
                    self.push(Cause::duplicate(child(&pp, "name"), name));
                }
            }
            match self.int32(port, &pp, "containerPort") {
                Some(0) => self.push(Cause::required(child(&pp, "containerPort"))),
                Some(n) => self.port_num(&child(&pp, "containerPort"), n),
                None => {
                    if port.get("containerPort").is_none_or(Value::is_null) {
                        self.push(Cause::required(child(&pp, "containerPort")));
                    }
                }
            }
            let host = self.int32(port, &pp, "hostPort").unwrap_or(0);
            if host != 0 {
                self.port_num(&child(&pp, "hostPort"), host);
            }
            let protocol = self.one_of(port, &pp, "protocol", PROTOCOLS);
            if host != 0 {
                let host_ip = port["hostIP"].as_str().unwrap_or("");
                let id = format!("{}/{host_ip}/{host}", protocol.as_deref().unwrap_or(""));
                if !host_ports.insert(id.clone()) {
                    self.push(Cause::duplicate(child(&pp, "hostPort"), id));
                }
            }
        }
    }

    fn env(&mut self, c: &Value, p: &str) {
        for (ep, e) in self.items(c, p, "env") {
            let name = self.string(e, &ep, "name");
            if name.is_empty() {
                self.push(Cause::required(child(&ep, "name")));
            } else {
                self.name_like(&child(&ep, "name"), name, env_var_name(name));
            }
            let Some(from) = self.obj(e, &ep, "valueFrom") else { continue };
            let fp = child(&ep, "valueFrom");
            let mut sources = 0;
            if let Some(f) = self.obj(from, &fp, "fieldRef") {
                sources += 1;
                let rp = child(&fp, "fieldRef");
                let path = self.string(f, &rp, "fieldPath");
                if self.string(f, &rp, "apiVersion").is_empty() {
                    self.push(Cause::required(child(&rp, "apiVersion")));
                } else if path.is_empty() {
                    self.push(Cause::required(child(&rp, "fieldPath")));
                } else if let Some((base, sub)) = path.strip_suffix("']").and_then(|s| s.split_once("['")) {
                    match base {
                        "metadata.annotations" => self.name_like(&rp, sub, qualified_name(&sub.to_lowercase())),
                        "metadata.labels" => self.name_like(&rp, sub, qualified_name(sub)),
                        _ => self.push(Cause::invalid(&rp, base, "does not support subscript")),
                    }
                } else if !ENV_FIELD_PATHS.contains(&path) {
                    self.push(Cause::not_supported(child(&rp, "fieldPath"), path, ENV_FIELD_PATHS));
                }
            }
            if let Some(r) = self.obj(from, &fp, "resourceFieldRef") {
                sources += 1;
                let rp = child(&fp, "resourceFieldRef");
                let resource = self.string(r, &rp, "resource");
                if resource.is_empty() {
                    self.push(Cause::required(child(&rp, "resource")));
                } else if !ENV_RESOURCE_PATHS.contains(&resource)
                    && !resource.starts_with("requests.hugepages-")
                    && !resource.starts_with("limits.hugepages-")
                {
                    self.push(Cause::not_supported(child(&rp, "resource"), resource, ENV_RESOURCE_PATHS));
                }
            }
            for source in ["configMapKeyRef", "secretKeyRef"] {
                if let Some(r) = self.obj(from, &fp, source) {
                    sources += 1;
                    let rp = child(&fp, source);
                    let name = self.string(r, &rp, "name");
                    self.name_like(&child(&rp, "name"), name, dns1123_subdomain(name));
                    let key = self.string(r, &rp, "key");
                    if key.is_empty() {
                        self.push(Cause::required(child(&rp, "key")));
                    } else {
                        self.name_like(&child(&rp, "key"), key, config_map_key(key));
                    }
                }
            }
            if sources == 0 {
                self.push(Cause::invalid(
                    &fp,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            } else if !self.string(e, &ep, "value").is_empty() {
                self.push(Cause::invalid(&fp, "", "may not be specified when `value` is not empty"));
            } else if sources > 1 {
                self.push(Cause::invalid(&fp, "", "may not have more than one field specified at a time"));
            }
        }
        let efp = child(p, "envFrom");
        for (ep, e) in self.items(c, p, "envFrom") {
            let prefix = self.string(e, &ep, "prefix");
            if !prefix.is_empty() {
                self.name_like(&child(&ep, "prefix"), prefix, env_var_name(prefix));
            }
            let mut sources = 0;
            for source in ["configMapRef", "secretRef"] {
                if let Some(r) = self.obj(e, &ep, source) {
                    sources += 1;
                    let rp = child(&ep, source);
                    let name = self.string(r, &rp, "name");
                    if name.is_empty() {
                        self.push(Cause::required(child(&rp, "name")));
                    } else {
                        self.name_like(&child(&rp, "name"), name, check_name(NameRule::Subdomain, name, true));
                    }
                }
            }
            if sources == 0 {
                self.push(Cause::invalid(&efp, "", "must specify one of: `configMapRef` or `secretRef`"));
            } else if sources > 1 {
                self.push(Cause::invalid(&efp, "", "may not have more than one field specified at a time"));
            }
        }
    }

    fn volume_mounts(&mut self, c: &Value, p: &str, volumes: &HashMap<String, String>) {
        let base = child(p, "volumeMounts");
        let mut paths = HashSet::new();
        for (mp, m) in self.items(c, p, "volumeMounts") {
            let name = self.string(m, &mp, "name");
            if name.is_empty() {
                self.push(Cause::required(child(&mp, "name")));
            }
            if !volumes.contains_key(name) {
                self.push(not_found(child(&mp, "name"), name));
            }
            let path = self.string(m, &mp, "mountPath");
            if path.is_empty() {
                self.push(Cause::required(child(&mp, "mountPath")));
            }
            if !paths.insert(path) {
                self.push(Cause::invalid(child(&mp, "mountPath"), path, "must be unique"));
            }
            for field in ["subPath", "subPathExpr"] {
                let sub = self.string(m, &mp, field);
                if sub.is_empty() {
                    continue;
                }
                // Kubernetes reports these against the list, not the item.
                let fp = child(&base, field);
                if sub.starts_with('/') {
                    self.push(Cause::invalid(&fp, sub, "must be a relative path"));
                }
                if sub.split(['/', '\\']).any(|part| part == "..") {
                    self.push(Cause::invalid(&fp, sub, "must not contain '..'"));
                }
            }
            if !self.string(m, &mp, "subPath").is_empty() && !self.string(m, &mp, "subPathExpr").is_empty() {
                let expr = self.string(m, &mp, "subPathExpr");
                self.push(Cause::invalid(
                    child(&mp, "subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
        }
    }

    fn container_resource_name(&mut self, name: &str, path: &str) {
        let errs = qualified_name(name);
        if !errs.is_empty() {
            self.name_like(path, name, errs);
        } else if !name.contains('/') && !is_standard_resource(name) {
            self.push(Cause::invalid(path, name, "must be a standard resource type or fully qualified"));
        }
        if !name.contains('/') {
            if !is_standard_container_resource(name) {
                self.push(Cause::invalid(path, name, "must be a standard resource for containers"));
            }
        } else if !is_native_resource(name)
            && (name.starts_with("requests.") || !qualified_name(&format!("requests.{name}")).is_empty())
        {
            self.push(Cause::invalid(path, name, "doesn't follow extended resource name standard"));
        }
    }

    fn resources(&mut self, c: &Value, p: &str) {
        let r = self.section(c, p, "resources");
        let rp = child(p, "resources");
        let lim_path = child(&rp, "limits");
        let req_path = child(&rp, "requests");
        let limits = self.quantities(r, &rp, "limits");
        let requests = self.quantities(r, &rp, "requests");
        let mut cpu_or_memory = false;
        let mut hugepages = false;
        for (name, q, raw) in &limits {
            let path = keyed(&lim_path, name);
            self.container_resource_name(name, &path);
            if !is_native_resource(name) && !q.is_integer() {
                self.push(Cause::invalid(&path, raw, "must be an integer"));
            }
            cpu_or_memory |= matches!(*name, "cpu" | "memory");
            hugepages |= is_hugepages(name);
        }
        for (name, q, raw) in &requests {
            let path = keyed(&req_path, name);
            self.container_resource_name(name, &path);
            if !is_native_resource(name) && !q.is_integer() {
                self.push(Cause::invalid(&path, raw, "must be an integer"));
            }
            match limits.iter().find(|(n, _, _)| n == name) {
                Some((_, limit, limit_raw)) => {
                    if !overcommit_allowed(name) && q != limit {
                        self.push(Cause::invalid(
                            &req_path,
                            raw,
                            format!("must be equal to {name} limit of {limit_raw}"),
                        ));
                    } else if q > limit {
                        self.push(Cause::invalid(
                            &req_path,
                            raw,
                            format!("must be less than or equal to {name} limit of {limit_raw}"),
                        ));
                    }
                }
                None => {
                    if !overcommit_allowed(name) {
                        self.push(required_msg(&lim_path, "Limit must be set for non overcommitable resources"));
                    }
                }
            }
            cpu_or_memory |= matches!(*name, "cpu" | "memory");
            hugepages |= is_hugepages(name);
        }
        if hugepages && !cpu_or_memory {
            self.push(Cause::forbidden(&rp, "HugePages require cpu or memory"));
        }
    }

    fn probe(&mut self, c: &Value, p: &str, k: &str) {
        let Some(probe) = self.obj(c, p, k) else { return };
        let pp = child(p, k);
        self.handler(probe, &pp, true);
        for field in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"]
        {
            self.nonneg32(probe, &pp, field);
        }
        let grace = self.int(probe, &pp, "terminationGracePeriodSeconds");
        if k == "readinessProbe" {
            if let Some(n) = grace {
                self.push(invalid_raw(
                    child(&pp, "terminationGracePeriodSeconds"),
                    n,
                    "must not be set for readinessProbes",
                ));
            }
        } else {
            if let Some(n) = grace
                && n <= 0
            {
                self.push(invalid_raw(child(&pp, "terminationGracePeriodSeconds"), n, "must be greater than 0"));
            }
            let success = probe["successThreshold"].as_i64().unwrap_or(0);
            if success != 1 {
                self.push(invalid_raw(child(&pp, "successThreshold"), success, "must be 1"));
            }
        }
    }

    /// A probe's or lifecycle hook's handler: exactly one action.
    fn handler(&mut self, h: &Value, p: &str, probe: bool) {
        let kinds: &[&str] =
            if probe { &["exec", "httpGet", "tcpSocket", "grpc"] } else { &["exec", "httpGet", "tcpSocket", "sleep"] };
        let mut count = 0;
        for kind in kinds {
            let Some(action) = self.obj(h, p, kind) else { continue };
            let ap = child(p, kind);
            if count > 0 {
                self.push(Cause::forbidden(&ap, "may not specify more than 1 handler type"));
                continue;
            }
            count += 1;
            match *kind {
                "exec" if self.array(action, &ap, "command").is_empty() => {
                    self.push(Cause::required(child(&ap, "command")));
                }
                "httpGet" => {
                    if self.string(action, &ap, "path").is_empty() {
                        self.push(Cause::required(child(&ap, "path")));
                    }
                    self.port_num_or_name(action, &ap, "port");
                    let scheme = self.string(action, &ap, "scheme");
                    if !matches!(scheme, "HTTP" | "HTTPS") {
                        self.push(Cause::not_supported(child(&ap, "scheme"), scheme, &["HTTP", "HTTPS"]));
                    }
                }
                "tcpSocket" => self.port_num_or_name(action, &ap, "port"),
                "grpc" => {
                    let port = self.int32(action, &ap, "port").unwrap_or(0);
                    self.port_num(&child(&ap, "port"), port);
                }
                _ => {}
            }
        }
        if count == 0 {
            self.push(required_msg(p, "must specify a handler type"));
        }
    }

    /// A pod template (`p` is its path): labels, annotations and the pod spec.
    fn pod_template(&mut self, t: &Value, p: &str, extra_volumes: &[String]) -> Option<Vec<(String, String)>> {
        let m = self.section(t, p, "metadata");
        // Kubernetes reports template metadata against the template itself.
        let labels = self.labels(m, p, "labels");
        self.annotations(m, p, "annotations");
        let spec = self.section(t, p, "spec");
        self.pod_spec(spec, &child(p, "spec"), PodIn::Template, extra_volumes);
        labels
    }
}

// ---------------------------------------------------------------------------------------------
// Pods

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Drops what Go's zero values make indistinguishable from absence (null, "", false, [] and {}),
/// so that two specs compare as kube-apiserver's semantic equality would.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), normalized(v))).filter(|(_, v)| !is_zero(v)).collect::<Map<
                String,
                Value,
            >>(
            ))
        }
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Number(_) => false,
    }
}

/// The leaf paths at which two values differ, as `path: old -> new` lines.
fn diff(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: Vec<&String> = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).collect();
            for k in keys {
                diff(a.get(k).unwrap_or(&NULL), b.get(k).unwrap_or(&NULL), &child(path, k), out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(x, y, &index(path, i), out);
            }
        }
        _ if old != new => out.push(format!("{path}: {} -> {}", short_json(old), short_json(new))),
        _ => {}
    }
}

impl V {
    fn pod(&mut self, obj: &Value, old: Option<&Value>) {
        let spec = self.section(obj, "", "spec");
        self.pod_spec(spec, "spec", PodIn::Pod, &[]);
        if self.string(spec, "spec", "serviceAccountName").is_empty() {
            for (vp, vol) in self.items(spec, "spec", "volumes") {
                let pp = child(&vp, "projected");
                for (sp, source) in self.items(&vol["projected"], &pp, "sources") {
                    if source.get("serviceAccountToken").is_some_and(|v| !v.is_null()) {
                        self.push(Cause::forbidden(
                            child(&sp, "serviceAccountToken"),
                            "must not be specified when serviceAccountName is not set",
                        ));
                    }
                }
            }
        }
        match old {
            None => {
                if spec["ephemeralContainers"].as_array().is_some_and(|a| !a.is_empty()) {
                    self.push(Cause::forbidden("spec.ephemeralContainers", "cannot be set on create"));
                }
                if spec["nodeName"].as_str().is_some_and(|n| !n.is_empty())
                    && spec["schedulingGates"].as_array().is_some_and(|a| !a.is_empty())
                {
                    self.push(Cause::forbidden(
                        "spec.nodeName",
                        "cannot be set until all schedulingGates have been cleared",
                    ));
                }
            }
            Some(old) => self.pod_update(spec, &old["spec"]),
        }
    }

    /// Kubernetes' ValidatePodUpdate: only images, activeDeadlineSeconds, added tolerations and
    /// removed scheduling gates may change.
    fn pod_update(&mut self, new: &Value, old: &Value) {
        for list in ["containers", "initContainers"] {
            let n = new[list].as_array().map_or(0, Vec::len);
            let o = old[list].as_array().map_or(0, Vec::len);
            if n != o {
                self.push(Cause::forbidden(format!("spec.{list}"), "pod updates may not add or remove containers"));
                return;
            }
        }
        match new["activeDeadlineSeconds"].as_i64() {
            Some(n) => {
                if !(0..=i64::from(i32::MAX)).contains(&n) {
                    self.push(invalid_raw(
                        "spec.activeDeadlineSeconds",
                        n,
                        format!("must be between 0 and {}, inclusive", i32::MAX),
                    ));
                    return;
                }
                if old["activeDeadlineSeconds"].as_i64().is_some_and(|o| o < n) {
                    self.push(invalid_raw(
                        "spec.activeDeadlineSeconds",
                        n,
                        "must be less than or equal to previous value",
                    ));
                    return;
                }
            }
            None => {
                if old["activeDeadlineSeconds"].is_i64() {
                    self.push(invalid_raw(
                        "spec.activeDeadlineSeconds",
                        "null",
                        "must not update from a positive integer to nil value",
                    ));
                }
            }
        }
        // Existing tolerations must stay, except for their tolerationSeconds.
        let strip = |t: &Value| {
            let mut t = normalized(t);
            t.as_object_mut().map(|m| m.remove("tolerationSeconds"));
            t
        };
        let new_tolerations: Vec<Value> = new["tolerations"].as_array().into_iter().flatten().map(strip).collect();
        if old["tolerations"].as_array().into_iter().flatten().any(|t| !new_tolerations.contains(&strip(t))) {
            self.push(Cause::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
        }
        let old_gates: HashSet<&str> =
            old["schedulingGates"].as_array().into_iter().flatten().filter_map(|g| g["name"].as_str()).collect();
        for (i, g) in new["schedulingGates"].as_array().into_iter().flatten().enumerate() {
            let name = g["name"].as_str().unwrap_or("");
            if !old_gates.contains(name) {
                self.push(Cause::forbidden(
                    format!("spec.schedulingGates[{i}].name"),
                    format!("only deletion is allowed, but found new scheduling gate '{name}'"),
                ));
            }
        }

        let mut munged = new.clone();
        if let Some(m) = munged.as_object_mut() {
            for list in ["containers", "initContainers"] {
                if let Some(items) = m.get_mut(list).and_then(Value::as_array_mut) {
                    for (i, c) in items.iter_mut().enumerate() {
                        if let Some(c) = c.as_object_mut() {
                            match old[list][i].get("image") {
                                Some(image) => c.insert("image".into(), image.clone()),
                                None => c.remove("image"),
                            };
                        }
                    }
                }
            }
            for field in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
                match old.get(field) {
                    Some(v) => m.insert(field.into(), v.clone()),
                    None => m.remove(field),
                };
            }
            let old_grace = old["terminationGracePeriodSeconds"].as_i64();
            if old_grace.is_some_and(|g| g < 0)
                && m.get("terminationGracePeriodSeconds").and_then(Value::as_i64) == Some(1)
            {
                m.insert("terminationGracePeriodSeconds".into(), old["terminationGracePeriodSeconds"].clone());
            }
        }
        let (old_n, new_n) = (normalized(old), normalized(&munged));
        if old_n != new_n {
            let mut changes = Vec::new();
            diff(&old_n, &new_n, "spec", &mut changes);
            changes.truncate(20);
            self.push(Cause::forbidden(
                "spec",
                format!(
                    "pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n  {}",
                    changes.join("\n  ")
                ),
            ));
        }
    }

    // -- apps ----------------------------------------------------------------------------------

    /// The selector of a workload: Required when absent, invalid when empty.
    fn workload_selector<'a>(&mut self, spec: &'a Value, what: &str) -> Option<Selector<'a>> {
        if spec.get("selector").is_none_or(Value::is_null) {
            self.push(Cause::required("spec.selector"));
            return None;
        }
        let sel = self.label_selector(spec, "spec", "selector")?;
        if sel.is_empty() {
            self.push(invalid_raw("spec.selector", sel.go(), format!("empty selector is invalid for {what}")));
        }
        Some(sel)
    }

    /// A missing selector selects nothing (as in Kubernetes), so it never matches the template.
    fn selector_matches_template(&mut self, sel: Option<&Selector>, labels: Option<&[(String, String)]>) {
        if sel.is_some_and(|s| !s.valid || s.is_empty()) {
            return;
        }
        let pairs: Vec<(&str, &str)> =
            labels.unwrap_or_default().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if sel.is_none_or(|s| !s.matches(&pairs)) {
            self.push(invalid_raw(
                "spec.template.metadata.labels",
                go_map(labels.map(|_| pairs.as_slice())),
                "`selector` does not match template `labels`",
            ));
        }
    }

    /// Checks a template that must restart its pods always (ReplicaSet, Deployment, DaemonSet).
    fn always_restarting(&mut self, spec: &Value, owner: &str) {
        let tspec = &spec["template"]["spec"];
        let restart = tspec["restartPolicy"].as_str().unwrap_or("");
        if !restart.is_empty() && restart != "Always" {
            self.push(Cause::not_supported("spec.template.spec.restartPolicy", restart, &["Always"]));
        }
        if tspec.get("activeDeadlineSeconds").is_some_and(|v| !v.is_null()) {
            self.push(Cause::forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                format!("activeDeadlineSeconds in {owner} is not Supported"),
            ));
        }
    }

    fn selector_immutable(&mut self, obj: &Value, old: Option<&Value>) {
        let Some(old) = old else { return };
        if normalized(&obj["spec"]["selector"]) != normalized(&old["spec"]["selector"]) {
            let mut scratch = V::default();
            let rendered =
                scratch.label_selector(&obj["spec"], "spec", "selector").map_or_else(|| "null".to_string(), |s| s.go());
            self.push(invalid_raw("spec.selector", rendered, IMMUTABLE));
        }
    }

    fn replica_set_like(&mut self, obj: &Value, owner: &str) {
        let spec = self.section(obj, "", "spec");
        self.nonneg32(spec, "spec", "replicas");
        self.nonneg32(spec, "spec", "minReadySeconds");
        let sel = self.workload_selector(spec, "deployment");
        if let Some(s) = sel.as_ref().filter(|s| !s.valid) {
            self.push(invalid_raw("spec.selector", s.go(), "invalid label selector"));
        }
        let template = self.section(spec, "spec", "template");
        let labels = self.pod_template(template, "spec.template", &[]);
        self.selector_matches_template(sel.as_ref(), labels.as_deref());
        self.always_restarting(spec, owner);
    }

    fn deployment(&mut self, obj: &Value, old: Option<&Value>) {
        self.replica_set_like(obj, "ReplicaSet");
        let spec = self.section(obj, "", "spec");
        let strategy = self.section(spec, "spec", "strategy");
        let sp = "spec.strategy";
        match self.string(strategy, sp, "type") {
            "Recreate" => {
                if strategy.get("rollingUpdate").is_some_and(|v| !v.is_null()) {
                    self.push(Cause::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => match self.obj(strategy, sp, "rollingUpdate") {
                None => {
                    self.push(required_msg("spec.strategy.rollingUpdate", "this should be defaulted and never be nil"))
                }
                Some(ru) => {
                    let rp = "spec.strategy.rollingUpdate";
                    let unavailable = self.int_or_percent(ru, rp, "maxUnavailable");
                    let surge = self.int_or_percent(ru, rp, "maxSurge");
                    if unavailable.map_or(0, |u| u.amount()) == 0 && surge.map_or(0, |s| s.amount()) == 0 {
                        self.push(invalid_raw(
                            "spec.strategy.rollingUpdate.maxUnavailable",
                            unavailable.unwrap_or(IntStr::Int(0)),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                    self.not_over_100(unavailable, "spec.strategy.rollingUpdate.maxUnavailable");
                }
            },
            other => self.push(Cause::not_supported(sp, other, &["Recreate", "RollingUpdate"])),
        }
        self.nonneg32(spec, "spec", "revisionHistoryLimit");
        if let Some(deadline) = self.int32(spec, "spec", "progressDeadlineSeconds") {
            if deadline < 0 {
                self.push(invalid_raw("spec.progressDeadlineSeconds", deadline, NEGATIVE));
            }
            if deadline <= spec["minReadySeconds"].as_i64().unwrap_or(0) {
                self.push(invalid_raw(
                    "spec.progressDeadlineSeconds",
                    deadline,
                    "must be greater than minReadySeconds",
                ));
            }
        }
        self.selector_immutable(obj, old);
    }

    fn replica_set(&mut self, obj: &Value, old: Option<&Value>) {
        self.replica_set_like(obj, "ReplicaSet");
        self.selector_immutable(obj, old);
    }

    fn int_or_percent<'a>(&mut self, o: &'a Value, p: &str, k: &str) -> Option<IntStr<'a>> {
        let value = self.int_str(o, p, k)?;
        let path = child(p, k);
        match value {
            IntStr::Str(s) => {
                for m in percent(s) {
                    self.push(invalid_raw(&path, s, m));
                }
            }
            IntStr::Int(n) if n < 0 => self.push(invalid_raw(&path, n, NEGATIVE)),
            IntStr::Int(_) => {}
        }
        Some(value)
    }

    fn not_over_100(&mut self, value: Option<IntStr>, path: &str) {
        if let Some(v @ IntStr::Str(s)) = value
            && percent(s).is_empty()
            && v.amount() > 100
        {
            self.push(invalid_raw(path, s, "must not be greater than 100%"));
        }
    }

    fn daemon_set(&mut self, obj: &Value, old: Option<&Value>) {
        let spec = self.section(obj, "", "spec");
        let sel = self.label_selector(spec, "spec", "selector");
        let template = self.section(spec, "spec", "template");
        let labels = self.pod_template(template, "spec.template", &[]);
        // A missing selector selects nothing, so it never matches the template.
        let pairs: Vec<(&str, &str)> =
            labels.as_deref().unwrap_or_default().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if sel.as_ref().is_none_or(|s| s.valid && !s.matches(&pairs)) {
            self.push(invalid_raw(
                "spec.template.metadata.labels",
                go_map(labels.as_ref().map(|_| pairs.as_slice())),
                "`selector` does not match template `labels`",
            ));
        }
        if let Some(s) = sel.as_ref().filter(|s| s.is_empty()) {
            self.push(invalid_raw("spec.selector", s.go(), "empty selector is invalid for daemonset"));
        }
        self.always_restarting(spec, "DaemonSet");
        self.nonneg32(spec, "spec", "minReadySeconds");
        let strategy = self.section(spec, "spec", "updateStrategy");
        let sp = "spec.updateStrategy";
        match self.string(strategy, sp, "type") {
            "OnDelete" => {}
            "RollingUpdate" => match self.obj(strategy, sp, "rollingUpdate") {
                None => self.push(Cause::required("spec.updateStrategy.rollingUpdate")),
                Some(ru) => {
                    let rp = "spec.updateStrategy.rollingUpdate";
                    let unavailable = self.int_or_percent(ru, rp, "maxUnavailable");
                    let surge = self.int_or_percent(ru, rp, "maxSurge");
                    self.not_over_100(unavailable, &child(rp, "maxUnavailable"));
                    self.not_over_100(surge, &child(rp, "maxSurge"));
                    let has_unavailable = unavailable.is_some_and(|u| u.amount() != 0);
                    let has_surge = surge.is_some_and(|s| s.amount() != 0);
                    if has_unavailable && has_surge {
                        self.push(invalid_raw(
                            child(rp, "maxSurge"),
                            surge.unwrap_or(IntStr::Int(0)),
                            "may not be set when maxUnavailable is non-zero",
                        ));
                    } else if !has_unavailable && !has_surge {
                        self.push(required_msg(child(rp, "maxUnavailable"), "cannot be 0 when maxSurge is 0"));
                    }
                }
            },
            other => self.push(Cause::not_supported(sp, other, &["RollingUpdate", "OnDelete"])),
        }
        self.nonneg32(spec, "spec", "revisionHistoryLimit");
        self.selector_immutable(obj, old);
    }

    fn stateful_set(&mut self, obj: &Value, old: Option<&Value>) {
        let spec = self.section(obj, "", "spec");
        match self.string(spec, "spec", "podManagementPolicy") {
            "" => self.push(Cause::required("spec.podManagementPolicy")),
            "OrderedReady" | "Parallel" => {}
            other => {
                self.push(Cause::invalid("spec.podManagementPolicy", other, "must be 'OrderedReady' or 'Parallel'"))
            }
        }
        let strategy = self.section(spec, "spec", "updateStrategy");
        let sp = "spec.updateStrategy";
        match self.string(strategy, sp, "type") {
            "" => self.push(Cause::required(sp)),
            "OnDelete" => {
                if let Some(ru) = strategy.get("rollingUpdate").filter(|v| !v.is_null()) {
                    self.push(invalid_raw(
                        "spec.updateStrategy.rollingUpdate",
                        short_json(ru),
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(ru) = self.obj(strategy, sp, "rollingUpdate") {
                    let rp = "spec.updateStrategy.rollingUpdate";
                    self.nonneg32(ru, rp, "partition");
                    let unavailable = self.int_or_percent(ru, rp, "maxUnavailable");
                    if let Some(u) = unavailable
                        && u.amount() == 0
                    {
                        self.push(invalid_raw(child(rp, "maxUnavailable"), u, "cannot be 0"));
                    }
                    self.not_over_100(unavailable, &child(rp, "maxUnavailable"));
                }
            }
            other => {
                self.push(Cause::invalid(sp, other, "must be 'RollingUpdate' or 'OnDelete'"));
            }
        }
        if let Some(policy) = self.obj(spec, "spec", "persistentVolumeClaimRetentionPolicy") {
            let pp = "spec.persistentVolumeClaimRetentionPolicy";
            for field in ["whenDeleted", "whenScaled"] {
                let value = self.string(policy, pp, field);
                if !matches!(value, "Retain" | "Delete") {
                    self.push(Cause::not_supported(child(pp, field), value, &["Retain", "Delete"]));
                }
            }
        }
        self.nonneg32(spec, "spec", "replicas");
        self.nonneg32(spec, "spec", "minReadySeconds");
        if let Some(ordinals) = self.obj(spec, "spec", "ordinals")
            && let Some(start) = self.int32(ordinals, "spec.ordinals", "start")
            && start < 0
        {
            self.push(invalid_raw("spec.ordinals.start", start, NEGATIVE));
        }
        let sel = self.workload_selector(spec, "statefulset");
        let claims: Vec<String> = spec["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let template = self.section(spec, "spec", "template");
        let labels = self.pod_template(template, "spec.template", &claims);
        self.selector_matches_template(sel.as_ref(), labels.as_deref());
        let restart = template["spec"]["restartPolicy"].as_str().unwrap_or("");
        if !restart.is_empty() && restart != "Always" {
            self.push(Cause::not_supported("spec.template.spec.restartPolicy", restart, &["Always"]));
        }
        if template["spec"].get("activeDeadlineSeconds").is_some_and(|v| !v.is_null()) {
            self.push(Cause::forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in StatefulSet is not Supported",
            ));
        }
        if let Some(old) = old {
            let mut new_spec = normalized(&obj["spec"]);
            let old_spec = normalized(&old["spec"]);
            if let Some(m) = new_spec.as_object_mut() {
                for field in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    match old_spec.get(field) {
                        Some(v) => m.insert(field.into(), v.clone()),
                        None => m.remove(field),
                    };
                }
            }
            if new_spec != old_spec {
                self.push(Cause::forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
    }

    // -- batch ---------------------------------------------------------------------------------

    /// validateJobSpec: what a Job's and a CronJob's job template share. `p` is the JobSpec path.
    fn job_spec(&mut self, spec: &Value, p: &str) -> Option<Vec<(String, String)>> {
        for field in ["parallelism", "completions", "backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes"] {
            self.nonneg32(spec, p, field);
        }
        self.nonneg(spec, p, "activeDeadlineSeconds");
        self.nonneg32(spec, p, "ttlSecondsAfterFinished");
        let indexed = match self.str(spec, p, "completionMode") {
            Some(mode @ ("NonIndexed" | "Indexed")) => mode == "Indexed",
            Some(other) => {
                self.push(Cause::not_supported(child(p, "completionMode"), other, &["NonIndexed", "Indexed"]));
                false
            }
            None => false,
        };
        if indexed && spec.get("completions").is_none_or(Value::is_null) {
            self.push(required_msg(child(p, "completions"), "when completion mode is Indexed"));
        }
        if !indexed {
            for field in ["backoffLimitPerIndex", "maxFailedIndexes"] {
                if let Some(n) = spec[field].as_i64() {
                    self.push(invalid_raw(child(p, field), n, "requires indexed completion mode"));
                }
            }
        }
        let has_failure_policy = spec.get("podFailurePolicy").is_some_and(|v| !v.is_null());
        if let Some(policy) = self.str(spec, p, "podReplacementPolicy") {
            if !matches!(policy, "Failed" | "TerminatingOrFailed") {
                self.push(Cause::not_supported(
                    child(p, "podReplacementPolicy"),
                    policy,
                    &["Failed", "TerminatingOrFailed"],
                ));
            } else if has_failure_policy && policy != "Failed" {
                self.push(Cause::invalid(
                    child(p, "podReplacementPolicy"),
                    policy,
                    "must be \"Failed\" when podFailurePolicy is used",
                ));
            }
        }
        let tp = child(p, "template");
        let template = self.section(spec, p, "template");
        let labels = self.pod_template(template, &tp, &[]);
        let rp = child(&child(&tp, "spec"), "restartPolicy");
        match template["spec"]["restartPolicy"].as_str().unwrap_or("") {
            "Always" | "" => self.push(required_msg(rp, "valid values: \"OnFailure\", \"Never\"")),
            "OnFailure" if has_failure_policy => self.push(Cause::invalid(
                rp,
                "OnFailure",
                "only \"Never\" is supported when podFailurePolicy is specified",
            )),
            "OnFailure" | "Never" => {}
            other => self.push(Cause::not_supported(rp, other, &["OnFailure", "Never"])),
        }
        labels
    }

    fn job(&mut self, obj: &Value, old: Option<&Value>) {
        let spec = self.section(obj, "", "spec");
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        let uid = obj["metadata"]["uid"].as_str().unwrap_or("");
        let manual = spec["manualSelector"].as_bool() == Some(true);
        let labels = self.job_spec(spec, "spec");
        let sel = if spec.get("selector").is_none_or(Value::is_null) {
            self.push(Cause::required("spec.selector"));
            None
        } else {
            self.label_selector(spec, "spec", "selector")
        };
        if let Some(sel) = sel.as_ref().filter(|s| s.valid) {
            let pairs: Vec<(&str, &str)> =
                labels.as_deref().unwrap_or_default().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if !sel.matches(&pairs) {
                self.push(invalid_raw(
                    "spec.template.metadata.labels",
                    go_map(labels.as_ref().map(|_| pairs.as_slice())),
                    "`selector` does not match template `labels`",
                ));
            }
            if !manual {
                self.generated_selector(sel, labels.as_deref(), name, uid);
            }
        }
        if spec["completionMode"].as_str() == Some("Indexed")
            && let Some(completions) = spec["completions"].as_i64().filter(|c| *c > 0)
        {
            let host = format!("{name}-{}", completions - 1);
            if !dns1123_label(&host).is_empty() {
                self.push(Cause::invalid(
                    "metadata.name",
                    name,
                    format!("will not able to create pod with invalid DNS label: {host}"),
                ));
            }
        }
        if let Some(old) = old {
            self.job_update(spec, &old["spec"], &old["status"]);
        }
    }

    /// A generated selector must select the controller-uid and job-name labels of this Job.
    fn generated_selector(&mut self, sel: &Selector, labels: Option<&[(String, String)]>, name: &str, uid: &str) {
        if uid.is_empty() {
            self.push(Cause::required("metadata.uid"));
        }
        let labels = labels.unwrap_or_default();
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let expected = [
            ("controller-uid", uid),
            ("job-name", name),
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name),
        ];
        for (key, want) in expected {
            let path = format!("spec.template.metadata.labels[{key}]");
            match pairs.iter().find(|(k, _)| *k == key) {
                None => self.push(required_msg(path, &format!("must be '{want}'"))),
                Some((_, got)) if *got != want => {
                    self.push(invalid_raw(path, go_map(Some(&pairs)), format!("must be '{want}'")))
                }
                Some(_) => {}
            }
        }
        if !sel.matches(&expected) {
            self.push(invalid_raw("spec.selector", sel.go(), "`selector` not auto-generated"));
        }
    }

    fn job_update(&mut self, new: &Value, old: &Value, old_status: &Value) {
        let changed = |field: &str| normalized(&new[field]) != normalized(&old[field]);
        if changed("selector") {
            let mut scratch = V::default();
            let rendered =
                scratch.label_selector(new, "spec", "selector").map_or_else(|| "null".to_string(), |s| s.go());
            self.push(invalid_raw("spec.selector", rendered, IMMUTABLE));
        }
        if changed("completions") && new["completionMode"].as_str() != Some("Indexed") {
            self.push(invalid_raw("spec.completions", short_json(&new["completions"]), IMMUTABLE));
        } else if changed("completions") && new["completions"].as_i64() != new["parallelism"].as_i64() {
            self.push(invalid_raw(
                "spec.completions",
                short_json(&new["completions"]),
                "can only be modified in tandem with spec.parallelism",
            ));
        }
        for field in ["completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"] {
            if changed(field) {
                self.push(invalid_raw(format!("spec.{field}"), short_json(&new[field]), IMMUTABLE));
            }
        }
        // A suspended Job that never started may still have its scheduling directives changed.
        let mutable_scheduling =
            old["suspend"].as_bool() == Some(true) && old_status.get("startTime").is_none_or(Value::is_null);
        let mut new_t = normalized(&new["template"]);
        let mut old_t = normalized(&old["template"]);
        if mutable_scheduling {
            for t in [&mut new_t, &mut old_t] {
                if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("labels");
                    m.remove("annotations");
                }
                if let Some(s) = t.get_mut("spec").and_then(Value::as_object_mut) {
                    s.remove("nodeSelector");
                    s.remove("tolerations");
                    s.remove("schedulingGates");
                    if let Some(a) = s.get_mut("affinity").and_then(Value::as_object_mut) {
                        a.remove("nodeAffinity");
                    }
                }
                *t = normalized(t);
            }
        }
        if new_t != old_t {
            self.push(invalid_raw("spec.template", short_json(&new["template"]), IMMUTABLE));
        }
    }

    fn cron_job(&mut self, obj: &Value, old: Option<&Value>) {
        let spec = self.section(obj, "", "spec");
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        if old.is_none() && name.len() > 52 {
            self.push(Cause::invalid("metadata.name", name, "must be no more than 52 characters"));
        }
        let old_spec = old.map(|o| &o["spec"]);
        let time_zone = self.str(spec, "spec", "timeZone");
        match self.string(spec, "spec", "schedule") {
            "" => self.push(Cause::required("spec.schedule")),
            schedule => {
                if let Err(e) = parse_cron(schedule) {
                    self.push(Cause::invalid("spec.schedule", schedule, e));
                }
                let tz_allowed = old_spec.is_some_and(|o| o["schedule"].as_str().is_some_and(|s| s.contains("TZ")));
                if tz_allowed && schedule.contains("TZ") && time_zone.is_some() {
                    self.push(Cause::invalid(
                        "spec.schedule",
                        schedule,
                        "cannot use both timeZone field and TZ or CRON_TZ in schedule",
                    ));
                } else if !tz_allowed && schedule.contains("TZ") {
                    self.push(Cause::invalid(
                        "spec.schedule",
                        schedule,
                        "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                    ));
                }
            }
        }
        self.nonneg(spec, "spec", "startingDeadlineSeconds");
        if let Some(tz) = time_zone
            && old_spec.is_none_or(|o| o["timeZone"].as_str() != Some(tz))
        {
            if tz.is_empty() {
                self.push(Cause::invalid("spec.timeZone", tz, "timeZone must be nil or non-empty string"));
            } else if let Some(e) = time_zone_error(tz) {
                self.push(Cause::invalid("spec.timeZone", tz, e));
            }
        }
        self.one_of(spec, "spec", "concurrencyPolicy", &["Allow", "Forbid", "Replace"]);
        let jt = self.section(spec, "spec", "jobTemplate");
        let js = self.section(jt, "spec.jobTemplate", "spec");
        self.job_spec(js, "spec.jobTemplate.spec");
        if js.get("selector").is_some_and(|v| !v.is_null()) {
            let rendered =
                self.label_selector(js, "spec.jobTemplate.spec", "selector").map_or_else(String::new, |s| s.go());
            self.push(invalid_raw("spec.jobTemplate.spec.selector", rendered, "`selector` will be auto-generated"));
        }
        if js["manualSelector"].as_bool() == Some(true) {
            self.push(Cause::not_supported("spec.jobTemplate.spec.manualSelector", "true", &["nil", "false"]));
        }
        self.nonneg32(spec, "spec", "successfulJobsHistoryLimit");
        self.nonneg32(spec, "spec", "failedJobsHistoryLimit");
    }
}

// ---------------------------------------------------------------------------------------------
// Services, configuration and the cluster's own kinds

impl V {
    fn service(&mut self, obj: &Value, old: Option<&Value>) {
        let spec = self.section(obj, "", "spec");
        let p = "spec";
        let service_type = self.string(spec, p, "type");
        let cluster_ips: Vec<&str> = self.strings(spec, p, "clusterIPs").into_iter().map(|(_, s)| s).collect();
        let cluster_ip = self.string(spec, p, "clusterIP");
        let headless = cluster_ips.len() == 1 && cluster_ips[0] == "None";
        let ports = self.items(spec, p, "ports");
        if ports.is_empty() && !headless && service_type != "ExternalName" {
            self.push(Cause::required("spec.ports"));
        }
        match service_type {
            "LoadBalancer" | "NodePort" if headless => {
                self.push(Cause::invalid(
                    "spec.clusterIPs[0]",
                    "None",
                    format!("may not be set to 'None' for {service_type} services"),
                ));
            }
            "ExternalName" => {
                if !cluster_ips.is_empty() {
                    self.push(Cause::forbidden("spec.clusterIPs", "may not be set for ExternalName services"));
                }
                if !self.array(spec, p, "ipFamilies").is_empty() {
                    self.push(Cause::forbidden("spec.ipFamilies", "may not be set for ExternalName services"));
                }
                if spec.get("ipFamilyPolicy").is_some_and(|v| !v.is_null()) {
                    self.push(Cause::forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"));
                }
                let name = self.string(spec, p, "externalName");
                let cname = name.strip_suffix('.').unwrap_or(name);
                if cname.is_empty() {
                    self.push(Cause::required("spec.externalName"));
                } else {
                    self.name_like("spec.externalName", cname, dns1123_subdomain(cname));
                }
            }
            _ => {}
        }
        let mut names = HashSet::new();
        let mut node_ports = HashSet::new();
        let mut seen_ports = HashSet::new();
        for (pp, port) in &ports {
            let name = self.string(port, pp, "name");
            if ports.len() > 1 && name.is_empty() {
                self.push(Cause::required(child(pp, "name")));
            } else if !name.is_empty() {
                self.name_like(&child(pp, "name"), name, dns1123_label(name));
                if !names.insert(name) {
                    self.push(Cause::duplicate(child(pp, "name"), name));
                }
            }
            let number = self.int32(port, pp, "port").unwrap_or(0);
            self.port_num(&child(pp, "port"), number);
            let protocol = self.one_of(port, pp, "protocol", PROTOCOLS).unwrap_or_default();
            self.port_num_or_name(port, pp, "targetPort");
            if let Some(app) = self.str(port, pp, "appProtocol") {
                self.name_like(&child(pp, "appProtocol"), app, qualified_name(app));
            }
            let node_port = self.int32(port, pp, "nodePort").unwrap_or(0);
            if node_port != 0 {
                // Whether it is in --service-node-port-range is the allocator's to say
                // (registry::service_alloc), as in kube-apiserver.
                if service_type == "ClusterIP" {
                    self.push(Cause::forbidden(child(pp, "nodePort"), "may not be used when `type` is 'ClusterIP'"));
                }
                if !node_ports.insert((protocol.clone(), node_port)) {
                    self.push(duplicate_raw(child(pp, "nodePort"), node_port));
                }
            }
            if !seen_ports.insert((protocol.clone(), number)) {
                self.push(duplicate_raw(
                    pp,
                    format!("core.ServicePort{{Protocol:{}, Port:{number}}}", quote(&protocol)),
                ));
            }
        }
        self.labels(spec, p, "selector");
        match self.string(spec, p, "sessionAffinity") {
            "" => self.push(Cause::required("spec.sessionAffinity")),
            "ClientIP" => {
                let timeout = spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"].as_i64();
                match timeout {
                    None => self.push(required_msg(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                        "when session affinity type is ClientIP",
                    )),
                    Some(t) if !(1..=86400).contains(&t) => self.push(invalid_raw(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                        t,
                        "must be greater than 0 and less than 86400",
                    )),
                    Some(_) => {}
                }
            }
            "None" => {
                if spec.get("sessionAffinityConfig").is_some_and(|v| !v.is_null()) {
                    self.push(Cause::forbidden(
                        "spec.sessionAffinityConfig",
                        "must not be set when session affinity is None",
                    ));
                }
            }
            other => self.push(Cause::not_supported("spec.sessionAffinity", other, &["ClientIP", "None"])),
        }
        if service_type != "ExternalName" {
            self.cluster_ips(spec, cluster_ip, &cluster_ips, headless);
        }
        for (ip_path, ip) in self.strings(spec, p, "externalIPs") {
            if !valid_ip(ip) {
                self.push(Cause::invalid(ip_path, ip, INVALID_IP));
            }
        }
        match service_type {
            "" => self.push(Cause::required("spec.type")),
            "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
            other => self.push(Cause::not_supported(
                "spec.type",
                other,
                &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
            )),
        }
        for (rp, range) in self.strings(spec, p, "loadBalancerSourceRanges") {
            if service_type != "LoadBalancer" {
                self.push(Cause::forbidden(
                    "spec.LoadBalancerSourceRanges",
                    "may only be used when `type` is 'LoadBalancer'",
                ));
                break;
            }
            if !valid_cidr(range.trim()) {
                self.push(Cause::invalid(rp, range.trim(), INVALID_CIDR));
            }
        }
        let allocate = self.bool(spec, p, "allocateLoadBalancerNodePorts");
        if allocate.is_some() && service_type != "LoadBalancer" {
            self.push(Cause::forbidden(
                "spec.allocateLoadBalancerNodePorts",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        if service_type == "LoadBalancer" && allocate.is_none() {
            self.push(Cause::required("allocateLoadBalancerNodePorts"));
        }
        let external = matches!(service_type, "NodePort" | "LoadBalancer")
            || (service_type == "ClusterIP" && spec["externalIPs"].as_array().is_some_and(|a| !a.is_empty()));
        let etp = self.string(spec, p, "externalTrafficPolicy");
        if !external {
            if !etp.is_empty() {
                self.push(Cause::invalid(
                    "spec.externalTrafficPolicy",
                    etp,
                    "may only be set for externally-accessible services",
                ));
            }
        } else {
            self.one_of(spec, p, "externalTrafficPolicy", &["Cluster", "Local"]);
        }
        match self.str(spec, p, "internalTrafficPolicy") {
            None => {
                if matches!(service_type, "ClusterIP" | "NodePort" | "LoadBalancer") {
                    self.push(Cause::required("spec.internalTrafficPolicy"));
                }
            }
            Some("Cluster" | "Local") => {}
            Some(other) => self.push(Cause::not_supported("spec.internalTrafficPolicy", other, &["Cluster", "Local"])),
        }
        if let Some(old) = old {
            self.service_update(spec, &old["spec"]);
        }
    }

    fn cluster_ips(&mut self, spec: &Value, cluster_ip: &str, cluster_ips: &[&str], headless: bool) {
        if !cluster_ip.is_empty() {
            if cluster_ips.is_empty() {
                self.push(Cause::required("spec.clusterIPs"));
            } else if cluster_ips[0] != cluster_ip {
                self.push(invalid_raw(
                    "spec.clusterIPs",
                    go_strings(cluster_ips),
                    "first value must match `clusterIP`",
                ));
            }
        } else if !cluster_ips.is_empty() {
            self.push(invalid_raw(
                "spec.clusterIPs",
                go_strings(cluster_ips),
                "must be empty when `clusterIP` is not specified",
            ));
        }
        let mut families = HashSet::new();
        for (fp, family) in self.strings(spec, "spec", "ipFamilies") {
            if !matches!(family, "IPv4" | "IPv6") {
                self.push(Cause::not_supported(&fp, family, &["IPv4", "IPv6"]));
            }
            if !families.insert(family) {
                self.push(Cause::duplicate(&fp, family));
            }
        }
        self.opt_one_of(spec, "spec", "ipFamilyPolicy", &["PreferDualStack", "RequireDualStack", "SingleStack"]);
        let mut bad = false;
        for (i, ip) in cluster_ips.iter().enumerate() {
            if i == 0 && *ip == "None" {
                if cluster_ips.len() > 1 {
                    bad = true;
                    self.push(invalid_raw(
                        "spec.clusterIPs",
                        go_strings(cluster_ips),
                        "'None' must be the first and only value",
                    ));
                }
                continue;
            }
            if !valid_ip(ip) {
                bad = true;
                self.push(Cause::invalid(format!("spec.clusterIPs[{i}]"), *ip, INVALID_IP));
            }
        }
        if cluster_ips.len() > 2 {
            self.push(invalid_raw("spec.clusterIPs", go_strings(cluster_ips), "may only hold up to 2 values"));
        }
        if bad || headless {
            return;
        }
        if cluster_ips.len() == 2 && cluster_ips[0].contains(':') == cluster_ips[1].contains(':') {
            self.push(invalid_raw(
                "spec.clusterIPs",
                go_strings(cluster_ips),
                "may specify no more than one IP for each IP family",
            ));
        }
        let families: Vec<&str> =
            spec["ipFamilies"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for (i, (ip, family)) in cluster_ips.iter().zip(&families).enumerate() {
            let v6 = ip.contains(':');
            if (*family == "IPv4" && v6) || (*family == "IPv6" && !v6) {
                let want = if v6 { "IPv4" } else { "IPv6" };
                self.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    *ip,
                    format!("expected an {want} value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }

    fn service_update(&mut self, new: &Value, old: &Value) {
        let is_external = |s: &Value| s["type"].as_str() == Some("ExternalName");
        let ips = |s: &Value| -> Vec<String> {
            s["clusterIPs"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
        };
        let (new_ips, old_ips) = (ips(new), ips(old));
        let headless = |ips: &[String]| ips.len() == 1 && ips[0] == "None";
        // The server keeps allocated addresses when a client leaves them out.
        if is_external(new) || is_external(old) || new_ips.is_empty() || (headless(&new_ips) && headless(&old_ips)) {
            return;
        }
        let strs: Vec<&str> = new_ips.iter().map(String::as_str).collect();
        if old_ips.first().is_some_and(|o| *o != new_ips[0]) {
            self.push(invalid_raw("spec.clusterIPs[0]", go_strings(&strs), "may not change once set"));
        } else if old_ips.len() == new_ips.len() && old_ips.len() > 1 && old_ips[1] != new_ips[1] {
            self.push(invalid_raw("spec.clusterIPs[1]", go_strings(&strs), "may not change once set"));
        }
    }

    fn config_map(&mut self, obj: &Value, old: Option<&Value>) {
        let data = self.str_map(obj, "", "data").unwrap_or_default();
        let binary = self.str_map(obj, "", "binaryData").unwrap_or_default();
        let mut size = 0;
        for (key, value) in &data {
            let path = keyed("data", key);
            self.name_like(&path, key, config_map_key(key));
            if binary.iter().any(|(b, _)| b == key) {
                self.push(Cause::invalid(&path, *key, "duplicate of key present in binaryData"));
            }
            size += value.len();
        }
        for (key, value) in &binary {
            let path = keyed("binaryData", key);
            self.name_like(&path, key, config_map_key(key));
            match decode_base64(value) {
                Ok(bytes) => size += bytes.len(),
                Err(e) => self.push(Cause::invalid(&path, "<binary data>", base64_error(&e))),
            }
        }
        if size > MAX_DATA_SIZE {
            self.push(too_long("", MAX_DATA_SIZE));
        }
        self.immutable_data(obj, old, &["data", "binaryData"]);
    }

    fn immutable_data(&mut self, obj: &Value, old: Option<&Value>, fields: &[&str]) {
        let Some(old) = old.filter(|o| o["immutable"].as_bool() == Some(true)) else { return };
        if obj["immutable"].as_bool() != Some(true) {
            self.push(Cause::forbidden("immutable", "field is immutable when `immutable` is set"));
        }
        for field in fields {
            if normalized(&obj[*field]) != normalized(&old[*field]) {
                self.push(Cause::forbidden(*field, "field is immutable when `immutable` is set"));
            }
        }
    }

    fn secret(&mut self, obj: &Value, old: Option<&Value>) {
        let data = self.str_map(obj, "", "data").unwrap_or_default();
        let mut size = 0;
        let mut decoded: HashMap<&str, Vec<u8>> = HashMap::new();
        for (key, value) in &data {
            let path = keyed("data", key);
            self.name_like(&path, key, config_map_key(key));
            match decode_base64(value) {
                Ok(bytes) => {
                    size += bytes.len();
                    decoded.insert(key, bytes);
                }
                Err(e) => self.push(Cause::invalid(&path, "<secret contents redacted>", base64_error(&e))),
            }
        }
        for (key, _) in self.str_map(obj, "", "stringData").unwrap_or_default() {
            self.name_like(&keyed("stringData", key), key, config_map_key(key));
        }
        if size > MAX_DATA_SIZE {
            self.push(too_long("data", MAX_DATA_SIZE));
        }
        let has = |k: &str| data.iter().any(|(d, _)| *d == k);
        match self.string(obj, "", "type") {
            "kubernetes.io/service-account-token"
                if obj["metadata"]["annotations"]["kubernetes.io/service-account.name"]
                    .as_str()
                    .unwrap_or("")
                    .is_empty() =>
            {
                self.push(Cause::required("metadata.annotations[kubernetes.io/service-account.name]"));
            }
            t @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
                let key = if t.ends_with("json") { ".dockerconfigjson" } else { ".dockercfg" };
                match decoded.get(key) {
                    None if !has(key) => self.push(Cause::required(keyed("data", key))),
                    None => {}
                    Some(bytes) => {
                        if let Err(e) = serde_json::from_slice::<Map<String, Value>>(bytes) {
                            self.push(Cause::invalid(keyed("data", key), "<secret contents redacted>", e));
                        }
                    }
                }
            }
            "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
                self.push(Cause::required("data[username]"));
                self.push(Cause::required("data[password]"));
            }
            "kubernetes.io/ssh-auth" if decoded.get("ssh-privatekey").is_none_or(Vec::is_empty) => {
                self.push(Cause::required("data[ssh-privatekey]"));
            }
            "kubernetes.io/tls" => {
                for key in ["tls.crt", "tls.key"] {
                    if !has(key) {
                        self.push(Cause::required(keyed("data", key)));
                    }
                }
            }
            _ => {}
        }
        if let Some(old) = old {
            let new_type = obj["type"].as_str().unwrap_or("");
            if new_type != old["type"].as_str().unwrap_or("") {
                self.push(Cause::invalid("type", new_type, IMMUTABLE));
            }
        }
        self.immutable_data(obj, old, &["data"]);
    }

    fn namespace(&mut self, obj: &Value) {
        let spec = self.section(obj, "", "spec");
        for (_, f) in self.strings(spec, "spec", "finalizers") {
            self.name_like("spec.finalizers", f, qualified_name(f));
            if !f.contains('/') && !matches!(f, "kubernetes" | "orphan" | "foregroundDeletion") {
                self.push(Cause::invalid(
                    "spec.finalizers",
                    f,
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
    }

    fn node(&mut self, obj: &Value, old: Option<&Value>) {
        let spec = self.section(obj, "", "spec");
        let mut taints: HashSet<(String, String)> = HashSet::new();
        // Kubernetes reports taints under metadata.taints.
        for (i, t) in self.items(spec, "spec", "taints").into_iter().map(|(_, t)| t).enumerate() {
            let tp = format!("metadata.taints[{i}]");
            let key = t["key"].as_str().unwrap_or("");
            let value = t["value"].as_str().unwrap_or("");
            let effect = t["effect"].as_str().unwrap_or("");
            self.name_like(&child(&tp, "key"), key, qualified_name(key));
            let errs = label_value(value);
            if !errs.is_empty() {
                self.push(Cause::invalid(child(&tp, "value"), value, errs.join(";")));
            }
            match effect {
                "" => self.push(Cause::required(child(&tp, "effect"))),
                "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
                other => self.push(Cause::not_supported(
                    child(&tp, "effect"),
                    other,
                    &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                )),
            }
            if !taints.insert((key.to_string(), effect.to_string())) {
                let mut c = duplicate_raw(
                    &tp,
                    format!("core.Taint{{Key:{}, Value:{}, Effect:{}}}", quote(key), quote(value), quote(effect)),
                );
                c.message.push_str(": taints must be unique by key and effect pair");
                self.push(c);
            }
        }
        let cidrs = self.strings(spec, "spec", "podCIDRs");
        for (cp, cidr) in &cidrs {
            if !valid_cidr(cidr) {
                self.push(Cause::invalid(cp, *cidr, INVALID_CIDR));
            }
        }
        let status = self.section(obj, "", "status");
        for field in ["capacity", "allocatable"] {
            self.quantities(status, "status", field);
        }
        if let Some(old) = old {
            let old_cidrs: Vec<&str> =
                old["spec"]["podCIDRs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let new_cidrs: Vec<&str> = cidrs.iter().map(|(_, c)| *c).collect();
            if !old_cidrs.is_empty() && old_cidrs != new_cidrs {
                self.push(Cause::forbidden(
                    "spec.podCIDRs",
                    "node updates may not change podCIDR except from \"\" to valid",
                ));
            }
            let old_provider = old["spec"]["providerID"].as_str().unwrap_or("");
            if !old_provider.is_empty() && Some(old_provider) != spec["providerID"].as_str() {
                self.push(Cause::forbidden(
                    "spec.providerID",
                    "node updates may not change providerID except from \"\" to valid",
                ));
            }
        }
    }

    fn endpoints(&mut self, obj: &Value) {
        for (sp, subset) in self.items(obj, "", "subsets") {
            let addresses = self.items(subset, &sp, "addresses");
            let not_ready = self.items(subset, &sp, "notReadyAddresses");
            if addresses.is_empty() && not_ready.is_empty() {
                self.push(required_msg(&sp, "must specify `addresses` or `notReadyAddresses`"));
            }
            for (ap, a) in addresses.iter().chain(&not_ready) {
                let ip = self.string(a, ap, "ip");
                self.endpoint_ip(&child(ap, "ip"), ip);
                let host = self.string(a, ap, "hostname");
                if !host.is_empty() {
                    self.name_like(&child(ap, "hostname"), host, dns1123_label(host));
                }
                if let Some(node) = self.str(a, ap, "nodeName") {
                    self.name_like(&child(ap, "nodeName"), node, dns1123_subdomain(node));
                }
            }
            let ports = self.items(subset, &sp, "ports");
            for (pp, port) in &ports {
                let name = self.string(port, pp, "name");
                if ports.len() > 1 && name.is_empty() {
                    self.push(Cause::required(child(pp, "name")));
                } else if !name.is_empty() {
                    self.name_like(&child(pp, "name"), name, dns1123_label(name));
                }
                let number = self.int32(port, pp, "port").unwrap_or(0);
                self.port_num(&child(pp, "port"), number);
                self.one_of(port, pp, "protocol", PROTOCOLS);
            }
        }
    }

    /// An endpoint address: a valid IP that is not unspecified, loopback or link-local.
    fn endpoint_ip(&mut self, path: &str, ip: &str) {
        let Ok(addr) = ip.parse::<IpAddr>() else {
            self.push(Cause::invalid(path, ip, INVALID_IP));
            return;
        };
        if addr.is_unspecified() {
            self.push(Cause::invalid(path, ip, format!("may not be unspecified ({ip})")));
        }
        if addr.is_loopback() {
            self.push(Cause::invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)"));
        }
        let link_local = match addr {
            IpAddr::V4(a) => a.is_link_local(),
            IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
        };
        if link_local {
            self.push(Cause::invalid(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"));
        }
    }

    fn core_event(&mut self, obj: &Value) {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
        let involved = self.section(obj, "", "involvedObject");
        let involved_ns = self.string(involved, "involvedObject", "namespace");
        let event_time = self.string(obj, "", "eventTime");
        if event_time.is_empty() {
            if (involved_ns.is_empty() && !ns.is_empty() && ns != "default")
                || (!involved_ns.is_empty() && ns != involved_ns)
            {
                self.push(Cause::invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"));
            }
        } else {
            if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
                self.push(Cause::invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"));
            }
            self.event_reporting(obj, "reportingComponent", "reportingComponent", "message");
        }
    }

    /// The fields a new-style event must carry (`controller` and `note` name them per API).
    fn event_reporting(&mut self, obj: &Value, controller: &str, controller_path: &str, note: &str) {
        let reporter = self.string(obj, "", controller);
        if reporter.is_empty() {
            self.push(Cause::required(controller_path));
        }
        self.name_like(controller_path, reporter, qualified_name(reporter));
        for (field, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
            let value = self.string(obj, "", field);
            if value.is_empty() {
                self.push(Cause::required(field));
            } else if value.len() > limit {
                self.push(Cause::invalid(field, "", format!("can have at most {limit} characters")));
            }
        }
        if self.string(obj, "", note).len() > 1024 {
            self.push(Cause::invalid(note, "", "can have at most 1024 characters"));
        }
    }

    fn events_event(&mut self, obj: &Value, create: bool) {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
        let regarding_ns = obj["regarding"]["namespace"].as_str().unwrap_or("");
        if regarding_ns.is_empty()
            && ns != "default"
            && ns != "kube-system"
            && !self.string(obj, "", "eventTime").is_empty()
        {
            self.push(Cause::invalid("involvedObject.namespace", regarding_ns, "does not match event.namespace"));
        }
        self.event_reporting(obj, "reportingController", "reportingController", "note");
        if !create {
            return;
        }
        if self.string(obj, "", "eventTime").is_empty() {
            self.push(Cause::required("eventTime"));
        }
        let event_type = self.string(obj, "", "type");
        if !matches!(event_type, "Normal" | "Warning") {
            self.push(Cause::invalid("type", "", format!("has invalid value: {event_type}")));
        }
        for (field, path) in
            [("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp")]
        {
            if obj.get(field).is_some_and(|v| !v.is_null()) {
                self.push(Cause::invalid(path, "", "needs to be unset"));
            }
        }
        if obj["deprecatedCount"].as_i64().is_some_and(|c| c != 0) {
            self.push(Cause::invalid("count", "", "needs to be unset"));
        }
        if obj["deprecatedSource"]
            .as_object()
            .is_some_and(|s| s.values().any(|v| v.as_str().is_some_and(|s| !s.is_empty())))
        {
            self.push(Cause::invalid("source", "", "needs to be unset"));
        }
    }

    fn lease(&mut self, obj: &Value) {
        let spec = self.section(obj, "", "spec");
        if let Some(d) = self.int32(spec, "spec", "leaseDurationSeconds")
            && d <= 0
        {
            self.push(invalid_raw("spec.leaseDurationSeconds", d, "must be greater than 0"));
        }
        self.nonneg32(spec, "spec", "leaseTransitions");
        self.opt_one_of(spec, "spec", "strategy", &["OldestEmulationVersion"]);
    }

    fn endpoint_slice(&mut self, obj: &Value) {
        let address_type = self.one_of(obj, "", "addressType", &["FQDN", "IPv4", "IPv6"]);
        for (ep, endpoint) in self.items(obj, "", "endpoints") {
            let addresses = self.strings(endpoint, &ep, "addresses");
            let ap = child(&ep, "addresses");
            if addresses.is_empty() {
                self.push(required_msg(&ap, "must contain at least 1 address"));
            } else if addresses.len() > 100 {
                self.push(Cause {
                    reason: "FieldValueTooMany".into(),
                    message: format!("Too many: {}: must have at most 100 items", addresses.len()),
                    field: ap.clone(),
                });
            }
            for (path, addr) in addresses {
                match address_type.as_deref() {
                    Some("IPv4") if addr.parse::<std::net::Ipv4Addr>().is_err() => {
                        self.push(Cause::invalid(&path, addr, "must be a valid IPv4 address"))
                    }
                    Some("IPv6") if addr.parse::<std::net::Ipv6Addr>().is_err() => {
                        self.push(Cause::invalid(&path, addr, "must be a valid IPv6 address"))
                    }
                    Some("FQDN") => self.name_like(&path, addr, dns1123_subdomain(addr)),
                    _ => {}
                }
            }
            if let Some(node) = self.str(endpoint, &ep, "nodeName") {
                self.name_like(&child(&ep, "nodeName"), node, dns1123_subdomain(node));
            }
            if let Some(host) = self.str(endpoint, &ep, "hostname") {
                self.name_like(&child(&ep, "hostname"), host, dns1123_label(host));
            }
        }
        let mut names = HashSet::new();
        for (pp, port) in self.items(obj, "", "ports") {
            let name = self.string(port, &pp, "name");
            if !name.is_empty() {
                self.name_like(&child(&pp, "name"), name, dns1123_label(name));
            }
            if !names.insert(name) {
                self.push(Cause::duplicate(child(&pp, "name"), name));
            }
            if let Some(n) = self.int32(port, &pp, "port") {
                self.port_num(&child(&pp, "port"), n);
            }
            self.one_of(port, &pp, "protocol", PROTOCOLS);
        }
    }

    fn runtime_class(&mut self, obj: &Value, old: Option<&Value>) {
        // An empty handler fails the label format rather than being "required", as in Kubernetes.
        let handler = self.string(obj, "", "handler");
        self.name_like("handler", handler, dns1123_label(handler));
        if let Some(old) = old
            && old["handler"].as_str().unwrap_or("") != handler
        {
            self.push(Cause::invalid("handler", handler, IMMUTABLE));
        }
        let overhead = self.section(obj, "", "overhead");
        for (name, q, raw) in self.quantities(overhead, "overhead", "podFixed") {
            let path = keyed("overhead.podFixed", name);
            self.container_resource_name(name, &path);
            if !is_native_resource(name) && !q.is_integer() {
                self.push(Cause::invalid(&path, &raw, "must be an integer"));
            }
        }
        let scheduling = self.section(obj, "", "scheduling");
        self.labels(scheduling, "scheduling", "nodeSelector");
        self.tolerations(scheduling, "scheduling", "tolerations");
    }

    fn function(&mut self, obj: &Value) {
        let spec = self.section(obj, "", "spec");
        let p = "spec";
        match self.str(spec, p, "image") {
            None | Some("") => self.push(Cause::required("spec.image")),
            Some(image) if image.trim() != image => {
                self.push(Cause::invalid("spec.image", image, "must not have leading or trailing whitespace"))
            }
            Some(_) => {}
        }
        if let Some(port) = self.int32(spec, p, "port") {
            self.port_num("spec.port", port);
        }
        let route = self.section(spec, p, "route");
        if let Some(path) = self.str(route, "spec.route", "path")
            && !path.starts_with('/')
        {
            self.push(Cause::invalid("spec.route.path", path, "must be an absolute path starting with '/'"));
        }
        if let Some(host) = self.str(route, "spec.route", "host")
            && !host.is_empty()
        {
            let bare = host.split_once(':').map_or(host, |(h, _)| h);
            self.name_like("spec.route.host", host, dns1123_subdomain(bare));
        }
        let scale = self.section(spec, p, "scale");
        let sp = "spec.scale";
        let min = self.int32(scale, sp, "minReplicas");
        if let Some(n) = min
            && n < 0
        {
            self.push(invalid_raw("spec.scale.minReplicas", n, NEGATIVE));
        }
        if let Some(max) = self.int32(scale, sp, "maxReplicas") {
            let floor = min.unwrap_or(0).max(1);
            if max < floor {
                let detail = if min.is_some_and(|m| m > 1) {
                    "must be greater than or equal to minReplicas"
                } else {
                    "must be greater than or equal to 1"
                };
                self.push(invalid_raw("spec.scale.maxReplicas", max, detail));
            }
        }
        if let Some(t) = self.int32(scale, sp, "targetConcurrency")
            && t < 1
        {
            self.push(invalid_raw("spec.scale.targetConcurrency", t, "must be greater than or equal to 1"));
        }
        if let Some(idle) = self.str(scale, sp, "idleTimeout") {
            match parse_duration(idle) {
                Ok(secs) if secs < 0.0 => self.push(Cause::invalid("spec.scale.idleTimeout", idle, NEGATIVE)),
                Ok(_) => {}
                Err(e) => self.push(Cause::invalid("spec.scale.idleTimeout", idle, e)),
            }
        }
        if let Some(class) = self.str(spec, p, "runtimeClassName")
            && !matches!(class, "wasmtime" | "youki")
        {
            self.push(Cause::not_supported("spec.runtimeClassName", class, &["wasmtime", "youki"]));
        }
        // A Function's env and resources have a container's shape and rules.
        self.env(spec, p);
        self.resources(spec, p);
    }
}

/// Go's `%#v` of a `[]string`.
fn go_strings(items: &[&str]) -> String {
    format!("[]string{{{}}}", items.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", "))
}

/// Decodes base64 as Go's `StdEncoding` does for `[]byte` fields: padded, newlines skipped,
/// non-zero trailing bits tolerated.
fn decode_base64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    if s.contains(['\r', '\n']) { ENGINE.decode(s.replace(['\r', '\n'], "")) } else { ENGINE.decode(s) }
}

/// Go's encoding/base64 error text for the same failure.
fn base64_error(e: &base64::DecodeError) -> String {
    let offset = match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => *at,
        base64::DecodeError::InvalidLength(len) => *len,
        base64::DecodeError::InvalidPadding => 0,
    };
    format!("illegal base64 data at input byte {offset}")
}

#[cfg(test)]
mod milli_tests {
    use super::Quantity;

    #[test]
    fn milli_values() {
        let m = |s: &str| Quantity::parse(s).unwrap().milli_value();
        assert_eq!(m("500m"), 500);
        assert_eq!(m("2"), 2000);
        assert_eq!(m("1Ki"), 1_024_000);
        assert_eq!(m("1.5"), 1500);
        assert_eq!(m("1m"), 1);
        assert_eq!(m("128Mi"), 128 * 1024 * 1024 * 1000);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::defaults;
    use crate::registry::kinds::lookup;

    fn resource(group: &str, plural: &str) -> &'static ResourceInfo {
        lookup(group, "v1", plural).unwrap_or_else(|| panic!("no resource {group}/{plural}"))
    }

    /// Defaults then validates a new object, as the API server does.
    fn create(group: &str, plural: &str, mut obj: Value) -> Vec<Cause> {
        let r = resource(group, plural);
        defaults::apply(r, &mut obj);
        validate(r, &obj, None)
    }

    /// Defaults then validates an update of `old` (taken as stored, so defaulted too) to `new`.
    fn update(group: &str, plural: &str, mut old: Value, mut new: Value) -> Vec<Cause> {
        let r = resource(group, plural);
        defaults::apply(r, &mut old);
        defaults::apply(r, &mut new);
        validate(r, &new, Some(&old))
    }

    #[track_caller]
    fn assert_valid(causes: &[Cause]) {
        assert!(causes.is_empty(), "expected no causes, got {causes:#?}");
    }

    /// The cause at `field` with `reason`; fails listing all causes if there is none.
    #[track_caller]
    fn cause(causes: &[Cause], field: &str, reason: &str) -> Cause {
        causes
            .iter()
            .find(|c| c.field == field && c.reason == reason)
            .cloned()
            .unwrap_or_else(|| panic!("no {reason} at {field} in {causes:#?}"))
    }

    /// Exactly one cause, at `field` with `reason`.
    #[track_caller]
    fn only(causes: &[Cause], field: &str, reason: &str) -> Cause {
        assert_eq!(causes.len(), 1, "expected exactly one cause, got {causes:#?}");
        cause(causes, field, reason)
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "containers": [{
                    "name": "nginx", "image": "nginx:1.27",
                    "ports": [{"name": "http", "containerPort": 80}],
                    "env": [{"name": "MODE", "value": "prod"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "livenessProbe": {"httpGet": {"port": "http"}}
                }],
                "volumes": [{"name": "data", "emptyDir": {}}]
            }
        })
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
                }
            }
        })
    }

    fn service() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
        })
    }

    fn job() -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}
        })
    }

    fn cron_job() -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "OnFailure", "containers": [{"name": "hello", "image": "busybox"}]
                }}}}
            }
        })
    }

    fn function() -> Value {
        json!({
            "apiVersion": "wharf.dev/v1", "kind": "Function",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"image": "registry.local/hello:1", "port": 8080}
        })
    }

    // -- metadata ------------------------------------------------------------------------------

    #[test]
    fn valid_pod_passes() {
        assert_valid(&create("", "pods", pod()));
    }

    #[test]
    fn name_is_required() {
        let mut p = pod();
        p["metadata"].as_object_mut().unwrap().remove("name");
        let c = only(&create("", "pods", p), "metadata.name", "FieldValueRequired");
        assert_eq!(c.message, "Required value: name or generateName is required");
    }

    #[test]
    fn names_follow_the_kind_rule() {
        let mut p = pod();
        p["metadata"]["name"] = "Web_1".into();
        let c = only(&create("", "pods", p), "metadata.name", "FieldValueInvalid");
        assert!(c.message.starts_with("Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain"), "{}", c.message);

        let mut s = service();
        s["metadata"]["name"] = "1web".into();
        let c = only(&create("", "services", s), "metadata.name", "FieldValueInvalid");
        assert!(c.message.contains("a DNS-1035 label"), "{}", c.message);

        let ns = json!({"metadata": {"name": "a.b"}});
        let c = only(&create("", "namespaces", ns), "metadata.name", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: \"a.b\": must not contain dots");

        let mut long = pod();
        long["metadata"]["name"] = "a".repeat(254).into();
        let c = only(&create("", "pods", long), "metadata.name", "FieldValueInvalid");
        assert!(c.message.ends_with("must be no more than 253 characters"));
    }

    #[test]
    fn generate_name_may_end_in_a_dash() {
        let mut p = pod();
        p["metadata"]["generateName"] = "web-".into();
        assert_valid(&create("", "pods", p));
    }

    #[test]
    fn namespaced_objects_need_a_namespace() {
        let mut p = pod();
        p["metadata"].as_object_mut().unwrap().remove("namespace");
        only(&create("", "pods", p), "metadata.namespace", "FieldValueRequired");
        let ns = json!({"metadata": {"name": "x", "namespace": "default"}});
        only(&create("", "namespaces", ns), "metadata.namespace", "FieldValueForbidden");
    }

    #[test]
    fn labels_and_annotations_are_checked() {
        let mut p = pod();
        p["metadata"]["labels"] = json!({"bad key!": "ok", "ok": "-bad-"});
        let causes = create("", "pods", p);
        assert_eq!(causes.len(), 2, "{causes:#?}");
        assert!(causes.iter().all(|c| c.field == "metadata.labels" && c.reason == "FieldValueInvalid"));
        assert!(causes[0].message.contains("name part must consist of alphanumeric characters"));
        assert!(causes[1].message.contains("a valid label must be an empty string"));

        let mut p = pod();
        p["metadata"]["labels"] = json!({"app": "x".repeat(64)});
        let c = only(&create("", "pods", p), "metadata.labels", "FieldValueInvalid");
        assert!(c.message.ends_with("must be no more than 63 characters"));

        let mut p = pod();
        p["metadata"]["annotations"] = json!({"example.com/Big": "x".repeat(300 * 1024)});
        let c = only(&create("", "pods", p), "metadata.annotations", "FieldValueTooLong");
        assert_eq!(c.message, "Too long: must have at most 262144 bytes");

        let mut p = pod();
        p["metadata"]["annotations"] = json!({"a/b/c": "x"});
        only(&create("", "pods", p), "metadata.annotations", "FieldValueInvalid");
    }

    #[test]
    fn metadata_identity_is_immutable() {
        let mut old = pod();
        old["metadata"]["uid"] = "u1".into();
        old["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z".into();
        let mut renamed = old.clone();
        renamed["metadata"]["name"] = "other".into();
        let c = only(&update("", "pods", old.clone(), renamed), "metadata.name", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: \"other\": field is immutable");

        let mut moved = old.clone();
        moved["metadata"]["namespace"] = "prod".into();
        only(&update("", "pods", old.clone(), moved), "metadata.namespace", "FieldValueInvalid");

        let mut reuid = old.clone();
        reuid["metadata"]["uid"] = "u2".into();
        only(&update("", "pods", old.clone(), reuid), "metadata.uid", "FieldValueInvalid");

        let mut redated = old.clone();
        redated["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z".into();
        only(&update("", "pods", old.clone(), redated), "metadata.creationTimestamp", "FieldValueInvalid");

        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"]["tier"] = "front".into();
        assert_valid(&update("", "pods", old, relabelled));
    }

    #[test]
    fn finalizers_are_checked() {
        let mut p = pod();
        p["metadata"]["finalizers"] = json!(["example.com/cleanup", "cleanup"]);
        let c = only(&create("", "pods", p), "metadata.finalizers[1]", "FieldValueInvalid");
        assert!(c.message.ends_with("name is neither a standard finalizer name nor is it fully qualified"));

        let mut old = pod();
        old["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z".into();
        let mut new = old.clone();
        new["metadata"]["finalizers"] = json!(["example.com/late"]);
        let c = only(&update("", "pods", old, new), "metadata.finalizers", "FieldValueForbidden");
        assert!(c.message.contains("found new finalizers []string{\"example.com/late\"}"));
    }

    #[test]
    fn wrong_types_become_causes() {
        let mut d = deployment();
        d["spec"]["replicas"] = "3".into();
        let c = only(&create("apps", "deployments", d), "spec.replicas", "FieldValueTypeInvalid");
        assert_eq!(c.message, "Invalid value: \"string\": spec.replicas in body must be of type integer: \"3\"");

        let mut p = pod();
        p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!({"n": 1});
        let causes = create("", "pods", p);
        cause(&causes, "spec.containers[0].ports[0].containerPort", "FieldValueTypeInvalid");

        let mut p = pod();
        p["spec"]["containers"] = json!("nginx");
        let causes = create("", "pods", p);
        cause(&causes, "spec.containers", "FieldValueTypeInvalid");
        cause(&causes, "spec.containers", "FieldValueRequired");

        let mut p = pod();
        p["metadata"]["labels"] = json!({"app": 1});
        only(&create("", "pods", p), "metadata.labels[app]", "FieldValueTypeInvalid");

        let mut d = deployment();
        d["spec"]["replicas"] = json!(3_000_000_000i64);
        only(&create("apps", "deployments", d), "spec.replicas", "FieldValueTypeInvalid");

        let causes = validate(resource("", "pods"), &json!([1]), None);
        cause(&causes, "", "FieldValueTypeInvalid");
    }

    // -- pod spec ------------------------------------------------------------------------------

    #[test]
    fn containers_are_required() {
        let mut p = pod();
        p["spec"]["containers"] = json!([]);
        let causes = create("", "pods", p);
        cause(&causes, "spec.containers", "FieldValueRequired");
    }

    #[test]
    fn container_names_are_labels_and_unique() {
        let mut p = pod();
        p["spec"]["containers"][0]["name"] = "Nginx".into();
        only(&create("", "pods", p), "spec.containers[0].name", "FieldValueInvalid");

        let mut p = pod();
        p["spec"]["containers"][0].as_object_mut().unwrap().remove("name");
        cause(&create("", "pods", p), "spec.containers[0].name", "FieldValueRequired");

        let mut p = pod();
        let second = json!({"name": "nginx", "image": "busybox"});
        p["spec"]["containers"].as_array_mut().unwrap().push(second.clone());
        let c = only(&create("", "pods", p), "spec.containers[1].name", "FieldValueDuplicate");
        assert_eq!(c.message, "Duplicate value: \"nginx\"");

        let mut p = pod();
        p["spec"]["initContainers"] = json!([second]);
        only(&create("", "pods", p), "spec.initContainers[0].name", "FieldValueDuplicate");
    }

    #[test]
    fn image_is_required() {
        let mut p = pod();
        p["spec"]["containers"][0].as_object_mut().unwrap().remove("image");
        only(&create("", "pods", p), "spec.containers[0].image", "FieldValueRequired");
        let mut p = pod();
        p["spec"]["containers"][0]["image"] = " nginx".into();
        only(&create("", "pods", p), "spec.containers[0].image", "FieldValueInvalid");
    }

    #[test]
    fn container_ports_are_checked() {
        let mut p = pod();
        p["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000.into();
        let c = only(&create("", "pods", p), "spec.containers[0].ports[0].containerPort", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: 70000: must be between 1 and 65535, inclusive");

        let mut p = pod();
        p["spec"]["containers"][0]["ports"][0].as_object_mut().unwrap().remove("containerPort");
        only(&create("", "pods", p), "spec.containers[0].ports[0].containerPort", "FieldValueRequired");

        let mut p = pod();
        p["spec"]["containers"][0]["ports"] =
            json!([{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]);
        only(&create("", "pods", p), "spec.containers[0].ports[1].name", "FieldValueDuplicate");

        let mut p = pod();
        p["spec"]["containers"][0]["ports"][0]["name"] = "a-very-long-port-name".into();
        let c = only(&create("", "pods", p), "spec.containers[0].ports[0].name", "FieldValueInvalid");
        assert!(c.message.ends_with("must be no more than 15 characters"));

        let mut p = pod();
        p["spec"]["containers"][0]["ports"][0]["protocol"] = "HTTP".into();
        let c = only(&create("", "pods", p), "spec.containers[0].ports[0].protocol", "FieldValueNotSupported");
        assert_eq!(c.message, "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"");

        let mut p = pod();
        p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
        p["spec"]["containers"].as_array_mut().unwrap().push(json!({
            "name": "other", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080}]
        }));
        only(&create("", "pods", p), "spec.containers[1].ports[0].hostPort", "FieldValueDuplicate");
    }

    #[test]
    fn env_names_are_printable_without_equals() {
        let mut p = pod();
        p["spec"]["containers"][0]["env"] = json!([{"name": "my.var-1"}, {"name": "A=B"}, {"value": "x"}]);
        let causes = create("", "pods", p);
        assert_eq!(causes.len(), 2, "{causes:#?}");
        let c = cause(&causes, "spec.containers[0].env[1].name", "FieldValueInvalid");
        assert!(c.message.ends_with("consist only of printable ASCII characters other than '='"));
        cause(&causes, "spec.containers[0].env[2].name", "FieldValueRequired");

        let mut p = pod();
        p["spec"]["containers"][0]["env"] = json!([{"name": "A", "valueFrom": {}}]);
        only(&create("", "pods", p), "spec.containers[0].env[0].valueFrom", "FieldValueInvalid");

        let mut p = pod();
        p["spec"]["containers"][0]["env"] =
            json!([{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]);
        only(
            &create("", "pods", p),
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
            "FieldValueNotSupported",
        );
    }

    #[test]
    fn resource_quantities_are_parsed_and_ordered() {
        let mut p = pod();
        p["spec"]["containers"][0]["resources"]["limits"]["memory"] = "12 8Mi".into();
        let c = only(&create("", "pods", p), "spec.containers[0].resources.limits[memory]", "FieldValueInvalid");
        assert_eq!(
            c.message,
            "Invalid value: \"12 8Mi\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );

        let mut p = pod();
        p["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1".into();
        let c = only(&create("", "pods", p), "spec.containers[0].resources.requests", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: \"1\": must be less than or equal to cpu limit of 500m");

        let mut p = pod();
        p["spec"]["containers"][0]["resources"]["requests"]["memory"] = "-1".into();
        only(&create("", "pods", p), "spec.containers[0].resources.requests[memory]", "FieldValueInvalid");

        let mut p = pod();
        p["spec"]["containers"][0]["resources"]["limits"]["gpus"] = "1".into();
        // Pods copy limits into missing requests, so both report the name.
        let causes = create("", "pods", p);
        assert_eq!(causes.len(), 4, "{causes:#?}");
        let c = cause(&causes, "spec.containers[0].resources.limits[gpus]", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: \"gpus\": must be a standard resource type or fully qualified");
        cause(&causes, "spec.containers[0].resources.requests[gpus]", "FieldValueInvalid");

        let mut p = pod();
        p["spec"]["containers"][0]["resources"] =
            json!({"limits": {"example.com/gpu": 2}, "requests": {"example.com/gpu": 1}});
        let c = only(&create("", "pods", p), "spec.containers[0].resources.requests", "FieldValueInvalid");
        assert!(c.message.ends_with("must be equal to example.com/gpu limit of 2"));

        let mut p = pod();
        p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": 0.5, "memory": "1e3"}});
        assert_valid(&create("", "pods", p));
    }

    #[test]
    fn quantity_parser() {
        let q = |s: &str| Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(q("100m"), q("0.1"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1G"), q("1e9"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(q("0"), q("-0"));
        assert_eq!(q("1E"), q("1e18"));
        assert!(q("128Mi") > q("100M"));
        assert!(q("1") > q("999m"));
        assert!(q("-1") < q("1n"));
        assert!(q("1.") == q("1"));
        assert!(q("+5k") > q("4999"));
        assert!(q("10Mi").is_integer() && !q("100m").is_integer());
        for bad in ["", "abc", "1.2.3", "1 Mi", "1Mb"] {
            assert_eq!(Quantity::parse(bad).unwrap_err(), QUANTITY_FORMAT, "{bad}");
        }
        assert_eq!(Quantity::parse("1kk").unwrap_err(), "unable to parse quantity's suffix");
        assert_eq!(Quantity::parse("1e").unwrap_err(), "unable to parse quantity's suffix");
        for (written, canonical) in [
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("100m", "100m"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("512Ki", "512Ki"),
            ("0.5Ki", "512"),
            ("1025Ki", "1025Ki"),
            ("128974848", "128974848"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("12e6", "12e6"),
            ("-2G", "-2G"),
            ("0.0000000001", "1n"),
            ("000", "0"),
        ] {
            assert_eq!(q(written).canonical(), canonical, "{written}");
            assert_eq!(q(&q(written).canonical()).canonical(), canonical, "{written} twice");
        }
        assert_eq!(q("1.0001").round_up(-3).canonical(), "1001m");
        assert_eq!(q("0.9999").round_up(-3).canonical(), "1");
        assert_eq!(q("250m").round_up(-3).canonical(), "250m");
        // Like Kubernetes, a missing number reads as zero.
        assert!(q("Mi").is_zero() && q(".").is_zero());
    }

    #[test]
    fn volumes_and_mounts() {
        let mut p = pod();
        p["spec"]["containers"][0]["volumeMounts"][0]["name"] = "missing".into();
        let c = only(&create("", "pods", p), "spec.containers[0].volumeMounts[0].name", "FieldValueNotFound");
        assert_eq!(c.message, "Not found: \"missing\"");

        let mut p = pod();
        p["spec"]["volumes"].as_array_mut().unwrap().push(json!({"name": "data", "emptyDir": {}}));
        only(&create("", "pods", p), "spec.volumes[1].name", "FieldValueDuplicate");

        let mut p = pod();
        p["spec"]["volumes"][0]["configMap"] = json!({"name": "cfg"});
        let causes = create("", "pods", p);
        assert_eq!(causes.len(), 2, "{causes:#?}");
        cause(&causes, "spec.volumes[0].configMap", "FieldValueForbidden");
        cause(&causes, "spec.containers[0].volumeMounts[0].name", "FieldValueNotFound");

        let mut p = pod();
        p["spec"]["volumes"][0] = json!({"name": "data", "secret": {"defaultMode": 1000}});
        let causes = create("", "pods", p);
        cause(&causes, "spec.volumes[0].secret.secretName", "FieldValueRequired");
        cause(&causes, "spec.volumes[0].secret.defaultMode", "FieldValueInvalid");
        // An invalid volume cannot be mounted either.
        cause(&causes, "spec.containers[0].volumeMounts[0].name", "FieldValueNotFound");

        let mut p = pod();
        let mounts = &mut p["spec"]["containers"][0]["volumeMounts"];
        mounts.as_array_mut().unwrap().push(json!({"name": "data", "mountPath": "/data"}));
        only(&create("", "pods", p), "spec.containers[0].volumeMounts[1].mountPath", "FieldValueInvalid");
    }

    #[test]
    fn pod_level_fields() {
        let mut p = pod();
        p["spec"]["restartPolicy"] = "Sometimes".into();
        let c = only(&create("", "pods", p), "spec.restartPolicy", "FieldValueNotSupported");
        assert_eq!(
            c.message,
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );

        let mut p = pod();
        p["spec"]["terminationGracePeriodSeconds"] = (-5).into();
        let c = only(&create("", "pods", p), "spec.terminationGracePeriodSeconds", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: -5: must be greater than or equal to 0");

        let mut p = pod();
        p["spec"]["dnsPolicy"] = "Google".into();
        only(&create("", "pods", p), "spec.dnsPolicy", "FieldValueNotSupported");

        let mut p = pod();
        p["spec"]["activeDeadlineSeconds"] = 0.into();
        only(&create("", "pods", p), "spec.activeDeadlineSeconds", "FieldValueInvalid");

        let mut p = pod();
        p["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists", "value": "v"}]);
        only(&create("", "pods", p), "spec.tolerations[0].operator", "FieldValueInvalid");

        let mut p = pod();
        p["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]);
        only(&create("", "pods", p), "spec.ephemeralContainers", "FieldValueForbidden");

        let mut p = pod();
        p["spec"]["containers"][0]["restartPolicy"] = "Always".into();
        only(&create("", "pods", p), "spec.containers[0].restartPolicy", "FieldValueForbidden");

        let mut p = pod();
        p["spec"]["initContainers"] =
            json!([{"name": "init", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}}]);
        only(&create("", "pods", p), "spec.initContainers[0].readinessProbe", "FieldValueForbidden");

        let mut p = pod();
        p["spec"]["containers"][0]["livenessProbe"] = json!({});
        only(&create("", "pods", p), "spec.containers[0].livenessProbe", "FieldValueRequired");
    }

    #[test]
    fn pod_updates_may_change_images_only() {
        let old = pod();
        let mut new = pod();
        new["spec"]["containers"][0]["image"] = "nginx:1.28".into();
        new["spec"]["activeDeadlineSeconds"] = 600.into();
        new["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]);
        assert_valid(&update("", "pods", old.clone(), new));

        let mut new = pod();
        new["spec"]["containers"][0]["ports"][0]["containerPort"] = 8080.into();
        let c = only(&update("", "pods", old.clone(), new), "spec", "FieldValueForbidden");
        assert!(
            c.message.starts_with(
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
            ),
            "{}",
            c.message
        );
        assert!(c.message.contains("spec.containers[0].ports[0].containerPort: 80 -> 8080"), "{}", c.message);

        let mut new = pod();
        new["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "b", "image": "b"}));
        only(&update("", "pods", old.clone(), new), "spec.containers", "FieldValueForbidden");

        let mut tolerant = pod();
        tolerant["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
        let mut new = pod();
        new["spec"]["tolerations"] = json!([]);
        only(&update("", "pods", tolerant, new), "spec.tolerations", "FieldValueForbidden");

        let mut new = pod();
        new["spec"]["containers"][0]["image"] = "".into();
        cause(&update("", "pods", old.clone(), new), "spec.containers[0].image", "FieldValueRequired");

        // Labels and a status (from the status subresource) change freely.
        let mut new = pod();
        new["metadata"]["labels"]["v"] = "2".into();
        new["status"] = json!({"phase": "Running"});
        assert_valid(&update("", "pods", old, new));
    }

    // -- apps ----------------------------------------------------------------------------------

    #[test]
    fn valid_deployment_passes() {
        assert_valid(&create("apps", "deployments", deployment()));
    }

    #[test]
    fn deployment_without_containers() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"] = json!([]);
        let c = only(&create("apps", "deployments", d), "spec.template.spec.containers", "FieldValueRequired");
        assert_eq!(c.message, "Required value");
    }

    #[test]
    fn selector_must_match_template_labels() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "api", "tier": "web"});
        let c = only(&create("apps", "deployments", d), "spec.template.metadata.labels", "FieldValueInvalid");
        assert_eq!(
            c.message,
            "Invalid value: map[string]string{\"app\":\"api\", \"tier\":\"web\"}: `selector` does not match template `labels`"
        );

        let mut d = deployment();
        d["spec"]["selector"] =
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]});
        assert_valid(&create("apps", "deployments", d));

        let mut d = deployment();
        d["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "Is"}]});
        let causes = create("apps", "deployments", d);
        cause(&causes, "spec.selector.matchExpressions[0].operator", "FieldValueInvalid");
        cause(&causes, "spec.selector", "FieldValueInvalid");
    }

    #[test]
    fn deployment_selector_rules() {
        let mut d = deployment();
        d["spec"].as_object_mut().unwrap().remove("selector");
        let causes = create("apps", "deployments", d);
        assert_eq!(causes.len(), 2, "{causes:#?}");
        cause(&causes, "spec.selector", "FieldValueRequired");
        cause(&causes, "spec.template.metadata.labels", "FieldValueInvalid");

        let mut d = deployment();
        d["spec"]["selector"] = json!({});
        let c = only(&create("apps", "deployments", d), "spec.selector", "FieldValueInvalid");
        assert_eq!(
            c.message,
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        );

        let old = deployment();
        let mut new = deployment();
        new["spec"]["selector"]["matchLabels"]["tier"] = "web".into();
        new["spec"]["template"]["metadata"]["labels"]["tier"] = "web".into();
        let c = only(&update("apps", "deployments", old.clone(), new), "spec.selector", "FieldValueInvalid");
        assert_eq!(
            c.message,
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );

        let mut scaled = deployment();
        scaled["spec"]["replicas"] = 5.into();
        assert_valid(&update("apps", "deployments", old, scaled));
    }

    #[test]
    fn deployment_spec_fields() {
        let mut d = deployment();
        d["spec"]["replicas"] = (-1).into();
        only(&create("apps", "deployments", d), "spec.replicas", "FieldValueInvalid");

        let mut d = deployment();
        d["spec"]["template"]["spec"]["restartPolicy"] = "Never".into();
        let c = only(&create("apps", "deployments", d), "spec.template.spec.restartPolicy", "FieldValueNotSupported");
        assert_eq!(c.message, "Unsupported value: \"Never\": supported values: \"Always\"");

        let mut d = deployment();
        d["spec"]["strategy"] = json!({"type": "BlueGreen"});
        only(&create("apps", "deployments", d), "spec.strategy", "FieldValueNotSupported");

        let mut d = deployment();
        d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
        only(&create("apps", "deployments", d), "spec.strategy.rollingUpdate", "FieldValueForbidden");

        let mut d = deployment();
        d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
        let c =
            only(&create("apps", "deployments", d), "spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: 0%: may not be 0 when `maxSurge` is 0");

        let mut d = deployment();
        d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": "x", "maxUnavailable": "150%"}});
        let causes = create("apps", "deployments", d);
        cause(&causes, "spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid");
        let c = cause(&causes, "spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: 150%: must not be greater than 100%");

        let mut d = deployment();
        d["spec"]["minReadySeconds"] = 700.into();
        only(&create("apps", "deployments", d), "spec.progressDeadlineSeconds", "FieldValueInvalid");

        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"]["bad key"] = "x".into();
        only(&create("apps", "deployments", d), "spec.template.labels", "FieldValueInvalid");
    }

    #[test]
    fn replica_sets() {
        let mut rs = deployment();
        rs["kind"] = "ReplicaSet".into();
        assert_valid(&create("apps", "replicasets", rs.clone()));
        rs["spec"]["template"]["metadata"]["labels"]["app"] = "other".into();
        only(&create("apps", "replicasets", rs), "spec.template.metadata.labels", "FieldValueInvalid");
    }

    #[test]
    fn daemon_sets() {
        let mut ds = deployment();
        ds["kind"] = "DaemonSet".into();
        assert_valid(&create("apps", "daemonsets", ds.clone()));

        let mut bad = ds.clone();
        bad["spec"]["updateStrategy"] = json!({"type": "Surge"});
        only(&create("apps", "daemonsets", bad), "spec.updateStrategy", "FieldValueNotSupported");

        let mut both = ds.clone();
        both["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
        only(&create("apps", "daemonsets", both), "spec.updateStrategy.rollingUpdate.maxSurge", "FieldValueInvalid");

        let mut none = ds.clone();
        none["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
        only(
            &create("apps", "daemonsets", none),
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
            "FieldValueRequired",
        );

        let mut unselected = ds;
        unselected["spec"].as_object_mut().unwrap().remove("selector");
        only(&create("apps", "daemonsets", unselected), "spec.template.metadata.labels", "FieldValueInvalid");
    }

    #[test]
    fn stateful_sets() {
        let mut sts = deployment();
        sts["kind"] = "StatefulSet".into();
        sts["spec"]["serviceName"] = "web".into();
        sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "data", "mountPath": "/data"}]);
        sts["spec"]["volumeClaimTemplates"] = json!([{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        }]);
        assert_valid(&create("apps", "statefulsets", sts.clone()));

        let mut bad = sts.clone();
        bad["spec"]["podManagementPolicy"] = "Random".into();
        let c = only(&create("apps", "statefulsets", bad), "spec.podManagementPolicy", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'");

        let mut dotted = sts.clone();
        dotted["metadata"]["name"] = "web.v1".into();
        only(&create("apps", "statefulsets", dotted), "metadata.name", "FieldValueInvalid");

        let mut scaled = sts.clone();
        scaled["spec"]["replicas"] = 3.into();
        assert_valid(&update("apps", "statefulsets", sts.clone(), scaled));

        let mut renamed = sts.clone();
        renamed["spec"]["serviceName"] = "other".into();
        let c = only(&update("apps", "statefulsets", sts, renamed), "spec", "FieldValueForbidden");
        assert!(c.message.starts_with("Forbidden: updates to statefulset spec for fields other than 'replicas'"));
    }

    // -- batch ---------------------------------------------------------------------------------

    #[test]
    fn valid_job_passes() {
        assert_valid(&create("batch", "jobs", job()));
    }

    #[test]
    fn job_rules() {
        let mut j = job();
        j["spec"]["template"]["spec"].as_object_mut().unwrap().remove("restartPolicy");
        let c = only(&create("batch", "jobs", j), "spec.template.spec.restartPolicy", "FieldValueRequired");
        assert_eq!(c.message, "Required value: valid values: \"OnFailure\", \"Never\"");

        let mut j = job();
        j["spec"]["completions"] = (-1).into();
        j["spec"]["backoffLimit"] = (-2).into();
        let causes = create("batch", "jobs", j);
        assert_eq!(causes.len(), 2, "{causes:#?}");
        cause(&causes, "spec.completions", "FieldValueInvalid");
        cause(&causes, "spec.backoffLimit", "FieldValueInvalid");

        let mut manual = job();
        manual["spec"]["manualSelector"] = true.into();
        only(&create("batch", "jobs", manual.clone()), "spec.selector", "FieldValueRequired");
        manual["spec"]["selector"] = json!({"matchLabels": {"app": "pi"}});
        only(&create("batch", "jobs", manual.clone()), "spec.template.metadata.labels", "FieldValueInvalid");
        manual["spec"]["template"]["metadata"] = json!({"labels": {"app": "pi"}});
        assert_valid(&create("batch", "jobs", manual));

        let mut wrong = job();
        wrong["spec"]["template"]["metadata"] = json!({"labels": {"job-name": "other"}});
        let c = only(&create("batch", "jobs", wrong), "spec.template.metadata.labels[job-name]", "FieldValueInvalid");
        assert!(c.message.ends_with("must be 'pi'"), "{}", c.message);
    }

    #[test]
    fn job_updates() {
        let old = job();
        let mut new = job();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5".into();
        only(&update("batch", "jobs", old.clone(), new.clone()), "spec.template", "FieldValueInvalid");

        let mut suspended = job();
        suspended["spec"]["suspend"] = true.into();
        let mut moved = suspended.clone();
        moved["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        assert_valid(&update("batch", "jobs", suspended, moved));

        let mut more = job();
        more["spec"]["completions"] = 3.into();
        only(&update("batch", "jobs", old.clone(), more), "spec.completions", "FieldValueInvalid");

        let mut labelled = job();
        labelled["metadata"]["labels"] = json!({"team": "a"});
        assert_valid(&update("batch", "jobs", old, labelled));
    }

    #[test]
    fn valid_cron_job_passes() {
        assert_valid(&create("batch", "cronjobs", cron_job()));
        for schedule in ["@hourly", "@every 1h30m", "0 0 1 jan,jul mon-fri", "*/15 9-17 * * 1-5", "0 0 ? * SUN"] {
            let mut cj = cron_job();
            cj["spec"]["schedule"] = schedule.into();
            assert_valid(&create("batch", "cronjobs", cj));
        }
    }

    #[test]
    fn cron_job_rules() {
        let cases = [
            ("", "spec.schedule", "FieldValueRequired", "Required value"),
            ("* * *", "spec.schedule", "FieldValueInvalid", "expected exactly 5 fields, found 3: [* * *]"),
            ("60 * * * *", "spec.schedule", "FieldValueInvalid", "end of range (60) above maximum (59): 60"),
            (
                "x * * * *",
                "spec.schedule",
                "FieldValueInvalid",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            ("*/0 * * * *", "spec.schedule", "FieldValueInvalid", "step of range should be a positive number: */0"),
            (
                "5-1 * * * *",
                "spec.schedule",
                "FieldValueInvalid",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            ("@fortnightly", "spec.schedule", "FieldValueInvalid", "unrecognized descriptor: @fortnightly"),
            (
                "TZ=UTC 0 * * * *",
                "spec.schedule",
                "FieldValueInvalid",
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ),
        ];
        for (schedule, field, reason, message) in cases {
            let mut cj = cron_job();
            cj["spec"]["schedule"] = schedule.into();
            let c = only(&create("batch", "cronjobs", cj), field, reason);
            assert!(c.message.ends_with(message), "{schedule}: {}", c.message);
        }

        let mut cj = cron_job();
        cj["spec"]["timeZone"] = "Mars/Olympus".into();
        let c = only(&create("batch", "cronjobs", cj), "spec.timeZone", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus");
        let mut cj = cron_job();
        cj["spec"]["timeZone"] = "Europe/Paris".into();
        assert_valid(&create("batch", "cronjobs", cj));
        let mut cj = cron_job();
        cj["spec"]["timeZone"] = "Europe/Nowhere".into();
        let c = only(&create("batch", "cronjobs", cj), "spec.timeZone", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: \"Europe/Nowhere\": unknown time zone Europe/Nowhere");

        let mut cj = cron_job();
        cj["spec"]["concurrencyPolicy"] = "Sometimes".into();
        only(&create("batch", "cronjobs", cj), "spec.concurrencyPolicy", "FieldValueNotSupported");

        let mut cj = cron_job();
        cj["metadata"]["name"] = "a".repeat(53).into();
        let c = only(&create("batch", "cronjobs", cj), "metadata.name", "FieldValueInvalid");
        assert!(c.message.ends_with("must be no more than 52 characters"));

        let mut cj = cron_job();
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always".into();
        only(
            &create("batch", "cronjobs", cj),
            "spec.jobTemplate.spec.template.spec.restartPolicy",
            "FieldValueRequired",
        );

        let mut cj = cron_job();
        cj["spec"]["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        only(&create("batch", "cronjobs", cj), "spec.jobTemplate.spec.selector", "FieldValueInvalid");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30.0));
        assert_eq!(parse_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_duration("1.5h"), Ok(5400.0));
        assert_eq!(parse_duration("500ms"), Ok(0.5));
        assert_eq!(parse_duration("0"), Ok(0.0));
        assert_eq!(parse_duration("10"), Err("time: missing unit in duration \"10\"".into()));
        assert_eq!(parse_duration("5d"), Err("time: unknown unit \"d\" in duration \"5d\"".into()));
        assert!(parse_duration("").is_err() && parse_duration("s").is_err());
    }

    // -- services and config -------------------------------------------------------------------

    #[test]
    fn valid_services_pass() {
        assert_valid(&create("", "services", service()));
        let headless = json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"clusterIP": "None"}});
        assert_valid(&create("", "services", headless));
        let external = json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com."}});
        assert_valid(&create("", "services", external));
        let node_port = json!({"metadata": {"name": "np", "namespace": "default"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}});
        assert_valid(&create("", "services", node_port));
    }

    #[test]
    fn service_rules() {
        let mut s = service();
        s["spec"]["ports"] = json!([]);
        only(&create("", "services", s), "spec.ports", "FieldValueRequired");

        // The target port defaults to the port, so it is out of range too.
        let mut s = service();
        s["spec"]["ports"][0]["port"] = 0.into();
        let causes = create("", "services", s);
        assert_eq!(causes.len(), 2, "{causes:#?}");
        cause(&causes, "spec.ports[0].port", "FieldValueInvalid");
        cause(&causes, "spec.ports[0].targetPort", "FieldValueInvalid");

        let mut s = service();
        s["spec"]["ports"] = json!([{"name": "http", "port": 80}, {"port": 443}]);
        only(&create("", "services", s), "spec.ports[1].name", "FieldValueRequired");

        let mut s = service();
        s["spec"]["ports"] = json!([{"name": "http", "port": 80}, {"name": "http", "port": 443}]);
        only(&create("", "services", s), "spec.ports[1].name", "FieldValueDuplicate");

        let mut s = service();
        s["spec"]["ports"] = json!([{"name": "a", "port": 80}, {"name": "b", "port": 80}]);
        only(&create("", "services", s), "spec.ports[1]", "FieldValueDuplicate");

        let mut s = service();
        s["spec"]["ports"][0]["nodePort"] = 30080.into();
        only(&create("", "services", s), "spec.ports[0].nodePort", "FieldValueForbidden");

        let mut s = service();
        s["spec"]["type"] = "Magic".into();
        let c = only(&create("", "services", s), "spec.type", "FieldValueNotSupported");
        assert_eq!(
            c.message,
            "Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
        );

        let mut s = service();
        s["spec"]["ports"][0]["targetPort"] = "Http_Port".into();
        only(&create("", "services", s), "spec.ports[0].targetPort", "FieldValueInvalid");

        let ext = json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName"}});
        only(&create("", "services", ext), "spec.externalName", "FieldValueRequired");

        let mut s = service();
        s["spec"]["clusterIP"] = "10.0.0.300".into();
        only(&create("", "services", s), "spec.clusterIPs[0]", "FieldValueInvalid");
    }

    #[test]
    fn cluster_ip_is_immutable_once_set() {
        let mut old = service();
        old["spec"]["clusterIP"] = "10.96.0.10".into();
        let mut new = old.clone();
        new["spec"]["clusterIP"] = "10.96.0.11".into();
        new["spec"]["clusterIPs"] = json!(["10.96.0.11"]);
        let c = only(&update("", "services", old.clone(), new), "spec.clusterIPs[0]", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: []string{\"10.96.0.11\"}: may not change once set");

        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        assert_valid(&update("", "services", old, relabelled));
    }

    #[test]
    fn config_maps() {
        let cm = json!({"metadata": {"name": "cfg", "namespace": "default"},
            "data": {"app.properties": "x=1", "KEY_1": "v"}, "binaryData": {"logo.png": "iVBORw0KGgo="}});
        assert_valid(&create("", "configmaps", cm.clone()));

        let mut bad = cm.clone();
        bad["data"]["bad key"] = "x".into();
        let c = only(&create("", "configmaps", bad), "data[bad key]", "FieldValueInvalid");
        assert!(c.message.starts_with("Invalid value: \"bad key\": a valid config key must consist of alphanumeric"));

        let mut dup = cm.clone();
        dup["data"]["logo.png"] = "x".into();
        let c = only(&create("", "configmaps", dup), "data[logo.png]", "FieldValueInvalid");
        assert!(c.message.ends_with("duplicate of key present in binaryData"));

        let mut frozen = cm.clone();
        frozen["immutable"] = true.into();
        let mut changed = frozen.clone();
        changed["data"]["KEY_1"] = "w".into();
        only(&update("", "configmaps", frozen.clone(), changed), "data", "FieldValueForbidden");
        let mut thawed = frozen.clone();
        thawed["immutable"] = false.into();
        only(&update("", "configmaps", frozen, thawed), "immutable", "FieldValueForbidden");
    }

    #[test]
    fn secrets() {
        let s = json!({"metadata": {"name": "creds", "namespace": "default"}, "data": {"password": "aHVudGVyMg=="}});
        assert_valid(&create("", "secrets", s.clone()));

        let mut wrapped = s.clone();
        wrapped["data"]["password"] = "aHVu\ndGVyMg==".into();
        assert_valid(&create("", "secrets", wrapped));

        let mut bad = s.clone();
        bad["data"]["password"] = "not base64!".into();
        let c = only(&create("", "secrets", bad), "data[password]", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: \"<secret contents redacted>\": illegal base64 data at input byte 3");

        let tls = json!({"metadata": {"name": "tls", "namespace": "default"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": "eA=="}});
        only(&create("", "secrets", tls), "data[tls.key]", "FieldValueRequired");

        let mut retyped = s.clone();
        retyped["type"] = "kubernetes.io/basic-auth".into();
        retyped["data"]["username"] = "YQ==".into();
        let c = only(&update("", "secrets", s.clone(), retyped), "type", "FieldValueInvalid");
        assert_eq!(c.message, "Invalid value: \"kubernetes.io/basic-auth\": field is immutable");

        let mut frozen = s.clone();
        frozen["immutable"] = true.into();
        let mut changed = frozen.clone();
        changed["data"]["password"] = "eA==".into();
        only(&update("", "secrets", frozen, changed), "data", "FieldValueForbidden");
    }

    // -- cluster kinds -------------------------------------------------------------------------

    #[test]
    fn namespaces_nodes_and_accounts() {
        assert_valid(&create("", "namespaces", json!({"metadata": {"name": "team-a"}})));
        only(&create("", "namespaces", json!({"metadata": {"name": "Team"}})), "metadata.name", "FieldValueInvalid");

        let node = json!({"metadata": {"name": "node-1.example"},
            "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"],
                     "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}});
        assert_valid(&create("", "nodes", node.clone()));
        let mut bad = node.clone();
        bad["spec"]["taints"][0]["effect"] = "Never".into();
        only(&create("", "nodes", bad), "metadata.taints[0].effect", "FieldValueNotSupported");
        let mut recidr = node.clone();
        recidr["spec"]["podCIDRs"] = json!(["10.245.0.0/24"]);
        only(&update("", "nodes", node, recidr), "spec.podCIDRs", "FieldValueForbidden");

        let sa = json!({"metadata": {"name": "builder", "namespace": "default"}});
        assert_valid(&create("", "serviceaccounts", sa));
    }

    #[test]
    fn endpoints_and_slices() {
        let ep = json!({"metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}]});
        assert_valid(&create("", "endpoints", ep.clone()));
        let mut bad = ep;
        bad["subsets"][0]["addresses"][0]["ip"] = "127.0.0.1".into();
        only(&create("", "endpoints", bad), "subsets[0].addresses[0].ip", "FieldValueInvalid");

        let slice = json!({"metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.5"]}], "ports": [{"name": "http", "port": 80}]});
        assert_valid(&create("discovery.k8s.io", "endpointslices", slice.clone()));
        let mut untyped = slice;
        untyped.as_object_mut().unwrap().remove("addressType");
        only(&create("discovery.k8s.io", "endpointslices", untyped), "addressType", "FieldValueRequired");
    }

    #[test]
    fn leases_events_and_runtime_classes() {
        let lease = json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}});
        assert_valid(&create("coordination.k8s.io", "leases", lease.clone()));
        let mut bad = lease;
        bad["spec"]["leaseDurationSeconds"] = 0.into();
        only(&create("coordination.k8s.io", "leases", bad), "spec.leaseDurationSeconds", "FieldValueInvalid");

        let event = json!({"metadata": {"name": "web.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "reason": "Started", "type": "Normal"});
        assert_valid(&create("", "events", event.clone()));
        let mut stray = event;
        stray["involvedObject"]["namespace"] = "other".into();
        only(&create("", "events", stray), "involvedObject.namespace", "FieldValueInvalid");

        let new_event = json!({"metadata": {"name": "web.17b", "namespace": "default"}, "eventTime": "2024-01-01T00:00:00.000000Z",
            "regarding": {"kind": "Pod", "name": "web", "namespace": "default"}, "reason": "Pulled", "action": "Pull",
            "reportingController": "wharf.dev/agent", "reportingInstance": "agent-node-1", "type": "Normal"});
        assert_valid(&create("events.k8s.io", "events", new_event.clone()));
        let mut untyped = new_event;
        untyped["type"] = "Info".into();
        only(&create("events.k8s.io", "events", untyped), "type", "FieldValueInvalid");

        let rc = json!({"metadata": {"name": "wasm"}, "handler": "wasmtime"});
        assert_valid(&create("node.k8s.io", "runtimeclasses", rc.clone()));
        let mut unhandled = rc.clone();
        unhandled.as_object_mut().unwrap().remove("handler");
        let c = only(&create("node.k8s.io", "runtimeclasses", unhandled), "handler", "FieldValueInvalid");
        assert!(c.message.starts_with("Invalid value: \"\": a lowercase RFC 1123 label"));
        let mut dotted = rc.clone();
        dotted["handler"] = "wasm.time".into();
        only(&create("node.k8s.io", "runtimeclasses", dotted.clone()), "handler", "FieldValueInvalid");
        let mut rehandled = rc.clone();
        rehandled["handler"] = "youki".into();
        only(&update("node.k8s.io", "runtimeclasses", rc, rehandled), "handler", "FieldValueInvalid");
    }

    // -- functions -----------------------------------------------------------------------------

    #[test]
    fn valid_function_passes() {
        assert_valid(&create("wharf.dev", "functions", function()));
        let mut full = function();
        full["spec"]["route"] = json!({"path": "/api/hello", "host": "hello.example.com"});
        full["spec"]["scale"] =
            json!({"minReplicas": 1, "maxReplicas": 1, "targetConcurrency": 1, "idleTimeout": "5m"});
        full["spec"]["runtimeClassName"] = "wasmtime".into();
        full["spec"]["env"] = json!([{"name": "GREETING", "value": "hi"}]);
        full["spec"]["resources"] = json!({"limits": {"memory": "64Mi"}});
        assert_valid(&create("wharf.dev", "functions", full));
    }

    #[test]
    fn function_rules() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"image": ""}), "spec.image", "FieldValueRequired"),
            (json!({"port": 0}), "spec.port", "FieldValueInvalid"),
            (json!({"route": {"path": "hello"}}), "spec.route.path", "FieldValueInvalid"),
            (json!({"scale": {"minReplicas": -1}}), "spec.scale.minReplicas", "FieldValueInvalid"),
            (json!({"scale": {"maxReplicas": 0}}), "spec.scale.maxReplicas", "FieldValueInvalid"),
            (json!({"scale": {"minReplicas": 5, "maxReplicas": 3}}), "spec.scale.maxReplicas", "FieldValueInvalid"),
            (json!({"scale": {"targetConcurrency": 0}}), "spec.scale.targetConcurrency", "FieldValueInvalid"),
            (json!({"scale": {"idleTimeout": "sixty"}}), "spec.scale.idleTimeout", "FieldValueInvalid"),
            (json!({"scale": {"idleTimeout": 60}}), "spec.scale.idleTimeout", "FieldValueTypeInvalid"),
            (json!({"runtimeClassName": "runc"}), "spec.runtimeClassName", "FieldValueNotSupported"),
            (json!({"env": [{"name": "A=B"}]}), "spec.env[0].name", "FieldValueInvalid"),
        ];
        for (patch, field, reason) in cases {
            let mut f = function();
            for (k, v) in patch.as_object().unwrap() {
                f["spec"][k] = v.clone();
            }
            only(&create("wharf.dev", "functions", f), field, reason);
        }
        let mut nameless = function();
        nameless["spec"].as_object_mut().unwrap().remove("image");
        only(&create("wharf.dev", "functions", nameless), "spec.image", "FieldValueRequired");
        let mut numeric = function();
        numeric["metadata"]["name"] = "1hello".into();
        only(&create("wharf.dev", "functions", numeric), "metadata.name", "FieldValueInvalid");
    }

    #[test]
    fn unknown_kinds_get_metadata_checks() {
        let r = resource("", "serviceaccounts");
        assert_valid(&validate(r, &json!({"metadata": {"name": "ok", "namespace": "default"}}), None));
        only(
            &validate(r, &json!({"metadata": {"name": "no way", "namespace": "default"}}), None),
            "metadata.name",
            "FieldValueInvalid",
        );
    }

    /// Every field of every sample, replaced by every kind of JSON value, must give causes and
    /// never a panic, in defaults and validation alike.
    #[test]
    fn no_value_of_any_type_panics() {
        fn paths(v: &Value, at: Vec<Value>, out: &mut Vec<Vec<Value>>) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, c)| {
                    let mut p = at.clone();
                    p.push(k.as_str().into());
                    out.push(p.clone());
                    paths(c, p, out);
                }),
                Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| {
                    let mut p = at.clone();
                    p.push(i.into());
                    out.push(p.clone());
                    paths(c, p, out);
                }),
                _ => {}
            }
        }
        fn slot<'a>(v: &'a mut Value, path: &[Value]) -> &'a mut Value {
            path.iter().fold(v, |v, k| match k {
                Value::String(k) => &mut v[k.as_str()],
                _ => &mut v[k.as_u64().unwrap() as usize],
            })
        }
        let samples = [
            ("", "pods", pod()),
            ("apps", "deployments", deployment()),
            ("apps", "daemonsets", deployment()),
            ("apps", "statefulsets", deployment()),
            ("", "services", service()),
            ("batch", "jobs", job()),
            ("batch", "cronjobs", cron_job()),
            ("wharf.dev", "functions", function()),
            (
                "",
                "secrets",
                json!({"metadata": {"name": "s", "namespace": "d"}, "data": {"a": "eA=="}, "type": "kubernetes.io/tls"}),
            ),
            (
                "",
                "configmaps",
                json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "b"}, "binaryData": {"b": "eA=="}}),
            ),
            (
                "",
                "nodes",
                json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
                "status": {"capacity": {"cpu": "1"}}}),
            ),
            (
                "",
                "endpoints",
                json!({"metadata": {"name": "e", "namespace": "d"},
                "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 1}]}]}),
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": {"name": "e", "namespace": "d"}, "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 1}]}),
            ),
            (
                "events.k8s.io",
                "events",
                json!({"metadata": {"name": "e", "namespace": "d"}, "regarding": {"namespace": "d"},
                "eventTime": "t", "reportingController": "c", "reportingInstance": "i", "action": "a", "reason": "r", "type": "Normal"}),
            ),
            ("", "events", json!({"metadata": {"name": "e", "namespace": "d"}, "involvedObject": {"namespace": "d"}})),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 1}}),
            ),
            (
                "node.k8s.io",
                "runtimeclasses",
                json!({"metadata": {"name": "r"}, "handler": "h", "overhead": {"podFixed": {"cpu": "1"}},
                "scheduling": {"nodeSelector": {"a": "b"}, "tolerations": [{"key": "k"}]}}),
            ),
            ("", "namespaces", json!({"metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes"]}})),
        ];
        let replacements =
            [json!(null), json!(-1), json!(1.5), json!("x"), json!(true), json!([]), json!({}), json!([1, "a"])];
        for (group, plural, sample) in samples {
            let r = resource(group, plural);
            let mut defaulted = sample.clone();
            defaults::apply(r, &mut defaulted);
            let mut all = Vec::new();
            paths(&defaulted, Vec::new(), &mut all);
            for path in &all {
                for replacement in &replacements {
                    let mut obj = defaulted.clone();
                    *slot(&mut obj, path) = replacement.clone();
                    let mut changed = obj.clone();
                    defaults::apply(r, &mut changed);
                    let _ = validate(r, &changed, None);
                    let _ = validate(r, &changed, Some(&defaulted));
                    let _ = validate(r, &defaulted, Some(&changed));
                }
            }
        }
    }

    /// The bodies kubectl's generators send (`create deployment`, `run`, `create job`, ...), with
    /// their `creationTimestamp: null` and empty structs, pass once defaulted.
    #[test]
    fn kubectl_generated_objects_are_valid() {
        let cases = [
            (
                "apps",
                "deployments",
                json!({"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"nginx","namespace":"default","creationTimestamp":null,"labels":{"app":"nginx"}},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"nginx"}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"nginx"}},"spec":{"containers":[{"name":"nginx","image":"nginx","resources":{}}]}},"strategy":{}},"status":{}}),
            ),
            (
                "",
                "pods",
                json!({"kind":"Pod","apiVersion":"v1","metadata":{"name":"nginx","namespace":"default","creationTimestamp":null,"labels":{"run":"nginx"}},"spec":{"containers":[{"name":"nginx","image":"nginx","resources":{}}],"restartPolicy":"Always","dnsPolicy":"ClusterFirst"},"status":{}}),
            ),
            (
                "batch",
                "jobs",
                json!({"kind":"Job","apiVersion":"batch/v1","metadata":{"name":"pi","namespace":"default","uid":"6f1c","creationTimestamp":null},"spec":{"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":[{"name":"pi","image":"perl:5.34","command":["perl","-Mbignum=bpi","-wle","print bpi(2000)"],"resources":{}}],"restartPolicy":"Never"}}},"status":{}}),
            ),
            (
                "batch",
                "cronjobs",
                json!({"kind":"CronJob","apiVersion":"batch/v1","metadata":{"name":"hello","namespace":"default","creationTimestamp":null},"spec":{"jobTemplate":{"metadata":{"name":"hello","creationTimestamp":null},"spec":{"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":[{"name":"hello","image":"busybox","resources":{}}],"restartPolicy":"OnFailure"}}}},"schedule":"*/1 * * * *"},"status":{}}),
            ),
            (
                "",
                "services",
                json!({"kind":"Service","apiVersion":"v1","metadata":{"name":"nginx","namespace":"default","creationTimestamp":null,"labels":{"app":"nginx"}},"spec":{"ports":[{"name":"80-80","protocol":"TCP","port":80,"targetPort":80}],"selector":{"app":"nginx"},"type":"ClusterIP"},"status":{"loadBalancer":{}}}),
            ),
            (
                "",
                "secrets",
                json!({"kind":"Secret","apiVersion":"v1","metadata":{"name":"creds","namespace":"default","creationTimestamp":null},"data":{"password":"czNjcjN0"}}),
            ),
            (
                "",
                "configmaps",
                json!({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cfg","namespace":"default","creationTimestamp":null},"data":{"mode":"prod"}}),
            ),
            (
                "",
                "namespaces",
                json!({"kind":"Namespace","apiVersion":"v1","metadata":{"name":"team-a","creationTimestamp":null},"spec":{},"status":{}}),
            ),
            (
                "",
                "serviceaccounts",
                json!({"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"builder","namespace":"default","creationTimestamp":null}}),
            ),
        ];
        for (group, plural, obj) in cases {
            let causes = create(group, plural, obj);
            assert!(causes.is_empty(), "{plural}: {causes:#?}");
        }
    }
}
