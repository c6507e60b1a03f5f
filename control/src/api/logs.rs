//! `pods/{name}/log`: the API server finds the node running the pod and streams the container
//! log from that node's agent, authenticating itself with its own client certificate
//! (`wharf:apiserver`, signed by the cluster CA: the one identity agents serve). The agents'
//! serving certificates are self-signed and not verified (as kube-apiserver without
//! `--kubelet-certificate-authority`).
//! The pod, container and agent look-ups here serve `pods/{name}/exec` as well.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

use super::ApiState;
use super::request::{Query, Target};
use crate::error::{Error, Result};
use crate::store::ObjectKey;

/// Query parameters kubectl sends that the agent understands.
const FORWARDED: &[&str] =
    &["follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"];

/// An HTTP client for agents and gateways, presenting no client certificate (joining agents
/// fetch the CA with it).
pub fn agent_client() -> reqwest::Client {
    client_with(agent_tls())
}

fn client_with(tls: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder().use_preconfigured_tls(tls).build().expect("HTTP client builds")
}

impl ApiState {
    /// Calls agents (logs, exec, port-forward, metrics, function logs) as the API server: with
    /// the client certificate and key (PEM) of `wharf:apiserver`, see
    /// `auth::pki::apiserver_client_identity`.
    pub fn with_agent_identity(mut self, (cert_pem, key_pem): (String, String)) -> Result<Self> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(format!("the API server's client certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| Error::Internal(format!("the API server's client key: {e}")))?;
        let tls = tls_builder()
            .with_client_auth_cert(chain, key)
            .map_err(|e| Error::Internal(format!("the API server's client identity: {e}")))?;
        self.agents = client_with(tls.clone());
        self.agent_tls = Arc::new(tls);
        Ok(self)
    }
}

/// The TLS configuration for calling agents and gateways, with no client certificate.
pub(super) fn agent_tls() -> rustls::ClientConfig {
    tls_builder().with_no_client_auth()
}

/// TLS toward agents: their self-signed serving certificates are accepted.
fn tls_builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    #[derive(Debug)]
    struct AcceptAny;
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
}

fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(message.into())
}

/// The pod a `pods/{name}/...` request names, and the container its `container` parameter
/// chooses (the only one when absent), with kube-apiserver's messages.
pub(super) fn pod_container(state: &ApiState, target: &Target, query: &Query) -> Result<(Value, String)> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let pod = state.store.get(&ObjectKey::new("pods", &namespace, &name)).ok_or_else(|| Error::NotFound {
        group: String::new(),
        kind: "pods".into(),
        name: name.clone(),
    })?;
    let pod = pod.object.clone();
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .map(String::from)
            .collect()
    };
    let (containers, init) = (names("containers"), names("initContainers"));
    let container = match query.get("container") {
        Some(c) if containers.iter().chain(&init).any(|n| n == c) => c.to_string(),
        Some(c) => return Err(bad(format!("container {c} is not valid for pod {name}"))),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(bad(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    Ok((pod, container))
}

/// The address and port of a node's agent endpoint, from its Node object (a node that is gone is
/// `nodes "NAME" not found`, as kube-apiserver answers).
pub(super) fn agent_address(state: &ApiState, node_name: &str) -> Result<(String, u16)> {
    let node = state.store.get(&ObjectKey::new("nodes", "", node_name)).ok_or_else(|| Error::NotFound {
        group: String::new(),
        kind: "nodes".into(),
        name: node_name.into(),
    })?;
    let address = node.object["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .unwrap_or("127.0.0.1")
        .to_string();
    let port = node.object["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64().unwrap_or(10250);
    Ok((address, u16::try_from(port).unwrap_or(10250)))
}

/// `host:port` for a URL, with IPv6 addresses in brackets.
pub(super) fn authority(address: &str, port: u16) -> String {
    if address.contains(':') { format!("[{address}]:{port}") } else { format!("{address}:{port}") }
}

/// Serves `GET .../pods/{name}/log`.
pub async fn pod_log(state: &ApiState, target: &Target, query: &Query) -> Result<Response> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let (pod, container) = pod_container(state, target, query)?;
    // Wrong numbers are the request's fault (400), not the agent's.
    for key in ["tailLines", "sinceSeconds", "limitBytes"] {
        query.number(key)?;
    }
    let previous = query.flag("previous");
    let statuses = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|f| pod["status"][f].as_array())
        .flatten()
        .find(|s| s["name"] == container.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    if !previous
        && let Some(reason) = statuses["state"]["waiting"]["reason"].as_str()
        && statuses["lastState"].get("terminated").is_none()
    {
        return Err(bad(format!("container \"{container}\" in pod \"{name}\" is waiting to start: {reason}")));
    }
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(bad(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: the pod is not scheduled yet"
        )));
    }
    let (address, port) = agent_address(state, node_name)?;
    let mut url = reqwest::Url::parse(&format!("https://{}/", authority(&address, port)))
        .map_err(|e| Error::Internal(format!("agent URL: {e}")))?
        .join(&format!("containerLogs/{namespace}/{name}/{container}"))
        .map_err(|e| Error::Internal(format!("agent URL: {e}")))?;
    {
        let mut pairs = url.query_pairs_mut();
        for key in FORWARDED {
            if let Some(value) = query.get(key) {
                pairs.append_pair(key, value);
            }
        }
    }
    let response = state
        .agents
        .get(url)
        .send()
        .await
        .map_err(|e| Error::Unavailable(format!("cannot reach the agent of node {node_name}: {e}")))?;
    match response.status() {
        reqwest::StatusCode::OK => {
            let body = Body::from_stream(response.bytes_stream());
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], body).into_response())
        }
        reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::BAD_REQUEST => {
            Err(bad(response.text().await.unwrap_or_default()))
        }
        other => Err(Error::Unavailable(format!("the agent of node {node_name} answered {other}"))),
    }
}
