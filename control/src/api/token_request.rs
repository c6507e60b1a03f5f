//! TokenRequest (`serviceaccounts/{name}/token`, `kubectl create token`): a signed token of a
//! ServiceAccount, optionally bound to a pod and with the expiry asked for, as kube-apiserver's
//! `registry/core/serviceaccount/storage/token.go` issues them: an hour unless asked otherwise,
//! never less than 10 minutes.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::ApiState;
use super::output;
use super::request::{self, Query, Target};
use crate::auth::User;
use crate::auth::service_account::{self, ObjectRef, SigningKey, TokenSpec};
use crate::error::{Cause, Error, Result};
use crate::store::{ObjectKey, Store};

/// A token's lifetime when the request names none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime one may ask for.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest: 2^32 seconds.
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

pub async fn create(
    state: &ApiState,
    user: &User,
    target: &Target,
    _query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    let key = state
        .auth
        .service_account_key()
        .ok_or_else(|| Error::Unavailable("this API server issues no ServiceAccount tokens".into()))?;
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let name = target.name.as_deref().unwrap_or_default();
    let request = request::decode(headers, body)?.object;
    super::admission::node_restriction::admit_token_request(&state.store, user, namespace, name, &request)?;
    let answer = issue(&state.store, key, namespace, name, request)?;
    Ok(output::json(StatusCode::CREATED, &answer, &[]))
}

/// `spec.expirationSeconds: Invalid value: N: DETAIL`, the number unquoted as Kubernetes prints it.
fn invalid_expiration(name: &str, seconds: i64, detail: &str) -> Error {
    let cause = Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {seconds}: {detail}"),
        field: "spec.expirationSeconds".into(),
    };
    invalid(name, cause)
}

fn invalid(name: &str, cause: Cause) -> Error {
    Error::Invalid {
        group: "authentication.k8s.io".into(),
        kind: "TokenRequest".into(),
        name: name.into(),
        causes: vec![cause],
    }
}

/// The uid of a stored object, or its NotFound.
fn uid_of(store: &Store, resource: &str, namespace: &str, name: &str) -> Result<(String, Value)> {
    let stored = store.get(&ObjectKey::new(resource, namespace, name)).ok_or_else(|| Error::NotFound {
        group: String::new(),
        kind: resource.into(),
        name: name.into(),
    })?;
    let uid = stored.object["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    Ok((uid, stored.object.clone()))
}

/// Answers the TokenRequest `request` for ServiceAccount `namespace/name`.
fn issue(store: &Store, key: &SigningKey, namespace: &str, name: &str, mut request: Value) -> Result<Value> {
    if !request.is_object() {
        return Err(Error::BadRequest("the body must be a TokenRequest object".into()));
    }
    match request.get("apiVersion").and_then(Value::as_str) {
        None | Some("authentication.k8s.io/v1") => {}
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "the API version in the data ({other}) does not match the expected API version (authentication.k8s.io/v1)"
            )));
        }
    }
    match request["metadata"]["name"].as_str() {
        Some(n) if !n.is_empty() && n != name => {
            return Err(Error::BadRequest("name in URL does not match name in TokenRequest object".into()));
        }
        _ => {}
    }
    let spec = &request["spec"];
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        value => value.as_i64().ok_or_else(|| {
            invalid(name, Cause::invalid("spec.expirationSeconds", value, "must be an integer number of seconds"))
        })?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid_expiration(name, expiration, "may not specify a duration less than 10 minutes"));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid_expiration(name, expiration, "may not specify a duration larger than 2^32 seconds"));
    }
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();

    let (account_uid, _) = uid_of(store, "serviceaccounts", namespace, name)?;
    let (pod, node) = match &spec["boundObjectRef"] {
        Value::Null => (None, None),
        bound => bound_pod(store, namespace, name, bound)?,
    };
    let spec = TokenSpec {
        namespace: namespace.into(),
        service_account: ObjectRef { name: name.into(), uid: account_uid },
        pod,
        node,
        audiences: audiences.clone(),
        expiration_seconds: expiration,
    };
    let issued = service_account::issue(key, &spec)?;
    let audiences = if audiences.is_empty() { vec![service_account::ISSUER.to_string()] } else { audiences };
    let expires = jiff::Timestamp::from_second(issued.expires)
        .map_err(|e| Error::Internal(format!("token expiry: {e}")))?
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    request["apiVersion"] = "authentication.k8s.io/v1".into();
    request["kind"] = "TokenRequest".into();
    request["metadata"] = json!({
        "name": name,
        "namespace": namespace,
        "creationTimestamp": crate::registry::strategy::now(),
    });
    request["spec"]["audiences"] = json!(audiences);
    request["spec"]["expirationSeconds"] = expiration.into();
    request["status"] = json!({"token": issued.token, "expirationTimestamp": expires});
    Ok(request)
}

