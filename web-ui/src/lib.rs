//! The web dashboard's build, embedded in the `wharf` binary and served under `/ui/`.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

/// The dashboard's routes: its files under `/ui/`, and `index.html` for its client routes.
pub fn router() -> Router {
    Router::new().route("/ui", get(missing)).route("/ui/", get(missing)).route("/ui/{*path}", get(missing))
}

async fn missing() -> (StatusCode, &'static str) {
    (StatusCode::SERVICE_UNAVAILABLE, "the dashboard is not built into this binary")
}
