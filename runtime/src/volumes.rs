//! Pod volumes on the node: emptyDir, configMap, secret, hostPath, downwardAPI and projected
//! (ServiceAccount tokens through [`crate::service_account`]), laid out under the pod's
//! directory, and the mounts each container gets from its volumeMounts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, KeyToPath, Pod, Volume};
use wharf_shim::Mount;

use crate::backoff::BackoffPolicy;
use crate::env::{ConfigError, Sources};

/// How a pod's volumes are retried when one cannot be prepared (a ConfigMap not made yet, such
/// as a new namespace's `kube-root-ca.crt`): the kubelet's 500 ms doubling up to 2 min 2 s, not
/// the containers' 10 s restart back-off.
pub const MOUNT_RETRY: BackoffPolicy =
    BackoffPolicy { base: Duration::from_millis(500), max: Duration::from_secs(122), reset_after: Duration::MAX };

/// Whether `path` names something below the directory it is joined to: relative, not empty, no
/// `..` or `.` (an absolute path would make `Path::join` leave the directory, as root).
pub(crate) fn descending(path: &str) -> bool {
    !path.is_empty() && Path::new(path).components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Writes `data` as files under `dir`, honouring `items` (key → path) when given.
fn write_files(dir: &Path, data: Vec<(String, Vec<u8>)>, items: Option<&Vec<KeyToPath>>) -> Result<(), ConfigError> {
    let io = |e: std::io::Error| ConfigError(format!("writing volume files in {}: {e}", dir.display()));
    let mut files = Vec::new();
    for (key, value) in data {
        let relative = match items {
            Some(items) => match items.iter().find(|i| i.key == key) {
                Some(item) => item.path.clone(),
                None => continue,
            },
            None => key,
        };
        if !descending(&relative) {
            return Err(ConfigError(format!("volume path {relative:?} must be a relative path without '..'")));
        }
        files.push((relative, value));
    }
    // The directory is kept (a running container may have it bind-mounted, after an agent
    // restart): what is no longer wanted goes, each file is replaced whole by a rename.
    std::fs::create_dir_all(dir).map_err(io)?;
    for entry in std::fs::read_dir(dir).map_err(io)?.flatten() {
        let name = entry.file_name();
        let wanted = files.iter().any(|(relative, _)| relative.split('/').next() == name.to_str());
        if !wanted {
            let path = entry.path();
            if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) }.map_err(io)?;
        }
    }
    for (relative, value) in files {
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        crate::service_account::replace(&path, &value).map_err(io)?;
    }
    Ok(())
}

/// The downward API's files: each item's fieldRef on the pod.
fn downward_files(
    pod: &Pod,
    items: Option<&Vec<DownwardAPIVolumeFile>>,
) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
    let mut files = Vec::new();
    for item in items.into_iter().flatten() {
        let Some(field) = &item.field_ref else { continue };
        let value = crate::env::field_value(pod, &field.field_path)
            .ok_or_else(|| ConfigError(format!("unsupported fieldRef {:?}", field.field_path)))?;
        files.push((item.path.clone(), value.into_bytes()));
    }
    Ok(files)
}

/// Prepares one volume under `root` and returns its host directory.
async fn prepare(pod: &Pod, volume: &Volume, root: &Path, sources: &Sources) -> Result<PathBuf, ConfigError> {
    let dir = root.join(&volume.name);
    let io = |e: std::io::Error| ConfigError(format!("preparing volume {:?}: {e}", volume.name));
    if let Some(empty_dir) = &volume.empty_dir {
        std::fs::create_dir_all(&dir).map_err(io)?;
        if empty_dir.medium.as_deref() == Some("Memory") {
            let size = empty_dir.size_limit.as_ref().and_then(|q| crate::worker::quantity_bytes(&q.0));
            mount_tmpfs(&dir, size).map_err(io)?;
        }
    } else if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        match host.type_.as_deref() {
            Some("DirectoryOrCreate") => std::fs::create_dir_all(&path).map_err(io)?,
            Some("Directory") | Some("File") | Some("Socket") if !path.exists() => {
                return Err(ConfigError(format!("hostPath {} does not exist", host.path)));
            }
            _ => {}
        }
        return Ok(path);
    } else if let Some(cm) = &volume.config_map {
        let name = &cm.name;
        match sources.configmap(name).await? {
            Some(data) => {
                write_files(&dir, data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect(), cm.items.as_ref())?
            }
            None if cm.optional == Some(true) => std::fs::create_dir_all(&dir).map_err(io)?,
            None => return Err(ConfigError(format!("configmap {name:?} not found"))),
        }
    } else if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        match sources.secret(&name).await? {
            Some(data) => write_files(&dir, data.into_iter().collect(), secret.items.as_ref())?,
            None if secret.optional == Some(true) => std::fs::create_dir_all(&dir).map_err(io)?,
            None => return Err(ConfigError(format!("secret {name:?} not found"))),
        }
    } else if let Some(downward) = &volume.downward_api {
        write_files(&dir, downward_files(pod, downward.items.as_ref())?, None)?;
    } else if let Some(projected) = &volume.projected {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut tokens = Vec::new();
        for source in projected.sources.iter().flatten() {
            if let Some(projection) = &source.service_account_token {
                let token = crate::service_account::project(&sources.client(), pod, projection).await?;
                files.push((projection.path.clone(), token.token.into_bytes()));
                tokens.push((projection.clone(), token.lifetime));
            }
            if let Some(downward) = &source.downward_api {
                files.extend(downward_files(pod, downward.items.as_ref())?);
            }
            if let Some(cm) = &source.config_map {
                let data = match sources.configmap(&cm.name).await? {
                    Some(data) => data,
                    None if cm.optional == Some(true) => Default::default(),
                    None => return Err(ConfigError(format!("configmap {:?} not found", cm.name))),
                };
                let picked = pick(data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect(), cm.items.as_ref());
                files.extend(picked);
            }
            if let Some(secret) = &source.secret {
                let data = match sources.secret(&secret.name).await? {
                    Some(data) => data,
                    None if secret.optional == Some(true) => Default::default(),
                    None => return Err(ConfigError(format!("secret {:?} not found", secret.name))),
                };
                files.extend(pick(data.into_iter().collect(), secret.items.as_ref()));
            }
        }
        write_files(&dir, files, None)?;
        for (projection, lifetime) in tokens {
            let file = dir.join(&projection.path);
            crate::service_account::keep_fresh(sources.client(), pod.clone(), projection, file, lifetime);
        }
    } else {
        return Err(ConfigError(format!("volume {:?} has a type this node does not support", volume.name)));
    }
    Ok(dir)
}

