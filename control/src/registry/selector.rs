//! Label and field selectors as kube-apiserver understands them: the `?labelSelector=` and
//! `?fieldSelector=` query syntax, `metav1.LabelSelector` objects, and which fields of each kind
//! can be selected on. Parsing and error texts follow apimachinery's `labels` and `fields`
//! packages, so kubectl prints the messages its users know.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::Error;
use crate::registry::kinds::ResourceInfo;

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// A conjunction of label requirements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    /// Sorted by key, as apimachinery keeps them.
    requirements: Vec<Requirement>,
    /// A null `metav1.LabelSelector`, which selects nothing.
    nothing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=` and `==`.
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
    /// Sorted and deduplicated.
    values: Vec<String>,
}

impl LabelSelector {
    /// Parses `?labelSelector=` syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`,
    /// `!a`, `a>1`, `a<1`, comma-separated (AND). Keys and values are validated like Kubernetes
    /// label keys and values.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let requirements = Parser::new(s).selector().map_err(Error::BadRequest)?;
        Ok(Self::from_requirements(requirements))
    }

    /// From a `metav1.LabelSelector` as JSON (`matchLabels`, `matchExpressions` with operators
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`). A JSON null selects nothing; an empty object
    /// selects everything.
    pub fn from_json(selector: &Value) -> Result<Self, Error> {
        let object = match selector {
            Value::Null => return Ok(Self { requirements: Vec::new(), nothing: true }),
            Value::Object(object) => object,
            other => return Err(bad(format!("label selector must be an object, not {}", json_type(other)))),
        };
        let mut requirements = Vec::new();
        for (key, value) in json_object(object, "matchLabels")? {
            let Some(value) = value.as_str() else {
                return Err(bad(format!("matchLabels[{key:?}] must be a string, not {}", json_type(value))));
            };
            requirements.push(Requirement::new(key, Op::Equals, vec![value.to_string()]).map_err(Error::BadRequest)?);
        }
        for (i, expression) in json_array(object, "matchExpressions")?.iter().enumerate() {
            let Value::Object(expression) = expression else {
                return Err(bad(format!("matchExpressions[{i}] must be an object, not {}", json_type(expression))));
            };
            let field = |name: &str| format!("matchExpressions[{i}].{name}");
            let key = json_str(expression, "key", &field("key"))?;
            let op = match json_str(expression, "operator", &field("operator"))? {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(bad(format!("{other:?} is not a valid label selector operator"))),
            };
            let mut values = Vec::new();
            for value in json_array(expression, "values")? {
                let Some(value) = value.as_str() else {
                    return Err(bad(format!("{} must hold strings, not {}", field("values"), json_type(value))));
                };
                values.push(value.to_string());
            }
            requirements.push(Requirement::new(key, op, values).map_err(Error::BadRequest)?);
        }
        Ok(Self::from_requirements(requirements))
    }

    fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements, nothing: false }
    }

    /// Does an object's `metadata.labels` (a JSON object, or None/null when absent) match?
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let labels = labels.and_then(Value::as_object);
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector does not restrict anything (a null selector restricts everything).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }
}

/// The canonical string form (`a=b,c in (x,y),!d`), as kube prints a selector, e.g. in a Scale's
/// `status.selector`. Empty for the empty selector.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        match self.op {
            Op::Equals => write!(f, "{}={values}", self.key),
            Op::NotEquals => write!(f, "{}!={values}", self.key),
            Op::In => write!(f, "{} in ({values})", self.key),
            Op::NotIn => write!(f, "{} notin ({values})", self.key),
            Op::Exists => write!(f, "{}", self.key),
            Op::DoesNotExist => write!(f, "!{}", self.key),
            Op::GreaterThan => write!(f, "{}>{values}", self.key),
            Op::LessThan => write!(f, "{}<{values}", self.key),
        }
    }
}

impl Requirement {
    /// Validates like apimachinery's `labels.NewRequirement`, collecting every problem.
    fn new(key: &str, op: Op, values: Vec<String>) -> Result<Self, String> {
        let mut errors = Vec::new();
        let key_errors = label_key_errors(key);
        if !key_errors.is_empty() {
            errors.push(invalid("key", key, &key_errors.join("; ")));
        }
        match op {
            Op::In | Op::NotIn if values.is_empty() => errors.push(format!(
                "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                go_string_slice(&values)
            )),
            Op::Exists | Op::DoesNotExist if !values.is_empty() => errors.push(format!(
                "values: Invalid value: {}: values set must be empty for exists and does not exist",
                go_string_slice(&values)
            )),
            Op::GreaterThan | Op::LessThan => {
                for (i, value) in values.iter().enumerate() {
                    if value.parse::<i64>().is_err() {
                        let detail = "for 'Gt', 'Lt' operators, the value must be an integer";
                        errors.push(invalid(&format!("values[{i}]"), value, detail));
                    }
                }
            }
            _ => {}
        }
        for (i, value) in values.iter().enumerate() {
            let value_errors = label_value_errors(value);
            if !value_errors.is_empty() {
                errors.push(invalid(&format!("values[{i}][{key}]"), value, &value_errors.join("; ")));
            }
        }
        match errors.len() {
            0 => {}
            1 => return Err(errors.remove(0)),
            _ => return Err(format!("[{}]", errors.join(", "))),
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Self { key: key.to_string(), op, values })
    }

    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let label = labels.and_then(|labels| labels.get(&self.key));
        let value = label.and_then(Value::as_str);
        let listed = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            Op::Equals | Op::In => value.is_some_and(listed),
            // A missing label is "not in" any set, as in Kubernetes.
            Op::NotEquals | Op::NotIn => value.is_none_or(|v| !listed(v)),
            Op::Exists => label.is_some(),
            Op::DoesNotExist => label.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(actual), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Op::GreaterThan { actual > bound } else { actual < bound }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    End,
    Identifier,
    OpenPar,
    ClosedPar,
    Comma,
    /// `!`
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a label selector into tokens; the literal of `End` is empty.
fn lex(s: &str) -> Vec<(Token, &str)> {
    let bytes = s.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && is_whitespace(bytes[i]) {
            i += 1;
        }
        let Some(&b) = bytes.get(i) else {
            tokens.push((Token::End, ""));
            return tokens;
        };
        let start = i;
        let token = if is_special(b) {
            let (token, len) = match (b, bytes.get(i + 1)) {
                (b'!', Some(b'=')) => (Token::NotEquals, 2),
                (b'=', Some(b'=')) => (Token::DoubleEquals, 2),
                (b'!', _) => (Token::DoesNotExist, 1),
                (b'=', _) => (Token::Equals, 1),
                (b'(', _) => (Token::OpenPar, 1),
                (b')', _) => (Token::ClosedPar, 1),
                (b',', _) => (Token::Comma, 1),
                (b'>', _) => (Token::GreaterThan, 1),
                _ => (Token::LessThan, 1),
            };
            i += len;
            token
        } else {
            while i < bytes.len() && !is_special(bytes[i]) && !is_whitespace(bytes[i]) {
                i += 1;
            }
            match &s[start..i] {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier,
            }
        };
        tokens.push((token, &s[start..i]));
    }
}

/// apimachinery's recursive-descent label selector parser, with its error texts.
struct Parser<'a> {
    tokens: Vec<(Token, &'a str)>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Self { tokens: lex(s), pos: 0 }
    }

    /// The next token where a key or value may stand: there `in` and `notin` are plain words.
    fn peek(&self) -> (Token, &'a str) {
        let (token, literal) = self.tokens[self.pos.min(self.tokens.len() - 1)];
        match token {
            Token::In | Token::NotIn => (Token::Identifier, literal),
            other => (other, literal),
        }
    }

    fn next(&mut self) -> (Token, &'a str) {
        let item = self.peek();
        self.pos += 1;
        item
    }

    fn selector(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.peek();
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self.requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    let (token, literal) = self.next();
                    match token {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (token, literal) = self.peek();
                            if !matches!(token, Token::Identifier | Token::DoesNotExist) {
                                return Err(format!("found '{literal}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{literal}', expected: ',' or 'end of string'")),
                    }
                }
                Token::End => return Ok(requirements),
                _ => return Err(format!("found '{literal}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (mut token, mut key) = self.next();
        let negated = token == Token::DoesNotExist;
        if negated {
            (token, key) = self.next();
        }
        if token != Token::Identifier {
            return Err(format!("found '{key}', expected: identifier"));
        }
        let key_errors = label_key_errors(key);
        if !key_errors.is_empty() {
            // kube-apiserver prefixes this one with a `<nil>` field path; we leave that out.
            return Err(invalid("", key, &key_errors.join("; ")));
        }
        if negated {
            return Requirement::new(key, Op::DoesNotExist, Vec::new());
        }
        if matches!(self.peek().0, Token::End | Token::Comma) {
            return Requirement::new(key, Op::Exists, Vec::new());
        }
        // Read the operator with `in` and `notin` as keywords, so bypass `next`.
        let (token, literal) = self.tokens[self.pos];
        self.pos += 1;
        let op = match token {
            Token::In => Op::In,
            Token::NotIn => Op::NotIn,
            Token::Equals | Token::DoubleEquals => Op::Equals,
            Token::NotEquals => Op::NotEquals,
            Token::GreaterThan => Op::GreaterThan,
            Token::LessThan => Op::LessThan,
            _ => return Err(format!("found '{literal}', expected: in, notin, =, ==, !=, gt, lt")),
        };
        let values = match op {
            Op::In | Op::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        Requirement::new(key, op, values)
    }

    /// `(a,b,,c)`; empty entries stand for the empty value.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.next();
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.peek();
        let mut values = BTreeSet::new();
        match token {
            Token::ClosedPar => {
                values.insert(String::new());
            }
            Token::Identifier | Token::Comma => loop {
                let (token, literal) = self.next();
                match token {
                    Token::Identifier => {
                        values.insert(literal.to_string());
                        match self.peek() {
                            (Token::Comma, _) => {}
                            (Token::ClosedPar, _) => break,
                            (_, literal) => return Err(format!("found '{literal}', expected: ',' or ')'")),
                        }
                    }
                    Token::Comma => {
                        let following = self.peek().0;
                        if values.is_empty() || matches!(following, Token::Comma | Token::ClosedPar) {
                            values.insert(String::new());
                        }
                        if following == Token::ClosedPar {
                            break;
                        }
                    }
                    _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
                }
            },
            _ => return Err(format!("found '{literal}', expected: ',', ')' or identifier")),
        }
        self.next(); // the `)` both loops stopped at
        Ok(values.into_iter().collect())
    }

    /// The value after `=`, `!=`, `>` or `<`; nothing stands for the empty value.
    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.peek().0, Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.next() {
            (Token::Identifier, literal) => Ok(vec![literal.to_string()]),
            (_, literal) => Err(format!("found '{literal}', expected: identifier")),
        }
    }
}

const QUALIFIED_NAME_MESSAGE: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_REGEX: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
     or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_REGEX: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
     '-' or '.', and must start and end with an alphanumeric character";
const SUBDOMAIN_REGEX: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const NAME_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;

/// apimachinery's `RegexError` wording, double spaces included.
fn regex_error(message: &str, regex: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!("{message} (e.g. {}regex used for validation is '{regex}')", examples.join(" or "))
}

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Dot-separated RFC 1123 labels: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty() && edge(&b[0]) && edge(&b[b.len() - 1]) && b.iter().all(|c| edge(c) || *c == b'-')
    })
}

/// Problems with a label key (`[prefix/]name`), worded like apimachinery's `IsQualifiedName`.
fn label_key_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let name = match key.split('/').collect::<Vec<_>>()[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > SUBDOMAIN_MAX {
                    errors.push(format!("prefix part {}", max_len_error(SUBDOMAIN_MAX)));
                }
                if !is_subdomain(prefix) {
                    errors.push(format!(
                        "prefix part {}",
                        regex_error(SUBDOMAIN_MESSAGE, SUBDOMAIN_REGEX, &["example.com"])
                    ));
                }
            }
            name
        }
        _ => {
            let regex = regex_error(QUALIFIED_NAME_MESSAGE, QUALIFIED_NAME_REGEX, &["MyName", "my.name", "123-abc"]);
            errors.push(format!(
                "a qualified name {regex} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > NAME_MAX {
        errors.push(format!("name part {}", max_len_error(NAME_MAX)));
    }
    if !is_qualified_name_part(name) {
        let regex = regex_error(QUALIFIED_NAME_MESSAGE, QUALIFIED_NAME_REGEX, &["MyName", "my.name", "123-abc"]);
        errors.push(format!("name part {regex}"));
    }
    errors
}

/// Problems with a label value, worded like apimachinery's `IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > NAME_MAX {
        errors.push(max_len_error(NAME_MAX));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errors.push(regex_error(LABEL_VALUE_MESSAGE, LABEL_VALUE_REGEX, &["MyValue", "my_value", "12345"]));
    }
    errors
}

