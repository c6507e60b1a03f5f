//! OpenAPI v3: the `/openapi/v3` index and one document per served group-version, built once
//! from the registry's schemas and resource table. kubectl reads them for `explain` (schema
//! found through `x-kubernetes-group-version-kind`), for `apply`'s strategic merge patch
//! (`x-kubernetes-patch-*` on fields) and to learn that the server validates fields itself
//! (a `fieldValidation` parameter on each PATCH operation).

use std::collections::VecDeque;
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Patch;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use crate::registry::kinds::{self, RESOURCES, ResourceInfo, Subresource};
use crate::registry::patch_strategy;
use crate::registry::schema::{self, REF_PREFIX};

const GVK_EXTENSION: &str = "x-kubernetes-group-version-kind";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const BINDING: &str = "io.k8s.api.core.v1.Binding";
const TOKEN_REQUEST: &str = "io.k8s.api.authentication.v1.TokenRequest";

/// Body types of PATCH operations. kubectl apply computes its patch from these documents only
/// if the PATCH operation of the kind lists `application/strategic-merge-patch+json`; otherwise
/// it falls back to `/openapi/v2`.
pub const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// Media types objects are answered in.
const RESPONSE_TYPES: &[&str] = &["application/json", "application/yaml"];
const LIST_RESPONSE_TYPES: &[&str] = &["application/json", "application/json;stream=watch", "application/yaml"];

struct Documents {
    /// `api/v1` → (document, hash), in discovery order.
    by_path: Vec<(String, (Value, String))>,
    index: Value,
}

static DOCUMENTS: LazyLock<Documents> = LazyLock::new(|| {
    let mut by_path = Vec::new();
    let mut paths = Map::new();
    for (group, version) in kinds::group_versions() {
        let key = gv_key(group, version);
        let doc = build_document(group, version);
        let hash = hash(&doc);
        paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}));
        by_path.push((key, (doc, hash)));
    }
    Documents { by_path, index: json!({ "paths": paths }) }
});

/// Schemas of k8s-openapi types that the registry does not generate because only the OpenAPI
/// documents need them.
static EXTRA_DEFINITIONS: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let mut generator = SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<Patch>();
    generator.take_definitions(true)
});

/// The `/openapi/v3` index: `{"paths": {"api/v1": {"serverRelativeURL":
/// "/openapi/v3/api/v1?hash=HEX"}, ...}}` for every served group-version.
pub fn index() -> &'static Value {
    &DOCUMENTS.index
}

/// The document of one group-version path (`api/v1`, `apis/apps/v1`; a leading `/` is
/// ignored) and its hash, the one in the index's URL: uppercase hex SHA-512 of the document
/// serialized with `serde_json::to_vec`, as kube-apiserver computes its ETag. `None` if the
/// group-version is not served.
pub fn document(gv_path: &str) -> Option<&'static (Value, String)> {
    let gv_path = gv_path.trim_start_matches('/');
    DOCUMENTS.by_path.iter().find(|(key, _)| key == gv_path).map(|(_, doc)| doc)
}

fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

fn hash(doc: &Value) -> String {
    let bytes = serde_json::to_vec(doc).expect("a JSON value serializes");
    Sha512::digest(&bytes).iter().map(|b| format!("{b:02X}")).collect()
}

fn build_document(group: &str, version: &str) -> Value {
    let resources: Vec<&ResourceInfo> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    let mut paths = Map::new();
    let mut roots = vec![STATUS, DELETE_OPTIONS, PATCH, LIST_META];
    for r in &resources {
        add_paths(&mut paths, r);
        roots.push(r.definition);
        roots.extend(r.subresources.iter().filter_map(|s| sub_definition(r, *s)));
    }

    let mut schemas = collect_schemas(&roots);
    for r in &resources {
        let list = list_schema(r, &schemas[r.definition]);
        schemas.insert(list_name(r), list);
    }
    for (name, schema) in schemas.iter_mut() {
        let gvks = gvks_of(name);
        if gvks.is_empty() {
            continue;
        }
        let object = schema.as_object_mut().expect("definitions are objects");
        if RESOURCES.iter().any(|r| r.definition == name) {
            // k8s-openapi requires `metadata` of every resource because its Rust field is not
            // an Option; kube-apiserver does not, and `kubectl explain` would print `-required-`.
            if let Some(Value::Array(required)) = object.get_mut("required") {
                required.retain(|f| f != "metadata");
                if required.is_empty() {
                    object.remove("required");
                }
            }
        }
        object.insert(GVK_EXTENSION.into(), Value::Array(gvks));
    }
    schemas.sort_keys();

    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "authorization",
                    "description": "Bearer Token authentication",
                },
            },
        },
        "security": [{"BearerToken": []}],
    })
}

