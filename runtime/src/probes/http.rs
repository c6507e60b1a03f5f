//! httpGet probes as the kubelet makes them: HTTP/1.1 GET (HTTPS without verifying the
//! certificate), kube-probe User-Agent, `Accept: */*` unless the probe sets it, same-host
//! redirects followed up to ten times and redirects elsewhere reported rather than followed;
//! 200 ≤ status < 400 passes.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{ACCEPT, CONNECTION, HOST, HeaderName, HeaderValue, LOCATION, USER_AGENT};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::{MAX_REDIRECTS, OUTPUT_LIMIT, Outcome, USER_AGENT as PROBE_AGENT, net};

/// Where an HTTP probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Url {
    https: bool,
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    path: String,
}

impl Url {
    pub(super) fn new(https: bool, host: &str, port: u16, path: &str) -> Self {
        let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
        Url { https, host: host.trim_start_matches('[').trim_end_matches(']').to_string(), port, path }
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The target of a `Location` header, relative to this URL.
    fn join(&self, location: &str) -> Option<Url> {
        let (https, rest) = if let Some(rest) = location.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = location.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = location.strip_prefix("//") {
            (self.https, rest)
        } else if location.starts_with('/') {
            return Some(Url { path: location.to_string(), ..self.clone() });
        } else {
            let dir = &self.path[..self.path.split(['?', '#']).next().unwrap_or("/").rfind('/').unwrap_or(0) + 1];
            return Some(Url { path: format!("{dir}{location}"), ..self.clone() });
        };
        let (authority, path) = rest.find(['/', '?']).map_or((rest, "/"), |i| rest.split_at(i));
        let default_port = if https { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
            _ => (authority, default_port),
        };
        (!host.is_empty()).then(|| Url::new(https, host, port, path))
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", if self.https { "https" } else { "http" }, self.authority(), self.path)
    }
}

pub(super) async fn check(url: Url, headers: &[(String, String)], netns: Option<&Path>, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    let first_host = url.host.clone();
    let mut url = url;
    let mut redirects = 0;
    loop {
        let answer = match tokio::time::timeout_at(deadline, get(&url, headers, netns, deadline)).await {
            Err(_) => {
                return Outcome::Failure(format!(
                    "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                ));
            }
            Ok(Err(outcome)) => return outcome,
            Ok(Ok(answer)) => answer,
        };
        let follow = matches!(answer.status, 301 | 302 | 303 | 307 | 308);
        // Only redirects to the same host are followed; others end the probe with a warning.
        if let Some(next) = answer.location.as_deref().filter(|_| follow).and_then(|l| url.join(l))
            && next.host == first_host
        {
            if redirects == MAX_REDIRECTS {
                return Outcome::Failure(format!("Get \"{next}\": stopped after {MAX_REDIRECTS} redirects"));
            }
            redirects += 1;
            url = next;
            continue;
        }
        return match answer.status {
            200..=299 => Outcome::Success,
            300..=399 => Outcome::Warning(format!("Probe terminated redirects, Response body: {}", answer.body)),
            // The body stays out: it may hold what the event should not show.
            status => Outcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
        };
    }
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

async fn get(
    url: &Url,
    headers: &[(String, String)],
    netns: Option<&Path>,
    deadline: Instant,
) -> Result<Answer, Outcome> {
    let failed = |detail: String| Outcome::Failure(format!("Get \"{url}\": {detail}"));
    let request = request(url, headers).map_err(failed)?;
    let stream = match net::connect(netns, &url.host, url.port, deadline).await {
        Ok(stream) => stream,
        Err(Outcome::Failure(dial)) => return Err(failed(dial)),
        Err(other) => return Err(other),
    };
    let response = if url.https {
        let name = ServerName::try_from(url.host.clone())
            .or_else(|_| stream.peer_addr().map(|a| ServerName::IpAddress(a.ip().into())))
            .map_err(|e| failed(e.to_string()))?;
        let tls = TlsConnector::from(TLS.clone()).connect(name, stream).await.map_err(|e| failed(e.to_string()))?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(stream), request).await
    };
    response.map_err(failed)
}

fn request(url: &Url, headers: &[(String, String)]) -> Result<Request<Empty<Bytes>>, String> {
    let mut request = Request::get(url.path.as_str()).body(Empty::new()).map_err(|e| e.to_string())?;
    let map = request.headers_mut();
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header field name {name:?}"))?;
        let value = HeaderValue::from_str(value).map_err(|_| format!("invalid header field value for {name:?}"))?;
        map.append(name, value);
    }
    if map.get(HOST).is_none_or(|h| h.is_empty()) {
        let authority = HeaderValue::from_str(&url.authority()).map_err(|e| e.to_string())?;
        map.insert(HOST, authority);
    }
    if !map.contains_key(USER_AGENT) {
        map.insert(USER_AGENT, HeaderValue::from_static(PROBE_AGENT));
    }
    match map.get(ACCEPT) {
        None => {
            map.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        Some(accept) if accept.is_empty() => {
            map.remove(ACCEPT);
        }
        Some(_) => {}
    }
    map.insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(request)
}

async fn exchange<T>(io: T, request: Request<Empty<Bytes>>) -> Result<Answer, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    let exchange = async move {
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let location = response.headers().get(LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
        let body = read_body(response).await?;
        Ok(Answer { status, location, body: String::from_utf8_lossy(&body).into_owned() })
    };
    alongside(conn, exchange).await.map_err(|e: hyper::Error| e.to_string())
}

/// The first [`OUTPUT_LIMIT`] bytes of a response's body.
pub(super) async fn read_body(response: Response<hyper::body::Incoming>) -> Result<Vec<u8>, hyper::Error> {
    let mut body = response.into_body();
    let mut kept = Vec::new();
    while kept.len() < OUTPUT_LIMIT {
        let Some(frame) = body.frame().await else { break };
        if let Ok(data) = frame?.into_data() {
            kept.extend_from_slice(&data[..data.len().min(OUTPUT_LIMIT - kept.len())]);
        }
    }
    Ok(kept)
}

/// Runs a request while driving its connection, in this task: nothing outlives the probe.
pub(super) async fn alongside<T>(
    conn: impl Future<Output = hyper::Result<()>>,
    exchange: impl Future<Output = hyper::Result<T>>,
) -> hyper::Result<T> {
    tokio::pin!(conn, exchange);
    tokio::select! {
        biased;
        answer = &mut exchange => answer,
        closed = &mut conn => {
            closed?;
            exchange.await
        }
    }
}

/// TLS that accepts any server certificate, as the kubelet's probes do.
static TLS: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
});

/// Accepts every certificate but still checks the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_current_url() {
        let base = Url::new(false, "10.0.0.1", 8080, "/app/healthz?x=1");
        assert_eq!(base.to_string(), "http://10.0.0.1:8080/app/healthz?x=1");
        assert_eq!(base.join("/ready").map(|u| u.to_string()).as_deref(), Some("http://10.0.0.1:8080/ready"));
        assert_eq!(base.join("ready").map(|u| u.to_string()).as_deref(), Some("http://10.0.0.1:8080/app/ready"));
        assert_eq!(
            base.join("https://example.com/x").map(|u| u.to_string()).as_deref(),
            Some("https://example.com:443/x")
        );
        assert_eq!(base.join("//other:81").map(|u| u.to_string()).as_deref(), Some("http://other:81/"));
        let v6 = Url::new(false, "::1", 80, "");
        assert_eq!(v6.to_string(), "http://[::1]:80/");
        assert_eq!(v6.join("http://[::1]:81/a").map(|u| (u.host, u.port)), Some(("::1".to_string(), 81)));
    }

    #[test]
    fn requests_carry_the_kubelets_headers_unless_the_probe_sets_them() {
        let url = Url::new(false, "127.0.0.1", 80, "healthz");
        let plain = request(&url, &[]).expect("request");
        assert_eq!(plain.uri(), "/healthz");
        assert_eq!(plain.headers()[HOST], "127.0.0.1:80");
        assert_eq!(plain.headers()[USER_AGENT], PROBE_AGENT);
        assert_eq!(plain.headers()[ACCEPT], "*/*");
        let custom = [("Host".into(), "app.example".into()), ("Accept".into(), String::new())];
        let custom = request(&url, &custom).expect("request");
        assert_eq!(custom.headers()[HOST], "app.example");
        assert!(custom.headers().get(ACCEPT).is_none(), "an empty Accept removes the header");
        assert!(request(&url, &[("bad header".into(), "x".into())]).is_err());
    }
}
