//! HTTP surface of the API server.