/// The `x-kubernetes-group-version-kind` list of a schema: served kinds, their lists, and the
/// shared kinds of subresources and operations.
fn gvks_of(name: &str) -> Vec<Value> {
    let gvk = |group: &str, version: &str, kind: &str| json!({"group": group, "version": version, "kind": kind});
    match name {
        STATUS => vec![gvk("", "v1", "Status")],
        SCALE => vec![gvk("autoscaling", "v1", "Scale")],
        BINDING => vec![gvk("", "v1", "Binding")],
        TOKEN_REQUEST => vec![gvk("authentication.k8s.io", "v1", "TokenRequest")],
        DELETE_OPTIONS => kinds::group_versions().into_iter().map(|(g, v)| gvk(g, v, "DeleteOptions")).collect(),
        _ => RESOURCES
            .iter()
            .filter_map(|r| {
                if r.definition == name {
                    Some(gvk(r.group, r.version, r.kind))
                } else if list_name(r) == name {
                    Some(gvk(r.group, r.version, &format!("{}List", r.kind)))
                } else {
                    None
                }
            })
            .collect(),
    }
}

/// The definition a subresource reads and writes, if it is an object.
fn sub_definition(r: &ResourceInfo, sub: Subresource) -> Option<&'static str> {
    match sub {
        Subresource::Status | Subresource::Finalize => Some(r.definition),
        Subresource::Scale => Some(SCALE),
        Subresource::Binding => Some(BINDING),
        Subresource::Log
        | Subresource::Exec
        | Subresource::PortForward
        | Subresource::Eviction
        | Subresource::Proxy => None,
        Subresource::Token => Some(TOKEN_REQUEST),
    }
}

fn list_name(r: &ResourceInfo) -> String {
    format!("{}List", r.definition)
}

/// k8s-openapi has no schema for its `List<T>`: derive `FooList` from the kind's own schema and
/// `ListMeta`, as kube-apiserver does for custom resources.
fn list_schema(r: &ResourceInfo, kind_schema: &Value) -> Value {
    let mut properties = Map::new();
    if let Some(api_version) = kind_schema.pointer("/properties/apiVersion") {
        properties.insert("apiVersion".into(), api_version.clone());
    }
    properties.insert(
        "items".into(),
        json!({
            "description": format!("List of {}.", r.plural),
            "type": "array",
            "items": {"$ref": format!("{REF_PREFIX}{}", r.definition)},
        }),
    );
    if let Some(kind) = kind_schema.pointer("/properties/kind") {
        properties.insert("kind".into(), kind.clone());
    }
    properties.insert(
        "metadata".into(),
        json!({"description": "Standard list metadata.", "allOf": [{"$ref": format!("{REF_PREFIX}{LIST_META}")}]}),
    );
    json!({
        "description": format!("{}List is a list of {}.", r.kind, r.kind),
        "type": "object",
        "properties": properties,
        "required": ["items"],
    })
}

/// Every definition reachable from `roots` through `$ref`, normalised and with the patch
/// strategies of its fields.
fn collect_schemas(roots: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    let mut queue: VecDeque<String> = roots.iter().map(|s| s.to_string()).collect();
    while let Some(name) = queue.pop_front() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(source) = schema::definition(&name).or_else(|| EXTRA_DEFINITIONS.get(&name)) else {
            continue;
        };
        let mut schema = source.clone();
        normalise(&mut schema);
        add_patch_strategies(&name, &mut schema);
        visit_refs(&schema, &mut |target| {
            if !out.contains_key(target) {
                queue.push_back(target.to_string());
            }
        });
        out.insert(name, schema);
    }
    out
}

