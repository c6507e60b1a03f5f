//! The node agent: registers its Node, watches the pods bound to it and runs each container
//! through a shim (filled by the node agent issue).