/// Applies `items` (key → path) to projected data, keeping everything when absent.
fn pick(data: Vec<(String, Vec<u8>)>, items: Option<&Vec<KeyToPath>>) -> Vec<(String, Vec<u8>)> {
    match items {
        None => data,
        Some(items) => data
            .into_iter()
            .filter_map(|(k, v)| items.iter().find(|i| i.key == k).map(|i| (i.path.clone(), v)))
            .collect(),
    }
}

/// Prepares every volume of the pod; returns (volume name, host directory).
pub async fn prepare_all(pod: &Pod, root: &Path, sources: &Sources) -> Result<Vec<(String, PathBuf)>, ConfigError> {
    let mut out = Vec::new();
    for volume in pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        out.push((volume.name.clone(), prepare(pod, volume, root, sources).await?));
    }
    Ok(out)
}

/// Makes `dir` a tmpfs, as the kubelet makes a `medium: Memory` emptyDir: `size` bytes (its
/// sizeLimit; a write past it fails with ENOSPC) or the kernel's default, mode 0777. A tmpfs
/// already there (an agent restart) is kept with what the pod wrote. [`unmount_all`] undoes it.
fn mount_tmpfs(dir: &Path, size: Option<u64>) -> std::io::Result<()> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let options = match size {
        Some(size) => format!("mode=0777,size={size}"),
        None => "mode=0777".to_string(),
    };
    let flags = nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV;
    nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some(options.as_str()))
        .map_err(|e| std::io::Error::other(format!("mounting a tmpfs: {e}")))
}

/// Whether `dir` is the root of a mount (its device differs from its parent's).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let device = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.dev()).ok();
    match (device(dir), dir.parent().and_then(device)) {
        (Some(own), Some(parent)) => own != parent,
        _ => false,
    }
}

/// Unmounts the tmpfs volumes of the pod whose volumes are under `root`, before its directory
/// is removed.
pub fn unmount_all(root: &Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        if is_mount_point(&entry.path()) {
            let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// A container's mounts from its volumeMounts. configMap and secret volumes are always read-only.
pub fn mounts(pod: &Pod, container: &Container, volumes: &[(String, PathBuf)]) -> Result<Vec<Mount>, ConfigError> {
    let specs = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    let mut out = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let (_, host) = volumes
            .iter()
            .find(|(name, _)| *name == vm.name)
            .ok_or_else(|| ConfigError(format!("volumeMount {:?} refers to no volume", vm.name)))?;
        let always_read_only = specs.and_then(|v| v.iter().find(|v| v.name == vm.name)).is_some_and(|v| {
            v.config_map.is_some() || v.secret.is_some() || v.projected.is_some() || v.downward_api.is_some()
        });
        let mut host_path = host.clone();
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if !descending(sub) {
                return Err(ConfigError(format!("subPath {sub:?} must be a relative path without '..'")));
            }
            host_path = host_path.join(sub);
        }
        out.push(Mount {
            host_path,
            guest_path: vm.mount_path.clone(),
            read_only: vm.read_only == Some(true) || always_read_only,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_files_are_rewritten_in_the_same_directory() {
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cfg");
        let files =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
        write_files(&dir, files(&[("a", "1"), ("nested/b", "2")]), None).unwrap();
        let inode = std::fs::metadata(&dir).unwrap().ino();
        write_files(&dir, files(&[("a", "3"), ("c", "4")]), None).unwrap();
        // Kept (a container's bind mount still shows it), stale entries gone, files replaced.
        assert_eq!(std::fs::metadata(&dir).unwrap().ino(), inode);
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert_eq!(std::fs::read_to_string(dir.join("c")).unwrap(), "4");
        assert!(!dir.join("nested").exists());
        let items = vec![KeyToPath { key: "a".into(), path: "renamed".into(), mode: None }];
        write_files(&dir, files(&[("a", "5"), ("c", "6")]), Some(&items)).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["renamed"]);
        assert!(write_files(&dir, files(&[("../escape", "x")]), None).is_err());
        // An absolute item path would be joined as itself: outside the volume, on the host.
        let outside = root.path().join("outside");
        let absolute = vec![KeyToPath { key: "a".into(), path: outside.display().to_string(), mode: None }];
        assert!(write_files(&dir, files(&[("a", "x")]), Some(&absolute)).is_err());
        assert!(!outside.exists());
        assert!(
            descending("a/b")
                && !descending("/etc/x")
                && !descending("a/../b")
                && !descending("")
                && !descending("./a")
        );
    }
}
