//! `POST /wharf/v1/node-credentials` with `{"nodeName": "NAME"}`: exchanges the join token (or
//! a master's credentials — the authorizer decides who may) for a node credential, a Wharf token
//! for `system:node:NAME` in `system:nodes`, answered as `{"token": "..."}`. Each call makes a
//! new token; revoking one is deleting its Secret.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::output;
use crate::auth::tokens::{TOKEN_NAMESPACE, TokenGrant, WharfToken};
use crate::auth::{NODE_USER_PREFIX, NODES};
use crate::error::{Cause, Error, Result};
use crate::registry::{defaults, kinds, strategy};
use crate::store::{ObjectKey, Write, WriteError};

/// Where the endpoint is routed.
pub const PATH: &str = "/wharf/v1/node-credentials";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default)]
    node_name: String,
}

/// Whether `name` can name a node (a DNS subdomain, as Node names are).
fn valid_node_name(name: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| alnum(b) || b == b'-' || b == b'.')
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty() && alnum(bytes[0]) && alnum(bytes[bytes.len() - 1])
        })
}

fn invalid(name: &str, cause: Cause) -> Error {
    Error::Invalid { group: "wharf.dev".into(), kind: "NodeCredential".into(), name: name.into(), causes: vec![cause] }
}

/// Issues a node credential.
pub async fn create(state: &ApiState, method: &Method, body: Bytes) -> Result<Response> {
    if *method != Method::POST {
        return Err(Error::MethodNotAllowed);
    }
    let request: Request = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("the body must be {{\"nodeName\": NAME}}: {e}")))?;
    let name = request.node_name;
    if name.is_empty() {
        return Err(invalid(&name, Cause::required("nodeName")));
    }
    if !valid_node_name(&name) {
        let detail = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
                      and must start and end with an alphanumeric character";
        return Err(invalid(&name, Cause::invalid("nodeName", &name, detail)));
    }
    let grant = TokenGrant {
        user: format!("{NODE_USER_PREFIX}{name}"),
        groups: vec![NODES.into()],
        description: format!("node credential of {name}"),
        ..Default::default()
    };
    let secrets = kinds::lookup("", "v1", "secrets").ok_or(Error::NoRoute)?;
    // A fresh id that is taken (one in 36^6) is drawn again.
    for _ in 0..4 {
        let token = WharfToken::generate();
        let mut secret = grant.to_secret(&token);
        secret["metadata"]["labels"] = json!({"wharf.dev/node": name});
        strategy::prepare_create(secrets, &mut secret);
        defaults::apply(secrets, &mut secret);
        let key = ObjectKey::new(secrets.storage_key(), TOKEN_NAMESPACE, token.secret_name());
        match state.store.write(Write::Create { key, object: secret }).await {
            Ok(_) => {
                tracing::info!(node = %name, id = %token.id, "issued a node credential");
                return Ok(output::json(StatusCode::CREATED, &json!({"token": token.expose()}), &[]));
            }
            Err(WriteError::AlreadyExists) => continue,
            Err(e) => return Err(Error::Internal(format!("cannot store the node credential: {e:?}"))),
        }
    }
    Err(Error::Internal("cannot find a free token id".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_subdomains() {
        assert!(valid_node_name("node-1"));
        assert!(valid_node_name("a.b-c.d"));
        for bad in ["", "Node", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
            assert!(!valid_node_name(bad), "{bad}");
        }
    }
}
