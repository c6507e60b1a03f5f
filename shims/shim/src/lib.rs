//! The contract between the node agent and its container runtimes: the `Shim` trait and the
//! container types it speaks. Engine code lives in the shim crates, never here.
