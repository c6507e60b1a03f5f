//! Manifest decoding as the API server does it: a request body in JSON, YAML or protobuf
//! (`api::request::decode`), then defaults and the per-kind validation. Byte 0 picks the media
//! type, byte 1 the kind; the rest is the body.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use wharf_control::api::request;
use wharf_control::registry::kinds;

const MEDIA_TYPES: &[&str] = &["application/json", "application/yaml", "application/vnd.kubernetes.protobuf", ""];

fuzz_target!(|data: &[u8]| {
    let [media, kind, body @ ..] = data else { return };
    let mut headers = HeaderMap::new();
    let media = MEDIA_TYPES[*media as usize % MEDIA_TYPES.len()];
    if !media.is_empty() {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    }
    let Ok(decoded) = request::decode(&headers, body) else { return };
    // The kind the body names when the table knows it (as a request to its own path), else one
    // picked by the input (a body of another kind sent to that path).
    let named = match (decoded.object["apiVersion"].as_str(), decoded.object["kind"].as_str()) {
        (Some(v), Some(k)) => kinds::by_kind(v, k),
        _ => None,
    };
    let resource = named.unwrap_or_else(|| wharf_fuzz::kind(*kind));
    wharf_fuzz::default_and_validate(resource, decoded.object);
});