fn add_patch_strategies(definition: &str, schema: &mut Value) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else { return };
    for (field, property) in properties.iter_mut() {
        let Some(strategy) = patch_strategy::for_field(definition, field) else { continue };
        let Value::Object(property) = property else { continue };
        property.insert("x-kubernetes-patch-strategy".into(), strategy.strategy.into());
        if let Some(key) = strategy.merge_key {
            property.insert("x-kubernetes-patch-merge-key".into(), key.into());
        }
    }
}

/// Calls `f` with every subschema directly under `schema` (not with data such as `default`).
fn for_each_subschema_mut(schema: &mut Value, f: &mut impl FnMut(&mut Value)) {
    let Value::Object(map) = schema else { return };
    for (key, value) in map.iter_mut() {
        match (key.as_str(), value) {
            ("properties" | "patternProperties", Value::Object(props)) => props.values_mut().for_each(&mut *f),
            ("allOf" | "anyOf" | "oneOf" | "items", Value::Array(list)) => list.iter_mut().for_each(&mut *f),
            ("items" | "additionalProperties" | "not", value @ Value::Object(_)) => f(value),
            _ => {}
        }
    }
}

fn for_each_subschema(schema: &Value, f: &mut impl FnMut(&Value)) {
    let Value::Object(map) = schema else { return };
    for (key, value) in map {
        match (key.as_str(), value) {
            ("properties" | "patternProperties", Value::Object(props)) => props.values().for_each(&mut *f),
            ("allOf" | "anyOf" | "oneOf" | "items", Value::Array(list)) => list.iter().for_each(&mut *f),
            ("items" | "additionalProperties" | "not", value @ Value::Object(_)) => f(value),
            _ => {}
        }
    }
}

/// Calls `f` with the definition name of every `$ref` in `schema`.
fn visit_refs(schema: &Value, f: &mut impl FnMut(&str)) {
    if let Some(target) = schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(REF_PREFIX)) {
        f(target);
    }
    for_each_subschema(schema, &mut |sub| visit_refs(sub, f));
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
        || schema.get("enum").and_then(Value::as_array).is_some_and(|e| e.len() == 1 && e[0].is_null())
}

/// Rewrites what schemars emits for `Option<T>` into the shape of kube-openapi's documents:
/// `anyOf: [T, null]` becomes `allOf: [T]` (or T inline), and `nullable` / `"type": [x, "null"]`
/// disappear. kubectl's `explain` templates and strategic-merge-patch lookup only follow
/// `allOf` and `$ref`, and print `type` as a string.
fn normalise(schema: &mut Value) {
    if let Value::Object(map) = schema {
        if let Some(Value::Array(any)) = map.get("anyOf") {
            let mut rest: Vec<Value> = any.iter().filter(|s| !is_null_schema(s)).cloned().collect();
            if rest.len() == 1 && any.len() > 1 {
                map.remove("anyOf");
                let inner = rest.remove(0);
                if inner.get("$ref").is_some() {
                    map.insert("allOf".into(), Value::Array(vec![inner]));
                } else if let Value::Object(inner) = inner {
                    for (k, v) in inner {
                        map.entry(k).or_insert(v);
                    }
                }
            }
        }
        if map.get("nullable") == Some(&Value::Bool(true)) {
            map.remove("nullable");
        }
        if let Some(Value::Array(types)) = map.get("type") {
            let types: Vec<Value> = types.iter().filter(|t| t.as_str() != Some("null")).cloned().collect();
            if types.len() == 1 {
                map.insert("type".into(), types[0].clone());
            }
        }
    }
    for_each_subschema_mut(schema, &mut normalise);
}

