//! The verbs on resources: get, list, create, update, patch, delete, deletecollection, and the
//! status, scale, binding, finalize and log subresources. Each write runs admission (server
//! fields, defaults, validation) and is retried on a lost compare-and-swap, as kube-apiserver's
//! GuaranteedUpdate does, unless the client asked for a specific resourceVersion.

use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use super::ApiState;
use super::admission;
use super::output;
use super::patch;
use super::request::{self, FieldValidation, Output, Query, Target};
use crate::auth::User;
use crate::error::{Error, Result};
use crate::registry::kinds::{ResourceInfo, Subresource};
use crate::registry::selector::{FieldSelector, LabelSelector};
use crate::registry::{defaults, fields, schema, service_alloc, strategy, validation};
use crate::store::{ObjectKey, Stored, Write, WriteError};

/// How many times a write is retried after losing a compare-and-swap race.
const MAX_ATTEMPTS: usize = 16;

pub async fn handle(
    state: &ApiState,
    user: &User,
    method: &Method,
    target: Target,
    query: Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let output = request::output(headers, &query)?;
    let sub = target.subresource;
    if target.resource.is_review() && !(method == Method::POST && target.name.is_none()) {
        return Err(Error::MethodNotAllowed);
    }
    match (method.as_str(), target.name.is_some(), sub) {
        ("GET", false, None) if query.flag("watch") => super::watch::serve(state, &target, &query, output),
        ("GET", false, None) => list(state, &target, &query, output),
        ("GET", true, None | Some(Subresource::Status)) => get(state, &target, output),
        ("GET", true, Some(Subresource::Scale)) => {
            let stored = current(state, &target)?;
            Ok(output::json(StatusCode::OK, &to_scale(target.resource, &stored.object)?, &[]))
        }
        ("GET", true, Some(Subresource::Log)) => super::logs::pod_log(state, &target, &query).await,
        ("POST", false, None) if target.resource.is_review() => {
            super::reviews::create(state, user, &target, &query, headers, &body).await
        }
        ("POST", false, None) => create(state, user, &target, &query, headers, &body, output).await,
        ("POST", true, Some(Subresource::Token)) => {
            super::token_request::create(state, user, &target, &query, headers, &body).await
        }
        ("POST", true, Some(Subresource::Binding)) => bind(state, &target, &query, headers, &body).await,
        ("POST", true, Some(Subresource::Eviction)) => {
            super::eviction::evict(state, user, &target, &query, headers, &body).await
        }
        ("PUT", true, _) if updatable(sub) => {
            let body = decoded(state, &target, &query, headers, &body)?;
            let precondition = resource_version(&body.object)?;
            let edit = Edit { user, output, warnings: body.warnings, precondition };
            write_back(state, &target, &query, edit, move |_| Ok(body.object.clone())).await
        }
        ("PATCH", true, _) if updatable(sub) => patch(state, user, &target, &query, headers, &body, output).await,
        ("DELETE", true, None) => delete(state, user, &target, &query, headers, &body, output).await,
        ("DELETE", false, None) => delete_collection(state, user, &target, &query, headers, &body).await,
        _ => Err(Error::MethodNotAllowed),
    }
}

/// Whether PUT and PATCH apply to the object or this subresource of it.
fn updatable(sub: Option<Subresource>) -> bool {
    matches!(sub, None | Some(Subresource::Status | Subresource::Scale | Subresource::Finalize))
}

fn key(target: &Target, name: &str) -> ObjectKey {
    ObjectKey::new(target.resource.storage_key(), target.namespace.clone().unwrap_or_default(), name)
}

fn not_found(resource: &ResourceInfo, name: &str) -> Error {
    Error::NotFound { group: resource.group.into(), kind: resource.plural.into(), name: name.into() }
}

fn current(state: &ApiState, target: &Target) -> Result<Arc<Stored>> {
    let name = target.name.as_deref().unwrap_or_default();
    state.store.get(&key(target, name)).ok_or_else(|| not_found(target.resource, name))
}

fn write_error(resource: &ResourceInfo, name: &str, e: WriteError) -> Error {
    let (group, kind, name) = (resource.group.to_string(), resource.plural.to_string(), name.to_string());
    match e {
        WriteError::AlreadyExists => Error::AlreadyExists { group, kind, name },
        WriteError::NotFound => Error::NotFound { group, kind, name },
        WriteError::Conflict => Error::Conflict {
            group,
            kind,
            name,
            message: "the object has been modified; please apply your changes to the latest version and try again"
                .into(),
        },
        WriteError::Fenced(message) => Error::Conflict { group, kind, name, message },
        WriteError::Failed(message) => Error::Internal(message),
    }
}

