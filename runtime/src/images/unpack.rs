//! Unpacking a Linux image layer (a tar, plain or gzip-compressed) into a directory that
//! overlayfs reads as a lower dir.
//!
//! The layer is built in a fresh temporary directory and renamed into place only once it is
//! complete, synced, and its uncompressed stream matched the config's `diff_id`, so a crash or a
//! bad layer never leaves a partial directory where the store looks for finished ones.
//!
//! OCI whiteouts become what overlayfs itself writes: `.wh.NAME` a 0/0 character device `NAME`,
//! `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory. Numeric owners, modes
//! (setuid included), mtimes, symlinks and hard links are kept. Entries are written only below
//! the layer directory: absolute paths, `..`, and paths through a symlink are refused, as are
//! device nodes (a layer has no business creating them). Extended attributes in PAX headers are
//! not restored.
//!
//! Everything here is blocking: callers run it on a blocking thread.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timestamps, XattrFlags};
use sha2::{Digest, Sha256};
use tar::EntryType;

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
}

fn compression(media_type: &str) -> Result<Compression, String> {
    if media_type.ends_with(".tar") {
        Ok(Compression::None)
    } else if media_type.ends_with(".tar+gzip") || media_type.ends_with(".tar.gzip") {
        Ok(Compression::Gzip)
    } else if media_type.ends_with("+zstd") {
        Err(format!("layer media type {media_type}: zstd-compressed layers are not supported (use gzip or none)"))
    } else {
        Err(format!("unsupported layer media type {media_type:?} (expected a tar, plain or gzip)"))
    }
}

/// Unpacks the layer `blob` of type `media_type` into `dest` by way of the new directory `temp`
/// (on the same filesystem), verifying its uncompressed digest against `diff_id`. Nothing is
/// left at `temp` afterwards; `dest` is either absent or complete. If `dest` appears meanwhile
/// (another pull finished the same layer), that one is kept.
pub(super) fn unpack_layer(
    blob: &Path,
    media_type: &str,
    diff_id: &str,
    temp: &Path,
    dest: &Path,
) -> Result<(), String> {
    let result = unpack_into(blob, media_type, diff_id, temp).and_then(|()| publish(temp, dest));
    if temp.exists() {
        let _ = std::fs::remove_dir_all(temp);
    }
    result
}

fn unpack_into(blob: &Path, media_type: &str, diff_id: &str, temp: &Path) -> Result<(), String> {
    let compression = compression(media_type)?;
    let file = File::open(blob).map_err(|e| format!("{}: {e}", blob.display()))?;
    let file = BufReader::with_capacity(256 << 10, file);
    let stream: Box<dyn Read> = match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
    };
    let mut stream = HashingReader { inner: stream, hasher: Sha256::new() };
    std::fs::create_dir(temp).map_err(|e| format!("{}: {e}", temp.display()))?;
    let mut writer = LayerWriter { root: temp.to_path_buf(), directories: Vec::new() };
    {
        let mut archive = tar::Archive::new(&mut stream);
        let entries = archive.entries().map_err(|e| format!("not a tar archive: {e}"))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| format!("not a valid tar archive: {e}"))?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            writer.write(&mut entry).map_err(|e| format!("entry {name:?}: {e}"))?;
        }
    }
    // The digest covers the whole stream, the tar's trailing blocks included.
    io::copy(&mut stream, &mut io::sink()).map_err(|e| format!("reading the layer: {e}"))?;
    let digest = format!("sha256:{:x}", stream.hasher.finalize());
    if digest != diff_id {
        return Err(format!(
            "its uncompressed content has digest {digest}, but the image config's rootfs.diff_ids says {diff_id}"
        ));
    }
    writer.finish()?;
    let root = File::open(temp).map_err(|e| format!("{}: {e}", temp.display()))?;
    rustix::fs::syncfs(&root).map_err(|e| format!("syncing {}: {e}", temp.display()))
}

