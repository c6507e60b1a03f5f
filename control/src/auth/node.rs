//! The node authorizer, as kube-apiserver's: a node (`system:node:NAME` in `system:nodes`)
//! reads only what the pods bound to it need and writes only its own Node, Lease, its pods'
//! status and events. Other users get no opinion.

use super::Attributes;
use super::authz::Decision;
use crate::store::Store;

pub struct NodeAuthorizer {
    #[allow(dead_code)]
    store: Store,
}

impl NodeAuthorizer {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn authorize(&self, attributes: &Attributes) -> Decision {
        // Until the node authorizer lands, nodes keep the access they had.
        if attributes.user.node_name().is_some() || attributes.user.in_group(super::NODES) {
            return Decision::Allow;
        }
        Decision::NoOpinion(String::new())
    }
}
