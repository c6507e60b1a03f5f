//! Rendering answers: objects and lists as JSON (stored bytes reused, not re-serialized) or as
//! `meta.k8s.io/v1` Tables for `kubectl get`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use super::request::{IncludeObject, Output};
use crate::registry::kinds::ResourceInfo;
use crate::registry::table;

/// A JSON response with `code`, plus `Warning` headers.
pub fn json_bytes(code: StatusCode, body: Bytes, warnings: &[String]) -> Response {
    with_warnings((code, [(header::CONTENT_TYPE, "application/json")], body).into_response(), warnings)
}

/// Adds one `Warning` header per message (kubectl prints each).
pub fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        if let Ok(value) = HeaderValue::from_bytes(warning.as_bytes()) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

pub fn json(code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    json_bytes(code, Bytes::from(serde_json::to_vec(value).expect("JSON serializes")), warnings)
}

/// The object a Table row carries.
fn row_object(obj: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(obj.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

/// A Table of `objects`; `with_columns` false leaves the column definitions out (watch events
/// after the first).
pub fn table<'a>(
    resource: &ResourceInfo,
    objects: impl Iterator<Item = &'a Value>,
    include: IncludeObject,
    list_meta: Value,
    with_columns: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objects
        .map(|obj| {
            let mut row = json!({"cells": table::cells(resource, obj, now)});
            if let Some(object) = row_object(obj, include) {
                row["object"] = object;
            }
            row
        })
        .collect();
    let columns = if with_columns { table::columns(resource) } else { Vec::new() };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// A `<Kind>List` built from already-serialized items.
pub fn list_bytes<'a>(resource: &ResourceInfo, list_meta: &Value, items: impl Iterator<Item = &'a Bytes>) -> Bytes {
    let mut out = BytesMut::with_capacity(4096);
    let head =
        json!({"kind": format!("{}List", resource.kind), "apiVersion": resource.api_version(), "metadata": list_meta});
    let head = serde_json::to_vec(&head).expect("JSON serializes");
    out.put_slice(&head[..head.len() - 1]);
    out.put_slice(b",\"items\":[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(item);
    }
    out.put_slice(b"]}");
    out.freeze()
}

/// One object in the wanted output.
pub fn object(
    resource: &ResourceInfo,
    code: StatusCode,
    obj: &Value,
    bytes: Option<&Bytes>,
    output: Output,
    warnings: &[String],
) -> Response {
    match output {
        Output::Table(include) => {
            json(code, &table(resource, std::iter::once(obj), include, json!({}), true), warnings)
        }
        Output::Json => match bytes {
            Some(bytes) => json_bytes(code, bytes.clone(), warnings),
            None => json(code, obj, warnings),
        },
    }
}
