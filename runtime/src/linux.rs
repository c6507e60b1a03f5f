//! What the agent tells the youki shim about a Linux container beyond argv, env and mounts:
//! identity and privileges from the pod's and the container's `securityContext` (the
//! container's fields win), cpu requests and the node's pids limit.
//!
//! Safer than a kubelet by default: a container runs with no_new_privs unless it is privileged
//! or sets `allowPrivilegeEscalation: true` (a kubelet sets it only for `false`), so a setuid
//! binary or file capability cannot raise a process above the default capability set.
//!
//! A `Localhost` seccomp profile names a file below the agent's `DATA_DIR/seccomp/` (a kubelet's
//! is `/var/lib/kubelet/seccomp/`), in the OCI runtime spec's `linux.seccomp` format.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, SeccompProfile};
use wharf_shim::{LinuxSpec, Seccomp};

use crate::worker::quantity_millis;

/// The Linux part of `container`'s spec. `layers`, `namespaces` and `hostname` come from the
/// image and the sandbox and are filled by the caller. `Localhost` seccomp profiles are found
/// in `seccomp_dir`. Errs (kubelet's CreateContainerConfigError) when `runAsNonRoot` cannot hold
/// ([`verify_run_as_non_root`]) or a Localhost profile's path leaves `seccomp_dir`.
pub fn linux_spec(
    pod: &Pod,
    container: &Container,
    image_user: Option<String>,
    seccomp_dir: &Path,
    pids_limit: i64,
) -> Result<LinuxSpec, String> {
    verify_run_as_non_root(pod, container, image_user.as_deref())?;
    let pod_spec = pod.spec.as_ref();
    let pod_sc = pod_spec.and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let seccomp_profile =
        sc.and_then(|s| s.seccomp_profile.as_ref()).or(pod_sc.and_then(|s| s.seccomp_profile.as_ref()));
    let mut supplemental_groups: Vec<i64> = pod_sc.and_then(|s| s.supplemental_groups.clone()).unwrap_or_default();
    if let Some(fs_group) = pod_sc.and_then(|s| s.fs_group) {
        supplemental_groups.push(fs_group);
    }
    Ok(LinuxSpec {
        image_user,
        run_as_user: sc.and_then(|s| s.run_as_user).or(pod_sc.and_then(|s| s.run_as_user)),
        run_as_group: sc.and_then(|s| s.run_as_group).or(pod_sc.and_then(|s| s.run_as_group)),
        run_as_non_root: sc.and_then(|s| s.run_as_non_root).or(pod_sc.and_then(|s| s.run_as_non_root)).unwrap_or(false),
        supplemental_groups,
        read_only_root_filesystem: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        privileged,
        no_new_privileges: !privileged && sc.and_then(|s| s.allow_privilege_escalation) != Some(true),
        capabilities_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        capabilities_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        seccomp: seccomp(seccomp_profile, seccomp_dir)?,
        cpu_request_millis: container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("cpu"))
            .and_then(|q| quantity_millis(&q.0)),
        pids_limit: (pids_limit > 0).then_some(pids_limit),
        cgroup_parent: cgroup_parent(pod.metadata.uid.as_deref().unwrap_or_default()),
        ..Default::default()
    })
}

/// The filter a `seccompProfile` asks for: RuntimeDefault unless it says otherwise.
fn seccomp(profile: Option<&SeccompProfile>, seccomp_dir: &Path) -> Result<Seccomp, String> {
    let Some(profile) = profile else { return Ok(Seccomp::RuntimeDefault) };
    match profile.type_.as_str() {
        "Unconfined" => Ok(Seccomp::Unconfined),
        "Localhost" => {
            let name = profile.localhost_profile.as_deref().unwrap_or_default();
            if !crate::volumes::descending(name) {
                return Err(format!(
                    "seccomp profile {name:?}: a Localhost profile must be a relative path below the node's seccomp \
                     directory"
                ));
            }
            Ok(Seccomp::Localhost(seccomp_dir.join(name)))
        }
        _ => Ok(Seccomp::RuntimeDefault),
    }
}

