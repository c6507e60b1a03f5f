//! The registry's files. Blobs are content-addressed and shared by every repository; manifests
//! are blobs too, linked into a repository by digest and named by tags. Everything is written
//! to `tmp/` first and renamed into place, so a reader never sees a partial file.
//!
//! ```text
//! blobs/sha256/<hex>                          content: layers, configs, manifests
//! repositories/<name>/_manifests/sha256/<hex> the manifest is in <name>; holds its media type
//! repositories/<name>/_tags/<tag>             the digest the tag points at
//! uploads/<id>                                an upload in progress
//! tmp/                                        files being written
//! ```
//!
//! Repository name components never start with `_`, so `_manifests` and `_tags` cannot clash
//! with a nested repository.
//!
//! With [`SharedFiles`] (a cluster of servers on one Postgres database) the same layout is kept
//! in the database too, each file named `registry/<path above>`, e.g.
//! `registry/blobs/sha256/<hex>` or `registry/repositories/<name>/_tags/<tag>`:
//! - every write (a committed blob, a manifest and its link, a tag set or removed, a manifest
//!   unlinked) goes to the local file first, then to the shared one (write-through);
//! - the mutable files (links, tags, and the repository and tag lists made from them) are read
//!   from the database only: another server may have changed them, so the local copies are
//!   never read;
//! - blobs are content-addressed, so the local directory is a cache: a blob missing here is
//!   fetched from the database, its sha256 checked (a mismatch is refused, never served or
//!   cached), stored here, then served;
//! - `uploads/` and `tmp/` stay local: a chunked upload must go to one server from start to end.
//!
//! A repository then exists while it has a linked manifest (locally, while its `_manifests`
//! directory exists).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::store::SharedFiles;

/// A failure of the shared files as an I/O error of the storage.
fn shared_error(error: crate::Error) -> io::Error {
    io::Error::other(format!("shared registry files: {error}"))
}

/// `sha256:<64 hex>` split into its hex part; the only algorithm this registry stores.
pub(super) fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(hex)
}

