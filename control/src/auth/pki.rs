//! The cluster's certificate authority and the API server's serving certificate. The CA is made
//! once per data dir and kept; the serving certificate is signed anew at each start so that it
//! always names the addresses the server listens on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::error::{Error, Result};

/// The CA certificate (PEM) and the rustls config serving with a certificate it signed.
pub struct Pki {
    pub ca_pem: String,
    pub ca_path: PathBuf,
    pub server_config: Arc<ServerConfig>,
}

fn pki_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("{what}: {e}"))
}

/// Writes `contents` to `path` readable by the owner only.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| pki_error(&format!("cannot write {}", path.display()), e))?;
    file.write_all(contents.as_bytes()).map_err(|e| pki_error(&format!("cannot write {}", path.display()), e))
}

/// Loads the CA from `dir` (creating it on first use) and signs a serving certificate for
/// `hosts` (DNS names or IP addresses).
pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Pki> {
    std::fs::create_dir_all(dir).map_err(|e| pki_error(&format!("cannot create {}", dir.display()), e))?;
    ensure_ca(dir)?;
    let ca_cert_path = dir.join("ca.crt");
    let (ca_pem, issuer) = load_issuer(dir)?;

    let key = KeyPair::generate().map_err(|e| pki_error("cannot generate the serving key", e))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_error("serving parameters", e))?;
    params.distinguished_name.push(DnType::CommonName, "wharf-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    for host in hosts {
        let san = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.clone().try_into().map_err(|e| pki_error("bad host name", e))?),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    let cert = params.signed_by(&key, &issuer).map_err(|e| pki_error("cannot sign the serving certificate", e))?;

    let chain = vec![
        cert.der().clone(),
        CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| pki_error("CA PEM", e))?,
    ];
    let private = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).map_err(|e| pki_error("key PEM", e))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| pki_error("TLS versions", e))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| pki_error("TLS certificate", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Pki { ca_pem, ca_path: ca_cert_path, server_config: Arc::new(config) })
}

/// Makes the cluster CA in `dir` (`ca.key`, `ca.crt`) unless both exist.
pub fn ensure_ca(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| pki_error(&format!("cannot create {}", dir.display()), e))?;
    if dir.join("ca.crt").exists() && dir.join("ca.key").exists() {
        return Ok(());
    }
    let key = KeyPair::generate().map_err(|e| pki_error("cannot generate the CA key", e))?;
    write_private(&dir.join("ca.key"), &key.serialize_pem())?;
    write_ca_certificate(dir)
}

/// Writes `dir/ca.crt`: a new self-signed CA certificate for the key in `dir/ca.key`. A server
/// whose CA key lost a race to another server's signs the winner's key this way.
pub fn write_ca_certificate(dir: &Path) -> Result<()> {
    let key = KeyPair::from_pem(
        &std::fs::read_to_string(dir.join("ca.key")).map_err(|e| pki_error("cannot read the CA key", e))?,
    )
    .map_err(|e| pki_error("the CA key is unreadable", e))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_error("CA parameters", e))?;
    params.distinguished_name.push(DnType::CommonName, "wharf-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.self_signed(&key).map_err(|e| pki_error("cannot sign the CA", e))?;
    std::fs::write(dir.join("ca.crt"), cert.pem()).map_err(|e| pki_error("cannot write the CA", e))
}

/// The CA certificate (PEM) in `dir` and an issuer signing with its key.
fn load_issuer(dir: &Path) -> Result<(String, Issuer<'static, KeyPair>)> {
    let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).map_err(|e| pki_error("cannot read the CA", e))?;
    let ca_key = KeyPair::from_pem(
        &std::fs::read_to_string(dir.join("ca.key")).map_err(|e| pki_error("cannot read the CA key", e))?,
    )
    .map_err(|e| pki_error("the CA key is unreadable", e))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| pki_error("the CA is unreadable", e))?;
    Ok((ca_pem, issuer))
}

/// How long a client certificate issued here is valid.
const CLIENT_CERT_DAYS: i64 = 365;

/// Signs a client certificate (extended key usage clientAuth) with the cluster CA kept in
/// `pki_dir` (`ca.crt`, `ca.key`): the subject's CN is the user `cn`, one O per group in `orgs`,
/// as Kubernetes reads a client certificate. Valid from yesterday for a year. Returns the
/// certificate and its new private key, both PEM.
pub fn issue_client_certificate(pki_dir: &Path, cn: &str, orgs: &[&str]) -> Result<(String, String)> {
    let (_, issuer) = load_issuer(pki_dir)?;
    let key = KeyPair::generate().map_err(|e| pki_error("cannot generate the client key", e))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_error("client parameters", e))?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    let today = jiff::Zoned::now().date();
    let day = |d: jiff::civil::Date| rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8);
    let yesterday = today.yesterday().map_err(|e| pki_error("date", e))?;
    let until = today.checked_add(jiff::Span::new().days(CLIENT_CERT_DAYS)).map_err(|e| pki_error("date", e))?;
    params.not_before = day(yesterday);
    params.not_after = day(until);
    let cert = params.signed_by(&key, &issuer).map_err(|e| pki_error("cannot sign the client certificate", e))?;
    let der = with_subject(cert.der(), &subject_name(cn, orgs), issuer.key())?;
    Ok((to_pem(&der), key.serialize_pem()))
}

