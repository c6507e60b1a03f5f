//! The web dashboard's build, embedded in the `wharf` binary (filled by the dashboard issue).