/// kubelet's check of `runAsNonRoot` before a container is created (its message, reported as
/// CreateContainerConfigError): `runAsUser: 0`, or no `runAsUser` and an image whose user is
/// root (unset, `0` or `0:gid`), is refused. An image user given by name is left to the shim,
/// which resolves it against the image's /etc/passwd and refuses uid 0 the same way.
pub fn verify_run_as_non_root(pod: &Pod, container: &Container, image_user: Option<&str>) -> Result<(), String> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let non_root = sc.and_then(|s| s.run_as_non_root).or(pod_sc.and_then(|s| s.run_as_non_root));
    if non_root != Some(true) {
        return Ok(());
    }
    let meta = &pod.metadata;
    let who = format!(
        "(pod: \"{}_{}({})\", container: {})",
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default(),
        container.name
    );
    match sc.and_then(|s| s.run_as_user).or(pod_sc.and_then(|s| s.run_as_user)) {
        Some(0) => return Err(format!("container's runAsUser breaks non-root policy {who}")),
        Some(_) => return Ok(()),
        None => {}
    }
    let user = image_user.unwrap_or_default();
    let user = user.split_once(':').map_or(user, |(user, _)| user);
    if user.is_empty() || user.parse::<u32>() == Ok(0) {
        return Err(format!("container has runAsNonRoot and image will run as root {who}"));
    }
    Ok(())
}

