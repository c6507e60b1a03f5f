//! Who a container's process runs as: the image's `USER` (`uid`, `uid:gid`, `name`, `name:group`)
//! resolved against the root filesystem's /etc/passwd and /etc/group, overridden by the pod's
//! `runAsUser` / `runAsGroup`, with the user's groups and the pod's supplemental groups added.

use std::io::Read;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use wharf_shim::{LinuxSpec, ShimError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) additional_gids: Vec<u32>,
}

/// The two account databases of a root filesystem (empty when the image has none).
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    pub(crate) passwd: String,
    pub(crate) group: String,
}

impl Accounts {
    /// Reads /etc/passwd and /etc/group of `rootfs`, resolving symlinks inside it (an image's
    /// absolute symlink must not reach the host's files).
    pub(crate) fn read(rootfs: &Path) -> Accounts {
        let read = |name: &str| -> String {
            let mut text = String::new();
            let file = std::fs::File::open(rootfs).and_then(|root| {
                rustix::fs::openat2(&root, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::IN_ROOT)
                    .map_err(std::io::Error::from)
            });
            if let Ok(file) = file {
                let _ = std::fs::File::from(file).take(4 << 20).read_to_string(&mut text);
            }
            text
        };
        Accounts { passwd: read("etc/passwd"), group: read("etc/group") }
    }

    fn users(&self) -> impl Iterator<Item = (&str, u32, u32)> {
        self.passwd.lines().filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some((*fields.first()?, fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
        })
    }

    fn groups(&self) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
        self.group.lines().filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let members = fields.get(3).map(|m| m.split(',').filter(|m| !m.is_empty()).collect()).unwrap_or_default();
            Some((*fields.first()?, fields.get(2)?.parse().ok()?, members))
        })
    }
}

fn id(value: i64, what: &str) -> Result<u32, ShimError> {
    u32::try_from(value).map_err(|_| ShimError::InvalidArtifact(format!("{what} {value} is not a valid id")))
}

