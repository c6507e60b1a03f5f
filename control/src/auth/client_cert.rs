//! Client certificates signed by the cluster CA: the TLS listener asks for one (optional), rustls
//! verifies it against the CA during the handshake, and the verified leaf's subject names the
//! user as Kubernetes reads it — CN is the user name, each O a group.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

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
    let mut cas = Vec::new();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| error("CA PEM", &e))?;
        cas.push(ca.to_vec());
        roots.add(ca).map_err(|e| error("CA", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| error("verifier", &e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| error("TLS versions", &e))?
        .with_client_cert_verifier(Arc::new(Verifier { webpki, cas }))
        .with_cert_resolver(serving.cert_resolver.clone());
    config.alpn_protocols = serving.alpn_protocols.clone();
    Ok(Arc::new(config))
}

/// WebPKI's verification, and for the version 1 certificates `openssl x509 -req` makes when
/// given no extensions (WebPKI refuses them; Kubernetes accepts them): the CA's signature
/// directly on the certificate, checked with its public key, and the validity period.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<dyn ClientCertVerifier>,
    /// The CA certificates (DER).
    cas: Vec<Vec<u8>>,
}

impl Verifier {
    fn version_1_signed_by_ca(&self, leaf: &[u8], now: UnixTime) -> bool {
        use x509_parser::prelude::{ASN1Time, X509Version, parse_x509_certificate};
        let Ok((_, leaf)) = parse_x509_certificate(leaf) else { return false };
        let Ok(now) = ASN1Time::from_timestamp(now.as_secs() as i64) else { return false };
        leaf.version() == X509Version::V1
            && leaf.validity().is_valid_at(now)
            && self.cas.iter().any(|ca| {
                parse_x509_certificate(ca).is_ok_and(|(_, ca)| {
                    ca.subject() == leaf.issuer() && leaf.verify_signature(Some(ca.public_key())).is_ok()
                })
            })
    }
}

impl ClientCertVerifier for Verifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        match self.webpki.verify_client_cert(end_entity, intermediates, now) {
            Err(_) if self.version_1_signed_by_ca(end_entity, now) => Ok(ClientCertVerified::assertion()),
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let verified = self.webpki.verify_tls13_signature(message, cert, dss);
        if verified.is_ok() {
            return verified;
        }
        // WebPKI cannot read a version 1 certificate's key: read it here (the certificate was
        // verified by verify_client_cert).
        let Ok((_, leaf)) = x509_parser::parse_x509_certificate(cert) else { return verified };
        let spki = SubjectPublicKeyInfoDer::from(leaf.public_key().raw);
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
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
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, "dev");
        assert!(ClientCertificate::from_der(params.self_signed(&key).unwrap().der()).is_none());
        assert!(ClientCertificate::from_der(b"not a certificate").is_none());
    }
}
