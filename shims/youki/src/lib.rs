//! Runs Linux OCI containers through youki's libcontainer (filled by the youki shim issue).
