//! Well-known names several parts of the server agree on: the API server writes them, the
//! controllers act on them.

/// The finalizer of an object deleted with `propagationPolicy: Orphan`: its dependents lose
/// their ownerReferences to it before it goes (the garbage collector's job).
pub const ORPHAN_FINALIZER: &str = "orphan";
/// The finalizer of an object deleted with `propagationPolicy: Foreground`: its dependents go
/// first.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// The taint the node lifecycle controller puts on a node whose Ready condition is False.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// The taint put on a node whose Ready condition is Unknown (it stopped reporting).
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