fn invalid(resource: &ResourceInfo, obj: &Value, causes: Vec<crate::Cause>) -> Error {
    Error::Invalid {
        group: resource.group.into(),
        kind: resource.kind.into(),
        name: obj["metadata"]["name"].as_str().unwrap_or_default().into(),
        causes,
    }
}

/// The resourceVersion a body pins, if any.
fn resource_version(obj: &Value) -> Result<Option<i64>> {
    match obj["metadata"]["resourceVersion"].as_str().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(rv) => rv
            .parse::<i64>()
            .map(Some)
            .map_err(|_| Error::BadRequest(format!("invalid resourceVersion {rv:?}: must be a revision number"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Reads

fn get(state: &ApiState, target: &Target, output: Output) -> Result<Response> {
    let stored = current(state, target)?;
    Ok(output::object(target.resource, StatusCode::OK, &stored.object, Some(stored.json()), output, &[]))
}

/// Label and field selectors of a list, watch or deletecollection.
pub(super) struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub(super) fn from_query(resource: &ResourceInfo, query: &Query) -> Result<Self> {
        Ok(Self {
            labels: query.get("labelSelector").map(LabelSelector::parse).transpose()?.unwrap_or_default(),
            fields: query
                .get("fieldSelector")
                .map(|s| FieldSelector::parse(s, resource))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    pub(super) fn matches(&self, resource: &ResourceInfo, obj: &Value) -> bool {
        self.labels.matches(obj["metadata"].get("labels")) && self.fields.matches(resource, obj)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: i64,
    namespace: String,
    name: String,
}

fn list(state: &ApiState, target: &Target, query: &Query, output: Output) -> Result<Response> {
    let resource = target.resource;
    let filter = Filter::from_query(resource, query)?;
    let limit = query.number("limit")?.unwrap_or(0).max(0) as usize;
    let start = match query.get("continue") {
        None => None,
        Some(token) => {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .map_err(|_| Error::BadRequest("invalid continue token".into()))?;
            let token: Continue =
                serde_json::from_slice(&bytes).map_err(|_| Error::BadRequest("invalid continue token".into()))?;
            Some((token.namespace, token.name))
        }
    };
    let page = state.store.list(&resource.storage_key(), target.namespace.as_deref(), start, limit, |stored| {
        filter.matches(resource, &stored.object)
    });
    let mut meta = json!({"resourceVersion": page.rev.to_string()});
    if let Some((namespace, name)) = page.next {
        let token = serde_json::to_vec(&Continue { rv: page.rev, namespace, name }).expect("JSON serializes");
        meta["continue"] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token).into();
        meta["remainingItemCount"] = page.remaining.into();
    }
    Ok(match output {
        Output::Table(include) => output::json(
            StatusCode::OK,
            &output::table(resource, page.items.iter().map(|s| &s.object), include, meta, true),
            &[],
        ),
        Output::Json => output::json_bytes(
            StatusCode::OK,
            output::list_bytes(resource, &meta, page.items.iter().map(|s| s.json())),
            &[],
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Writes

/// A decoded body that passed the type and field checks, with warnings to send back.
pub(super) struct Decoded {
    pub(super) object: Value,
    pub(super) warnings: Vec<String>,
}

/// The type a body sent to `target` must have: the resource's own, or its subresource's.
struct BodyType {
    /// The OpenAPI definition, for the field checks.
    definition: &'static str,
    api_version: String,
    version: &'static str,
    kind: &'static str,
}

impl BodyType {
    fn of(target: &Target) -> BodyType {
        let (definition, group, version, kind) = match target.subresource {
            Some(Subresource::Scale) => ("io.k8s.api.autoscaling.v1.Scale", "autoscaling", "v1", "Scale"),
            Some(Subresource::Binding) => ("io.k8s.api.core.v1.Binding", "", "v1", "Binding"),
            Some(Subresource::Eviction) => ("io.k8s.api.policy.v1.Eviction", "policy", "v1", "Eviction"),
            _ => (target.resource.definition, target.resource.group, target.resource.version, target.resource.kind),
        };
        let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        BodyType { definition, api_version, version, kind }
    }

    /// Fills a missing apiVersion/kind, and rejects a body of another type (or whose apiVersion
    /// or kind is no string) or one that does not decode as the type every reader uses (a Pod
    /// whose `spec` is a string, a Deployment with `spec.paused: "yes"`), as kube-apiserver's
    /// decoding does: such a body never reaches admission, validation or the store.
    fn check(&self, object: &mut Value) -> Result<()> {
        if !object.is_object() {
            return Err(Error::BadRequest("the object must be a JSON or YAML object".into()));
        }
        for (field, expected, what) in
            [("apiVersion", self.api_version.as_str(), "API version"), ("kind", self.kind, "kind")]
        {
            match object.get(field) {
                None | Some(Value::Null) => object[field] = expected.into(),
                Some(Value::String(v)) if v == expected => {}
                Some(Value::String(v)) => {
                    return Err(Error::BadRequest(format!(
                        "the {what} in the data ({v}) does not match the expected {what} ({expected})"
                    )));
                }
                Some(other) => {
                    return Err(Error::BadRequest(format!("{field} must be a string, not {other}")));
                }
            }
        }
        if self.definition == "io.k8s.api.core.v1.Secret" {
            unwrap_secret_data(object);
        }
        schema::decode(self.definition, object).map_err(|e| {
            let kind = self.kind;
            Error::BadRequest(format!(
                "{kind} in version {:?} cannot be handled as a {kind}: {}: {}",
                self.version,
                e.path(),
                e.inner()
            ))
        })
    }
}

/// Removes the line breaks of wrapped base64 (`base64` wraps at 76 columns) from a Secret's
/// `data`: Go's decoder skips them, so kube-apiserver accepts them and stores the bytes; stored
/// here as text, they are removed so every reader decodes them.
fn unwrap_secret_data(secret: &mut Value) {
    if let Some(data) = secret.get_mut("data").and_then(Value::as_object_mut) {
        for value in data.values_mut() {
            if let Some(text) = value.as_str().filter(|t| t.contains(['\r', '\n'])) {
                *value = text.replace(['\r', '\n'], "").into();
            }
        }
    }
}

/// Decodes a body meant for `target`, checks its apiVersion and kind, and applies the
/// requested field validation.
pub(super) fn decoded(
    state: &ApiState,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Decoded> {
    let _ = state;
    let request::Body { mut object, duplicates } = request::decode(headers, body)?;
    let body_type = BodyType::of(target);
    body_type.check(&mut object)?;
    let mode = query.field_validation()?;
    let warnings = if mode == FieldValidation::Ignore {
        Vec::new()
    } else {
        let unknown = fields::unknown_fields(body_type.definition, &object);
        if mode == FieldValidation::Strict && (!unknown.is_empty() || !duplicates.is_empty()) {
            return Err(fields::strict_error_for(body_type.kind, body_type.version, &unknown, &duplicates));
        }
        fields::warnings(&unknown, &duplicates)
    };
    Ok(Decoded { object, warnings })
}

fn generated_name(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    let prefix = if prefix.len() > 58 { &prefix[..58] } else { prefix };
    format!("{prefix}{suffix}")
}

/// Aligns `metadata.namespace` of a body with the request path.
fn place(target: &Target, object: &mut Value) -> Result<()> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let meta = object["metadata"].as_object_mut().expect("metadata is an object");
    match (&target.namespace, meta.get("namespace").and_then(Value::as_str)) {
        (Some(ns), Some(given)) if !given.is_empty() && given != ns => Err(Error::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        )),
        (Some(ns), _) => {
            meta.insert("namespace".into(), ns.clone().into());
            Ok(())
        }
        (None, _) => {
            meta.remove("namespace");
            Ok(())
        }
    }
}

async fn create(
    state: &ApiState,
    user: &User,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
    output: Output,
) -> Result<Response> {
    let resource = target.resource;
    if resource.namespaced && target.namespace.is_none() {
        return Err(Error::MethodNotAllowed);
    }
    let Decoded { mut object, mut warnings } = decoded(state, target, query, headers, body)?;
    place(target, &mut object)?;
    let meta = &mut object["metadata"];
    if meta["name"].as_str().is_none_or(str::is_empty)
        && let Some(prefix) = meta["generateName"].as_str().filter(|p| !p.is_empty())
    {
        meta["name"] = generated_name(prefix).into();
    }
    if let Some(ns) = &target.namespace {
        admission::namespace_lifecycle::ensure_open(state, ns)?;
    }
    strategy::prepare_create(resource, &mut object);
    defaults::apply(resource, &mut object);
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let dry_run = query.dry_run()?;
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let admission = admission::Request {
        user,
        operation: admission::Operation::Create,
        resource,
        subresource: None,
        namespace,
        name: &name,
        dry_run,
    };
    warnings.extend(admission::mutate(state, &admission, &mut object, None).await?);
    let _allocating = service_alloc::admit(&state.store, &state.admission, resource, &mut object, None).await?;
    let causes = validation::validate(resource, &object, None);
    if !causes.is_empty() {
        return Err(invalid(resource, &object, causes));
    }
    warnings.extend(admission::validate(state, &admission, &object, None).await?);
    if dry_run {
        if state.store.get(&key(target, &name)).is_some() {
            return Err(write_error(resource, &name, WriteError::AlreadyExists));
        }
        return Ok(output::object(resource, StatusCode::CREATED, &object, None, output, &warnings));
    }
    let stored = state
        .store
        .write(Write::Create { key: key(target, &name), object })
        .await
        .map_err(|e| write_error(resource, &name, e))?;
    Ok(output::object(resource, StatusCode::CREATED, &stored.object, Some(stored.json()), output, &warnings))
}

/// Whether a marked object has nothing left holding it and can go: no finalizers, and no
/// grace period running (a pod marked with one waits for its agent's final delete).
fn finalized(resource: &ResourceInfo, obj: &Value) -> bool {
    let meta = &obj["metadata"];
    let empty = |v: &Value| v.as_array().is_none_or(Vec::is_empty);
    meta.get("deletionTimestamp").is_some()
        && empty(&meta["finalizers"])
        && meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0
        && (resource.kind != "Namespace" || empty(&obj["spec"]["finalizers"]))
}

/// Who edits an object, how the answer is rendered and what it must be based on.
struct Edit<'a> {
    user: &'a User,
    output: Output,
    warnings: Vec<String>,
    /// The resourceVersion the client pinned, if any.
    precondition: Option<i64>,
}

/// The read-modify-write loop shared by update, patch and the subresources: `change` builds
/// the wanted object from the current one; admission runs on the result; the write is retried
/// on conflicts unless `precondition` pins a resourceVersion.
async fn write_back(
    state: &ApiState,
    target: &Target,
    query: &Query,
    edit: Edit<'_>,
    change: impl Fn(&Value) -> Result<Value>,
) -> Result<Response> {
    let Edit { user, output, warnings, precondition } = edit;
    let resource = target.resource;
    let name = target.name.as_deref().unwrap_or_default();
    let dry_run = query.dry_run()?;
    for _ in 0..MAX_ATTEMPTS {
        let stored = current(state, target)?;
        if precondition.is_some_and(|rv| rv != stored.rev) {
            return Err(write_error(resource, name, WriteError::Conflict));
        }
        let old = &stored.object;
        let (mut new, scale_view) = match target.subresource {
            Some(Subresource::Scale) => {
                let scale = change(&to_scale(resource, old)?)?;
                let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
                let mut new = old.clone();
                new["spec"]["replicas"] = replicas.into();
                (new, true)
            }
            Some(Subresource::Finalize) => {
                let wanted = change(old)?;
                let mut new = old.clone();
                new["spec"]["finalizers"] = wanted["spec"]["finalizers"].clone();
                (new, false)
            }
            _ => (change(old)?, false),
        };
        if new["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(Error::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                new["metadata"]["name"].as_str().unwrap_or_default()
            )));
        }
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        new["metadata"]["name"] = name.into();
        place(target, &mut new)?;
        let status_only = target.subresource == Some(Subresource::Status);
        strategy::prepare_update(resource, &mut new, old, target.subresource.filter(|_| status_only));
        defaults::apply(resource, &mut new);
        let admission = admission::Request {
            user,
            operation: admission::Operation::Update,
            resource,
            subresource: target.subresource,
            namespace: target.namespace.as_deref().unwrap_or_default(),
            name,
            dry_run,
        };
        let mut warnings = warnings.clone();
        warnings.extend(admission::mutate(state, &admission, &mut new, Some(old)).await?);
        let _allocating = service_alloc::admit(&state.store, &state.admission, resource, &mut new, Some(old)).await?;
        let causes = validation::validate(resource, &new, Some(old));
        if !causes.is_empty() {
            return Err(invalid(resource, &new, causes));
        }
        warnings.extend(admission::validate(state, &admission, &new, Some(old)).await?);
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        let render = |obj: &Value, bytes: Option<&Bytes>| -> Result<Response> {
            if scale_view {
                Ok(output::json(StatusCode::OK, &to_scale(resource, obj)?, &warnings))
            } else {
                Ok(output::object(resource, StatusCode::OK, obj, bytes, output, &warnings))
            }
        };
        if new == *old {
            return render(old, Some(stored.json()));
        }
        if dry_run {
            return render(&new, None);
        }
        let write = if finalized(resource, &new) {
            Write::Delete { key: stored.key.clone(), expected_rev: Some(stored.rev) }
        } else {
            Write::Update { key: stored.key.clone(), object: new, expected_rev: Some(stored.rev) }
        };
        match state.store.write(write).await {
            Ok(saved) => return render(&saved.object, Some(saved.json())),
            Err(WriteError::Conflict | WriteError::NotFound) if precondition.is_none() => continue,
            Err(e) => return Err(write_error(resource, name, e)),
        }
    }
    Err(write_error(resource, name, WriteError::Conflict))
}

async fn patch(
    state: &ApiState,
    user: &User,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
    output: Output,
) -> Result<Response> {
    let resource = target.resource;
    let content_type = request::content_type(headers);
    let patch_body: Value = match content_type.as_str() {
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            return Err(Error::UnsupportedMediaType(
                "server-side apply is not supported by Wharf yet; use client-side `kubectl apply`".into(),
            ));
        }
        "application/json-patch+json" | "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            fields::parse_json(body)?.0
        }
        other => {
            return Err(Error::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other})"
            )));
        }
    };
    let body_type = BodyType::of(target);
    let definition = body_type.definition;
    let mode = query.field_validation()?;
    let warnings = std::sync::Mutex::new(Vec::new());
    let apply = |current: &Value| -> Result<Value> {
        let mut patched = match content_type.as_str() {
            "application/json-patch+json" => patch::apply_json_patch(current, &patch_body)?,
            "application/merge-patch+json" => patch::apply_merge_patch(current, &patch_body)?,
            _ => patch::apply_strategic_merge_patch(current, &patch_body, definition)?,
        };
        // A patch may not turn the object into another type (nor make its apiVersion a number).
        body_type.check(&mut patched)?;
        if mode != FieldValidation::Ignore {
            let unknown = fields::unknown_fields(definition, &patched);
            if mode == FieldValidation::Strict && !unknown.is_empty() {
                return Err(fields::strict_error(&unknown, &[]));
            }
            *warnings.lock().expect("warnings lock") = fields::warnings(&unknown, &[]);
        }
        // A resourceVersion in the patch is a precondition, as in kube-apiserver.
        if let (Some(wanted), Some(have)) =
            (patch_body["metadata"]["resourceVersion"].as_str(), current["metadata"]["resourceVersion"].as_str())
            && wanted != have
        {
            return Err(write_error(resource, target.name.as_deref().unwrap_or_default(), WriteError::Conflict));
        }
        Ok(patched)
    };
    let edit = Edit { user, output, warnings: Vec::new(), precondition: None };
    let response = write_back(state, target, query, edit, apply).await?;
    let warnings = warnings.into_inner().expect("warnings lock");
    Ok(output::with_warnings(response, &warnings))
}