fn add_paths(paths: &mut Map<String, Value>, r: &'static ResourceInfo) {
    let base = r.gv_path();
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let collection = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{base}/{}", r.plural)
    };
    let item = format!("{collection}/{{name}}");
    let ctx = Ctx { r, names: names(r.group, r.version) };
    let kind_gvk = (r.group, r.version, r.kind);
    let namespace_param =
        || param("namespace", "path", "string", "object name and auth scope, such as for teams and projects");
    let name_param = |kind: &str| param("name", "path", "string", &format!("name of the {kind}"));

    let id = format!("{scope}{}", r.kind);
    let mut coll_params = Vec::new();
    if r.namespaced {
        coll_params.push(namespace_param());
    }
    coll_params.push(pretty());
    if r.is_review() {
        let post = ctx.write("create", &id, &format!("create a {}", r.kind), r.definition, kind_gvk);
        paths.insert(collection, json!({"parameters": coll_params, "post": post}));
        return;
    }
    paths.insert(
        collection,
        json!({
            "parameters": coll_params,
            "get": ctx.list(&id, kind_gvk),
            "post": ctx.write("create", &id, &format!("create a {}", r.kind), r.definition, kind_gvk),
            "delete": ctx.delete_collection(&id),
        }),
    );

    let mut item_params = vec![name_param(r.kind)];
    if r.namespaced {
        item_params.push(namespace_param());
    }
    item_params.push(pretty());
    paths.insert(
        item.clone(),
        json!({
            "parameters": item_params,
            "get": ctx.read(&id, &format!("read the specified {}", r.kind), r.definition, kind_gvk),
            "put": ctx.write("replace", &id, &format!("replace the specified {}", r.kind), r.definition, kind_gvk),
            "patch": ctx.patch(&id, &format!("partially update the specified {}", r.kind), r.definition, kind_gvk),
            "delete": ctx.delete(&id),
        }),
    );

    if r.namespaced {
        paths.insert(
            format!("{base}/{}", r.plural),
            json!({"parameters": [pretty()], "get": ctx.list(&format!("{}ForAllNamespaces", r.kind), kind_gvk)}),
        );
    }

    for sub in r.subresources {
        let sub_name = sub.name();
        let id = format!("{scope}{}{}", r.kind, capitalize(sub_name));
        let gvk = sub.gvk(r);
        let mut path = Map::new();
        let mut params = vec![name_param(if *sub == Subresource::Binding { gvk.2 } else { r.kind })];
        if r.namespaced {
            params.push(namespace_param());
        }
        params.push(pretty());
        path.insert("parameters".into(), Value::Array(params));
        let definition = sub_definition(r, *sub);
        for verb in sub.verbs() {
            let what = format!("{sub_name} of the specified {}", r.kind);
            let (method, op) = match (*verb, definition) {
                ("get", Some(def)) => ("get", ctx.read(&id, &format!("read {what}"), def, gvk)),
                ("get", None) => ("get", ctx.read_text(&id, &format!("read {what}"), gvk)),
                ("update", Some(def)) => ("put", ctx.write("replace", &id, &format!("replace {what}"), def, gvk)),
                ("patch", Some(def)) => ("patch", ctx.patch(&id, &format!("partially update {what}"), def, gvk)),
                ("create", Some(def)) => {
                    ("post", ctx.write("create", &id, &format!("create {sub_name} of a {}", r.kind), def, gvk))
                }
                _ => continue,
            };
            path.insert(method.into(), op);
        }
        paths.insert(format!("{item}/{sub_name}"), Value::Object(path));
    }
}

/// Operation-id and tag spellings of a group-version: `CoreV1` / `core_v1`, `AppsV1` /
/// `apps_v1`, `WharfDevV1` / `wharfDev_v1`.
struct Names {
    id: String,
    tag: String,
}