/// Renames the finished layer into place and makes the rename durable.
fn publish(temp: &Path, dest: &Path) -> Result<(), String> {
    match std::fs::rename(temp, dest) {
        Ok(()) => {}
        // Someone else published the same layer first.
        Err(_) if dest.is_dir() => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dest.display())),
    }
    let parent = dest.parent().unwrap_or(Path::new("/"));
    File::open(parent).and_then(|dir| dir.sync_all()).map_err(|e| format!("{}: {e}", parent.display()))
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The relative path an entry names inside the layer; `..`, absolute paths and prefixes are
/// refused, `.` components dropped (the layer root itself is the empty path).
fn inside(path: &Path) -> Result<PathBuf, String> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("{} leaves the layer (..)", path.display())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{} is an absolute path", path.display()));
            }
        }
    }
    Ok(relative)
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> String {
    format!("{}: {error}", path.display())
}

/// Writes entries below `root`.
struct LayerWriter {
    root: PathBuf,
    /// Directories and their mtimes, set last: writing into a directory changes its mtime.
    directories: Vec<(PathBuf, u64)>,
}

impl LayerWriter {
    fn write<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), String> {
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let relative = inside(&entry.path().map_err(|e| e.to_string())?)?;
        self.parents(&relative, true)?;
        let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(hidden) = name.strip_prefix(".wh.") {
            return self.whiteout(&relative, hidden);
        }
        let path = self.root.join(&relative);
        let header = entry.header();
        let raw = header.as_old();
        let uid = owner_id(numeric(header.uid(), &raw.uid)?)?;
        let gid = owner_id(numeric(header.gid(), &raw.gid)?)?;
        let mode = numeric(header.mode().map(u64::from), &raw.mode)? as u32 & 0o7777;
        let mtime = numeric(header.mtime(), &raw.mtime)?;
        match kind {
            EntryType::Directory => {
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_dir() => {}
                    _ => {
                        remove(&path)?;
                        std::fs::create_dir(&path).map_err(|e| io_error(&path, e))?;
                    }
                }
                set_owner_and_mode(&path, uid, gid, mode)?;
                self.directories.push((path, mtime));
                Ok(())
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                replaceable(&relative)?;
                remove(&path)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&path)
                    .map_err(|e| io_error(&path, e))?;
                io::copy(entry, &mut file).map_err(|e| io_error(&path, e))?;
                set_owner_and_mode(&path, uid, gid, mode)?;
                set_mtime(&path, mtime)
            }
            EntryType::Symlink => {
                replaceable(&relative)?;
                let target = entry.link_name().map_err(|e| e.to_string())?.ok_or("a symlink without a target")?;
                remove(&path)?;
                std::os::unix::fs::symlink(&target, &path).map_err(|e| io_error(&path, e))?;
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(|e| io_error(&path, e))?;
                set_mtime(&path, mtime)
            }
            EntryType::Link => {
                replaceable(&relative)?;
                let target = entry.link_name().map_err(|e| e.to_string())?.ok_or("a hard link without a target")?;
                let target_relative = inside(&target).map_err(|e| format!("hard link target {e}"))?;
                self.parents(&target_relative, false)?;
                let target = self.root.join(&target_relative);
                if target_relative == relative {
                    return Ok(());
                }
                match std::fs::symlink_metadata(&target) {
                    Ok(meta) if !meta.is_dir() => {}
                    Ok(_) => return Err(format!("hard link to the directory {}", target_relative.display())),
                    Err(_) => {
                        return Err(format!("hard link to {}, which is not in the layer", target_relative.display()));
                    }
                }
                remove(&path)?;
                std::fs::hard_link(&target, &path).map_err(|e| io_error(&path, e))
            }
            EntryType::Fifo => {
                replaceable(&relative)?;
                remove(&path)?;
                rustix::fs::mknodat(CWD, &path, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(|e| io_error(&path, e))?;
                set_owner_and_mode(&path, uid, gid, mode)?;
                set_mtime(&path, mtime)
            }
            EntryType::Char | EntryType::Block => {
                Err("device nodes are not allowed in image layers (only whiteouts, as .wh. files)".into())
            }
            other => Err(format!("unsupported tar entry type {other:?}")),
        }
    }

    /// Makes sure every parent of `relative` is a real directory (creating missing ones when
    /// `create`), so nothing is ever written through a symlink.
    fn parents(&self, relative: &Path, create: bool) -> Result<(), String> {
        let mut path = self.root.clone();
        let Some(parent) = relative.parent() else { return Ok(()) };
        for part in parent.components() {
            path.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(format!("{} is a symlink; paths through it are refused", self.shown(&path)));
                }
                Ok(_) => return Err(format!("{} is not a directory", self.shown(&path))),
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    std::fs::create_dir(&path).map_err(|e| io_error(&path, e))?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| io_error(&path, e))?;
                }
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        Ok(())
    }

    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    /// `.wh..wh..opq` makes its directory opaque; `.wh.NAME` hides `NAME` of the layers below.
    fn whiteout(&self, relative: &Path, hidden: &str) -> Result<(), String> {
        let directory = self.root.join(relative.parent().unwrap_or(Path::new("")));
        if hidden == ".wh..opq" {
            return rustix::fs::lsetxattr(&directory, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(|e| format!("{}: setting trusted.overlay.opaque: {e}", directory.display()));
        }
        if hidden.starts_with(".wh.") || hidden.is_empty() {
            // aufs bookkeeping (`.wh..wh.plnk`, ...): nothing to do for overlayfs.
            return Ok(());
        }
        let path = directory.join(hidden);
        remove(&path)?;
        rustix::fs::mknodat(CWD, &path, FileType::CharacterDevice, Mode::empty(), rustix::fs::makedev(0, 0))
            .map_err(|e| io_error(&path, e))
    }

    /// Sets the directories' mtimes, now that nothing more is written into them.
    fn finish(self) -> Result<(), String> {
        for (path, mtime) in self.directories.iter().rev() {
            set_mtime(path, *mtime)?;
        }
        Ok(())
    }
}