/// A `field.Invalid` error as apimachinery prints it: `path: Invalid value: "v": detail`.
fn invalid(path: &str, value: &str, detail: &str) -> String {
    let prefix = if path.is_empty() { String::new() } else { format!("{path}: ") };
    format!("{prefix}Invalid value: {value:?}: {detail}")
}

/// Go's `%#v` of a `[]string`, which kube uses to show a bad value list.
fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn bad(message: String) -> Error {
    Error::BadRequest(message)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional object member that must be an object when present.
fn json_object<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Vec<(&'a String, &'a Value)>, Error> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(members)) => Ok(members.iter().collect()),
        Some(other) => Err(bad(format!("{name} must be an object, not {}", json_type(other)))),
    }
}

/// An optional object member that must be an array when present.
fn json_array<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a [Value], Error> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(bad(format!("{name} must be an array, not {}", json_type(other)))),
    }
}

/// An optional string member; absent reads as empty, as Go decodes it.
fn json_str<'a>(object: &'a Map<String, Value>, name: &str, field: &str) -> Result<&'a str, Error> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(bad(format!("{field} must be a string, not {}", json_type(other)))),
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// A conjunction of `field=value` / `field!=value` terms on a resource's selectable fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

#[derive(Debug, Clone, PartialEq)]
struct FieldRequirement {
    field: String,
    equals: bool,
    value: String,
}

