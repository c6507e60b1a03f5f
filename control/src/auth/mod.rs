//! Who may talk to the API server: the cluster CA and serving certificate, and bearer tokens.

pub mod pki;
pub mod tokens;
