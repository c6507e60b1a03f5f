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
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    if !ca_cert_path.exists() || !ca_key_path.exists() {
        let key = KeyPair::generate().map_err(|e| pki_error("cannot generate the CA key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_error("CA parameters", e))?;
        params.distinguished_name.push(DnType::CommonName, "wharf-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = params.self_signed(&key).map_err(|e| pki_error("cannot sign the CA", e))?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        std::fs::write(&ca_cert_path, cert.pem()).map_err(|e| pki_error("cannot write the CA", e))?;
    }
    let ca_pem = std::fs::read_to_string(&ca_cert_path).map_err(|e| pki_error("cannot read the CA", e))?;
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(&ca_key_path).map_err(|e| pki_error("cannot read the CA key", e))?)
            .map_err(|e| pki_error("the CA key is unreadable", e))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| pki_error("the CA is unreadable", e))?;

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