/// The pod (and its node) a token is to be bound to. Only pods can be bound to here.
fn bound_pod(
    store: &Store,
    namespace: &str,
    account: &str,
    bound: &Value,
) -> Result<(Option<ObjectRef>, Option<ObjectRef>)> {
    let kind = bound["kind"].as_str().unwrap_or_default();
    let api_version = bound["apiVersion"].as_str().unwrap_or("v1");
    if kind != "Pod" || api_version != "v1" {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
        let version = api_version.rsplit('/').next().unwrap_or_default();
        return Err(Error::BadRequest(format!("cannot bind token to object of type {group}/{version}, Kind={kind}")));
    }
    let pod_name = bound["name"].as_str().unwrap_or_default();
    let (uid, pod) = uid_of(store, "pods", namespace, pod_name)?;
    if pod["spec"]["serviceAccountName"].as_str().unwrap_or("default") != account {
        return Err(Error::BadRequest(format!(
            "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
        )));
    }
    if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty())
        && want != uid
    {
        return Err(Error::Conflict {
            group: String::new(),
            kind: "Pod".into(),
            name: pod_name.into(),
            message: format!(
                "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        });
    }
    let node = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()).map(|node| ObjectRef {
        name: node.into(),
        uid: store
            .get(&ObjectKey::new("nodes", "", node))
            .and_then(|n| n.object["metadata"]["uid"].as_str().map(str::to_string))
            .unwrap_or_default(),
    });
    Ok((Some(ObjectRef { name: pod_name.into(), uid }), node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreOptions, Write};

    async fn put(store: &Store, resource: &str, name: &str, object: Value) {
        let key = ObjectKey::new(resource, "team", name);
        store.write(Write::Create { key, object }).await.unwrap();
    }

    #[tokio::test]
    async fn tokens_are_issued_for_existing_accounts_and_pods() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
        let key = SigningKey::generate().unwrap();
        let err = issue(&store, &key, "team", "builder", json!({})).unwrap_err();
        assert_eq!(err.to_string(), "serviceaccounts \"builder\" not found");
        put(&store, "serviceaccounts", "builder", json!({"metadata": {"name": "builder", "uid": "sa-1"}})).await;

        let answer = issue(&store, &key, "team", "builder", json!({"spec": {}})).unwrap();
        assert_eq!(answer["kind"], "TokenRequest");
        assert_eq!(answer["spec"]["expirationSeconds"], 3600);
        assert_eq!(answer["spec"]["audiences"], json!([service_account::ISSUER]));
        assert!(answer["status"]["expirationTimestamp"].as_str().unwrap().ends_with('Z'));
        let token = answer["status"]["token"].as_str().unwrap();
        let user = service_account::authenticate(&store, &key, token).unwrap();
        assert_eq!(user.name, "system:serviceaccount:team:builder");

        let short = issue(&store, &key, "team", "builder", json!({"spec": {"expirationSeconds": 60}})).unwrap_err();
        assert_eq!(
            short.to_string(),
            "TokenRequest.authentication.k8s.io \"builder\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        );

        let bound = json!({"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web"}}});
        let err = issue(&store, &key, "team", "builder", bound.clone()).unwrap_err();
        assert_eq!(err.to_string(), "pods \"web\" not found");
        let pod = json!({"metadata": {"name": "web", "uid": "pod-1"}, "spec": {"serviceAccountName": "builder"}});
        put(&store, "pods", "web", pod).await;
        let answer = issue(&store, &key, "team", "builder", bound).unwrap();
        let user = service_account::authenticate(&store, &key, answer["status"]["token"].as_str().unwrap()).unwrap();
        assert_eq!(user.extra[service_account::EXTRA_POD_UID], ["pod-1"]);

        let other = json!({"spec": {"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s"}}});
        let err = issue(&store, &key, "team", "builder", other).unwrap_err();
        assert_eq!(err.to_string(), "cannot bind token to object of type /v1, Kind=Secret");
    }
}
