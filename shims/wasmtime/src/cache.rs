//! Compiled code on disk: one file per (artifact digest, engine compatibility hash), written
//! after a compilation and memory-mapped on later starts, even by a new process.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled};
use wharf_shim::ShimError;

/// Code compiled for the shim's engine.
pub(crate) enum Compiled {
    Module(Module),
    Component(Component),
}

impl Compiled {
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        match self {
            Compiled::Module(module) => module.serialize(),
            Compiled::Component(component) => component.serialize(),
        }
    }
}

/// Where [`DiskCache::load_or_compile`] found the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Disk,
    Compiled,
}

pub(crate) struct DiskCache {
    dir: PathBuf,
    /// Hex of the engine's `precompile_compatibility_hash`: a different wasmtime version or
    /// engine configuration writes and reads other files.
    engine_tag: String,
    temp_counter: AtomicU64,
}

impl DiskCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_tag = hex(&hasher.0.finalize()[..16]);
        Ok(DiskCache { dir: dir.to_owned(), engine_tag, temp_counter: AtomicU64::new(0) })
    }

    /// The cache file for `digest`, which must be a [`valid_digest`].
    pub(crate) fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{}-{}.cwasm", digest.replace(':', "-"), self.engine_tag))
    }

    /// Loads the code cached for `digest`, if any. A file the engine rejects is removed so the
    /// caller compiles and rewrites it.
    pub(crate) fn load(&self, engine: &Engine, digest: &str) -> Option<Compiled> {
        let path = self.path(digest);
        if !path.exists() {
            return None;
        }
        let loaded = Engine::detect_precompiled_file(&path).and_then(|kind| match kind {
            Some(kind) => deserialize_own_file(engine, &path, kind),
            None => Err(wasmtime::format_err!("not a precompiled wasmtime artifact")),
        });
        match loaded {
            Ok(compiled) => Some(compiled),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "discarding unusable compiled-code cache file");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// The code for the artifact at `path` (a module or a component): the cached code for
    /// `digest`, or compiled from the file and cached for the next time.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        path: &Path,
    ) -> Result<(Compiled, Origin), ShimError> {
        if let Some(compiled) = self.load(engine, digest) {
            return Ok((compiled, Origin::Disk));
        }
        let bytes =
            std::fs::read(path).map_err(|e| ShimError::Runtime(format!("reading artifact {}: {e}", path.display())))?;
        let compiled = if wasmparser::Parser::is_component(&bytes) {
            Component::from_binary(engine, &bytes).map(Compiled::Component)
        } else {
            Module::from_binary(engine, &bytes).map(Compiled::Module)
        }
        .map_err(|e| ShimError::InvalidArtifact(format!("invalid WebAssembly: {e:#}")))?;
        self.store(digest, &compiled);
        Ok((compiled, Origin::Compiled))
    }

    /// Writes `compiled` for `digest`: to a temporary file, synced, then renamed into place, so
    /// a reader never sees a partial file and a mapped file is never modified.
    pub(crate) fn store(&self, digest: &str, compiled: &Compiled) {
        let path = self.path(digest);
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = self.dir.join(format!(".{}.{}.{n}.tmp", self.engine_tag, std::process::id()));
        let written = compiled.serialize().map_err(|e| format!("{e:#}")).and_then(|bytes| {
            let mut file = std::fs::File::create(&temp).map_err(|e| e.to_string())?;
            file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|e| e.to_string())?;
            std::fs::rename(&temp, &path).map_err(|e| e.to_string())
        });
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temp);
            tracing::warn!(path = %path.display(), %error, "cannot write compiled-code cache file");
        }
    }
}

/// Maps a cache file written by [`DiskCache::store`] back into executable code.
///
/// This is the crate's only `unsafe`: wasmtime cannot verify that a serialized artifact is
/// well formed, so loading one is unsound unless it is trusted output of `serialize` for a
/// compatible engine. That holds here: `path` lies in the shim's private cache directory
/// (created 0700), names only files written by `store` (`serialize` of this engine's own
/// compilation, synced before an atomic rename, so never partial), carries the engine's
/// compatibility hash in its name, and is never modified in place afterwards (so the mapping
/// cannot change under the running code). wasmtime additionally checks the embedded version
/// and engine settings and returns an error, not undefined behaviour, on a mismatch.
#[allow(unsafe_code)]
fn deserialize_own_file(engine: &Engine, path: &Path, kind: Precompiled) -> wasmtime::Result<Compiled> {
    // SAFETY: see the function documentation.
    unsafe {
        Ok(match kind {
            Precompiled::Module => Compiled::Module(Module::deserialize_file(engine, path)?),
            Precompiled::Component => Compiled::Component(Component::deserialize_file(engine, path)?),
        })
    }
}

/// `digest` if it can key the caches (`algorithm:hex`, safe in a file name), else `None`.
pub(crate) fn valid_digest(digest: &str) -> Option<&str> {
    let (algorithm, hex) = digest.split_once(':')?;
    let ok = !algorithm.is_empty()
        && algorithm.len() <= 32
        && algorithm.bytes().all(|b| b.is_ascii_alphanumeric())
        && (16..=128).contains(&hex.len())
        && hex.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(digest)
}

/// `sha256:<hex>` of `bytes`: the key when the spec carries no usable digest.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Feeds `Hash` output into SHA-256, for a hash that is stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_that_key_the_cache() {
        let good = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(valid_digest(good), Some(good));
        for bad in ["", "sha256", "sha256:", ":abcdef0123456789", "sha256:../../etc/passwd", "sha/256:0123456789abcdef"]
        {
            assert_eq!(valid_digest(bad), None, "{bad}");
        }
        assert_eq!(sha256_digest(b"abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