fn names(group: &str, version: &str) -> Names {
    let group = if group.is_empty() { "core" } else { group.strip_suffix(".k8s.io").unwrap_or(group) };
    let camel: String = group.split(['.', '-']).map(capitalize).collect();
    let mut lower = camel.clone();
    if let Some(first) = lower.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    Names { id: format!("{camel}{}", capitalize(version)), tag: format!("{lower}_{version}") }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn param(name: &str, location: &str, ty: &str, description: &str) -> Value {
    let mut p = json!({"name": name, "in": location, "description": description, "schema": {"type": ty}});
    if location == "path" {
        p["required"] = Value::Bool(true);
    }
    p
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    param(name, "query", ty, description)
}

fn pretty() -> Value {
    query("pretty", "string", "If 'true', then the output is pretty printed.")
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
    )
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut params = vec![
        dry_run(),
        query(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) \
             containing unknown or duplicate fields. Valid values are: - Ignore: unknown fields are dropped and \
             the last of duplicate fields wins. - Warn: as Ignore, with a warning header for each unknown or \
             duplicate field. This is the default. - Strict: the request fails with a BadRequest error listing \
             every unknown and duplicate field.",
        ),
    ];
    if patch {
        params.push(query(
            "force",
            "boolean",
            "Force is going to \"force\" Apply requests: the caller re-acquires fields owned by other managers.",
        ));
    }
    params
}

fn list_params() -> Vec<Value> {
    vec![
        query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        query("continue", "string", "The continue token of a previous paginated list call."),
        query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
        query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
        query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "With watch=true, start the watch stream with synthetic events for the current objects.",
        ),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of notifications.",
        ),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
        query("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy."),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
        ),
    ]
}

