//! The reviews: SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview and
//! LocalSubjectAccessReview (`kubectl auth can-i`), TokenReview and SelfSubjectReview
//! (`kubectl auth whoami`). Each is answered from the request, never stored.
//!
//! Access reviews ask the whole authorization chain (`state.authz.decide`), so masters and the
//! node authorizer count as they do for real requests; the rules review lists what RBAC grants.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::ApiState;
use super::output;
use super::request::{self, Query, Target};
use crate::Cause;
use crate::auth::authz::Decision;
use crate::auth::rbac::Rule;
use crate::auth::{Attributes, ResourceAttributes, User};
use crate::error::{Error, Result};

pub async fn create(
    state: &ApiState,
    user: &User,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    let output = request::output(headers, query)?;
    let super::resources::Decoded { mut object, warnings } =
        super::resources::decoded(state, target, query, headers, body)?;
    let resource = target.resource;
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match (resource.group, resource.kind) {
        ("authorization.k8s.io", "SelfSubjectAccessReview") => access(state, user.clone(), &spec, None)?,
        ("authorization.k8s.io", "SubjectAccessReview") => access(state, subject(&spec)?, &spec, None)?,
        ("authorization.k8s.io", "LocalSubjectAccessReview") => {
            let namespace = target.namespace.as_deref().unwrap_or_default();
            access(state, subject(&spec)?, &spec, Some(namespace))?
        }
        ("authorization.k8s.io", "SelfSubjectRulesReview") => rules(state, user, &spec)?,
        ("authentication.k8s.io", "SelfSubjectReview") => json!({"userInfo": user_info(user)}),
        ("authentication.k8s.io", "TokenReview") => token(state, &spec),
        _ => return Err(Error::MethodNotAllowed),
    };
    object["status"] = status;
    let meta = &mut object["metadata"];
    if !meta.is_object() {
        *meta = json!({});
    }
    meta["creationTimestamp"] = Value::Null;
    Ok(output::object(resource, StatusCode::CREATED, &object, None, output, &warnings))
}

fn invalid(kind: &str, causes: Vec<Cause>) -> Error {
    let group = if kind.contains("TokenReview") || kind == "SelfSubjectReview" {
        "authentication.k8s.io"
    } else {
        "authorization.k8s.io"
    };
    Error::Invalid { group: group.into(), kind: kind.into(), name: String::new(), causes }
}

fn cause(field: &str, message: &str) -> Cause {
    Cause { reason: "FieldValueRequired".into(), field: field.into(), message: message.into() }
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// The user a SubjectAccessReview asks about.
fn subject(spec: &Value) -> Result<User> {
    let name = spec["user"].as_str().unwrap_or_default().to_string();
    let groups = strings(&spec["groups"]);
    if name.is_empty() && groups.is_empty() {
        let causes = vec![cause("spec.user", "at least one of user or group must be specified")];
        return Err(invalid("SubjectAccessReview", causes));
    }
    let extra: BTreeMap<String, Vec<String>> =
        spec["extra"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect()).unwrap_or_default();
    Ok(User { name, uid: spec["uid"].as_str().unwrap_or_default().into(), groups, extra })
}

/// The decision on the attributes a (Local/Self)SubjectAccessReview names.
fn access(state: &ApiState, user: User, spec: &Value, local: Option<&str>) -> Result<Value> {
    let kind = match local {
        Some(_) => "LocalSubjectAccessReview",
        None => "SubjectAccessReview",
    };
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let field = |v: &Value, name: &str| v[name].as_str().unwrap_or_default().to_string();
    let attributes = match (resource, non_resource) {
        (Some(r), None) => {
            let namespace = field(r, "namespace");
            if let Some(ns) = local
                && namespace != ns
            {
                let causes = vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    field: "spec.resourceAttributes.namespace".into(),
                    message: "must match metadata.namespace".into(),
                }];
                return Err(invalid(kind, causes));
            }
            Attributes {
                user,
                verb: field(r, "verb"),
                resource: Some(ResourceAttributes {
                    group: field(r, "group"),
                    version: field(r, "version"),
                    resource: field(r, "resource"),
                    subresource: field(r, "subresource"),
                    namespace,
                    name: field(r, "name"),
                    field_selector: field(&r["fieldSelector"], "rawSelector"),
                    label_selector: field(&r["labelSelector"], "rawSelector"),
                }),
                path: String::new(),
            }
        }
        (None, Some(n)) => Attributes { user, verb: field(n, "verb"), resource: None, path: field(n, "path") },
        (Some(_), Some(_)) => {
            let causes = vec![Cause {
                reason: "FieldValueInvalid".into(),
                field: "spec.nonResourceAttributes".into(),
                message: "cannot be specified in combination with resourceAttributes".into(),
            }];
            return Err(invalid(kind, causes));
        }
        (None, None) => {
            let causes = vec![cause(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )];
            return Err(invalid(kind, causes));
        }
    };
    Ok(match state.authz.decide(&attributes) {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny(reason) => json!({"allowed": false, "denied": true, "reason": reason}),
        Decision::NoOpinion(reason) if reason.is_empty() => json!({"allowed": false}),
        Decision::NoOpinion(reason) => json!({"allowed": false, "reason": reason}),
    })
}

/// What RBAC grants the user in `spec.namespace`, as SelfSubjectRulesReview's status.
fn rules(state: &ApiState, user: &User, spec: &Value) -> Result<Value> {
    let namespace = spec["namespace"].as_str().unwrap_or_default();
    let (rules, errors) = state.authz.rbac.rules_for(user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for Rule { api_groups, resources, resource_names, non_resource_urls, verbs } in rules {
        if !resources.is_empty() {
            let mut rule = json!({"verbs": verbs, "apiGroups": api_groups, "resources": resources});
            if !resource_names.is_empty() {
                rule["resourceNames"] = json!(resource_names);
            }
            resource_rules.push(rule);
        } else if !non_resource_urls.is_empty() {
            non_resource_rules.push(json!({"verbs": verbs, "nonResourceURLs": non_resource_urls}));
        }
    }
    let mut status =
        json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false});
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    Ok(status)
}

fn user_info(user: &User) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}

/// A TokenReview's status: who the token authenticates as, if anyone.
fn token(state: &ApiState, spec: &Value) -> Value {
    let token = spec["token"].as_str().unwrap_or_default().trim();
    let user = (!token.is_empty()).then(|| state.auth.authenticate_token(token)).flatten();
    match user {
        Some(user) => json!({"authenticated": true, "user": user_info(&user)}),
        None => json!({"authenticated": false, "user": {}}),
    }
}
