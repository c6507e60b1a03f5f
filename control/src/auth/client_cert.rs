//! Client certificates signed by the cluster CA: the TLS listener asks for one (optional), rustls
//! verifies it against the CA during the handshake, and the verified leaf's subject names the
//! user as Kubernetes reads it — CN is the user name, each O a group.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;

use super::User;
use crate::error::{Error, Result};

/// The identity of a connection's verified client certificate, put into each of its requests'
/// extensions by the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    user: User,
}

impl ClientCertificate {
    /// The identity a certificate (DER, already verified against the CA) names: CN → user,
    /// O → groups. None without a CN or when it does not parse.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = certificate.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        if name.is_empty() {
            return None;
        }
        let groups: Vec<String> =
            subject.iter_organization().filter_map(|o| o.as_str().ok()).map(String::from).collect();
        Some(Self { user: User::new(name, groups) })
    }

    pub fn user(&self) -> &User {
        &self.user
    }
}

/// `serving`'s certificate and protocols, also asking clients for an optional certificate that
/// must chain to the CA in `ca_pem` (one that does not fails the handshake; none is fine).
pub fn server_config(serving: &ServerConfig, ca_pem: &str) -> Result<Arc<ServerConfig>> {
    let error = |what: &str, e: &dyn std::fmt::Display| Error::Internal(format!("client certificates: {what}: {e}"));
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca.map_err(|e| error("CA PEM", &e))?).map_err(|e| error("CA", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| error("verifier", &e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| error("TLS versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(serving.cert_resolver.clone());
    config.alpn_protocols = serving.alpn_protocols.clone();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    #[test]
    fn the_subject_names_the_user_and_groups() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "jane");
        // rcgen keeps one value per attribute type; the e2e test checks several O with openssl.
        params.distinguished_name.push(DnType::OrganizationName, "dev");
        let cert = params.self_signed(&key).unwrap();
        let identity = ClientCertificate::from_der(cert.der()).unwrap();
        assert_eq!(identity.user().name, "jane");
        assert_eq!(identity.user().groups, ["dev", crate::auth::AUTHENTICATED]);

        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::OrganizationName, "dev");
        assert!(ClientCertificate::from_der(params.self_signed(&key).unwrap().der()).is_none());
        assert!(ClientCertificate::from_der(b"not a certificate").is_none());
    }
}
