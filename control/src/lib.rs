//! Wharf's control plane: the Kubernetes API server with its SQLite store, the per-kind
//! registry, authentication, and (in later issues) the scheduler, controllers and registry.

pub mod api;
pub mod auth;
pub mod controllers;
pub mod error;
pub mod events;
pub mod leader;
pub mod oci;
pub mod placement;
pub mod registry;
pub mod scheduler;
pub mod server;
pub mod server_lease;
pub mod store;

pub use error::{Cause, Error, Result};