impl FieldSelector {
    /// Parses `?fieldSelector=` syntax (`a=b,c==d,e!=f`, with `\,` `\=` `\\` escapes in values)
    /// and checks that every field is selectable on `resource`, with kube-apiserver's messages.
    pub fn parse(s: &str, resource: &ResourceInfo) -> Result<Self, Error> {
        let mut terms = split_terms(s);
        // Sorted like apimachinery, so the same term is reported first when several are wrong.
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, equals, raw)) = split_term(term) else {
                return Err(bad(format!("invalid selector: '{s}'; can't understand '{term}'")));
            };
            let value = unescape(raw).map_err(Error::BadRequest)?;
            requirements.push(FieldRequirement { field: field.to_string(), equals, value });
        }
        let table = selectable_fields(resource);
        if let Some(r) = requirements.iter().find(|r| !table.fields.iter().any(|f| f.label == r.field)) {
            return Err(bad((table.reject)(&r.field)));
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, resource: &ResourceInfo, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(resource, obj, &r.field).unwrap_or_default();
            (actual == r.value) == r.equals
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// `Some(name)` when the selector requires `metadata.name=NAME`, so the store can look the
    /// object up directly. The caller still applies [`FieldSelector::matches`] to the result.
    pub fn pinned_name(&self) -> Option<&str> {
        self.requirements.iter().find(|r| r.equals && r.field == "metadata.name").map(|r| r.value.as_str())
    }
}

/// Splits on commas that are not escaped; escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// `(field, is_equality, raw value)` split at the first `!=`, `==` or `=`.
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    let bytes = term.as_bytes();
    (0..bytes.len()).find_map(|i| {
        let rest = &bytes[i..];
        let (equals, len) = if rest.starts_with(b"!=") {
            (false, 2)
        } else if rest.starts_with(b"==") {
            (true, 2)
        } else if rest.starts_with(b"=") {
            (true, 1)
        } else {
            return None;
        };
        Some((&term[..i], equals, &term[i + len..]))
    })
}

fn unescape(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => value.push(escaped),
                Some(other) => return Err(format!("invalid field selector: invalid escape sequence: \\{other}")),
                None => return Err("invalid field selector: invalid escape sequence: \\".to_string()),
            },
            // kube-apiserver prints the character's code point here; the character itself is clearer.
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: '{c}'")),
            _ => value.push(c),
        }
    }
    Ok(value)
}

/// One selectable field: its label, where its value lives (JSON pointers, the first non-empty one
/// wins) and what it reads as when absent (the Go zero value kube renders: "", "false", "0").
struct Selectable {
    label: &'static str,
    pointers: &'static [&'static str],
    missing: &'static str,
}