/// The autoscaling/v1 Scale view of a scalable object.
fn to_scale(resource: &ResourceInfo, obj: &Value) -> Result<Value> {
    let meta = &obj["metadata"];
    let selector = match obj["spec"].get("selector") {
        Some(sel) if sel.is_object() => LabelSelector::from_json(sel).map(|s| s.to_string()).unwrap_or_default(),
        _ => String::new(),
    };
    let _ = resource;
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    }))
}

async fn bind(state: &ApiState, target: &Target, query: &Query, headers: &HeaderMap, body: &[u8]) -> Result<Response> {
    let Decoded { object: binding, .. } = decoded(state, target, query, headers, body)?;
    let node = binding["target"]["name"].as_str().unwrap_or_default().to_string();
    if node.is_empty() {
        return Err(Error::Invalid {
            group: String::new(),
            kind: "Binding".into(),
            name: target.name.clone().unwrap_or_default(),
            causes: vec![crate::Cause::required("target.name")],
        });
    }
    let name = target.name.clone().unwrap_or_default();
    let pod_target = Target { subresource: None, ..target.clone() };
    // Binding sets spec.nodeName, which a plain update may not change: write it directly.
    for _ in 0..MAX_ATTEMPTS {
        let stored = current(state, &pod_target)?;
        if let Some(bound) = stored.object["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(Error::Conflict {
                group: String::new(),
                kind: "pods".into(),
                name: name.clone(),
                message: format!("pod {name} is already assigned to node {bound:?}"),
            });
        }
        if stored.object["metadata"].get("deletionTimestamp").is_some() {
            return Err(Error::Conflict {
                group: String::new(),
                kind: "pods".into(),
                name: name.clone(),
                message: "pod is being deleted, cannot be assigned to a host".into(),
            });
        }
        let mut pod = stored.object.clone();
        pod["spec"]["nodeName"] = node.clone().into();
        set_condition(
            &mut pod,
            json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": strategy::now()}),
        );
        if query.dry_run()? {
            break;
        }
        match state
            .store
            .write(Write::Update { key: stored.key.clone(), object: pod, expected_rev: Some(stored.rev) })
            .await
        {
            Ok(_) => break,
            Err(WriteError::Conflict) => continue,
            Err(e) => return Err(write_error(target.resource, &name, e)),
        }
    }
    Ok(output::json(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        &[],
    ))
}