/// Resolves the identity of a container's process, refusing uid 0 under `runAsNonRoot`.
pub(crate) fn resolve(linux: &LinuxSpec, accounts: &Accounts) -> Result<Identity, ShimError> {
    let image_user = linux.image_user.as_deref().unwrap_or("");
    let (user, group) = match image_user.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (image_user, None),
    };
    let by_uid = |uid: u32| accounts.users().find(|(_, u, _)| *u == uid);
    let (uid, mut gid, name) = if let Some(run_as) = linux.run_as_user {
        let uid = id(run_as, "runAsUser")?;
        let entry = by_uid(uid);
        (uid, entry.map_or(0, |e| e.2), entry.map(|e| e.0))
    } else if let Ok(uid) = user.parse::<u32>() {
        let entry = by_uid(uid);
        (uid, entry.map_or(0, |e| e.2), entry.map(|e| e.0))
    } else if user.is_empty() {
        let entry = by_uid(0);
        (0, entry.map_or(0, |e| e.2), entry.map(|e| e.0))
    } else {
        let (name, uid, gid) = accounts.users().find(|(n, _, _)| *n == user).ok_or_else(|| {
            ShimError::InvalidArtifact(format!("unable to find user {user}: no matching entries in passwd file"))
        })?;
        (uid, gid, Some(name))
    };
    // The image's group only goes with the image's user.
    if let (None, Some(group)) = (linux.run_as_user, group.filter(|g| !g.is_empty())) {
        gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => accounts.groups().find(|(n, _, _)| *n == group).map(|g| g.1).ok_or_else(|| {
                ShimError::InvalidArtifact(format!("unable to find group {group}: no matching entries in group file"))
            })?,
        };
    }
    if let Some(run_as) = linux.run_as_group {
        gid = id(run_as, "runAsGroup")?;
    }
    if linux.run_as_non_root && uid == 0 {
        return Err(ShimError::InvalidArtifact(match linux.run_as_user {
            Some(_) => "container's runAsUser breaks non-root policy".into(),
            None => "container has runAsNonRoot and image will run as root".into(),
        }));
    }
    let mut additional_gids: Vec<u32> = Vec::new();
    if let Some(name) = name {
        additional_gids.extend(accounts.groups().filter(|(_, _, members)| members.contains(&name)).map(|g| g.1));
    }
    for group in &linux.supplemental_groups {
        additional_gids.push(id(*group, "supplemental group")?);
    }
    additional_gids.retain(|g| *g != gid);
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(Identity { uid, gid, additional_gids })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts {
            passwd: "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
                .into(),
            group: "root:x:0:\nweb:x:1001:\nstaff:x:50:web,other\nnogroup:x:65534:\n".into(),
        }
    }

    fn with_user(user: Option<&str>) -> LinuxSpec {
        LinuxSpec { image_user: user.map(str::to_owned), ..Default::default() }
    }

    fn ids(linux: &LinuxSpec) -> (u32, u32, Vec<u32>) {
        let id = resolve(linux, &accounts()).unwrap();
        (id.uid, id.gid, id.additional_gids)
    }

    #[test]
    fn image_user_forms() {
        assert_eq!(ids(&with_user(None)), (0, 0, vec![]));
        assert_eq!(ids(&with_user(Some("web"))), (1000, 1001, vec![50]));
        assert_eq!(ids(&with_user(Some("1000"))), (1000, 1001, vec![50]));
        assert_eq!(ids(&with_user(Some("web:staff"))), (1000, 50, vec![]));
        assert_eq!(ids(&with_user(Some("web:7"))), (1000, 7, vec![50]));
        // A uid without an account gets gid 0, as with other runtimes.
        assert_eq!(ids(&with_user(Some("4242"))), (4242, 0, vec![]));
        assert_eq!(ids(&with_user(Some("4242:4343"))), (4242, 4343, vec![]));
    }

    #[test]
    fn unknown_names_are_refused() {
        let err = resolve(&with_user(Some("ghost")), &accounts()).unwrap_err();
        assert!(matches!(&err, ShimError::InvalidArtifact(m) if m.contains("unable to find user ghost")), "{err}");
        let err = resolve(&with_user(Some("web:ghosts")), &accounts()).unwrap_err();
        assert!(matches!(&err, ShimError::InvalidArtifact(m) if m.contains("unable to find group ghosts")), "{err}");
    }

    #[test]
    fn security_context_overrides_the_image() {
        let linux = LinuxSpec { run_as_user: Some(65534), ..with_user(Some("web:staff")) };
        assert_eq!(ids(&linux), (65534, 65534, vec![]));
        let linux = LinuxSpec { run_as_group: Some(5), supplemental_groups: vec![7, 5, 7], ..with_user(Some("web")) };
        assert_eq!(ids(&linux), (1000, 5, vec![7, 50]));
        let linux = LinuxSpec { run_as_user: Some(-1), ..Default::default() };
        assert!(resolve(&linux, &accounts()).is_err());
    }

    #[test]
    fn run_as_non_root_refuses_uid_zero() {
        let linux = LinuxSpec { run_as_non_root: true, ..with_user(None) };
        let err = resolve(&linux, &accounts()).unwrap_err();
        assert!(
            matches!(&err, ShimError::InvalidArtifact(m) if m == "container has runAsNonRoot and image will run as root"),
            "{err}"
        );
        let linux = LinuxSpec { run_as_non_root: true, run_as_user: Some(0), ..with_user(Some("web")) };
        assert!(resolve(&linux, &accounts()).is_err());
        let linux = LinuxSpec { run_as_non_root: true, ..with_user(Some("web")) };
        assert_eq!(resolve(&linux, &accounts()).unwrap().uid, 1000);
    }

    #[test]
    fn reads_accounts_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\n").unwrap();
        // An absolute symlink resolves inside the rootfs, not on the host.
        std::os::unix::fs::symlink("/etc/group", dir.path().join("etc/passwd")).unwrap();
        let accounts = Accounts::read(dir.path());
        assert_eq!(accounts.passwd, "root:x:0:\n");
        assert_eq!(accounts.group, "root:x:0:\n");
        assert_eq!(Accounts::read(&dir.path().join("missing")).passwd, "");
    }
}
