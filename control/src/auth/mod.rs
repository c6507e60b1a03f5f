//! Serving certificates and bearer tokens.
