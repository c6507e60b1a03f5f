//! The control plane's one error type, and its single conversion to the wire: a Kubernetes
//! `Status` object with the HTTP code, reason and causes that kubectl knows how to print.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// One field-level problem in an Invalid answer (`details.causes` in a `Status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// Kubernetes cause type: `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`,
    /// `FieldValueNotSupported`, `FieldValueForbidden`, `FieldValueTooLong`, `FieldValueTypeInvalid`.
    pub reason: String,
    /// Human message, e.g. `Required value` or `Invalid value: "x": must be ...`.
    pub message: String,
    /// The field path, e.g. `spec.template.spec.containers[0].name`.
    pub field: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Self { reason: "FieldValueRequired".into(), message: "Required value".into(), field: field.into() }
    }

    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, detail: impl std::fmt::Display) -> Self {
        Self {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {}: {detail}", json!(value.to_string())),
            field: field.into(),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        Self {
            reason: "FieldValueDuplicate".into(),
            message: format!("Duplicate value: {}", json!(value.to_string())),
            field: field.into(),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: impl std::fmt::Display, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| json!(s).to_string()).collect();
        Self {
            reason: "FieldValueNotSupported".into(),
            message: format!("Unsupported value: {}: supported values: {}", json!(value.to_string()), list.join(", ")),
            field: field.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            reason: "FieldValueForbidden".into(),
            message: format!("Forbidden: {}", detail.into()),
            field: field.into(),
        }
    }
}

/// Everything the control plane can answer a client with, other than success.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} \"{name}\" not found", qualified(group, kind))]
    /// `kind` is the resource's plural (`deployments`), as kube-apiserver reports it.
    NotFound { group: String, kind: String, name: String },
    #[error("{} \"{name}\" already exists", qualified(group, kind))]
    AlreadyExists { group: String, kind: String, name: String },
    #[error("Operation cannot be fulfilled on {} \"{name}\": {message}", qualified(group, kind))]
    Conflict { group: String, kind: String, name: String, message: String },
    #[error("{} \"{name}\" is invalid: {}", qualified(group, kind), format_causes(.causes))]
    /// `kind` is the object's Kind (`Deployment`).
    Invalid { group: String, kind: String, name: String, causes: Vec<Cause> },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Gone(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("the server could not find the requested resource")]
    NoRoute,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request is too large: limit is {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// `deployments.apps`, `Deployment.apps`, or just `pods` for the core group.
fn qualified(group: &str, kind: &str) -> String {
    if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") }
}

fn format_causes(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
    if parts.len() == 1 { parts[0].clone() } else { format!("[{}]", parts.join(", ")) }
}

impl Error {
    pub fn code(&self) -> StatusCode {
        match self {
            Error::NotFound { .. } | Error::NoRoute => StatusCode::NOT_FOUND,
            Error::AlreadyExists { .. } | Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Gone(_) => StatusCode::GONE,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotFound { .. } | Error::NoRoute => "NotFound",
            Error::AlreadyExists { .. } => "AlreadyExists",
            Error::Conflict { .. } => "Conflict",
            Error::Invalid { .. } => "Invalid",
            Error::BadRequest(_) => "BadRequest",
            Error::Gone(_) => "Expired",
            Error::Unauthorized => "Unauthorized",
            Error::Forbidden(_) => "Forbidden",
            Error::MethodNotAllowed => "MethodNotAllowed",
            Error::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Error::TooLarge(_) => "RequestEntityTooLarge",
            Error::Unavailable(_) => "ServiceUnavailable",
            Error::Internal(_) => "InternalError",
        }
    }

    /// The `Status` object kubectl prints. Internal details are logged, never sent.
    pub fn status(&self) -> serde_json::Value {
        let message = match self {
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "an internal error occurred; see the server log".to_string()
            }
            other => other.to_string(),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            Error::NotFound { group, kind, name }
            | Error::AlreadyExists { group, kind, name }
            | Error::Conflict { group, kind, name, .. } => Some(json!({"name": name, "group": group, "kind": kind})),
            Error::Invalid { group, kind, name, causes } => {
                Some(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
            }
            _ => None,
        };
        if let Some(mut details) = details {
            if details["group"] == "" {
                details.as_object_mut().map(|d| d.remove("group"));
            }
            status["details"] = details;
        }
        status
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = self.status().to_string();
        (self.code(), [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
