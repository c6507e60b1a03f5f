//! The Wasm-or-Linux decision over an image's manifest (DESIGN.md, "Runtime selection"), one
//! rule for the node agent (which runs the image) and the scheduler (which must place the pod
//! on a node offering that runtime). Pure functions over the strings of the manifest and
//! config, so neither needs the other's types.

/// Layer media types that hold a Wasm module or component.
pub const WASM_LAYER_TYPES: [&str; 3] = [
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
];

/// Where an image runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// In-process on wasmtime.
    Wasm,
    /// As a Linux OCI container (youki).
    Linux,
}

impl ImageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Wasm => "wasm",
            ImageKind::Linux => "linux",
        }
    }
}

/// Whether a layer of this media type holds Wasm.
pub fn is_wasm_layer(media_type: &str) -> bool {
    WASM_LAYER_TYPES.contains(&media_type)
}

/// Whether the layers alone decide (a Wasm layer means Wasm); otherwise the config's
/// architecture does, and must be read.
pub fn layers_decide<'a>(layer_media_types: impl IntoIterator<Item = &'a str>) -> bool {
    layer_media_types.into_iter().any(is_wasm_layer)
}

/// Wasm when a layer has a Wasm media type or the config's architecture is `wasm`; Linux
/// otherwise.
pub fn image_kind<'a>(layer_media_types: impl IntoIterator<Item = &'a str>, config_architecture: &str) -> ImageKind {
    if layers_decide(layer_media_types) || config_architecture == "wasm" { ImageKind::Wasm } else { ImageKind::Linux }
}

/// Whether an index entry of this platform is a Wasm image.
pub fn is_wasm_platform(architecture: &str) -> bool {
    architecture == "wasm"
}

/// The entry of an index (given each entry's `(os, architecture)`, `None` without a platform)
/// a node of `host_architecture` runs: Linux on its architecture, else a Wasm entry.
pub fn select_platform<'a>(
    platforms: impl IntoIterator<Item = Option<(&'a str, &'a str)>> + Clone,
    host_architecture: &str,
) -> Option<usize> {
    let find = |wanted: &dyn Fn(&str, &str) -> bool| {
        platforms.clone().into_iter().position(|p| p.is_some_and(|(os, architecture)| wanted(os, architecture)))
    };
    find(&|os, architecture| os == "linux" && architecture == host_architecture)
        .or_else(|| find(&|_, architecture| is_wasm_platform(architecture)))
}

/// What an index needs of a node, by [`select_platform`]'s rule: `Some(kind)` when every node
/// that can run it runs it as `kind`; `None` when it has both Linux and Wasm entries (a Linux
/// node of a listed architecture runs the Linux entry, any other the Wasm one) or neither.
pub fn index_kind<'a>(platforms: impl IntoIterator<Item = Option<(&'a str, &'a str)>>) -> Option<ImageKind> {
    let (mut linux, mut wasm) = (false, false);
    for (os, architecture) in platforms.into_iter().flatten() {
        linux |= os == "linux" && !is_wasm_platform(architecture);
        wasm |= is_wasm_platform(architecture);
    }
    match (linux, wasm) {
        (true, false) => Some(ImageKind::Linux),
        (false, true) => Some(ImageKind::Wasm),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAR: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    #[test]
    fn wasm_layers_or_a_wasm_config_mean_wasm() {
        for wasm in WASM_LAYER_TYPES {
            assert_eq!(image_kind([TAR, wasm], "amd64"), ImageKind::Wasm, "{wasm}");
            assert!(layers_decide([wasm]));
        }
        assert_eq!(image_kind([TAR], "wasm"), ImageKind::Wasm);
        assert!(!layers_decide([TAR]), "the config must be read");
        assert_eq!(image_kind([TAR], "amd64"), ImageKind::Linux);
        assert_eq!(image_kind(["application/wasm+zstd"], ""), ImageKind::Linux);
    }

    #[test]
    fn index_entries_prefer_linux_on_this_architecture_then_wasm() {
        let platforms = [
            Some(("unknown", "unknown")),
            Some(("wasip1", "wasm")),
            Some(("linux", "arm64")),
            None,
            Some(("linux", "amd64")),
        ];
        assert_eq!(select_platform(platforms, "amd64"), Some(4));
        assert_eq!(select_platform(platforms, "arm64"), Some(2));
        assert_eq!(select_platform(platforms, "s390x"), Some(1));
        assert_eq!(select_platform([Some(("linux", "arm64"))], "s390x"), None);
    }

    #[test]
    fn an_index_needs_a_runtime_only_when_all_its_runnable_entries_agree() {
        let attestation = Some(("unknown", "unknown"));
        assert_eq!(index_kind([Some(("linux", "amd64")), attestation]), Some(ImageKind::Linux));
        assert_eq!(index_kind([Some(("wasip1", "wasm")), attestation]), Some(ImageKind::Wasm));
        assert_eq!(index_kind([Some(("linux", "amd64")), Some(("wasip2", "wasm"))]), None);
        assert_eq!(index_kind([attestation, None]), None);
    }
}
