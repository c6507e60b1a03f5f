//! `POST /wharf/v1/server-join` with `Authorization: Bearer <server token>`: tells a server that
//! joins the cluster (`wharf server --join URL --token T`) where the cluster's datastore is and
//! which CA it has, answered as `{"datastore": "postgres://…", "ca": "<PEM>"}`.
//!
//! The server token (`DATA_DIR/server.token`, `wharf1.<CA hash>.<secret>`) is checked here and
//! nowhere else: the [`Authenticator`](crate::auth::tokens::Authenticator) does not know it, so it
//! grants nothing else, and this route needs no RBAC rule (it is served beside the API, before
//! authentication). The datastore URL carries the database password, so only that token reveals it.
//! A SQLite datastore cannot be shared: joining such a server is refused.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::auth::tokens;
use crate::error::{Error, Result};
use crate::store::Datastore;

/// Where the endpoint is routed.
pub const PATH: &str = "/wharf/v1/server-join";

/// What the endpoint answers with.
pub struct JoinService {
    /// The server token it accepts.
    pub token: String,
    pub datastore: Datastore,
    pub ca_pem: String,
}

/// The endpoint's routes, merged beside the API's.
pub fn router(service: JoinService) -> Router {
    Router::new().route(PATH, axum::routing::any(serve)).with_state(Arc::new(service))
}

async fn serve(State(service): State<Arc<JoinService>>, method: Method, headers: HeaderMap) -> Response {
    match answer(&service, &method, &headers) {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

fn answer(service: &JoinService, method: &Method, headers: &HeaderMap) -> Result<Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(Error::Unauthorized)?;
    if !tokens::same_token(presented, &service.token) {
        return Err(Error::Unauthorized);
    }
    if *method != Method::POST {
        return Err(Error::MethodNotAllowed);
    }
    match &service.datastore {
        Datastore::Sqlite(_) => Err(Error::BadRequest(
            "this server's datastore is SQLite: only one server can use it; start servers with --datastore postgres://…"
                .into(),
        )),
        Datastore::Postgres(url) => Ok({
            tracing::info!("told a joining server the datastore and the CA");
            (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"datastore": url, "ca": service.ca_pem}).to_string(),
        )
            .into_response()
        }),
    }
}

/// What a joining server learns from the cluster.
#[derive(Debug)]
pub struct Joined {
    pub datastore: Datastore,
    pub ca_pem: String,
}

#[derive(Deserialize)]
struct Answer {
    datastore: String,
    ca: String,
}

/// Asks the server at `url` to let this one join with the server token `token`. Its TLS
/// certificate is not verified (this server has no CA yet); the CA it answers with must be the
/// one the token names.
pub async fn join(url: &str, token: &str) -> Result<Joined> {
    let url = url.trim_end_matches('/');
    let fail = |message: String| Error::BadRequest(format!("cannot join {url}: {message}"));
    let pinned = tokens::node_token_ca_hash(token).ok_or_else(|| {
        fail(
            "--token is not a server token (wharf1.<CA hash>.<secret>, as in the other server's DATA_DIR/server.token)"
                .into(),
        )
    })?;
    let response = crate::api::agent_client()
        .post(format!("{url}{PATH}"))
        .bearer_auth(token.trim())
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| fail(format!("the server does not answer: {}", error_chain(&e))))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| fail(format!("cannot read the answer: {e}")))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|s| s["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let message = if status == StatusCode::UNAUTHORIZED {
            "the server refused the token (Unauthorized): use the token in its DATA_DIR/server.token".to_string()
        } else {
            format!("the server refused ({status}): {message}")
        };
        return Err(fail(message));
    }
    let answer: Answer = serde_json::from_slice(&body)
        .map_err(|_| fail("the server's answer is not a server-join answer (is it a Wharf server?)".into()))?;
    if tokens::ca_hash(&answer.ca) != pinned {
        return Err(Error::BadRequest(format!("the server at {url} does not have the CA the token names")));
    }
    let datastore = Datastore::parse(&answer.datastore).map_err(fail)?;
    Ok(Joined { datastore, ca_pem: answer.ca })
}

/// An error with its sources, which say why a connection failed.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nthe cluster CA\n-----END CERTIFICATE-----\n";
    const URL: &str = "postgres://wharf:secret@db:5432/wharf";

    /// Serves the endpoint over plain HTTP on a free port; its base URL.
    async fn serve(datastore: Datastore, ca_pem: &str, token: &str) -> String {
        let service = JoinService { token: token.into(), datastore, ca_pem: ca_pem.into() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(service)).await });
        format!("http://{address}")
    }

    fn token_for(ca_pem: &str) -> String {
        format!("wharf1.{}.{}", tokens::ca_hash(ca_pem), tokens::generate())
    }

    #[tokio::test]
    async fn the_server_token_gets_the_datastore_and_the_ca() {
        let token = token_for(CA);
        let url = serve(Datastore::Postgres(URL.into()), CA, &token).await;
        let joined = join(&url, &token).await.unwrap();
        assert_eq!(joined.datastore, Datastore::Postgres(URL.into()));
        assert_eq!(joined.ca_pem, CA);
    }

    #[tokio::test]
    async fn other_tokens_and_sqlite_are_refused() {
        let token = token_for(CA);
        let url = serve(Datastore::Postgres(URL.into()), CA, &token).await;
        let wrong = token_for(CA);
        let e = join(&url, &wrong).await.unwrap_err().to_string();
        assert!(e.contains("refused the token") && !e.contains("secret"), "{e}");
        let e = join(&url, "not-a-token").await.unwrap_err().to_string();
        assert!(e.contains("not a server token"), "{e}");
        let response = crate::api::agent_client().get(format!("{url}{PATH}")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

        let sqlite = serve(Datastore::Sqlite("/var/lib/wharf/wharf.db".into()), CA, &token).await;
        let e = join(&sqlite, &token).await.unwrap_err().to_string();
        assert!(e.contains("this server's datastore is SQLite"), "{e}");
    }

    #[tokio::test]
    async fn a_server_without_the_pinned_ca_is_not_trusted() {
        let token = token_for(CA);
        let impostor = serve(Datastore::Postgres(URL.into()), "another CA", &token).await;
        let e = join(&impostor, &token).await.unwrap_err().to_string();
        assert!(e.contains(&format!("the server at {impostor} does not have the CA the token names")), "{e}");
    }
}