const fn field(label: &'static str, pointers: &'static [&'static str]) -> Selectable {
    Selectable { label, pointers, missing: "" }
}

const NAME: Selectable = field("metadata.name", &["/metadata/name"]);
const NAMESPACE: Selectable = field("metadata.namespace", &["/metadata/namespace"]);

const METADATA: &[Selectable] = &[NAME, NAMESPACE];
const NAME_ONLY: &[Selectable] = &[NAME];

const POD: &[Selectable] = &[
    NAME,
    NAMESPACE,
    field("spec.nodeName", &["/spec/nodeName"]),
    // What clients older than v1 send for spec.nodeName.
    field("spec.host", &["/spec/nodeName"]),
    field("spec.restartPolicy", &["/spec/restartPolicy"]),
    field("spec.schedulerName", &["/spec/schedulerName"]),
    field("spec.serviceAccountName", &["/spec/serviceAccountName"]),
    Selectable { label: "spec.hostNetwork", pointers: &["/spec/hostNetwork"], missing: "false" },
    field("status.phase", &["/status/phase"]),
    field("status.podIP", &["/status/podIP", "/status/podIPs/0/ip"]),
    field("status.nominatedNodeName", &["/status/nominatedNodeName"]),
];

const NODE: &[Selectable] =
    &[NAME, Selectable { label: "spec.unschedulable", pointers: &["/spec/unschedulable"], missing: "false" }];

const NAMESPACE_KIND: &[Selectable] = &[NAME, field("status.phase", &["/status/phase"])];

const SECRET: &[Selectable] = &[NAME, NAMESPACE, field("type", &["/type"])];

const SERVICE: &[Selectable] =
    &[NAME, NAMESPACE, field("spec.clusterIP", &["/spec/clusterIP"]), field("spec.type", &["/spec/type"])];

const CORE_EVENT: &[Selectable] = &[
    NAME,
    NAMESPACE,
    field("involvedObject.kind", &["/involvedObject/kind"]),
    field("involvedObject.namespace", &["/involvedObject/namespace"]),
    field("involvedObject.name", &["/involvedObject/name"]),
    field("involvedObject.uid", &["/involvedObject/uid"]),
    field("involvedObject.apiVersion", &["/involvedObject/apiVersion"]),
    field("involvedObject.resourceVersion", &["/involvedObject/resourceVersion"]),
    field("involvedObject.fieldPath", &["/involvedObject/fieldPath"]),
    field("reason", &["/reason"]),
    field("reportingComponent", &["/reportingComponent"]),
    field("source", &["/source/component", "/reportingComponent"]),
    field("type", &["/type"]),
];

/// events.k8s.io/v1 names the same fields after its own schema.
const EVENTS_V1_EVENT: &[Selectable] = &[
    NAME,
    NAMESPACE,
    field("regarding.kind", &["/regarding/kind"]),
    field("regarding.namespace", &["/regarding/namespace"]),
    field("regarding.name", &["/regarding/name"]),
    field("regarding.uid", &["/regarding/uid"]),
    field("regarding.apiVersion", &["/regarding/apiVersion"]),
    field("regarding.resourceVersion", &["/regarding/resourceVersion"]),
    field("regarding.fieldPath", &["/regarding/fieldPath"]),
    field("reason", &["/reason"]),
    field("reportingController", &["/reportingController"]),
    field("source", &["/deprecatedSource/component", "/reportingController"]),
    field("type", &["/type"]),
];

const JOB: &[Selectable] =
    &[NAME, NAMESPACE, Selectable { label: "status.successful", pointers: &["/status/succeeded"], missing: "0" }];

const REPLICA_SET: &[Selectable] =
    &[NAME, NAMESPACE, Selectable { label: "status.replicas", pointers: &["/status/replicas"], missing: "0" }];

/// The fields a resource can be selected on, and how kube-apiserver words a refusal.
struct FieldTable {
    fields: &'static [Selectable],
    reject: fn(&str) -> String,
}

fn not_supported(field: &str) -> String {
    format!("field label not supported: {field}")
}

fn not_known(field: &str) -> String {
    format!("{field:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")
}

fn not_supported_for_job(field: &str) -> String {
    format!("field label {field:?} not supported for Job")
}

fn selectable_fields(resource: &ResourceInfo) -> FieldTable {
    let (fields, reject): (_, fn(&str) -> String) = match (resource.group, resource.kind) {
        ("", "Pod") => (POD, not_supported),
        ("", "Node") => (NODE, not_supported),
        ("", "Namespace") => (NAMESPACE_KIND, not_supported),
        ("", "Secret") => (SECRET, not_supported),
        ("", "Service") => (SERVICE, not_supported),
        ("", "Event") => (CORE_EVENT, not_supported),
        ("events.k8s.io", "Event") => (EVENTS_V1_EVENT, not_supported),
        ("batch", "Job") => (JOB, not_supported_for_job),
        // kube-apiserver's apps/v1 forgets to register this field (kubernetes#135136); its docs
        // list it, so it is served here.
        ("apps", "ReplicaSet") => (REPLICA_SET, not_known),
        // Built-in kinds without their own table get apimachinery's default: name and namespace,
        // the latter even when cluster-scoped (where it is always empty).
        (group, _) if !group.contains('.') || group.ends_with(".k8s.io") => (METADATA, not_known),
        // Wharf's own kinds are served like custom resources.
        _ if resource.namespaced => (METADATA, not_supported),
        _ => (NAME_ONLY, not_supported),
    };
    FieldTable { fields, reject }
}

/// The value of a selectable field of an object, as a string (missing → the zero value kube
/// renders: empty, `false` or `0`); None when the resource does not support selecting on it.
pub fn field_value(resource: &ResourceInfo, obj: &Value, field: &str) -> Option<String> {
    let selectable = selectable_fields(resource).fields.iter().find(|f| f.label == field)?;
    let found = selectable.pointers.iter().filter_map(|p| obj.pointer(p)).map(render).find(|v| !v.is_empty());
    Some(found.unwrap_or_else(|| selectable.missing.to_string()))
}

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::kinds::lookup;

    fn parse(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn parse_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Err(Error::BadRequest(message)) => message,
            other => panic!("{s:?} should be a bad request, got {other:?}"),
        }
    }

    fn resource(group: &str, plural: &str) -> &'static ResourceInfo {
        lookup(group, "v1", plural).unwrap()
    }

    fn fields(s: &str, plural: &str) -> FieldSelector {
        FieldSelector::parse(s, resource("", plural)).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn field_err(s: &str, group: &str, plural: &str) -> String {
        match FieldSelector::parse(s, resource(group, plural)) {
            Err(Error::BadRequest(message)) => message,
            other => panic!("{s:?} should be a bad request, got {other:?}"),
        }
    }

    const KEY_NAME_REGEX_ERROR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and \
        must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used \
        for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

    const VALUE_REGEX_ERROR: &str = "a valid label must be an empty string or consist of alphanumeric characters, \
        '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or \
        '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    #[test]
    fn equality_operators() {
        let web = json!({"app": "web", "tier": "front"});
        let db = json!({"app": "db"});
        for s in ["app=web", "app==web"] {
            assert!(parse(s).matches(Some(&web)), "{s}");
            assert!(!parse(s).matches(Some(&db)), "{s}");
            assert!(!parse(s).matches(None), "{s}");
        }
        assert_eq!(parse("app=web"), parse("app==web"));
        let not_web = parse("app!=web");
        assert!(!not_web.matches(Some(&web)));
        assert!(not_web.matches(Some(&db)));
        assert!(not_web.matches(None), "a missing label is != anything");
    }

    #[test]
    fn set_operators() {
        let in_set = parse("env in (prod,staging)");
        assert!(in_set.matches(Some(&json!({"env": "prod"}))));
        assert!(in_set.matches(Some(&json!({"env": "staging"}))));
        assert!(!in_set.matches(Some(&json!({"env": "dev"}))));
        assert!(!in_set.matches(Some(&json!({}))));

        let not_in = parse("env notin (prod)");
        assert!(!not_in.matches(Some(&json!({"env": "prod"}))));
        assert!(not_in.matches(Some(&json!({"env": "dev"}))));
        assert!(not_in.matches(Some(&json!({"other": "x"}))), "notin matches a missing label, as in Kubernetes");
        assert!(not_in.matches(None));
        assert!(not_in.matches(Some(&Value::Null)));
    }

    #[test]
    fn existence_operators() {
        let exists = parse("app");
        assert!(exists.matches(Some(&json!({"app": ""}))));
        assert!(!exists.matches(Some(&json!({"other": "x"}))));
        assert!(!exists.matches(None));

        let absent = parse("!app");
        assert!(!absent.matches(Some(&json!({"app": "web"}))));
        assert!(absent.matches(Some(&json!({"other": "x"}))));
        assert!(absent.matches(None));
    }

    #[test]
    fn numeric_comparisons() {
        let gt = parse("replicas>2");
        assert!(gt.matches(Some(&json!({"replicas": "3"}))));
        assert!(!gt.matches(Some(&json!({"replicas": "2"}))));
        assert!(!gt.matches(Some(&json!({"replicas": "many"}))));
        assert!(!gt.matches(None));
        let lt = parse("replicas<10");
        assert!(lt.matches(Some(&json!({"replicas": "-5"}))));
        assert!(!lt.matches(Some(&json!({"replicas": "12"}))));
        // The bound must also be a valid label value, so it cannot be negative.
        assert!(parse_err("a<-1").contains("values[0][a]: Invalid value: \"-1\""));
        assert_eq!(
            parse_err("a>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn requirements_are_anded() {
        let s = parse("app=web,tier in (front,back),!canary");
        assert!(s.matches(Some(&json!({"app": "web", "tier": "front"}))));
        assert!(!s.matches(Some(&json!({"app": "web", "tier": "front", "canary": "true"}))));
        assert!(!s.matches(Some(&json!({"app": "web"}))));
    }

    #[test]
    fn whitespace_is_ignored_between_tokens() {
        assert_eq!(
            parse("  app = web ,\ttier  in ( front , back ) , ! canary \n"),
            parse("app=web,tier in (front,back),!canary")
        );
        assert_eq!(parse("app notin(a)"), parse("app notin (a)"));
    }

    #[test]
    fn empty_selector_matches_everything() {
        for s in ["", "   "] {
            let selector = parse(s);
            assert!(selector.is_empty());
            assert_eq!(selector, LabelSelector::default());
            assert!(selector.matches(None));
            assert!(selector.matches(Some(&json!({"a": "b"}))));
        }
        assert!(!parse("a").is_empty());
    }

    #[test]
    fn empty_values() {
        let empty = parse("a=");
        assert!(empty.matches(Some(&json!({"a": ""}))));
        assert!(!empty.matches(Some(&json!({"a": "x"}))));
        assert_eq!(parse("a=,b"), parse("a==,b"));
        // `()` and empty list entries stand for the empty value.
        assert!(parse("a in ()").matches(Some(&json!({"a": ""}))));
        let set = parse("x in (foo,,baz),y,z notin ()");
        assert!(set.matches(Some(&json!({"x": "", "y": "1"}))));
        assert!(set.matches(Some(&json!({"x": "baz", "y": "1", "z": "q"}))));
        assert!(!set.matches(Some(&json!({"x": "bar", "y": "1"}))));
        assert!(!set.matches(Some(&json!({"x": "foo", "y": "1", "z": ""}))));
        assert_eq!(parse("a in (,x)"), parse("a in (x,)"));
    }

    #[test]
    fn keywords_are_plain_words_as_keys_and_values() {
        let s = parse("in in (notin,in),notin=in");
        assert!(s.matches(Some(&json!({"in": "notin", "notin": "in"}))));
    }

    #[test]
    fn prefixed_keys() {
        let s = parse("app.kubernetes.io/name=web,!example.com/skip");
        assert!(s.matches(Some(&json!({"app.kubernetes.io/name": "web"}))));
        assert!(!s.matches(Some(&json!({"app.kubernetes.io/name": "web", "example.com/skip": ""}))));
    }

    #[test]
    fn display_is_canonical() {
        let s = parse("b in (y,x,y),a,!c,d!=e,e==f,f notin (z),g>1,h<2");
        assert_eq!(s.to_string(), "a,b in (x,y),!c,d!=e,e=f,f notin (z),g>1,h<2");
        assert_eq!(parse(&s.to_string()), s);
        assert_eq!(parse("").to_string(), "");
    }

    #[test]
    fn syntax_errors_name_the_problem() {
        assert_eq!(parse_err("a in x"), "unable to parse requirement: found 'x' expected: '('");
        assert_eq!(parse_err("=b"), "found '=', expected: !, identifier, or 'end of string'");
        assert_eq!(parse_err("a,"), "found '', expected: identifier after ','");
        assert_eq!(parse_err("a=b=c"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(parse_err("a b"), "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt");
        assert_eq!(parse_err("!a=b"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(parse_err("!"), "unable to parse requirement: found '', expected: identifier");
        assert_eq!(parse_err("a in (x y)"), "unable to parse requirement: found 'y', expected: ',' or ')'");
        assert_eq!(parse_err("a in (x"), "unable to parse requirement: found '', expected: ',' or ')'");
        assert_eq!(parse_err("a in (=)"), "unable to parse requirement: found '=', expected: ',', ')' or identifier");
        assert_eq!(parse_err("a in (x,=)"), "unable to parse requirement: found '=', expected: ',', or identifier");
        assert_eq!(parse_err("a=(x)"), "unable to parse requirement: found '(', expected: identifier");
        assert_eq!(parse_err("a,,b"), "found ',', expected: identifier after ','");
        match LabelSelector::parse("a in x") {
            Err(e) => assert_eq!(e.code(), axum::http::StatusCode::BAD_REQUEST),
            Ok(_) => unreachable!(),
        }
    }

    #[test]
    fn invalid_keys() {
        assert_eq!(
            parse_err("-a=b"),
            format!("unable to parse requirement: Invalid value: \"-a\": {KEY_NAME_REGEX_ERROR}")
        );
        let long = "k".repeat(64);
        assert_eq!(
            parse_err(&long),
            format!(
                "unable to parse requirement: Invalid value: \"{long}\": name part must be no more than 63 characters"
            )
        );
        assert!(LabelSelector::parse(&"k".repeat(63)).is_ok());
        assert_eq!(
            parse_err("/a"),
            "unable to parse requirement: Invalid value: \"/a\": prefix part must be non-empty"
        );
        assert_eq!(
            parse_err("Example.com/a"),
            "unable to parse requirement: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 \
             subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with \
             an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            parse_err("a/"),
            format!(
                "unable to parse requirement: Invalid value: \"a/\": name part must be non-empty; {KEY_NAME_REGEX_ERROR}"
            )
        );
        assert!(parse_err("a/b/c").contains(
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
             alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
             '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. \
             'example.com/MyName')"
        ));
        assert!(parse_err("a.b..c:d").contains("name part must consist"));
        assert!(parse_err("é=x").contains("Invalid value: \"é\""));
    }

    #[test]
    fn invalid_values() {
        assert_eq!(
            parse_err("a=b@"),
            format!("unable to parse requirement: values[0][a]: Invalid value: \"b@\": {VALUE_REGEX_ERROR}")
        );
        let long = "v".repeat(64);
        assert_eq!(
            parse_err(&format!("a={long}")),
            format!(
                "unable to parse requirement: values[0][a]: Invalid value: \"{long}\": must be no more than 63 characters"
            )
        );
        let both = parse_err("a in (-x,-y)");
        assert!(both.starts_with("unable to parse requirement: [values[0][a]: Invalid value: \"-x\""), "{both}");
        assert!(both.contains(", values[1][a]: Invalid value: \"-y\""), "{both}");
        assert!(both.ends_with(']'));
    }

    #[test]
    fn from_json_match_labels() {
        let s = LabelSelector::from_json(&json!({"matchLabels": {"tier": "front", "app": "web"}})).unwrap();
        assert_eq!(s, parse("app=web,tier=front"));
        assert!(s.matches(Some(&json!({"app": "web", "tier": "front", "x": "y"}))));
        assert!(!s.matches(Some(&json!({"app": "web"}))));
    }

    #[test]
    fn from_json_each_operator() {
        let s = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "tier", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist", "values": []},
            ]
        }))
        .unwrap();
        assert_eq!(s, parse("app=web,env in (prod,staging),zone notin (b),tier,!canary"));
        assert!(s.matches(Some(&json!({"app": "web", "env": "prod", "tier": "x"}))));
        assert!(!s.matches(Some(&json!({"app": "web", "env": "prod", "tier": "x", "zone": "b"}))));
        assert!(!s.matches(Some(&json!({"app": "web", "env": "prod", "tier": "x", "canary": "1"}))));
        assert!(!s.matches(Some(&json!({"app": "web", "env": "dev", "tier": "x"}))));
    }

    #[test]
    fn from_json_empty_and_null() {
        for empty in [json!({}), json!({"matchLabels": {}, "matchExpressions": []}), json!({"matchLabels": null})] {
            let s = LabelSelector::from_json(&empty).unwrap();
            assert!(s.is_empty());
            assert!(s.matches(None));
        }
        let nothing = LabelSelector::from_json(&Value::Null).unwrap();
        assert!(!nothing.is_empty());
        assert!(!nothing.matches(None));
        assert!(!nothing.matches(Some(&json!({"a": "b"}))));
    }

    #[test]
    fn from_json_errors() {
        let err = |v: Value| match LabelSelector::from_json(&v) {
            Err(Error::BadRequest(message)) => message,
            other => panic!("{v} should be a bad request, got {other:?}"),
        };
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(err(json!({"matchExpressions": [{"key": "a"}]})), "\"\" is not a valid label selector operator");
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]})),
            "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists and does not exist"
        );
        assert_eq!(
            err(json!({"matchLabels": {"-a": "b"}})),
            format!("key: Invalid value: \"-a\": {KEY_NAME_REGEX_ERROR}")
        );
        assert_eq!(
            err(json!({"matchLabels": {"a": "b c"}})),
            format!("values[0][a]: Invalid value: \"b c\": {VALUE_REGEX_ERROR}")
        );
        let both = err(json!({"matchExpressions": [{"key": "", "operator": "NotIn"}]}));
        assert!(
            both.starts_with("[key: Invalid value: \"\": name part must be non-empty; name part must consist"),
            "{both}"
        );
        assert!(
            both.ends_with(
                "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty]"
            )
        );
        assert_eq!(err(json!("app=web")), "label selector must be an object, not a string");
        assert_eq!(err(json!({"matchLabels": {"a": 1}})), "matchLabels[\"a\"] must be a string, not a number");
        assert_eq!(err(json!({"matchLabels": ["a"]})), "matchLabels must be an object, not an array");
        assert_eq!(err(json!({"matchExpressions": {}})), "matchExpressions must be an array, not an object");
        assert_eq!(err(json!({"matchExpressions": ["a"]})), "matchExpressions[0] must be an object, not a string");
        assert_eq!(
            err(json!({"matchExpressions": [{"key": 1, "operator": "Exists"}]})),
            "matchExpressions[0].key must be a string, not a number"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [true]}]})),
            "matchExpressions[0].values must hold strings, not a boolean"
        );
    }

    #[test]
    fn non_string_label_values_equal_nothing() {
        let s = parse("a=1");
        assert!(!s.matches(Some(&json!({"a": 1}))));
        assert!(parse("a").matches(Some(&json!({"a": 1}))));
        assert!(parse("a").matches(Some(&json!({"a": null}))));
        assert!(!parse("a").matches(Some(&json!("a=b"))));
    }

    #[test]
    fn field_selector_operators() {
        let pod = json!({"metadata": {"name": "web-1", "namespace": "default"}, "status": {"phase": "Running"}});
        let pods = resource("", "pods");
        for s in ["status.phase=Running", "status.phase==Running", "status.phase!=Pending"] {
            assert!(fields(s, "pods").matches(pods, &pod), "{s}");
        }
        for s in ["status.phase=Pending", "status.phase!=Running", "metadata.name=web-1,metadata.namespace=kube-system"]
        {
            assert!(!fields(s, "pods").matches(pods, &pod), "{s}");
        }
        assert!(fields("spec.nodeName=", "pods").matches(pods, &pod), "missing reads as empty");
        assert!(fields("spec.nodeName!=node-1", "pods").matches(pods, &pod));
        assert_eq!(fields("status.phase==Running", "pods"), fields("status.phase=Running", "pods"));
    }

    #[test]
    fn empty_field_selector_matches_everything() {
        let s = fields("", "pods");
        assert!(s.is_empty());
        assert_eq!(s, FieldSelector::default());
        assert!(s.matches(resource("", "pods"), &json!({})));
        assert!(!fields(",metadata.name=a,", "pods").is_empty());
        assert_eq!(fields(",metadata.name=a,", "pods"), fields("metadata.name=a", "pods"));
    }

    #[test]
    fn field_selector_escapes() {
        let s = fields(r"metadata.name=a\,b\=c\\d,metadata.namespace=ns", "configmaps");
        let cm = resource("", "configmaps");
        assert!(s.matches(cm, &json!({"metadata": {"name": r"a,b=c\d", "namespace": "ns"}})));
        assert!(!s.matches(cm, &json!({"metadata": {"name": r"a\,b", "namespace": "ns"}})));
        assert_eq!(s.pinned_name(), Some(r"a,b=c\d"));
        assert_eq!(field_err(r"metadata.name=a\b", "", "pods"), r"invalid field selector: invalid escape sequence: \b");
        assert_eq!(field_err(r"metadata.name=a\", "", "pods"), r"invalid field selector: invalid escape sequence: \");
        assert_eq!(
            field_err("metadata.name=a=b", "", "pods"),
            "invalid field selector: unescaped character in value: '='"
        );
    }

    #[test]
    fn field_selector_syntax_errors() {
        assert_eq!(
            field_err("metadata.name", "", "pods"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            field_err("metadata.name=a,status.phase", "", "pods"),
            "invalid selector: 'metadata.name=a,status.phase'; can't understand 'status.phase'"
        );
        assert_eq!(field_err(" ", "", "pods"), "invalid selector: ' '; can't understand ' '");
    }

    #[test]
    fn unsupported_fields_are_refused_like_kube_apiserver() {
        assert_eq!(field_err("spec.foo=x", "", "pods"), "field label not supported: spec.foo");
        assert_eq!(field_err("metadata.name =x", "", "pods"), "field label not supported: metadata.name ");
        assert_eq!(field_err("=x", "", "pods"), "field label not supported: ");
        assert_eq!(field_err("metadata.namespace=x", "", "nodes"), "field label not supported: metadata.namespace");
        assert_eq!(field_err("metadata.namespace=", "", "namespaces"), "field label not supported: metadata.namespace");
        assert_eq!(
            field_err("involvedObject.kind=Pod", "events.k8s.io", "events"),
            "field label not supported: involvedObject.kind"
        );
        assert_eq!(field_err("regarding.kind=Pod", "", "events"), "field label not supported: regarding.kind");
        assert_eq!(
            field_err("spec.replicas=1", "apps", "deployments"),
            "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        assert_eq!(
            field_err("status.active=1", "batch", "jobs"),
            "field label \"status.active\" not supported for Job"
        );
        assert_eq!(field_err("spec.image=x", "wharf.dev", "functions"), "field label not supported: spec.image");
        // Several bad fields: the first in sorted order is reported.
        assert_eq!(field_err("zz=1,aa=1", "", "pods"), "field label not supported: aa");
        // Parse errors come before field checks.
        assert_eq!(
            field_err("spec.foo=x,bad", "", "pods"),
            "invalid selector: 'spec.foo=x,bad'; can't understand 'bad'"
        );
    }

    #[test]
    fn supported_fields_parse_on_each_kind() {
        let ok = |s: &str, group: &str, plural: &str| {
            FieldSelector::parse(s, resource(group, plural)).unwrap_or_else(|e| panic!("{s} on {plural}: {e}"))
        };
        ok(
            "metadata.name=a,metadata.namespace=b,spec.nodeName=n,spec.host=n,spec.restartPolicy=Always,\
             spec.schedulerName=s,spec.serviceAccountName=sa,spec.hostNetwork=false,status.phase=Running,\
             status.podIP=10.0.0.1,status.nominatedNodeName=n",
            "",
            "pods",
        );
        ok("metadata.name=a,spec.unschedulable=true", "", "nodes");
        ok("metadata.name=a,status.phase=Active", "", "namespaces");
        ok("metadata.name=a,metadata.namespace=b,type=Opaque", "", "secrets");
        ok("metadata.name=a,metadata.namespace=b,spec.clusterIP=None,spec.type=ClusterIP", "", "services");
        ok(
            "involvedObject.kind=Pod,involvedObject.namespace=a,involvedObject.name=b,involvedObject.uid=c,\
             involvedObject.apiVersion=v1,involvedObject.resourceVersion=1,involvedObject.fieldPath=d,reason=e,\
             reportingComponent=f,source=g,type=Normal,metadata.namespace=h,metadata.name=i",
            "",
            "events",
        );
        ok(
            "regarding.kind=Pod,regarding.namespace=a,regarding.name=b,regarding.uid=c,regarding.apiVersion=v1,\
             regarding.resourceVersion=1,regarding.fieldPath=d,reason=e,reportingController=f,source=g,\
             type=Normal,metadata.namespace=h,metadata.name=i",
            "events.k8s.io",
            "events",
        );
        ok("metadata.name=a,metadata.namespace=b,status.successful=1", "batch", "jobs");
        ok("metadata.name=a,metadata.namespace=b,status.replicas=0", "apps", "replicasets");
        ok("metadata.name=a,metadata.namespace=b", "apps", "deployments");
        ok("metadata.name=a,metadata.namespace=b", "wharf.dev", "functions");
        // apimachinery's default accepts metadata.namespace on cluster-scoped kinds too.
        ok("metadata.name=a,metadata.namespace=", "node.k8s.io", "runtimeclasses");
    }

    #[test]
    fn pod_field_values() {
        let pods = resource("", "pods");
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "prod"},
            "spec": {"nodeName": "node-a", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "default", "hostNetwork": true},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.7"}], "nominatedNodeName": "node-b"}
        });
        let value = |f: &str| field_value(pods, &pod, f);
        assert_eq!(value("metadata.name").as_deref(), Some("web-1"));
        assert_eq!(value("metadata.namespace").as_deref(), Some("prod"));
        assert_eq!(value("spec.nodeName").as_deref(), Some("node-a"));
        assert_eq!(value("spec.host").as_deref(), Some("node-a"));
        assert_eq!(value("spec.restartPolicy").as_deref(), Some("Always"));
        assert_eq!(value("spec.schedulerName").as_deref(), Some("default-scheduler"));
        assert_eq!(value("spec.serviceAccountName").as_deref(), Some("default"));
        assert_eq!(value("spec.hostNetwork").as_deref(), Some("true"));
        assert_eq!(value("status.phase").as_deref(), Some("Running"));
        assert_eq!(value("status.podIP").as_deref(), Some("10.1.0.7"), "falls back to podIPs[0]");
        assert_eq!(value("status.nominatedNodeName").as_deref(), Some("node-b"));
        assert_eq!(value("spec.containers"), None);
        assert_eq!(value("type"), None);

        let bare = json!({"metadata": {"name": "p"}, "status": {"podIP": "10.1.0.8"}});
        assert_eq!(field_value(pods, &bare, "spec.hostNetwork").as_deref(), Some("false"));
        assert_eq!(field_value(pods, &bare, "spec.nodeName").as_deref(), Some(""));
        assert_eq!(field_value(pods, &bare, "metadata.namespace").as_deref(), Some(""));
        assert_eq!(field_value(pods, &bare, "status.podIP").as_deref(), Some("10.1.0.8"));
        assert!(fields("spec.hostNetwork=false", "pods").matches(pods, &bare));
        assert!(fields("spec.host=node-a", "pods").matches(pods, &pod));
    }

    #[test]
    fn core_event_field_values() {
        let events = resource("", "events");
        let event = json!({
            "metadata": {"name": "web-1.17a", "namespace": "prod"},
            "involvedObject": {"kind": "Pod", "namespace": "prod", "name": "web-1", "uid": "u-1",
                               "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{web}"},
            "reason": "Started", "type": "Normal", "reportingComponent": "kubelet"
        });
        let value = |f: &str| field_value(events, &event, f);
        assert_eq!(value("involvedObject.kind").as_deref(), Some("Pod"));
        assert_eq!(value("involvedObject.namespace").as_deref(), Some("prod"));
        assert_eq!(value("involvedObject.name").as_deref(), Some("web-1"));
        assert_eq!(value("involvedObject.uid").as_deref(), Some("u-1"));
        assert_eq!(value("involvedObject.apiVersion").as_deref(), Some("v1"));
        assert_eq!(value("involvedObject.resourceVersion").as_deref(), Some("42"));
        assert_eq!(value("involvedObject.fieldPath").as_deref(), Some("spec.containers{web}"));
        assert_eq!(value("reason").as_deref(), Some("Started"));
        assert_eq!(value("type").as_deref(), Some("Normal"));
        assert_eq!(value("reportingComponent").as_deref(), Some("kubelet"));
        assert_eq!(value("source").as_deref(), Some("kubelet"), "falls back to reportingComponent");
        assert_eq!(value("regarding.kind"), None);

        let with_source = json!({"source": {"component": "scheduler"}, "reportingComponent": "kubelet"});
        assert_eq!(field_value(events, &with_source, "source").as_deref(), Some("scheduler"));
        // What `kubectl describe pod` asks for.
        let describe = FieldSelector::parse(
            "involvedObject.name=web-1,involvedObject.namespace=prod,involvedObject.uid=u-1",
            events,
        )
        .unwrap();
        assert!(describe.matches(events, &event));
    }

    #[test]
    fn events_v1_field_values() {
        let events = resource("events.k8s.io", "events");
        let event = json!({
            "metadata": {"name": "e", "namespace": "prod"},
            "regarding": {"kind": "Node", "name": "node-a", "uid": "u-2", "apiVersion": "v1"},
            "reason": "NodeReady", "type": "Normal", "reportingController": "node-controller"
        });
        let value = |f: &str| field_value(events, &event, f);
        assert_eq!(value("regarding.kind").as_deref(), Some("Node"));
        assert_eq!(value("regarding.name").as_deref(), Some("node-a"));
        assert_eq!(value("regarding.uid").as_deref(), Some("u-2"));
        assert_eq!(value("regarding.namespace").as_deref(), Some(""));
        assert_eq!(value("reason").as_deref(), Some("NodeReady"));
        assert_eq!(value("reportingController").as_deref(), Some("node-controller"));
        assert_eq!(value("source").as_deref(), Some("node-controller"));
        assert_eq!(value("type").as_deref(), Some("Normal"));
        assert_eq!(value("involvedObject.kind"), None);
        assert_eq!(value("reportingComponent"), None);
    }

    #[test]
    fn other_kinds_field_values() {
        let secrets = resource("", "secrets");
        let secret = json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls"});
        assert_eq!(field_value(secrets, &secret, "type").as_deref(), Some("kubernetes.io/tls"));
        assert!(fields("type=kubernetes.io/tls", "secrets").matches(secrets, &secret));
        assert!(!fields("type!=kubernetes.io/tls", "secrets").matches(secrets, &secret));

        let nodes = resource("", "nodes");
        assert_eq!(
            field_value(nodes, &json!({"spec": {"unschedulable": true}}), "spec.unschedulable").as_deref(),
            Some("true")
        );
        assert_eq!(field_value(nodes, &json!({"spec": {}}), "spec.unschedulable").as_deref(), Some("false"));
        assert_eq!(field_value(nodes, &json!({}), "metadata.namespace"), None);
        assert!(fields("spec.unschedulable=false", "nodes").matches(nodes, &json!({"metadata": {"name": "n"}})));

        let namespaces = resource("", "namespaces");
        let ns = json!({"metadata": {"name": "prod"}, "status": {"phase": "Terminating"}});
        assert_eq!(field_value(namespaces, &ns, "status.phase").as_deref(), Some("Terminating"));

        let services = resource("", "services");
        let svc = json!({"spec": {"clusterIP": "None", "type": "ClusterIP"}});
        assert_eq!(field_value(services, &svc, "spec.clusterIP").as_deref(), Some("None"));
        assert_eq!(field_value(services, &svc, "spec.type").as_deref(), Some("ClusterIP"));

        let jobs = resource("batch", "jobs");
        assert_eq!(field_value(jobs, &json!({"status": {"succeeded": 3}}), "status.successful").as_deref(), Some("3"));
        assert_eq!(field_value(jobs, &json!({"status": {}}), "status.successful").as_deref(), Some("0"));

        let replica_sets = resource("apps", "replicasets");
        assert_eq!(
            field_value(replica_sets, &json!({"status": {"replicas": 2}}), "status.replicas").as_deref(),
            Some("2")
        );
        assert_eq!(field_value(replica_sets, &json!({}), "status.replicas").as_deref(), Some("0"));

        let runtime_classes = resource("node.k8s.io", "runtimeclasses");
        let rc = json!({"metadata": {"name": "wasmtime"}});
        assert_eq!(field_value(runtime_classes, &rc, "metadata.namespace").as_deref(), Some(""));
        let functions = resource("wharf.dev", "functions");
        assert_eq!(field_value(functions, &rc, "metadata.name").as_deref(), Some("wasmtime"));
        assert_eq!(field_value(functions, &rc, "spec.image"), None);
    }

    #[test]
    fn pinned_name() {
        assert_eq!(fields("metadata.name=web", "pods").pinned_name(), Some("web"));
        assert_eq!(fields("metadata.name==web", "pods").pinned_name(), Some("web"));
        assert_eq!(fields("metadata.namespace=prod,metadata.name=web", "pods").pinned_name(), Some("web"));
        assert_eq!(fields("metadata.name!=x,metadata.name=web", "pods").pinned_name(), Some("web"));
        assert_eq!(fields("metadata.name!=web", "pods").pinned_name(), None);
        assert_eq!(fields("metadata.namespace=prod", "pods").pinned_name(), None);
        assert_eq!(fields("", "pods").pinned_name(), None);
    }
}
