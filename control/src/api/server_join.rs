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

/// Asks the server at `url` to let this one join with the server token `token`. First its CA is
/// fetched from `/cacerts` (without the token) and must be the one the token names; the token is
/// then sent only over TLS that trusts that CA alone, so a server without the CA's key never sees
/// it. The CA it answers with must be the one the token names too.
pub async fn join(url: &str, token: &str) -> Result<Joined> {
    let url = url.trim_end_matches('/');
    let fail = |message: String| Error::BadRequest(format!("cannot join {url}: {message}"));
    let not_the_ca = || Error::BadRequest(format!("the server at {url} does not have the CA the token names"));
    let pinned = tokens::node_token_ca_hash(token).ok_or_else(|| {
        fail(
            "--token is not a server token (wharf1.<CA hash>.<secret>, as in the other server's DATA_DIR/server.token)"
                .into(),
        )
    })?;
    let timeout = std::time::Duration::from_secs(30);
    // The certificate is not verified for this one call (this server has no CA yet); no token is
    // sent, and what comes back is checked against the token's hash.
    let response = crate::api::agent_client()
        .get(format!("{url}/cacerts"))
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| fail(format!("the server does not answer: {}", error_chain(&e))))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("the server cannot tell its CA ({status})")));
    }
    let ca_pem = response.text().await.map_err(|e| fail(format!("cannot read its CA: {e}")))?;
    if tokens::ca_hash(&ca_pem) != pinned {
        return Err(not_the_ca());
    }
    let tls = crate::auth::pki::client_tls(&ca_pem).map_err(|e| fail(format!("its CA is unusable: {e}")))?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .map_err(|e| fail(format!("cannot make an HTTP client: {e}")))?;
    let response = client
        .post(format!("{url}{PATH}"))
        .bearer_auth(token.trim())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            fail(format!(
                "cannot reach it over TLS trusting only the cluster CA (its certificate must be signed by that CA and name the address in the URL): {}",
                error_chain(&e)
            ))
        })?;
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
        return Err(not_the_ca());
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
    use std::sync::Mutex;

    use super::*;
    use crate::auth::pki;

    const URL: &str = "postgres://wharf:secret@db:5432/wharf";

    /// A CA (and the directory keeping its key) and a serving certificate it signed for 127.0.0.1.
    fn pki() -> (tempfile::TempDir, pki::Pki) {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki::load_or_create(dir.path(), &["127.0.0.1".into()]).unwrap();
        (dir, pki)
    }

    /// Serves `app` over TLS with `tls` on a free port; its base URL.
    async fn serve_tls(app: Router, tls: Arc<rustls::ServerConfig>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(crate::api::serve::serve(listener, tls, app, std::future::pending()));
        format!("https://{address}")
    }

    /// Serves the endpoint (answering with `ca_pem`) and `/cacerts` (the CA `pki` has), as a
    /// server does; its base URL.
    async fn serve(pki: &pki::Pki, datastore: Datastore, ca_pem: &str, token: &str) -> String {
        let service = JoinService { token: token.into(), datastore, ca_pem: ca_pem.into() };
        let served = pki.ca_pem.clone();
        let app = router(service).route("/cacerts", axum::routing::get(move || async move { served }));
        serve_tls(app, pki.server_config.clone()).await
    }

    fn token_for(ca_pem: &str) -> String {
        format!("wharf1.{}.{}", tokens::ca_hash(ca_pem), tokens::generate())
    }

    #[tokio::test]
    async fn the_server_token_gets_the_datastore_and_the_ca() {
        let (_dir, pki) = pki();
        let token = token_for(&pki.ca_pem);
        let url = serve(&pki, Datastore::Postgres(URL.into()), &pki.ca_pem, &token).await;
        let joined = join(&url, &token).await.unwrap();
        assert_eq!(joined.datastore, Datastore::Postgres(URL.into()));
        assert_eq!(joined.ca_pem, pki.ca_pem);
    }

    #[tokio::test]
    async fn other_tokens_and_sqlite_are_refused() {
        let (_dir, pki) = pki();
        let token = token_for(&pki.ca_pem);
        let url = serve(&pki, Datastore::Postgres(URL.into()), &pki.ca_pem, &token).await;
        let wrong = token_for(&pki.ca_pem);
        let e = join(&url, &wrong).await.unwrap_err().to_string();
        assert!(e.contains("refused the token") && !e.contains("secret"), "{e}");
        let e = join(&url, "not-a-token").await.unwrap_err().to_string();
        assert!(e.contains("not a server token"), "{e}");
        let response = crate::api::agent_client().get(format!("{url}{PATH}")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

        let sqlite = serve(&pki, Datastore::Sqlite("/var/lib/wharf/wharf.db".into()), &pki.ca_pem, &token).await;
        let e = join(&sqlite, &token).await.unwrap_err().to_string();
        assert!(e.contains("this server's datastore is SQLite"), "{e}");
    }

    #[tokio::test]
    async fn a_server_without_the_pinned_ca_is_not_trusted() {
        let (_dir, cluster) = pki();
        let token = token_for(&cluster.ca_pem);

        // A server with its own CA, telling it.
        let (_other_dir, other) = pki();
        let impostor = serve(&other, Datastore::Postgres(URL.into()), &other.ca_pem, &token).await;
        let e = join(&impostor, &token).await.unwrap_err().to_string();
        assert!(e.contains(&format!("the server at {impostor} does not have the CA the token names")), "{e}");

        // A server that answers with another CA than the one it serves.
        let lying = serve(&cluster, Datastore::Postgres(URL.into()), &other.ca_pem, &token).await;
        let e = join(&lying, &token).await.unwrap_err().to_string();
        assert!(e.contains(&format!("the server at {lying} does not have the CA the token names")), "{e}");
    }

    /// A server that echoes the cluster's (public) CA but has not its key never sees the token.
    #[tokio::test]
    async fn the_token_goes_only_to_a_server_the_ca_signed() {
        let (_dir, cluster) = pki();
        let token = token_for(&cluster.ca_pem);
        let (_other_dir, other) = pki();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let recorded = seen.clone();
        let public_ca = cluster.ca_pem.clone();
        let answer = json!({"datastore": URL, "ca": cluster.ca_pem}).to_string();
        let app = Router::new().route("/cacerts", axum::routing::get(move || async move { public_ca })).route(
            PATH,
            axum::routing::post(move |headers: HeaderMap| async move {
                let presented = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("").to_string());
                recorded.lock().unwrap().extend(presented);
                answer
            }),
        );
        let impostor = serve_tls(app, other.server_config.clone()).await;
        let e = join(&impostor, &token).await.unwrap_err().to_string();
        assert!(e.contains("over TLS trusting only the cluster CA"), "{e}");
        assert!(seen.lock().unwrap().is_empty(), "the impostor saw {:?}", seen.lock().unwrap());
    }
}
