//! Authorization: the chain kube-apiserver runs with `--authorization-mode=Node,RBAC`.
//! `system:masters` may do anything; the node authorizer decides for nodes' own requests;
//! RBAC decides the rest. A request nobody allows is denied.

use super::{Attributes, MASTERS, node, rbac};
use crate::error::{Error, Result};
use crate::store::Store;

/// What an authorizer says about a request; the `String`s are the reasons kube-apiserver adds
/// to its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
    NoOpinion(String),
}

/// Every authorizer, in order.
pub struct Authorizer {
    pub node: node::NodeAuthorizer,
    pub rbac: rbac::RbacAuthorizer,
}

impl Authorizer {
    pub fn new(store: Store) -> Self {
        Self { node: node::NodeAuthorizer::new(store.clone()), rbac: rbac::RbacAuthorizer::new(store) }
    }

    /// The chain's decision on `attributes`.
    pub fn decide(&self, attributes: &Attributes) -> Decision {
        if attributes.user.in_group(MASTERS) {
            return Decision::Allow;
        }
        match self.node.authorize(attributes) {
            Decision::NoOpinion(_) => self.rbac.authorize(attributes),
            decided => decided,
        }
    }

    /// Ok when allowed, else Kubernetes' Forbidden Status for the request.
    pub fn check(&self, attributes: &Attributes) -> Result<()> {
        match self.decide(attributes) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                Err(Error::Forbidden(attributes.forbidden_message(&reason)))
            }
        }
    }
}