/// Sets a condition in `status.conditions` by type.
fn set_condition(obj: &mut Value, condition: Value) {
    if !obj["status"]["conditions"].is_array() {
        obj["status"]["conditions"] = json!([]);
    }
    let conditions = obj["status"]["conditions"].as_array_mut().expect("conditions is an array");
    match conditions.iter_mut().find(|c| c["type"] == condition["type"]) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

// ---------------------------------------------------------------------------------------------
// Deletion

/// What happens to an object's dependents when it is deleted (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Propagation {
    /// The dependents stay, their ownerReferences to the object removed (the `orphan` finalizer).
    Orphan,
    /// The object goes now; the garbage collector deletes the dependents after.
    Background,
    /// The dependents go first, then the object (the `foregroundDeletion` finalizer).
    Foreground,
}

/// DeleteOptions from the body (kubectl sends them there) or the query.
pub(super) struct DeleteOptions {
    grace_period: Option<i64>,
    uid: Option<String>,
    resource_version: Option<i64>,
    dry_run: bool,
    /// None: the kind's default, which is Background for every kind Wharf serves.
    propagation: Option<Propagation>,
}

fn delete_options(query: &Query, headers: &HeaderMap, body: &[u8]) -> Result<DeleteOptions> {
    let opts =
        if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { request::decode(headers, body)?.object };
    delete_options_from(&opts, query)
}