pub(super) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A repository name as the distribution spec allows it: lowercase components of
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by `/`, at most 255 characters.
pub(super) fn valid_name(name: &str) -> bool {
    name.len() <= 255 && !name.is_empty() && name.split('/').all(valid_component)
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let run = &component[start..i];
        let ok = run == "." || run == "_" || run == "__" || run.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(super) fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// Upload ids are the UUIDs this registry hands out; anything else is unknown.
pub(super) fn valid_upload_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

pub(super) struct Storage {
    root: PathBuf,
    /// The cluster's shared copy; `None` on a single server (SQLite).
    shared: Option<SharedFiles>,
    /// Blobs being fetched from the shared files, so concurrent pulls of one blob fetch it once.
    pub(super) fetching: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Storage {
    pub fn open(root: PathBuf) -> io::Result<Self> {
        for dir in ["blobs/sha256", "repositories", "uploads"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        // Whatever is in tmp/ was being written when the process stopped.
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        Ok(Self { root, shared: None, fetching: Default::default() })
    }

    pub fn set_shared(&mut self, shared: Option<SharedFiles>) {
        self.shared = shared;
    }

    /// The shared file's name for a local path under the root: `registry/<relative path>`.
    fn shared_name(&self, path: &Path) -> String {
        let relative = path.strip_prefix(&self.root).expect("a path under the registry root");
        let parts: Vec<_> = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect();
        format!("registry/{}", parts.join("/"))
    }

    /// The names in the shared files starting with `prefix`.
    async fn shared_list(shared: &SharedFiles, prefix: &str) -> io::Result<Vec<String>> {
        shared.list(prefix).await.map_err(shared_error)
    }

    async fn shared_exists(shared: &SharedFiles, name: &str) -> io::Result<bool> {
        Ok(Self::shared_list(shared, name).await?.iter().any(|n| n == name))
    }

    /// Where the blob with this (valid) digest lives.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(digest_hex(digest).expect("digest validated"))
    }

    pub fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    pub fn temp_path(&self) -> PathBuf {
        self.root.join("tmp").join(uuid::Uuid::new_v4().to_string())
    }

    fn repository(&self, name: &str) -> PathBuf {
        self.root.join("repositories").join(name)
    }

    fn link_path(&self, name: &str, digest: &str) -> PathBuf {
        self.repository(name).join("_manifests/sha256").join(digest_hex(digest).expect("digest validated"))
    }

    fn tag_path(&self, name: &str, tag: &str) -> PathBuf {
        self.repository(name).join("_tags").join(tag)
    }

    /// Whether the registry has the blob: here, or (shared) in the database.
    pub async fn blob_exists(&self, digest: &str) -> io::Result<bool> {
        let path = self.blob_path(digest);
        if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
            return Ok(true);
        }
        match &self.shared {
            Some(shared) => Self::shared_exists(shared, &self.shared_name(&path)).await,
            None => Ok(false),
        }
    }

    /// Makes sure the blob is in the local directory, fetching it from the shared files when
    /// it is not; false if the registry does not have it. A shared blob whose content does not
    /// hash to its digest is an `InvalidData` error and is not kept.
    pub async fn cache_blob(&self, digest: &str) -> io::Result<bool> {
        if self.local_blob(digest).await? {
            return Ok(true);
        }
        if self.shared.is_none() {
            return Ok(false);
        }
        let lock = self.fetching.lock().expect("fetching lock").entry(digest.to_string()).or_default().clone();
        let result = async {
            let _fetching = lock.lock().await;
            // Another request may have fetched it meanwhile.
            if self.local_blob(digest).await? {
                return Ok(true);
            }
            self.fetch_blob(digest).await
        }
        .await;
        let mut fetching = self.fetching.lock().expect("fetching lock");
        if fetching.get(digest).is_some_and(|l| Arc::ptr_eq(l, &lock)) {
            fetching.remove(digest);
        }
        result
    }

    /// Whether the blob is in the local directory.
    async fn local_blob(&self, digest: &str) -> io::Result<bool> {
        let path = self.blob_path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(true),
            Ok(_) => Err(io::Error::other(format!("{} is not a file", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Copies a blob from the shared files into the local directory after checking its digest.
    async fn fetch_blob(&self, digest: &str) -> io::Result<bool> {
        let path = self.blob_path(digest);
        let Some(shared) = &self.shared else { return Ok(false) };
        let Some(bytes) = shared.get(&self.shared_name(&path)).await.map_err(shared_error)? else {
            return Ok(false);
        };
        // Up to a GiB: hashed off the async threads.
        let (bytes, actual) = tokio::task::spawn_blocking(move || {
            let actual = sha256_digest(&bytes);
            (bytes, actual)
        })
        .await
        .map_err(io::Error::other)?;
        if actual != digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the shared blob {digest} is corrupt: its content's digest is {actual}"),
            ));
        }
        self.write_atomic(&path, &bytes).await?;
        Ok(true)
    }

    /// Moves a finished, verified file into the blob store (and, shared, into the database
    /// unless it is there already). If the database refuses it, the local file goes too, so
    /// the blob is not half committed.
    pub async fn commit_blob(&self, file: &Path, digest: &str) -> io::Result<()> {
        let path = self.blob_path(digest);
        tokio::fs::rename(file, &path).await?;
        let Some(shared) = &self.shared else { return Ok(()) };
        let name = self.shared_name(&path);
        let result = async {
            if !Self::shared_exists(shared, &name).await? {
                let bytes = tokio::fs::read(&path).await?;
                shared.put(&name, &bytes).await.map_err(shared_error)?;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        result
    }

    /// Writes `bytes` to `path` through a synced temp file and a rename.
    pub async fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let temp = self.temp_path();
        let mut file = tokio::fs::File::create(&temp).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        drop(file);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&temp, path).await
    }

    pub async fn repository_exists(&self, name: &str) -> io::Result<bool> {
        let manifests = self.repository(name).join("_manifests");
        match &self.shared {
            Some(shared) => {
                let prefix = format!("{}/", self.shared_name(&manifests));
                Ok(!Self::shared_list(shared, &prefix).await?.is_empty())
            }
            None => Ok(tokio::fs::metadata(manifests).await.is_ok()),
        }
    }

    /// A small mutable file (link, tag): from the shared files when shared, else from disk.
    async fn read_small(&self, path: &Path) -> io::Result<Option<String>> {
        if let Some(shared) = &self.shared {
            let bytes = shared.get(&self.shared_name(path)).await.map_err(shared_error)?;
            return bytes
                .map(|b| String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)))
                .transpose();
        }
        match tokio::fs::read_to_string(path).await {
            Ok(content) => Ok(Some(content)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a small mutable file here, then (shared) to the database.
    async fn write_small(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.write_atomic(path, bytes).await?;
        if let Some(shared) = &self.shared {
            shared.put(&self.shared_name(path), bytes).await.map_err(shared_error)?;
        }
        Ok(())
    }

    /// Removes a small mutable file here and (shared) from the database; whether it existed
    /// (in the database when shared: that copy is the one read).
    async fn remove_small(&self, path: &Path) -> io::Result<bool> {
        let local = match tokio::fs::remove_file(path).await {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        match &self.shared {
            Some(shared) => shared.delete(&self.shared_name(path)).await.map_err(shared_error),
            None => Ok(local),
        }
    }

    /// The media type of manifest `digest` in repository `name`, if it is linked there.
    pub async fn manifest_link(&self, name: &str, digest: &str) -> io::Result<Option<String>> {
        self.read_small(&self.link_path(name, digest)).await
    }

    /// Stores a manifest's bytes as a blob and links it into `name`.
    pub async fn put_manifest(&self, name: &str, digest: &str, media_type: &str, bytes: &[u8]) -> io::Result<()> {
        let blob = self.blob_path(digest);
        if !tokio::fs::metadata(&blob).await.is_ok_and(|m| m.is_file()) {
            self.write_atomic(&blob, bytes).await?;
        }
        if let Some(shared) = &self.shared {
            let blob_name = self.shared_name(&blob);
            if !Self::shared_exists(shared, &blob_name).await? {
                shared.put(&blob_name, bytes).await.map_err(shared_error)?;
            }
        }
        self.write_small(&self.link_path(name, digest), media_type.as_bytes()).await
    }

    pub async fn tag(&self, name: &str, tag: &str) -> io::Result<Option<String>> {
        Ok(self.read_small(&self.tag_path(name, tag)).await?.map(|digest| digest.trim().to_string()))
    }

    pub async fn set_tag(&self, name: &str, tag: &str, digest: &str) -> io::Result<()> {
        self.write_small(&self.tag_path(name, tag), digest.as_bytes()).await
    }

    /// Removes a tag; false if it did not exist.
    pub async fn delete_tag(&self, name: &str, tag: &str) -> io::Result<bool> {
        self.remove_small(&self.tag_path(name, tag)).await
    }

    /// Unlinks a manifest from `name` with every tag pointing at it; false if it was not linked.
    /// The blob stays: other repositories may hold the same content.
    pub async fn delete_manifest(&self, name: &str, digest: &str) -> io::Result<bool> {
        if !self.remove_small(&self.link_path(name, digest)).await? {
            return Ok(false);
        }
        for tag in self.tags(name).await? {
            if self.tag(name, &tag).await?.as_deref() == Some(digest) {
                self.delete_tag(name, &tag).await?;
            }
        }
        Ok(true)
    }

    /// The tags of `name`, sorted.
    pub async fn tags(&self, name: &str) -> io::Result<Vec<String>> {
        let dir = self.repository(name).join("_tags");
        if let Some(shared) = &self.shared {
            let prefix = format!("{}/", self.shared_name(&dir));
            let mut tags: Vec<String> = Self::shared_list(shared, &prefix)
                .await?
                .into_iter()
                .filter_map(|n| n.strip_prefix(&prefix).filter(|t| valid_tag(t)).map(str::to_string))
                .collect();
            tags.sort();
            return Ok(tags);
        }
        let mut tags = Vec::new();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(tags),
            Err(e) => return Err(e),
        };
        while let Some(entry) = entries.next_entry().await? {
            if let Some(tag) = entry.file_name().to_str().filter(|t| valid_tag(t)) {
                tags.push(tag.to_string());
            }
        }
        tags.sort();
        Ok(tags)
    }

    /// Every repository (a directory holding `_manifests`), sorted.
    pub async fn repositories(&self) -> io::Result<Vec<String>> {
        let root = self.root.join("repositories");
        if let Some(shared) = &self.shared {
            // Every link is `registry/repositories/<name>/_manifests/sha256/<hex>`.
            let prefix = format!("{}/", self.shared_name(&root));
            let mut found: Vec<String> = Self::shared_list(shared, &prefix)
                .await?
                .iter()
                .filter_map(|n| n.strip_prefix(&prefix)?.split_once("/_manifests/").map(|(name, _)| name))
                .filter(|name| valid_name(name))
                .map(str::to_string)
                .collect();
            found.sort();
            found.dedup();
            return Ok(found);
        }
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            let mut pending = vec![(root, String::new())];
            while let Some((dir, name)) = pending.pop() {
                for entry in std::fs::read_dir(&dir)? {
                    let entry = entry?;
                    if !entry.file_type()?.is_dir() {
                        continue;
                    }
                    let Some(file_name) = entry.file_name().to_str().map(str::to_string) else { continue };
                    if file_name == "_manifests" {
                        found.push(name.clone());
                    } else if valid_component(&file_name) {
                        let child = if name.is_empty() { file_name } else { format!("{name}/{file_name}") };
                        pending.push((entry.path(), child));
                    }
                }
            }
            found.sort();
            Ok(found)
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_distribution_grammar() {
        for ok in ["hello", "library/x", "a/b/c", "my-app", "my--app", "a.b", "a_b", "a__b", "x9/y0"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Hello", "a//b", "/a", "a/", "_a", "a_", "a___b", "a._b", "../x", "a/../b", "a/_manifests"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn tags_and_digests_are_checked() {
        assert!(valid_tag("v1.0_rc-1") && valid_tag("_x") && valid_tag(&"a".repeat(128)));
        assert!(!valid_tag("") && !valid_tag(".x") && !valid_tag("a/b") && !valid_tag(&"a".repeat(129)));
        let digest = sha256_digest(b"");
        assert_eq!(digest, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert!(digest_hex(&digest).is_some());
        assert!(digest_hex("sha256:E3B0").is_none());
        assert!(digest_hex(&digest.replace("sha256", "sha512")).is_none());
        assert!(digest_hex("sha256:../../../../etc/passwd").is_none());
    }
}
