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

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

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
        Ok(Self { root })
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

    pub async fn blob_exists(&self, digest: &str) -> bool {
        tokio::fs::metadata(self.blob_path(digest)).await.is_ok_and(|m| m.is_file())
    }

    /// Moves a finished, verified file into the blob store.
    pub async fn commit_blob(&self, file: &Path, digest: &str) -> io::Result<()> {
        tokio::fs::rename(file, self.blob_path(digest)).await
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

    pub async fn repository_exists(&self, name: &str) -> bool {
        tokio::fs::metadata(self.repository(name).join("_manifests")).await.is_ok()
    }

    /// The media type of manifest `digest` in repository `name`, if it is linked there.
    pub async fn manifest_link(&self, name: &str, digest: &str) -> io::Result<Option<String>> {
        match tokio::fs::read_to_string(self.link_path(name, digest)).await {
            Ok(media_type) => Ok(Some(media_type)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores a manifest's bytes as a blob and links it into `name`.
    pub async fn put_manifest(&self, name: &str, digest: &str, media_type: &str, bytes: &[u8]) -> io::Result<()> {
        if !self.blob_exists(digest).await {
            self.write_atomic(&self.blob_path(digest), bytes).await?;
        }
        self.write_atomic(&self.link_path(name, digest), media_type.as_bytes()).await
    }

    pub async fn tag(&self, name: &str, tag: &str) -> io::Result<Option<String>> {
        match tokio::fs::read_to_string(self.tag_path(name, tag)).await {
            Ok(digest) => Ok(Some(digest.trim().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn set_tag(&self, name: &str, tag: &str, digest: &str) -> io::Result<()> {
        self.write_atomic(&self.tag_path(name, tag), digest.as_bytes()).await
    }

    /// Removes a tag; false if it did not exist.
    pub async fn delete_tag(&self, name: &str, tag: &str) -> io::Result<bool> {
        match tokio::fs::remove_file(self.tag_path(name, tag)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Unlinks a manifest from `name` with every tag pointing at it; false if it was not linked.
    /// The blob stays: other repositories may hold the same content.
    pub async fn delete_manifest(&self, name: &str, digest: &str) -> io::Result<bool> {
        match tokio::fs::remove_file(self.link_path(name, digest)).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
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