/// An X.509 Name with the common name `cn` and one organization per entry of `orgs`, each its
/// own relative distinguished name (rcgen keeps one value per attribute type, Kubernetes reads
/// every O as a group).
fn subject_name(cn: &str, orgs: &[&str]) -> Vec<u8> {
    const ORGANIZATION: &[u64] = &[2, 5, 4, 10];
    const COMMON_NAME: &[u64] = &[2, 5, 4, 3];
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (oid, value) in orgs.iter().map(|o| (ORGANIZATION, *o)).chain([(COMMON_NAME, cn)]) {
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&yasna::models::ObjectIdentifier::from_slice(oid));
                        w.next().write_utf8_string(value);
                    })
                })
            }
        })
    })
}

/// `cert` with its subject replaced by `subject` (DER Name), signed again with `ca_key`.
fn with_subject(cert: &[u8], subject: &[u8], ca_key: &KeyPair) -> Result<Vec<u8>> {
    use rcgen::SigningKey;
    let bad = |e: yasna::ASN1Error| pki_error("certificate DER", e);
    let (mut tbs, algorithm) = yasna::parse_der(cert, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_sequence(|r| {
                let mut fields = Vec::new();
                while let Some(field) = r.read_optional(|r| r.read_der())? {
                    fields.push(field);
                }
                Ok(fields)
            })?;
            let algorithm = r.next().read_der()?;
            r.next().read_bitvec_bytes()?;
            Ok((tbs, algorithm))
        })
    })
    .map_err(bad)?;
    // version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, extensions
    let subject_field = tbs.get_mut(5).ok_or_else(|| pki_error("certificate DER", "no subject"))?;
    *subject_field = subject.to_vec();
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for field in &tbs {
                w.next().write_der(field);
            }
        })
    });
    let signature = ca_key.sign(&tbs).map_err(|e| pki_error("cannot sign the client certificate", e))?;
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_der(&algorithm);
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    }))
}

fn to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// The API server's own client identity, presented to agents (`wharf:apiserver`): kept in
/// `pki_dir` as `apiserver-client.crt` and `.key`, made on first use and made again when it has
/// less than 30 days left. Returns (certificate PEM, key PEM).
pub fn apiserver_client_identity(pki_dir: &Path) -> Result<(String, String)> {
    let cert_path = pki_dir.join("apiserver-client.crt");
    let key_path = pki_dir.join("apiserver-client.key");
    if let (Ok(cert), Ok(key)) = (std::fs::read_to_string(&cert_path), std::fs::read_to_string(&key_path))
        && still_valid(pki_dir, &cert, 30)
    {
        return Ok((cert, key));
    }
    let (cert, key) = issue_client_certificate(pki_dir, APISERVER_USER, &[])?;
    write_private(&key_path, &key)?;
    std::fs::write(&cert_path, &cert).map_err(|e| pki_error(&format!("cannot write {}", cert_path.display()), e))?;
    Ok((cert, key))
}

/// The common name of the API server's client certificate, the one identity an agent serves.
pub const APISERVER_USER: &str = "wharf:apiserver";

/// A verifier of client certificates signed by the CA `ca_pem` (what an agent checks callers with).
pub fn client_verifier(ca_pem: &str) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(ca_roots(ca_pem)?),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| pki_error("client verifier", e))
}

/// The certificates of the CA in `ca_pem`, as trust roots.
fn ca_roots(ca_pem: &str) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| pki_error("CA PEM", e))?).map_err(|e| pki_error("CA certificate", e))?;
    }
    if roots.is_empty() {
        return Err(pki_error("CA PEM", "no certificate in it"));
    }
    Ok(roots)
}

/// TLS toward a server whose certificate the CA in `ca_pem` signed, and nothing else; no client
/// certificate.
pub fn client_tls(ca_pem: &str) -> Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| pki_error("TLS versions", e))?
        .with_root_certificates(ca_roots(ca_pem)?)
        .with_no_client_auth())
}

/// Whether the PEM certificate is signed by the CA in `pki_dir` and stays valid for at least
/// `days` more days.
fn still_valid(pki_dir: &Path, cert_pem: &str, days: u64) -> bool {
    let check = || -> Option<()> {
        let ca_pem = std::fs::read_to_string(pki_dir.join("ca.crt")).ok()?;
        let verifier = client_verifier(&ca_pem).ok()?;
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(days * 86_400);
        let at = rustls::pki_types::UnixTime::since_unix_epoch(later.duration_since(std::time::UNIX_EPOCH).ok()?);
        verifier.verify_client_cert(&der, &[], at).ok().map(|_| ())
    };
    check().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_are_signed_by_the_cluster_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = load_or_create(dir.path(), &["127.0.0.1".to_string()]).unwrap();
        let (cert, key) = issue_client_certificate(dir.path(), "alice", &["dev", "ops"]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        for name in ["alice", "dev", "ops"] {
            assert!(der.windows(name.len()).any(|w| w == name.as_bytes()), "{name} is in the subject");
        }
        client_verifier(&pki.ca_pem)
            .unwrap()
            .verify_client_cert(&der, &[], rustls::pki_types::UnixTime::now())
            .unwrap();
        assert!(still_valid(dir.path(), &cert, 300));
        assert!(!still_valid(dir.path(), &cert, 400), "valid for a year");
    }

    #[test]
    fn the_apiserver_identity_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), &[]).unwrap();
        let first = apiserver_client_identity(dir.path()).unwrap();
        let second = apiserver_client_identity(dir.path()).unwrap();
        assert_eq!(first, second);
    }
}