/// The cgroup the pod's Linux containers go below, in every hierarchy.
pub fn cgroup_parent(pod_uid: &str) -> String {
    format!("wharf/pod{pod_uid}")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Capabilities, PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile, SecurityContext,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn pod(sc: PodSecurityContext) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.uid = Some("u1".into());
        pod.spec = Some(PodSpec { security_context: Some(sc), ..Default::default() });
        pod
    }

    #[test]
    fn container_security_context_wins_over_the_pods() {
        let pod = pod(PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            run_as_non_root: Some(true),
            fs_group: Some(2000),
            supplemental_groups: Some(vec![3000]),
            seccomp_profile: Some(SeccompProfile { type_: "Unconfined".into(), ..Default::default() }),
            ..Default::default()
        });
        let container = Container {
            name: "app".into(),
            security_context: Some(SecurityContext {
                run_as_user: Some(1001),
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into()]),
                    drop: Some(vec!["ALL".into()]),
                }),
                ..Default::default()
            }),
            resources: Some(ResourceRequirements {
                requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = linux_spec(&pod, &container, Some("nobody".into()), Path::new("/sc"), 1024).unwrap();
        assert_eq!(spec.run_as_user, Some(1001));
        assert_eq!(spec.run_as_group, Some(1000));
        assert!(spec.run_as_non_root && spec.no_new_privileges && spec.read_only_root_filesystem);
        assert!(!spec.privileged);
        assert_eq!(spec.supplemental_groups, vec![3000, 2000]);
        assert_eq!(spec.capabilities_add, vec!["NET_ADMIN"]);
        assert_eq!(spec.capabilities_drop, vec!["ALL"]);
        assert_eq!(spec.seccomp, Seccomp::Unconfined);
        assert_eq!(spec.cpu_request_millis, Some(250));
        assert_eq!(spec.pids_limit, Some(1024));
        assert_eq!(spec.cgroup_parent, "wharf/podu1");
        assert_eq!(spec.image_user.as_deref(), Some("nobody"));
    }

    #[test]
    fn defaults_are_unprivileged_with_the_runtime_seccomp_profile() {
        let spec =
            linux_spec(&pod(PodSecurityContext::default()), &Container::default(), None, Path::new("/sc"), 0).unwrap();
        assert_eq!(spec.seccomp, Seccomp::RuntimeDefault);
        assert!(!spec.privileged && spec.no_new_privileges && !spec.run_as_non_root);
        assert_eq!(spec.pids_limit, None);
        assert_eq!(spec.run_as_user, None);
    }

    #[test]
    fn no_new_privs_unless_escalation_is_asked_for_or_privileged() {
        let with = |sc: SecurityContext| {
            let container = Container { security_context: Some(sc), ..Default::default() };
            linux_spec(&pod(PodSecurityContext::default()), &container, None, Path::new("/sc"), 0)
                .unwrap()
                .no_new_privileges
        };
        assert!(with(SecurityContext { allow_privilege_escalation: Some(false), ..Default::default() }));
        assert!(!with(SecurityContext { allow_privilege_escalation: Some(true), ..Default::default() }));
        assert!(!with(SecurityContext { privileged: Some(true), ..Default::default() }));
    }

    #[test]
    fn seccomp_profiles() {
        let dir = Path::new("/data/seccomp");
        let profile = |type_: &str, localhost: Option<&str>| SeccompProfile {
            type_: type_.into(),
            localhost_profile: localhost.map(str::to_string),
        };
        assert_eq!(seccomp(None, dir), Ok(Seccomp::RuntimeDefault));
        assert_eq!(seccomp(Some(&profile("RuntimeDefault", None)), dir), Ok(Seccomp::RuntimeDefault));
        assert_eq!(seccomp(Some(&profile("Unconfined", None)), dir), Ok(Seccomp::Unconfined));
        assert_eq!(
            seccomp(Some(&profile("Localhost", Some("profiles/audit.json"))), dir),
            Ok(Seccomp::Localhost("/data/seccomp/profiles/audit.json".into()))
        );
        for bad in ["", "/etc/passwd", "../x.json", "a/../../x.json"] {
            let err = seccomp(Some(&profile("Localhost", Some(bad))), dir).unwrap_err();
            assert!(err.contains("relative path"), "{bad}: {err}");
        }
        // The container's profile wins over the pod's.
        let mut p =
            pod(PodSecurityContext { seccomp_profile: Some(profile("Unconfined", None)), ..Default::default() });
        p.metadata.name = Some("p".into());
        let container = Container {
            security_context: Some(SecurityContext {
                seccomp_profile: Some(profile("Localhost", Some("mine.json"))),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = linux_spec(&p, &container, None, dir, 0).unwrap();
        assert_eq!(spec.seccomp, Seccomp::Localhost("/data/seccomp/mine.json".into()));
    }

    #[test]
    fn run_as_non_root_is_verified_as_kubelet_does() {
        let mut p = pod(PodSecurityContext { run_as_non_root: Some(true), ..Default::default() });
        p.metadata.name = Some("web".into());
        p.metadata.namespace = Some("apps".into());
        let container = Container { name: "c".into(), ..Default::default() };
        let root = "container has runAsNonRoot and image will run as root (pod: \"web_apps(u1)\", container: c)";
        assert_eq!(verify_run_as_non_root(&p, &container, None).unwrap_err(), root);
        assert_eq!(verify_run_as_non_root(&p, &container, Some("0:10")).unwrap_err(), root);
        assert_eq!(verify_run_as_non_root(&p, &container, Some("1000")), Ok(()));
        // A name is resolved (and refused when it is root) by the shim.
        assert_eq!(verify_run_as_non_root(&p, &container, Some("nobody")), Ok(()));

        let explicit = |uid: i64| Container {
            name: "c".into(),
            security_context: Some(SecurityContext { run_as_user: Some(uid), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(verify_run_as_non_root(&p, &explicit(1000), None), Ok(()));
        assert_eq!(
            verify_run_as_non_root(&p, &explicit(0), Some("1000")).unwrap_err(),
            "container's runAsUser breaks non-root policy (pod: \"web_apps(u1)\", container: c)"
        );
        // The container's own false wins over the pod's true.
        let opted_out = Container {
            name: "c".into(),
            security_context: Some(SecurityContext { run_as_non_root: Some(false), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(verify_run_as_non_root(&p, &opted_out, None), Ok(()));
    }
}