/// The layer root can only be a directory.
fn replaceable(relative: &Path) -> Result<(), String> {
    if relative.as_os_str().is_empty() { Err("the layer's root must be a directory".into()) } else { Ok(()) }
}

/// A numeric header field; an empty one (all NULs or spaces) reads as 0, as Go's archive/tar
/// (which writes most image layers) reads it.
fn numeric(value: io::Result<u64>, raw: &[u8]) -> Result<u64, String> {
    match value {
        Ok(value) => Ok(value),
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        Err(e) => Err(e.to_string()),
    }
}

fn owner_id(id: u64) -> Result<u32, String> {
    u32::try_from(id).map_err(|_| format!("owner id {id} is out of range"))
}

/// Removes whatever an earlier entry of the layer left at `path`.
fn remove(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).map_err(|e| io_error(path, e)),
        Ok(_) => std::fs::remove_file(path).map_err(|e| io_error(path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Owner first: `chown` clears the setuid and setgid bits that the mode then sets.
fn set_owner_and_mode(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), String> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|e| io_error(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| io_error(path, e))
}

fn set_mtime(path: &Path, mtime: u64) -> Result<(), String> {
    let time = rustix::fs::Timespec { tv_sec: mtime.try_into().unwrap_or(i64::MAX), tv_nsec: 0 };
    let times = Timestamps { last_access: time, last_modification: time };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    /// A tar entry; `name` is written raw so that bad paths can be tested.
    fn header(name: &str, kind: EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(1_600_000_000);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        header
    }

    fn file(builder: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32, owner: (u64, u64), data: &[u8]) {
        let mut h = header(name, EntryType::Regular, mode, data.len() as u64);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_cksum();
        builder.append(&h, data).unwrap();
    }

    fn special(builder: &mut tar::Builder<Vec<u8>>, name: &str, kind: EntryType, target: &str) {
        let mut h = header(name, kind, 0o777, 0);
        if !target.is_empty() {
            h.set_link_name_literal(target).unwrap();
        }
        h.set_cksum();
        builder.append(&h, io::empty()).unwrap();
    }

    fn digest(bytes: &[u8]) -> String {
        format!("sha256:{:x}", Sha256::digest(bytes))
    }

    struct Unpacked {
        dir: tempfile::TempDir,
    }

    impl Unpacked {
        fn dest(&self) -> PathBuf {
            self.dir.path().join("layer")
        }
        fn temp(&self) -> PathBuf {
            self.dir.path().join("temp")
        }
    }

    /// Writes `blob` and unpacks it; returns the dirs and the result.
    fn unpack(blob: &[u8], media_type: &str, diff_id: &str) -> (Unpacked, Result<(), String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, blob).unwrap();
        let unpacked = Unpacked { dir };
        let result = unpack_layer(&path, media_type, diff_id, &unpacked.temp(), &unpacked.dest());
        (unpacked, result)
    }

    fn sample_layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append(&header("./", EntryType::Directory, 0o755, 0), io::empty()).unwrap();
        b.append(&header("bin/", EntryType::Directory, 0o711, 0), io::empty()).unwrap();
        file(&mut b, "bin/tool", 0o4755, (1000, 1001), b"#!/bin/sh\n");
        special(&mut b, "bin/hard", EntryType::Link, "bin/tool");
        special(&mut b, "bin/sh", EntryType::Symlink, "/bin/busybox");
        special(&mut b, "escape", EntryType::Symlink, "/");
        // A later entry replaces the symlink itself, never what it points to.
        file(&mut b, "escape", 0o644, (0, 0), b"plain file now");
        file(&mut b, "etc/.wh.gone", 0o644, (0, 0), b"");
        b.append(&header("var/", EntryType::Directory, 0o755, 0), io::empty()).unwrap();
        file(&mut b, "var/.wh..wh..opq", 0o644, (0, 0), b"");
        file(&mut b, "var/kept", 0o640, (0, 0), b"new");
        // Empty numeric fields, as some tools write them, read as 0.
        let mut bare = tar::Header::new_gnu();
        bare.as_gnu_mut().unwrap().name[..4].copy_from_slice(b"bare");
        bare.set_entry_type(EntryType::Regular);
        bare.set_size(0);
        bare.set_cksum();
        b.append(&bare, io::empty()).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn layers_keep_owners_modes_links_times_and_whiteouts() {
        let layer = sample_layer();
        let (u, result) = unpack(&layer, TAR, &digest(&layer));
        result.unwrap();
        let root = u.dest();
        assert!(!u.temp().exists());

        let tool = std::fs::symlink_metadata(root.join("bin/tool")).unwrap();
        assert_eq!((tool.uid(), tool.gid(), tool.mode() & 0o7777), (1000, 1001, 0o4755));
        assert_eq!(tool.mtime(), 1_600_000_000);
        assert_eq!(std::fs::read(root.join("bin/tool")).unwrap(), b"#!/bin/sh\n");
        let hard = std::fs::symlink_metadata(root.join("bin/hard")).unwrap();
        assert_eq!((hard.ino(), hard.nlink()), (tool.ino(), 2));
        assert_eq!(std::fs::read_link(root.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
        let bin = std::fs::metadata(root.join("bin")).unwrap();
        assert_eq!((bin.mode() & 0o7777, bin.mtime()), (0o711, 1_600_000_000));
        assert!(std::fs::symlink_metadata(root.join("escape")).unwrap().is_file());
        assert_eq!(std::fs::read(root.join("escape")).unwrap(), b"plain file now");

        // Whiteouts as overlayfs reads them.
        let gone = std::fs::symlink_metadata(root.join("etc/gone")).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0, "{gone:?}");
        assert!(!root.join("etc/.wh.gone").exists());
        let mut value = [0u8; 4];
        let n = rustix::fs::lgetxattr(root.join("var"), "trusted.overlay.opaque", &mut value[..]).unwrap();
        assert_eq!(&value[..n], b"y");
        assert!(!root.join("var/.wh..wh..opq").exists());
        assert_eq!(std::fs::read(root.join("var/kept")).unwrap(), b"new");
        let bare = std::fs::symlink_metadata(root.join("bare")).unwrap();
        assert_eq!((bare.uid(), bare.mode() & 0o7777, bare.mtime()), (0, 0, 0));
    }

    #[test]
    fn gzip_layers_are_checked_against_the_uncompressed_digest() {
        let layer = sample_layer();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer).unwrap();
        let compressed = gz.finish().unwrap();
        let (u, result) = unpack(&compressed, GZIP, &digest(&layer));
        result.unwrap();
        assert!(u.dest().join("bin/tool").is_file());

        let (u, result) = unpack(&compressed, GZIP, &digest(&compressed));
        let message = result.unwrap_err();
        assert!(message.contains(&format!("its uncompressed content has digest {}", digest(&layer))), "{message}");
        assert!(!u.dest().exists() && !u.temp().exists());
    }

    #[test]
    fn escaping_entries_and_devices_are_refused_and_leave_nothing() {
        type Build = fn(&mut tar::Builder<Vec<u8>>);
        let cases: [(&str, Build); 6] = [
            ("leaves the layer", |b| file(b, "../outside", 0o644, (0, 0), b"x")),
            ("is an absolute path", |b| file(b, "/etc/passwd", 0o644, (0, 0), b"x")),
            ("paths through it are refused", |b| {
                special(b, "link", EntryType::Symlink, "/tmp");
                file(b, "link/owned", 0o644, (0, 0), b"x");
            }),
            ("device nodes are not allowed", |b| special(b, "dev/sda", EntryType::Block, "")),
            ("device nodes are not allowed", |b| special(b, "dev/null", EntryType::Char, "")),
            ("hard link target", |b| special(b, "passwd", EntryType::Link, "../../etc/passwd")),
        ];
        for (wanted, build) in cases {
            let mut b = tar::Builder::new(Vec::new());
            file(&mut b, "first", 0o644, (0, 0), b"fine");
            build(&mut b);
            let layer = b.into_inner().unwrap();
            let (u, result) = unpack(&layer, TAR, &digest(&layer));
            let message = result.unwrap_err();
            assert!(message.contains(wanted) && message.starts_with("entry "), "{wanted}: {message}");
            assert!(!u.dest().exists() && !u.temp().exists(), "{wanted}: something was left");
        }
    }

    #[test]
    fn unsupported_compression_names_the_media_type() {
        let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
        let (_u, result) = unpack(b"", zstd, &digest(b""));
        assert!(result.unwrap_err().contains(zstd));
        let (_u, result) = unpack(b"", "application/json", &digest(b""));
        assert!(result.unwrap_err().contains("application/json"));
        assert_eq!(compression("application/vnd.docker.image.rootfs.diff.tar.gzip"), Ok(Compression::Gzip));
        assert_eq!(compression("application/vnd.docker.image.rootfs.diff.tar"), Ok(Compression::None));
    }

    #[test]
    fn an_existing_layer_is_kept_when_another_publishes_first() {
        let layer = sample_layer();
        let (u, result) = unpack(&layer, TAR, &digest(&layer));
        result.unwrap();
        let blob = u.dir.path().join("blob");
        unpack_layer(&blob, TAR, &digest(&layer), &u.temp(), &u.dest()).unwrap();
        assert!(u.dest().join("bin/tool").exists() && !u.temp().exists());
    }
}
