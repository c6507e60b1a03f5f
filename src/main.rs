//! The `wharf` binary: the CLI that wires the control plane, the node agent and the dashboard.

fn main() {}