fn log_params() -> Vec<Value> {
    vec![
        query(
            "container",
            "string",
            "The container for which to stream logs. Defaults to only container if there is one container in the pod.",
        ),
        query("follow", "boolean", "Follow the log stream of the pod."),
        query("insecureSkipTLSVerifyBackend", "boolean", "Do not verify the serving certificate of the backend."),
        query(
            "limitBytes",
            "integer",
            "If set, the number of bytes to read from the server before terminating the log output.",
        ),
        query("previous", "boolean", "Return previous terminated container logs."),
        query("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show logs."),
        query("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
        query(
            "timestamps",
            "boolean",
            "If true, add an RFC3339 timestamp at the beginning of every line of log output.",
        ),
    ]
}

fn schema_ref(definition: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{definition}")})
}

fn content(types: &[&str], schema: &Value) -> Value {
    Value::Object(types.iter().map(|t| (t.to_string(), json!({"schema": schema}))).collect())
}

fn responses(codes: &[(&str, &str)], types: &[&str], schema: &Value) -> Value {
    let mut out = Map::new();
    for (code, description) in codes {
        out.insert(code.to_string(), json!({"description": description, "content": content(types, schema)}));
    }
    out.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

struct Ctx {
    r: &'static ResourceInfo,
    names: Names,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    fn operation(
        &self,
        action: &str,
        verb: &str,
        id: &str,
        description: &str,
        gvk: (&str, &str, &str),
        parameters: Vec<Value>,
        body: Option<Value>,
        responses: Value,
    ) -> Value {
        let mut op = json!({
            "description": description,
            "operationId": format!("{verb}{}{id}", self.names.id),
            "tags": [self.names.tag],
        });
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        if let Some(body) = body {
            op["requestBody"] = body;
        }
        op["responses"] = responses;
        op["x-kubernetes-action"] = action.into();
        op["x-kubernetes-group-version-kind"] = json!({"group": gvk.0, "version": gvk.1, "kind": gvk.2});
        op
    }

    fn read(&self, id: &str, description: &str, definition: &str, gvk: (&str, &str, &str)) -> Value {
        let ok = responses(&[("200", "OK")], RESPONSE_TYPES, &schema_ref(definition));
        self.operation("get", "read", id, description, gvk, vec![], None, ok)
    }

    fn read_text(&self, id: &str, description: &str, gvk: (&str, &str, &str)) -> Value {
        let ok = responses(
            &[("200", "OK")],
            &["text/plain", "application/json", "application/yaml"],
            &json!({"type": "string"}),
        );
        self.operation("get", "read", id, description, gvk, log_params(), None, ok)
    }

    fn list(&self, id: &str, gvk: (&str, &str, &str)) -> Value {
        let ok = responses(&[("200", "OK")], LIST_RESPONSE_TYPES, &schema_ref(&list_name(self.r)));
        let description = format!("list or watch objects of kind {}", self.r.kind);
        self.operation("list", "list", id, &description, gvk, list_params(), None, ok)
    }

    /// `create` (POST) or `replace` (PUT).
    fn write(&self, verb: &str, id: &str, description: &str, definition: &str, gvk: (&str, &str, &str)) -> Value {
        let action = if verb == "create" { "post" } else { "put" };
        let schema = schema_ref(definition);
        let body = json!({"required": true, "content": content(&["*/*"], &schema)});
        let codes: &[(&str, &str)] = if action == "post" {
            &[("200", "OK"), ("201", "Created"), ("202", "Accepted")]
        } else {
            &[("200", "OK"), ("201", "Created")]
        };
        let ok = responses(codes, RESPONSE_TYPES, &schema);
        self.operation(action, verb, id, description, gvk, write_params(false), Some(body), ok)
    }

    fn patch(&self, id: &str, description: &str, definition: &str, gvk: (&str, &str, &str)) -> Value {
        let body = json!({"required": true, "content": content(PATCH_CONTENT_TYPES, &schema_ref(PATCH))});
        let ok = responses(&[("200", "OK"), ("201", "Created")], RESPONSE_TYPES, &schema_ref(definition));
        self.operation("patch", "patch", id, description, gvk, write_params(true), Some(body), ok)
    }

    fn delete(&self, id: &str) -> Value {
        let body = json!({"content": content(&["*/*"], &schema_ref(DELETE_OPTIONS))});
        let ok = responses(&[("200", "OK"), ("202", "Accepted")], RESPONSE_TYPES, &schema_ref(STATUS));
        let description = format!("delete a {}", self.r.kind);
        let gvk = (self.r.group, self.r.version, self.r.kind);
        self.operation("delete", "delete", id, &description, gvk, delete_params(), Some(body), ok)
    }

    fn delete_collection(&self, id: &str) -> Value {
        let body = json!({"content": content(&["*/*"], &schema_ref(DELETE_OPTIONS))});
        let ok = responses(&[("200", "OK")], RESPONSE_TYPES, &schema_ref(STATUS));
        let description = format!("delete collection of {}", self.r.kind);
        let gvk = (self.r.group, self.r.version, self.r.kind);
        let mut params = delete_params();
        params.extend(list_params().into_iter().filter(|p| p["name"] != "allowWatchBookmarks" && p["name"] != "watch"));
        params.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        self.operation(
            "deletecollection",
            "delete",
            &format!("Collection{id}"),
            &description,
            gvk,
            params,
            Some(body),
            ok,
        )
    }
}

/// `/openapi/v2`, which kubectl reads (as gnostic protobuf) only to validate kinds missing from
/// the v3 documents. An empty Swagger 2.0 document lets it skip to its usual "no matches for
/// kind" error instead of failing on a download.
pub fn v2_empty_document() -> Vec<u8> {
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let info = [field(1, b"Kubernetes"), field(2, b"v1.33.0")].concat();
    [field(1, b"2.0"), field(2, &info)].concat()
}

/// The media type [`v2_empty_document`] is sent with, as kube-openapi does (the protobuf media
/// type itself has an `@`, which Go's MIME parser refuses).
pub const V2_PROTOBUF: &str = "application/octet-stream";

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str) -> &'static Value {
        &document(path).unwrap_or_else(|| panic!("no document for {path}")).0
    }

    #[test]
    fn index_lists_every_group_version_and_its_urls_resolve() {
        let paths = index()["paths"].as_object().unwrap();
        assert_eq!(paths.len(), kinds::group_versions().len());
        for (group, version) in kinds::group_versions() {
            let key = gv_key(group, version);
            let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
            let (path, hash) = url.split_once("?hash=").unwrap();
            assert_eq!(path, format!("/openapi/v3/{key}"));
            let (served, served_hash) = document(path.strip_prefix("/openapi/v3/").unwrap()).unwrap();
            assert_eq!(hash, served_hash);
            assert_eq!(hash.len(), 128);
            assert_eq!(hash, super::hash(served), "hash is of the served bytes");
            assert_eq!(served["openapi"], "3.0.0");
        }
        assert!(document("apis/nope/v1").is_none());
        assert!(document("/api/v1").is_some());
    }

    #[test]
    fn pod_patch_lists_field_validation_and_strategic_merge_patch() {
        let pod = &doc("api/v1")["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
        let patch = &pod["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let params = patch["parameters"].as_array().unwrap();
        assert!(params.iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
        assert_eq!(
            pod["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Pod"
        );
        assert!(
            pod["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "namespace" && p["required"] == true)
        );
    }

    #[test]
    fn every_patch_operation_lists_field_validation() {
        for (key, (doc, _)) in &DOCUMENTS.by_path {
            for (path, item) in doc["paths"].as_object().unwrap() {
                for method in ["post", "put", "patch"] {
                    if let Some(op) = item.get(method) {
                        let ok = op["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation");
                        assert!(ok, "{key} {method} {path} lacks fieldValidation");
                    }
                }
                for op in item.as_object().unwrap().iter().filter(|(m, _)| *m != "parameters").map(|(_, op)| op) {
                    assert!(op["x-kubernetes-action"].is_string(), "{path}");
                    assert!(op["x-kubernetes-group-version-kind"]["kind"].is_string(), "{path}");
                }
            }
        }
    }

    #[test]
    fn paths_cover_collections_items_all_namespaces_and_subresources() {
        let core = doc("api/v1")["paths"].as_object().unwrap();
        for path in [
            "/api/v1/namespaces",
            "/api/v1/namespaces/{name}",
            "/api/v1/namespaces/{name}/status",
            "/api/v1/namespaces/{name}/finalize",
            "/api/v1/namespaces/{namespace}/pods",
            "/api/v1/pods",
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            "/api/v1/namespaces/{namespace}/pods/{name}/binding",
            "/api/v1/nodes/{name}",
        ] {
            assert!(core.contains_key(path), "missing {path}");
        }
        assert!(!core.contains_key("/api/v1/nodes/{name}/log"));
        let finalize = core["/api/v1/namespaces/{name}/finalize"].as_object().unwrap();
        assert_eq!(finalize.keys().collect::<Vec<_>>(), ["parameters", "put"]);
        assert_eq!(finalize["put"]["operationId"], "replaceCoreV1NamespaceFinalize");
        let binding = &core["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"];
        assert_eq!(binding["x-kubernetes-group-version-kind"]["kind"], "Binding");
        assert_eq!(
            binding["requestBody"]["content"]["*/*"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Binding"
        );
        let log = &core["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"];
        assert_eq!(log["responses"]["200"]["content"]["text/plain"]["schema"]["type"], "string");
        let list = &core["/api/v1/pods"]["get"];
        assert_eq!(list["x-kubernetes-action"], "list");
        assert_eq!(list["operationId"], "listCoreV1PodForAllNamespaces");
        assert!(list["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "watch"));
    }

    #[test]
    fn kinds_carry_their_gvk_and_lists_exist() {
        let schemas = &doc("api/v1")["components"]["schemas"];
        assert_eq!(
            schemas["io.k8s.api.core.v1.Pod"][GVK_EXTENSION],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        assert!(schemas["io.k8s.api.core.v1.Pod"].get("required").is_none(), "metadata is not required");
        assert_eq!(schemas["io.k8s.api.core.v1.PodList"][GVK_EXTENSION][0]["kind"], "PodList");
        assert_eq!(schemas[STATUS][GVK_EXTENSION], json!([{"group": "", "version": "v1", "kind": "Status"}]));
        assert!(schemas[DELETE_OPTIONS].is_object());
        assert!(schemas[PATCH].is_object());
        for r in RESOURCES {
            let (doc, _) = document(&gv_key(r.group, r.version)).unwrap();
            let gvks = doc["components"]["schemas"][r.definition][GVK_EXTENSION].as_array().unwrap();
            assert_eq!(gvks, &vec![json!({"group": r.group, "version": r.version, "kind": r.kind})], "{}", r.kind);
        }
    }

    #[test]
    fn fields_carry_patch_strategies_and_keep_descriptions_and_required() {
        let schemas = &doc("api/v1")["components"]["schemas"];
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert!(containers["description"].as_str().unwrap().starts_with("List of containers"));
        let volumes = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
        assert!(schemas["io.k8s.api.core.v1.PodSpec"]["required"].as_array().unwrap().contains(&json!("containers")));
        assert!(schemas["io.k8s.api.core.v1.Container"]["required"].as_array().unwrap().contains(&json!("name")));
        let finalizers = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"];
        assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
        assert!(finalizers.get("x-kubernetes-patch-merge-key").is_none());
        let strategy = &doc("apis/apps/v1")["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]
            ["strategy"];
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    }

    #[test]
    fn every_ref_resolves_within_its_document() {
        for (key, (doc, _)) in &DOCUMENTS.by_path {
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            let mut refs = Vec::new();
            collect_all_refs(doc, &mut refs);
            assert!(!refs.is_empty());
            for r in refs {
                let name = r.strip_prefix(REF_PREFIX).unwrap_or_else(|| panic!("{key}: foreign $ref {r}"));
                assert!(schemas.contains_key(name), "{key}: dangling $ref {r}");
            }
        }
    }

    fn collect_all_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| collect_all_refs(v, out));
            }
            Value::Array(list) => list.iter().for_each(|v| collect_all_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn schemas_are_openapi_3_0_without_null_unions() {
        fn check(schema: &Value, at: &str) {
            assert!(schema.get("anyOf").is_none() && schema.get("nullable").is_none(), "{at}: {schema}");
            if let Some(ty) = schema.get("type") {
                assert!(ty.is_string() && ty != "null", "{at}: type {ty}");
            }
            for_each_subschema(schema, &mut |sub| check(sub, at));
        }
        for (key, (doc, _)) in &DOCUMENTS.by_path {
            for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
                check(schema, &format!("{key} {name}"));
            }
        }
    }

    #[test]
    fn apps_scale_subresource_speaks_autoscaling_scale() {
        let apps = doc("apis/apps/v1");
        let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        for method in ["get", "put", "patch"] {
            assert_eq!(
                scale[method]["x-kubernetes-group-version-kind"],
                json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
            );
        }
        assert_eq!(
            scale["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            format!("{REF_PREFIX}{SCALE}")
        );
        assert_eq!(
            apps["components"]["schemas"][SCALE][GVK_EXTENSION],
            json!([{"group": "autoscaling", "version": "v1", "kind": "Scale"}])
        );
        assert_eq!(scale["patch"]["operationId"], "patchAppsV1NamespacedDeploymentScale");
        assert!(apps["paths"].get("/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}/scale").is_none());
        // Pod templates are reachable, Pods are not.
        assert!(apps["components"]["schemas"]["io.k8s.api.core.v1.PodTemplateSpec"].is_object());
        assert!(apps["components"]["schemas"].get("io.k8s.api.core.v1.Pod").is_none());
    }

    #[test]
    fn wharf_document_serves_function() {
        let wharf = doc("apis/wharf.dev/v1");
        let function = &wharf["components"]["schemas"]["dev.wharf.v1.Function"];
        assert_eq!(function[GVK_EXTENSION], json!([{"group": "wharf.dev", "version": "v1", "kind": "Function"}]));
        // `Option<FunctionRoute>` reads as kube-openapi writes a reference.
        let route = &wharf["components"]["schemas"]["dev.wharf.v1.FunctionSpec"]["properties"]["route"];
        assert_eq!(route["allOf"][0]["$ref"], "#/components/schemas/dev.wharf.v1.FunctionRoute");
        assert!(route["description"].is_string());
        let patch = &wharf["paths"]["/apis/wharf.dev/v1/namespaces/{namespace}/functions/{name}"]["patch"];
        assert_eq!(patch["operationId"], "patchWharfDevV1NamespacedFunction");
        assert_eq!(patch["tags"], json!(["wharfDev_v1"]));
    }

    #[test]
    fn names_follow_kube_conventions() {
        assert_eq!(names("", "v1").id, "CoreV1");
        assert_eq!(names("coordination.k8s.io", "v1").tag, "coordination_v1");
        assert_eq!(names("wharf.dev", "v1").id, "WharfDevV1");
    }
}
