//! Runs WebAssembly containers in-process on wasmtime (filled by the node agent issue).
