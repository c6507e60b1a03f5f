//! Who may talk to the API server and what they may do: the cluster CA and serving
//! certificate, authentication (tokens, client certificates, ServiceAccount tokens), the request
//! attributes authorization decides on, and the authorizers (node, RBAC).

pub mod attributes;
pub mod authz;
pub mod bootstrap_policy;
pub mod client_cert;
pub mod impersonation;
pub mod node;
pub mod pki;
pub mod rbac;
pub mod service_account;
pub mod tokens;

use std::collections::BTreeMap;

pub use attributes::{Attributes, ResourceAttributes};

/// Who a request comes from, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Groups with a meaning of their own.
pub const MASTERS: &str = "system:masters";
pub const AUTHENTICATED: &str = "system:authenticated";
pub const NODES: &str = "system:nodes";
/// The prefix of a node's user name: `system:node:NAME`.
pub const NODE_USER_PREFIX: &str = "system:node:";

impl User {
    /// A user with `groups` and `system:authenticated`.
    pub fn new(name: impl Into<String>, groups: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let mut groups: Vec<String> = groups.into_iter().map(Into::into).collect();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        Self { name: name.into(), groups, ..Default::default() }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node this user is, when it is one (`system:node:NAME` in `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        self.name.strip_prefix(NODE_USER_PREFIX).filter(|n| !n.is_empty() && self.in_group(NODES))
    }
}
