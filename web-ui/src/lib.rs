//! The web dashboard's build, embedded in the `wharf` binary and served under `/ui/`: hashed
//! files (`/ui/assets/…`) cached for a year, `index.html` revalidated, gzip when the browser
//! takes it, and `index.html` for every other path so the app's own routes load directly.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One file of the build.
pub struct Asset {
    /// Its path under `/ui/`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub etag: &'static str,
    pub bytes: &'static [u8],
    pub gzip: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The files of the build.
pub fn assets() -> &'static [Asset] {
    ASSETS
}

/// The dashboard's routes.
pub fn router() -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|headers: HeaderMap| async move { serve(index(), &headers) }))
        .route("/ui/{*path}", get(file))
}

const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

fn index() -> &'static Asset {
    ASSETS.iter().find(|a| a.path == "index.html").expect("the build has index.html")
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(asset) => serve(asset, &headers),
        // A missing file of the build is a 404; any other path is one of the app's routes.
        None if path.starts_with("assets/") => (StatusCode::NOT_FOUND, "no such file").into_response(),
        None => serve(index(), &headers),
    }
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let immutable = asset.path.starts_with("assets/");
    let mut response = if !immutable
        && request.get(header::IF_NONE_MATCH).is_some_and(|tag| tag.as_bytes() == asset.etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(request) {
        let mut response = asset.gzip.into_response();
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        asset.bytes.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable { "public, max-age=31536000, immutable" } else { "no-cache" }),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if asset.content_type.starts_with("text/html") {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_has_an_index_and_hashed_assets() {
        assert!(ASSETS.iter().any(|a| a.path == "index.html"));
        let scripts: Vec<_> =
            ASSETS.iter().filter(|a| a.path.starts_with("assets/") && a.path.ends_with(".js")).collect();
        assert!(!scripts.is_empty(), "no script in the build");
        for asset in ASSETS {
            assert!(!asset.gzip.is_empty() && asset.gzip.len() <= asset.bytes.len() + 64, "{} gzip", asset.path);
        }
    }
}
