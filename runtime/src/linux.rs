//! What the agent tells the youki shim about a Linux container beyond argv, env and mounts:
//! identity and privileges from the pod's and the container's `securityContext` (the
//! container's fields win), cpu requests and the node's pids limit.

use k8s_openapi::api::core::v1::{Container, Pod};
use wharf_shim::{LinuxSpec, Seccomp};

use crate::worker::quantity_millis;

/// The Linux part of `container`'s spec. `layers`, `namespaces` and `hostname` come from the
/// image and the sandbox and are filled by the caller.
pub fn linux_spec(pod: &Pod, container: &Container, image_user: Option<String>, pids_limit: i64) -> LinuxSpec {
    let pod_spec = pod.spec.as_ref();
    let pod_sc = pod_spec.and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let seccomp_type = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or(pod_sc.and_then(|s| s.seccomp_profile.as_ref()))
        .map(|p| p.type_.as_str());
    let mut supplemental_groups: Vec<i64> = pod_sc.and_then(|s| s.supplemental_groups.clone()).unwrap_or_default();
    if let Some(fs_group) = pod_sc.and_then(|s| s.fs_group) {
        supplemental_groups.push(fs_group);
    }
    LinuxSpec {
        image_user,
        run_as_user: sc.and_then(|s| s.run_as_user).or(pod_sc.and_then(|s| s.run_as_user)),
        run_as_group: sc.and_then(|s| s.run_as_group).or(pod_sc.and_then(|s| s.run_as_group)),
        run_as_non_root: sc.and_then(|s| s.run_as_non_root).or(pod_sc.and_then(|s| s.run_as_non_root)).unwrap_or(false),
        supplemental_groups,
        read_only_root_filesystem: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        capabilities_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        capabilities_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        seccomp: if seccomp_type == Some("Unconfined") { Seccomp::Unconfined } else { Seccomp::RuntimeDefault },
        cpu_request_millis: container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("cpu"))
            .and_then(|q| quantity_millis(&q.0)),
        pids_limit: (pids_limit > 0).then_some(pids_limit),
        cgroup_parent: cgroup_parent(pod.metadata.uid.as_deref().unwrap_or_default()),
        ..Default::default()
    }
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
        let spec = linux_spec(&pod, &container, Some("nobody".into()), 1024);
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
        let spec = linux_spec(&pod(PodSecurityContext::default()), &Container::default(), None, 0);
        assert_eq!(spec.seccomp, Seccomp::RuntimeDefault);
        assert!(!spec.privileged && !spec.no_new_privileges && !spec.run_as_non_root);
        assert_eq!(spec.pids_limit, None);
        assert_eq!(spec.run_as_user, None);
    }
}
