//! The shim's settings: the one directory it keeps everything in.

use std::path::PathBuf;

/// Settings of a [`YoukiShim`](crate::YoukiShim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YoukiConfig {
    /// Where the shim keeps its containers: libcontainer's state under `ROOT/state/<id>` and
    /// each container's bundle (config.json, the overlay's `rootfs/`, `upper/` and `work/`, the
    /// output FIFOs) under `ROOT/containers/<id>`. Created if missing; must be private to the
    /// agent and stay the same across agent restarts, since running containers are found again
    /// from it.
    pub root: PathBuf,
}

impl YoukiConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        YoukiConfig { root: root.into() }
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
}