/// DeleteOptions from a decoded `DeleteOptions` object (or an Eviction's `deleteOptions`),
/// falling back to the query parameters.
pub(super) fn delete_options_from(opts: &Value, query: &Query) -> Result<DeleteOptions> {
    let propagation = match opts["propagationPolicy"].as_str().or(query.get("propagationPolicy")) {
        Some("Orphan") => Some(Propagation::Orphan),
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some(policy) => {
            return Err(Error::BadRequest(format!(
                "DeleteOptions.propagationPolicy: Unsupported value: {policy:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        // The deprecated orphanDependents, when no policy is given.
        None => match opts["orphanDependents"].as_bool().or(query.get("orphanDependents").map(|v| v == "true")) {
            Some(true) => Some(Propagation::Orphan),
            Some(false) => Some(Propagation::Background),
            None => None,
        },
    };
    let dry_run = match opts["dryRun"].as_array() {
        Some(list) => list.iter().any(|v| v == "All"),
        None => query.dry_run()?,
    };
    Ok(DeleteOptions {
        grace_period: opts["gracePeriodSeconds"].as_i64().or(query.number("gracePeriodSeconds")?),
        uid: opts["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: resource_version(
            &json!({"metadata": {"resourceVersion": opts["preconditions"]["resourceVersion"]}}),
        )?,
        dry_run,
        propagation,
    })
}

/// The finalizers an object keeps when deleted with `policy`, as kube-apiserver's
/// deletionFinalizersForGarbageCollection: Orphan and Foreground add theirs (and drop the
/// other's), Background drops both; no policy keeps what is there.
fn finalizers_for(current: &[String], policy: Option<Propagation>) -> Vec<String> {
    use crate::registry::well_known::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
    let (add, drop): (Option<&str>, &[&str]) = match policy {
        None => return current.to_vec(),
        Some(Propagation::Orphan) => (Some(ORPHAN_FINALIZER), &[FOREGROUND_FINALIZER]),
        Some(Propagation::Foreground) => (Some(FOREGROUND_FINALIZER), &[ORPHAN_FINALIZER]),
        Some(Propagation::Background) => (None, &[ORPHAN_FINALIZER, FOREGROUND_FINALIZER]),
    };
    let mut out: Vec<String> = current.iter().filter(|f| !drop.contains(&f.as_str())).cloned().collect();
    if let Some(add) = add
        && !out.iter().any(|f| f == add)
    {
        out.push(add.to_string());
    }
    out
}

/// What a delete does to `obj`: None removes it now; Some(marked) is the object to write
/// instead (equal to `obj` when the delete changes nothing). An object is only marked
/// (deletionTimestamp set) while something must act first: finalizers (including the
/// garbage collector's, from the propagation policy), the namespace controller, or the agent of
/// the live node a pod runs on. `on_live_node` says whether the pod's node exists.
fn mark(resource: &ResourceInfo, obj: &Value, opts: &DeleteOptions, on_live_node: bool, now: &str) -> Option<Value> {
    let meta = &obj["metadata"];
    let current: Vec<String> =
        meta["finalizers"].as_array().into_iter().flatten().filter_map(|f| f.as_str().map(String::from)).collect();
    let finalizers = finalizers_for(&current, opts.propagation);
    let pod_waits = resource.kind == "Pod"
        && opts.grace_period != Some(0)
        && on_live_node
        && !matches!(obj["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    let namespace_waits =
        resource.kind == "Namespace" && obj["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if finalizers.is_empty() && !pod_waits && !namespace_waits {
        return None;
    }
    let mut marked = obj.clone();
    if finalizers != current {
        if finalizers.is_empty() {
            marked["metadata"].as_object_mut().map(|m| m.remove("finalizers"));
        } else {
            marked["metadata"]["finalizers"] = json!(finalizers);
        }
    }
    // A pod with nothing to stop goes as soon as its finalizers are gone (grace 0).
    let grace = if pod_waits {
        opts.grace_period.or(obj["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30).max(0)
    } else {
        0
    };
    if meta.get("deletionTimestamp").is_none() {
        marked["metadata"]["deletionTimestamp"] = now.into();
        marked["metadata"]["deletionGracePeriodSeconds"] = grace.into();
        if resource.kind == "Namespace" {
            marked["status"]["phase"] = "Terminating".into();
        }
    } else if meta["deletionGracePeriodSeconds"].as_i64().is_some_and(|g| g > grace) {
        // A second delete may shorten the grace period, never lengthen it.
        marked["metadata"]["deletionGracePeriodSeconds"] = grace.into();
    }
    Some(marked)
}

/// Deletes one object (or marks it for deletion), returning what it answers with.
pub(super) async fn delete_one(
    state: &ApiState,
    user: &User,
    target: &Target,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Arc<Stored>> {
    let resource = target.resource;
    for _ in 0..MAX_ATTEMPTS {
        let stored = state.store.get(&key(target, name)).ok_or_else(|| not_found(resource, name))?;
        let obj = &stored.object;
        if let Some(uid) = &opts.uid
            && obj["metadata"]["uid"].as_str() != Some(uid)
        {
            return Err(Error::Conflict {
                group: resource.group.into(),
                kind: resource.plural.into(),
                name: name.into(),
                message: format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    obj["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            });
        }
        if opts.resource_version.is_some_and(|rv| rv != stored.rev) {
            return Err(write_error(resource, name, WriteError::Conflict));
        }
        let admission = admission::Request {
            user,
            operation: admission::Operation::Delete,
            resource,
            subresource: None,
            namespace: target.namespace.as_deref().unwrap_or_default(),
            name,
            dry_run: opts.dry_run,
        };
        admission::validate(state, &admission, obj, None).await?;
        let node = obj["spec"]["nodeName"].as_str().filter(|n| !n.is_empty() && resource.kind == "Pod");
        let on_live_node = node.is_some_and(|n| state.store.get(&ObjectKey::new("nodes", "", n)).is_some());
        let write = match mark(resource, obj, opts, on_live_node, &strategy::now()) {
            None => Write::Delete { key: stored.key.clone(), expected_rev: Some(stored.rev) },
            Some(marked) if marked == *obj => return Ok(stored),
            Some(marked) => Write::Update { key: stored.key.clone(), object: marked, expected_rev: Some(stored.rev) },
        };
        if opts.dry_run {
            return Ok(stored);
        }
        match state.store.write(write).await {
            Ok(saved) => return Ok(saved),
            Err(WriteError::Conflict) if opts.resource_version.is_none() => continue,
            Err(e) => return Err(write_error(resource, name, e)),
        }
    }
    Err(write_error(resource, name, WriteError::Conflict))
}

async fn delete(
    state: &ApiState,
    user: &User,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
    output: Output,
) -> Result<Response> {
    let opts = delete_options(query, headers, body)?;
    let name = target.name.as_deref().unwrap_or_default();
    let stored = delete_one(state, user, target, name, &opts).await?;
    Ok(output::object(target.resource, StatusCode::OK, &stored.object, Some(stored.json()), output, &[]))
}

async fn delete_collection(
    state: &ApiState,
    user: &User,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    let resource = target.resource;
    let opts = delete_options(query, headers, body)?;
    let filter = Filter::from_query(resource, query)?;
    let page = state.store.list(&resource.storage_key(), target.namespace.as_deref(), None, 0, |stored| {
        filter.matches(resource, &stored.object)
    });
    let mut deleted = Vec::new();
    for item in page.items {
        let item_target =
            Target { namespace: Some(item.key.namespace.clone()).filter(|n| !n.is_empty()), ..target.clone() };
        match delete_one(state, user, &item_target, &item.key.name, &opts).await {
            Ok(stored) => deleted.push(stored),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let meta = json!({"resourceVersion": state.store.revision().to_string()});
    Ok(output::json_bytes(StatusCode::OK, output::list_bytes(resource, &meta, deleted.iter().map(|s| s.json())), &[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::kinds::lookup;

    fn options(propagation: Option<Propagation>, grace_period: Option<i64>) -> DeleteOptions {
        DeleteOptions { grace_period, uid: None, resource_version: None, dry_run: false, propagation }
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn background_deletes_at_once_and_orphan_or_foreground_only_mark() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        let obj = json!({"metadata": {"name": "a", "uid": "u1"}});
        assert_eq!(mark(cm, &obj, &options(None, None), false, NOW), None);
        assert_eq!(mark(cm, &obj, &options(Some(Propagation::Background), None), false, NOW), None);
        let orphaned = mark(cm, &obj, &options(Some(Propagation::Orphan), None), false, NOW).unwrap();
        assert_eq!(orphaned["metadata"]["finalizers"], json!(["orphan"]));
        assert_eq!(orphaned["metadata"]["deletionTimestamp"], NOW);
        assert_eq!(orphaned["metadata"]["deletionGracePeriodSeconds"], 0);
        let foreground = mark(cm, &obj, &options(Some(Propagation::Foreground), None), false, NOW).unwrap();
        assert_eq!(foreground["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    }

    #[test]
    fn a_later_policy_replaces_the_garbage_collector_finalizers() {
        let other = vec!["example.com/keep".to_string()];
        let orphan = finalizers_for(&other, Some(Propagation::Orphan));
        assert_eq!(orphan, ["example.com/keep", "orphan"]);
        assert_eq!(finalizers_for(&orphan, Some(Propagation::Foreground)), ["example.com/keep", "foregroundDeletion"]);
        assert_eq!(finalizers_for(&orphan, Some(Propagation::Background)), ["example.com/keep"]);
        assert_eq!(finalizers_for(&orphan, None), orphan);
    }

    #[test]
    fn a_pod_on_a_live_node_waits_for_its_agent_and_grace_only_shortens() {
        let pods = lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n", "terminationGracePeriodSeconds": 5},
                         "status": {"phase": "Running"}});
        let marked = mark(pods, &pod, &options(None, None), true, NOW).unwrap();
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 5);
        assert!(!finalized(pods, &marked), "a grace period is running");
        // The node is gone: nothing will stop it, so it goes now.
        assert_eq!(mark(pods, &pod, &options(None, None), false, NOW), None);
        // The agent's final delete (grace 0) of a pod held by a finalizer shortens the grace.
        let mut held = marked.clone();
        held["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
        let last = mark(pods, &held, &options(None, Some(0)), true, NOW).unwrap();
        assert_eq!(last["metadata"]["deletionGracePeriodSeconds"], 0);
        assert_eq!(last["metadata"]["deletionTimestamp"], held["metadata"]["deletionTimestamp"]);
        let mut released = last.clone();
        released["metadata"]["finalizers"] = json!([]);
        assert!(finalized(pods, &released), "removing the last finalizer then deletes it");
        // Deleting again changes nothing.
        assert_eq!(mark(pods, &marked, &options(None, None), true, NOW).as_ref(), Some(&marked));
    }

    #[test]
    fn bodies_of_another_kind_are_refused() {
        let deployments = BodyType {
            definition: "io.k8s.api.apps.v1.Deployment",
            api_version: "apps/v1".into(),
            version: "v1",
            kind: "Deployment",
        };
        assert!(deployments.check(&mut json!({"apiVersion": "v1", "kind": "Pod"})).is_err());
        assert!(deployments.check(&mut json!({"apiVersion": 7})).is_err(), "a number is no apiVersion");
        assert!(deployments.check(&mut json!({"kind": ["Deployment"]})).is_err(), "a list is no kind");
        let mut obj = json!({"apiVersion": null});
        deployments.check(&mut obj).unwrap();
        assert_eq!(obj, json!({"apiVersion": "apps/v1", "kind": "Deployment"}));
    }

    #[test]
    fn bodies_that_do_not_decode_as_their_type_are_refused_with_the_field() {
        let body_type = |plural: &str| {
            let group = if plural == "deployments" { "apps" } else { "" };
            let resource = lookup(group, "v1", plural).unwrap();
            BodyType::of(&Target { resource, namespace: None, name: None, subresource: None })
        };
        let refused = |plural: &str, mut obj: Value| match body_type(plural).check(&mut obj) {
            Err(Error::BadRequest(message)) => message,
            other => panic!("{obj} was not refused: {other:?}"),
        };
        let message = refused("deployments", json!({"spec": {"paused": "yes"}}));
        assert_eq!(
            message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: spec.paused: invalid type: string \"yes\", expected a boolean"
        );
        let message = refused("pods", json!({"spec": {"containers": [{"name": "a", "ports": 7}]}}));
        assert!(message.contains(": spec.containers[0].ports: invalid type: integer `7`"), "{message}");
        assert!(refused("pods", json!({"spec": "c"})).contains(": spec: invalid type: string"));
        assert!(refused("deployments", json!({"status": {"replicas": "x"}})).contains(": status.replicas: "));
        // Wrapped base64, as Go decodes it, is stored unwrapped.
        let mut secret = json!({"data": {"k": "aHVu\r\ndGVyMg=="}});
        body_type("secrets").check(&mut secret).unwrap();
        assert_eq!(secret["data"]["k"], "aHVudGVyMg==");
    }
}
