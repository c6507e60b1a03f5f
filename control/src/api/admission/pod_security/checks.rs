//! The Pod Security Standards' checks, as Kubernetes defines them (pod-security-admission's
//! `policy` package): each check looks at a pod's annotations and spec and gives a reason and a
//! detail worded as Kubernetes words them. A level's checks run in Kubernetes' order (baseline's
//! first); restricted replaces baseline's capability, hostPath and seccomp checks with its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};

pub const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// The latest version: every check applies as it does in the newest Kubernetes.
const LATEST: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        })
    }
}

/// A level at a version of the standards (`restricted:latest`, `baseline:v1.29`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub level: Level,
    /// The Kubernetes minor version (`1.x`) whose checks apply; [`LATEST`] for `latest`.
    pub minor: u32,
}

impl Policy {
    pub const RESTRICTED_LATEST: Policy = Policy { level: Level::Restricted, minor: LATEST };

    /// From a mode's label values: no level is privileged, no version is latest; `None` when
    /// either is invalid.
    pub fn parse(level: Option<&str>, version: Option<&str>) -> Option<Policy> {
        let level = match level {
            None => Level::Privileged,
            Some(text) => Level::parse(text)?,
        };
        let minor = match version {
            None => LATEST,
            Some(text) => parse_version(text)?,
        };
        Some(Policy { level, minor })
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.minor == LATEST {
            write!(f, "{}:latest", self.level)
        } else {
            write!(f, "{}:v1.{}", self.level, self.minor)
        }
    }
}

/// `latest` or `v1.x`: the minor version.
pub fn parse_version(text: &str) -> Option<u32> {
    if text == "latest" {
        return Some(LATEST);
    }
    let minor = text.strip_prefix("v1.")?;
    if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) || minor.len() > 1 && minor.starts_with('0') {
        return None;
    }
    minor.parse().ok().filter(|m| *m < LATEST)
}

/// One failed check: `reason (detail)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() { f.write_str(&self.reason) } else { write!(f, "{} ({})", self.reason, self.detail) }
    }
}

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation { reason: reason.into(), detail: detail.into() })
}

/// What a check reads.
struct Pod<'a> {
    annotations: &'a BTreeMap<String, String>,
    spec: &'a PodSpec,
    /// Init, regular and ephemeral containers, in that order.
    containers: Vec<Container>,
    minor: u32,
}

impl Pod<'_> {
    fn pod_sc<T>(&self, get: impl Fn(&k8s_openapi::api::core::v1::PodSecurityContext) -> Option<T>) -> Option<T> {
        self.spec.security_context.as_ref().and_then(get)
    }

    /// Names of the containers whose securityContext `bad` accepts.
    fn containers_where(&self, mut bad: impl FnMut(&SecurityContext) -> bool) -> Vec<String> {
        self.containers
            .iter()
            .filter(|c| c.security_context.as_ref().is_some_and(&mut bad))
            .map(|c| c.name.clone())
            .collect()
    }

    /// Pods with `hostUsers: false` run in a user namespace: root there is not root on the node.
    fn user_namespaced(&self) -> bool {
        self.minor >= 25 && self.spec.host_users == Some(false)
    }
}

fn plural<'s>(one: &'s str, many: &'s str, n: usize) -> &'s str {
    if n == 1 { one } else { many }
}

/// `"a", "b"`.
fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items.into_iter().map(|s| format!("{:?}", s.as_ref())).collect::<Vec<_>>().join(", ")
}

/// `container "a"` / `containers "a", "b"`.
fn containers_phrase(names: &[String]) -> String {
    format!("{} {}", plural("container", "containers", names.len()), join_quote(names))
}

/// `pod`, `containers "a", "b"`, or `pod and container "a"`: who set a forbidden value.
fn setters(pod: bool, containers: &[String]) -> String {
    let mut parts = Vec::new();
    if pod {
        parts.push("pod".to_string());
    }
    if !containers.is_empty() {
        parts.push(containers_phrase(containers));
    }
    parts.join(" and ")
}

type CheckFn = fn(&Pod<'_>) -> Option<Violation>;

struct Check {
    level: Level,
    /// A baseline check restricted replaces with its own.
    replaced_in_restricted: bool,
    /// The first Kubernetes minor version it applies to.
    since: u32,
    run: CheckFn,
}

const fn baseline(run: CheckFn) -> Check {
    Check { level: Level::Baseline, replaced_in_restricted: false, since: 0, run }
}

/// Every check, in Kubernetes' order (by check ID).
const CHECKS: &[Check] = &[
    Check { level: Level::Restricted, replaced_in_restricted: false, since: 8, run: allow_privilege_escalation },
    baseline(app_armor),
    Check { replaced_in_restricted: true, ..baseline(capabilities_baseline) },
    Check { level: Level::Restricted, replaced_in_restricted: false, since: 22, run: capabilities_restricted },
    baseline(host_namespaces),
    Check { replaced_in_restricted: true, ..baseline(host_path_volumes) },
    baseline(host_ports),
    Check { since: 34, ..baseline(host_probes) },
    baseline(privileged),
    baseline(proc_mount),
    Check { level: Level::Restricted, replaced_in_restricted: false, since: 0, run: restricted_volumes },
    Check { level: Level::Restricted, replaced_in_restricted: false, since: 0, run: run_as_non_root },
    Check { level: Level::Restricted, replaced_in_restricted: false, since: 23, run: run_as_user },
    baseline(se_linux_options),
    Check { replaced_in_restricted: true, ..baseline(seccomp_baseline) },
    Check { level: Level::Restricted, replaced_in_restricted: false, since: 19, run: seccomp_restricted },
    baseline(sysctls),
    baseline(host_process),
];

/// The violations of `policy` by a pod with these annotations and spec, in Kubernetes' order;
/// empty when it complies.
pub fn evaluate(policy: Policy, annotations: &BTreeMap<String, String>, spec: &PodSpec) -> Vec<Violation> {
    if policy.level == Level::Privileged {
        return Vec::new();
    }
    let mut containers: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
    containers.extend(spec.containers.iter().cloned());
    for ephemeral in spec.ephemeral_containers.iter().flatten() {
        // The same fields under the same names; the ephemeral-only ones are ignored.
        if let Ok(container) = serde_json::to_value(ephemeral).and_then(serde_json::from_value) {
            containers.push(container);
        }
    }
    let pod = Pod { annotations, spec, containers, minor: policy.minor };
    let applies = |check: &&Check| check.since <= policy.minor;
    let run = |check: &Check| (check.run)(&pod);
    let mut violations: Vec<Violation> = CHECKS
        .iter()
        .filter(applies)
        .filter(|c| c.level == Level::Baseline && !c.replaced_in_restricted)
        .filter_map(run)
        .collect();
    let rest: Vec<&Check> = if policy.level == Level::Baseline {
        CHECKS.iter().filter(applies).filter(|c| c.level == Level::Baseline && c.replaced_in_restricted).collect()
    } else {
        CHECKS.iter().filter(applies).filter(|c| c.level == Level::Restricted).collect()
    };
    violations.extend(rest.into_iter().filter_map(run));
    violations
}

// Baseline.

fn host_process(pod: &Pod<'_>) -> Option<Violation> {
    let pod_set = pod.pod_sc(|sc| sc.windows_options.as_ref()?.host_process) == Some(true);
    let containers = pod.containers_where(|sc| sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true));
    if !pod_set && containers.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!("{} must not set securityContext.windowsOptions.hostProcess=true", setters(pod_set, &containers)),
    )
}

fn host_namespaces(pod: &Pod<'_>) -> Option<Violation> {
    let spec = pod.spec;
    let set: Vec<&str> =
        [(spec.host_network, "hostNetwork=true"), (spec.host_pid, "hostPID=true"), (spec.host_ipc, "hostIPC=true")]
            .into_iter()
            .filter(|(on, _)| *on == Some(true))
            .map(|(_, text)| text)
            .collect();
    if set.is_empty() { None } else { violation("host namespaces", set.join(", ")) }
}

fn privileged(pod: &Pod<'_>) -> Option<Violation> {
    let containers = pod.containers_where(|sc| sc.privileged == Some(true));
    if containers.is_empty() {
        return None;
    }
    violation("privileged", format!("{} must not set securityContext.privileged=true", containers_phrase(&containers)))
}

/// The capabilities baseline allows a container to add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(container: &Container) -> &[String] {
    container
        .security_context
        .as_ref()
        .and_then(|sc| sc.capabilities.as_ref())
        .and_then(|c| c.add.as_deref())
        .unwrap_or_default()
}

fn capabilities_baseline(pod: &Pod<'_>) -> Option<Violation> {
    let mut containers = Vec::new();
    let mut forbidden = BTreeSet::new();
    for container in &pod.containers {
        let bad: Vec<&String> =
            added_capabilities(container).iter().filter(|c| !BASELINE_CAPABILITIES.contains(&c.as_str())).collect();
        if !bad.is_empty() {
            containers.push(container.name.clone());
            forbidden.extend(bad);
        }
    }
    if containers.is_empty() {
        return None;
    }
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&containers),
            join_quote(&forbidden)
        ),
    )
}

fn host_path_volumes(pod: &Pod<'_>) -> Option<Violation> {
    let names: Vec<&str> =
        pod.spec.volumes.iter().flatten().filter(|v| v.host_path.is_some()).map(|v| v.name.as_str()).collect();
    if names.is_empty() {
        return None;
    }
    violation("hostPath volumes", format!("{} {}", plural("volume", "volumes", names.len()), join_quote(&names)))
}

fn host_ports(pod: &Pod<'_>) -> Option<Violation> {
    let mut containers = Vec::new();
    let mut ports = Vec::new();
    for container in &pod.containers {
        let used: Vec<String> = container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.host_port)
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        if !used.is_empty() {
            containers.push(container.name.clone());
            ports.extend(used);
        }
    }
    if containers.is_empty() {
        return None;
    }
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&containers),
            plural("uses", "use", containers.len()),
            plural("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn host_probes(pod: &Pod<'_>) -> Option<Violation> {
    let mut containers = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for container in &pod.containers {
        let probes = [&container.liveness_probe, &container.readiness_probe, &container.startup_probe];
        let mut found: Vec<&String> = probes
            .into_iter()
            .flatten()
            .flat_map(|p| {
                [p.http_get.as_ref().and_then(|h| h.host.as_ref()), p.tcp_socket.as_ref().and_then(|t| t.host.as_ref())]
            })
            .flatten()
            .collect();
        if let Some(lifecycle) = &container.lifecycle {
            found.extend(
                [&lifecycle.post_start, &lifecycle.pre_stop]
                    .into_iter()
                    .flatten()
                    .flat_map(|h| {
                        [
                            h.http_get.as_ref().and_then(|h| h.host.as_ref()),
                            h.tcp_socket.as_ref().and_then(|t| t.host.as_ref()),
                        ]
                    })
                    .flatten(),
            );
        }
        found.retain(|h| !h.is_empty());
        if !found.is_empty() {
            containers.insert(container.name.clone());
            hosts.extend(found.into_iter().cloned());
        }
    }
    if containers.is_empty() {
        return None;
    }
    let names: Vec<String> = containers.into_iter().collect();
    violation(
        "probe or lifecycle host",
        format!(
            "{} {} {} {}",
            containers_phrase(&names),
            plural("uses", "use", names.len()),
            plural("probe or lifecycle host", "probe or lifecycle hosts", hosts.len()),
            join_quote(&hosts)
        ),
    )
}

fn app_armor(pod: &Pod<'_>) -> Option<Violation> {
    let mut forbidden: Vec<String> = pod
        .annotations
        .iter()
        .filter(|(k, v)| {
            k.starts_with(APPARMOR_ANNOTATION_PREFIX)
                && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    forbidden.sort();
    if pod.minor >= 30 {
        let unconfined = |p: &Option<k8s_openapi::api::core::v1::AppArmorProfile>| {
            p.as_ref().is_some_and(|p| p.type_ == "Unconfined")
        };
        let pod_set = pod.pod_sc(|sc| Some(unconfined(&sc.app_armor_profile))) == Some(true);
        let containers = pod.containers_where(|sc| unconfined(&sc.app_armor_profile));
        if pod_set || !containers.is_empty() {
            forbidden.push(format!(
                "{} must not set AppArmor profile type to \"Unconfined\"",
                setters(pod_set, &containers)
            ));
        }
    }
    if forbidden.is_empty() {
        return None;
    }
    violation(
        plural("forbidden AppArmor profile", "forbidden AppArmor profiles", forbidden.len()),
        forbidden.join(", "),
    )
}

fn se_linux_options(pod: &Pod<'_>) -> Option<Violation> {
    let mut types = BTreeSet::new();
    let (mut user, mut role) = (false, false);
    let mut inspect = |options: Option<&k8s_openapi::api::core::v1::SELinuxOptions>| -> bool {
        let Some(options) = options else { return false };
        let mut ok = true;
        let typ = options.type_.as_deref().unwrap_or_default();
        let allowed = ["", "container_t", "container_init_t", "container_kvm_t"].contains(&typ)
            || pod.minor >= 31 && typ == "container_engine_t";
        if !allowed {
            types.insert(typ.to_string());
            ok = false;
        }
        if options.user.as_deref().is_some_and(|u| !u.is_empty()) {
            user = true;
            ok = false;
        }
        if options.role.as_deref().is_some_and(|r| !r.is_empty()) {
            role = true;
            ok = false;
        }
        !ok
    };
    let pod_set = inspect(pod.spec.security_context.as_ref().and_then(|sc| sc.se_linux_options.as_ref()));
    let containers: Vec<String> = pod
        .containers
        .iter()
        .filter(|c| inspect(c.security_context.as_ref().and_then(|sc| sc.se_linux_options.as_ref())))
        .map(|c| c.name.clone())
        .collect();
    if !pod_set && containers.is_empty() {
        return None;
    }
    let mut what = Vec::new();
    if !types.is_empty() {
        what.push(format!("{} {}", plural("type", "types", types.len()), join_quote(&types)));
    }
    if user {
        what.push("user may not be set".to_string());
    }
    if role {
        what.push("role may not be set".to_string());
    }
    violation(
        "seLinuxOptions",
        format!("{} set forbidden securityContext.seLinuxOptions: {}", setters(pod_set, &containers), what.join("; ")),
    )
}

fn proc_mount(pod: &Pod<'_>) -> Option<Violation> {
    let mut values = BTreeSet::new();
    let containers = pod.containers_where(|sc| match sc.proc_mount.as_deref() {
        None | Some("Default") => false,
        Some(other) => {
            values.insert(other.to_string());
            true
        }
    });
    if containers.is_empty() {
        return None;
    }
    violation(
        "procMount",
        format!("{} must not set securityContext.procMount to {}", containers_phrase(&containers), join_quote(&values)),
    )
}

fn seccomp_type(profile: &Option<k8s_openapi::api::core::v1::SeccompProfile>) -> Option<&str> {
    profile.as_ref().map(|p| p.type_.as_str())
}

fn seccomp_baseline(pod: &Pod<'_>) -> Option<Violation> {
    let pod_set =
        pod.spec.security_context.as_ref().and_then(|sc| seccomp_type(&sc.seccomp_profile)) == Some("Unconfined");
    let containers = pod.containers_where(|sc| seccomp_type(&sc.seccomp_profile) == Some("Unconfined"));
    if !pod_set && containers.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!("{} must not set securityContext.seccompProfile.type to \"Unconfined\"", setters(pod_set, &containers)),
    )
}

/// The sysctls baseline allows, and the version each became allowed in.
const SAFE_SYSCTLS: [(&str, u32); 12] = [
    ("kernel.shm_rmid_forced", 0),
    ("net.ipv4.ip_local_port_range", 0),
    ("net.ipv4.ip_unprivileged_port_start", 0),
    ("net.ipv4.tcp_syncookies", 0),
    ("net.ipv4.ping_group_range", 0),
    ("net.ipv4.ip_local_reserved_ports", 27),
    ("net.ipv4.tcp_keepalive_time", 29),
    ("net.ipv4.tcp_fin_timeout", 29),
    ("net.ipv4.tcp_keepalive_intvl", 29),
    ("net.ipv4.tcp_keepalive_probes", 29),
    ("net.ipv4.tcp_rmem", 32),
    ("net.ipv4.tcp_wmem", 32),
];

fn sysctls(pod: &Pod<'_>) -> Option<Violation> {
    let forbidden: Vec<&str> = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| s.name.as_str())
        .filter(|name| !SAFE_SYSCTLS.iter().any(|(safe, since)| safe == name && *since <= pod.minor))
        .collect();
    if forbidden.is_empty() { None } else { violation("forbidden sysctls", forbidden.join(", ")) }
}

// Restricted.

/// The volume types restricted allows.
const RESTRICTED_VOLUME_TYPES: [&str; 8] =
    ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

fn restricted_volumes(pod: &Pod<'_>) -> Option<Violation> {
    let mut names = Vec::new();
    let mut types = BTreeSet::new();
    for volume in pod.spec.volumes.iter().flatten() {
        let json = serde_json::to_value(volume).unwrap_or_default();
        let typ = json
            .as_object()
            .and_then(|o| o.keys().find(|k| k.as_str() != "name").cloned())
            .unwrap_or_else(|| "unknown".to_string());
        if !RESTRICTED_VOLUME_TYPES.contains(&typ.as_str()) {
            names.push(volume.name.clone());
            types.insert(typ);
        }
    }
    if names.is_empty() {
        return None;
    }
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            plural("volume", "volumes", names.len()),
            join_quote(&names),
            plural("uses", "use", names.len()),
            plural("restricted volume type", "restricted volume types", types.len()),
            join_quote(&types)
        ),
    )
}

fn allow_privilege_escalation(pod: &Pod<'_>) -> Option<Violation> {
    let containers: Vec<String> = pod
        .containers
        .iter()
        .filter(|c| c.security_context.as_ref().and_then(|sc| sc.allow_privilege_escalation) != Some(false))
        .map(|c| c.name.clone())
        .collect();
    if containers.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!("{} must set securityContext.allowPrivilegeEscalation=false", containers_phrase(&containers)),
    )
}

fn capabilities_restricted(pod: &Pod<'_>) -> Option<Violation> {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut forbidden = BTreeSet::new();
    for container in &pod.containers {
        let caps = container.security_context.as_ref().and_then(|sc| sc.capabilities.as_ref());
        if !caps.and_then(|c| c.drop.as_ref()).is_some_and(|d| d.iter().any(|c| c == "ALL")) {
            missing_drop.push(container.name.clone());
        }
        let bad: Vec<&String> = added_capabilities(container).iter().filter(|c| *c != "NET_BIND_SERVICE").collect();
        if !bad.is_empty() {
            adding.push(container.name.clone());
            forbidden.extend(bad);
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details
            .push(format!("{} must set securityContext.capabilities.drop=[\"ALL\"]", containers_phrase(&missing_drop)));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() { None } else { violation("unrestricted capabilities", details.join("; ")) }
}

fn run_as_non_root(pod: &Pod<'_>) -> Option<Violation> {
    if pod.user_namespaced() {
        return None;
    }
    let pod_value = pod.pod_sc(|sc| sc.run_as_non_root);
    let explicit_false = pod.containers_where(|sc| sc.run_as_non_root == Some(false));
    if pod_value == Some(false) || !explicit_false.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters(pod_value == Some(false), &explicit_false)
            ),
        );
    }
    if pod_value == Some(true) {
        return None;
    }
    let unset: Vec<String> = pod
        .containers
        .iter()
        .filter(|c| c.security_context.as_ref().and_then(|sc| sc.run_as_non_root).is_none())
        .map(|c| c.name.clone())
        .collect();
    if unset.is_empty() {
        return None;
    }
    violation(
        "runAsNonRoot != true",
        format!("pod or {} must set securityContext.runAsNonRoot=true", containers_phrase(&unset)),
    )
}

fn run_as_user(pod: &Pod<'_>) -> Option<Violation> {
    if pod.user_namespaced() {
        return None;
    }
    let pod_set = pod.pod_sc(|sc| sc.run_as_user) == Some(0);
    let containers = pod.containers_where(|sc| sc.run_as_user == Some(0));
    if !pod_set && containers.is_empty() {
        return None;
    }
    violation("runAsUser=0", format!("{} must not set runAsUser=0", setters(pod_set, &containers)))
}

fn seccomp_restricted(pod: &Pod<'_>) -> Option<Violation> {
    let allowed = |t: Option<&str>| matches!(t, Some("RuntimeDefault" | "Localhost"));
    let pod_type = pod.spec.security_context.as_ref().and_then(|sc| seccomp_type(&sc.seccomp_profile));
    let mut bad_values = BTreeSet::new();
    let pod_bad = pod_type.is_some_and(|t| !allowed(Some(t)));
    if pod_bad {
        bad_values.insert(pod_type.unwrap_or_default().to_string());
    }
    let mut explicit = Vec::new();
    let mut unset = Vec::new();
    for container in &pod.containers {
        match container.security_context.as_ref().and_then(|sc| seccomp_type(&sc.seccomp_profile)) {
            Some(t) if !allowed(Some(t)) => {
                explicit.push(container.name.clone());
                bad_values.insert(t.to_string());
            }
            Some(_) => {}
            None if !allowed(pod_type) => unset.push(container.name.clone()),
            None => {}
        }
    }
    let mut details = Vec::new();
    if pod_bad || !explicit.is_empty() {
        details.push(format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters(pod_bad, &explicit),
            join_quote(&bad_values)
        ));
    }
    if !unset.is_empty() && !pod_bad {
        details.push(format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&unset)
        ));
    }
    if details.is_empty() { None } else { violation("seccompProfile", details.join("; ")) }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const BASELINE: Policy = Policy { level: Level::Baseline, minor: LATEST };
    const RESTRICTED: Policy = Policy::RESTRICTED_LATEST;

    /// A pod that passes restricted: what each case then breaks.
    fn compliant() -> Value {
        json!({
            "metadata": {"name": "p"},
            "spec": {
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "c",
                    "image": "busybox",
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }],
                "volumes": [{"name": "data", "emptyDir": {}}],
            }
        })
    }

    fn run(policy: Policy, pod: &Value) -> Vec<String> {
        let annotations: BTreeMap<String, String> =
            serde_json::from_value(pod["metadata"]["annotations"].clone()).unwrap_or_default();
        let spec: PodSpec = serde_json::from_value(pod["spec"].clone()).unwrap();
        evaluate(policy, &annotations, &spec).iter().map(Violation::to_string).collect()
    }

    /// Applies `patch` (a JSON merge patch) to the compliant pod.
    fn with(patch: Value) -> Value {
        let mut pod = compliant();
        merge(&mut pod, patch);
        pod
    }

    fn merge(target: &mut Value, patch: Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
            (t, p) => *t = p,
        }
    }

    fn container(sc: Value) -> Value {
        let mut base = compliant()["spec"]["containers"][0].clone();
        merge(&mut base, json!({"securityContext": sc}));
        base
    }

    #[test]
    fn versions_and_levels_parse() {
        assert_eq!(Policy::parse(None, None), Some(Policy { level: Level::Privileged, minor: LATEST }));
        assert_eq!(Policy::parse(Some("baseline"), Some("v1.29")).unwrap().to_string(), "baseline:v1.29");
        assert_eq!(Policy::parse(Some("restricted"), Some("latest")).unwrap().to_string(), "restricted:latest");
        for bad in ["1.29", "v2.1", "v1.", "v1.x", "v1.029", ""] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
        assert_eq!(Policy::parse(Some("Restricted"), None), None);
    }

    #[test]
    fn the_compliant_pod_passes_every_level() {
        for policy in [BASELINE, RESTRICTED, Policy { level: Level::Privileged, minor: LATEST }] {
            assert_eq!(run(policy, &compliant()), Vec::<String>::new(), "{policy}");
        }
    }

    #[test]
    fn privileged_allows_everything() {
        let pod = with(json!({"spec": {"hostNetwork": true, "containers": [container(json!({"privileged": true}))]}}));
        assert!(run(Policy::parse(Some("privileged"), None).unwrap(), &pod).is_empty());
    }

    #[test]
    fn baseline_checks() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "host namespaces",
                json!({"spec": {"hostNetwork": true, "hostPID": true, "hostIPC": true}}),
                "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)",
            ),
            (
                "privileged",
                json!({"spec": {"containers": [container(json!({"privileged": true})), container(json!({}))]}}),
                "privileged (container \"c\" must not set securityContext.privileged=true)",
            ),
            (
                "capabilities beyond the default set",
                json!({"spec": {"containers": [
                    {"name": "a", "image": "i", "securityContext": {"capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]}}},
                    {"name": "b", "image": "i", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
                ]}}),
                "non-default capabilities (containers \"a\", \"b\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in \
                 securityContext.capabilities.add)",
            ),
            (
                "hostPath volumes",
                json!({"spec": {"volumes": [{"name": "host", "hostPath": {"path": "/"}}]}}),
                "hostPath volumes (volume \"host\")",
            ),
            (
                "hostPorts",
                json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": [
                    {"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 8081}, {"containerPort": 82}
                ]}]}}),
                "hostPort (container \"c\" uses hostPorts 8080, 8081)",
            ),
            (
                "AppArmor annotation",
                json!({"metadata": {"annotations": {
                    "container.apparmor.security.beta.kubernetes.io/c": "unconfined",
                    "container.apparmor.security.beta.kubernetes.io/d": "localhost/mine",
                }}}),
                "forbidden AppArmor profile (container.apparmor.security.beta.kubernetes.io/c=\"unconfined\")",
            ),
            (
                "AppArmor field",
                json!({"spec": {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}}),
                "forbidden AppArmor profile (pod must not set AppArmor profile type to \"Unconfined\")",
            ),
            (
                "SELinux",
                json!({"spec": {"securityContext": {"seLinuxOptions": {"type": "spc_t", "user": "root"}},
                    "containers": [container(json!({"seLinuxOptions": {"role": "sysadm_r"}}))]}}),
                "seLinuxOptions (pod and container \"c\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; \
                 user may not be set; role may not be set)",
            ),
            (
                "procMount",
                json!({"spec": {"containers": [container(json!({"procMount": "Unmasked"}))]}}),
                "procMount (container \"c\" must not set securityContext.procMount to \"Unmasked\")",
            ),
            (
                "seccomp Unconfined",
                json!({"spec": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}}),
                "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")",
            ),
            (
                "sysctls",
                json!({"spec": {"securityContext": {"sysctls": [
                    {"name": "kernel.shm_rmid_forced", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}
                ]}}}),
                "forbidden sysctls (kernel.msgmax)",
            ),
            (
                "hostProcess",
                json!({"spec": {"securityContext": {"windowsOptions": {"hostProcess": true}}}}),
                "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)",
            ),
            (
                "probe host",
                json!({"spec": {"containers": [{"name": "c", "image": "i",
                    "livenessProbe": {"httpGet": {"port": 80, "host": "10.0.0.1"}}}]}}),
                "probe or lifecycle host (container \"c\" uses probe or lifecycle host \"10.0.0.1\")",
            ),
        ];
        for (name, patch, expected) in cases {
            let got = run(BASELINE, &with(patch));
            assert_eq!(got, [expected], "{name}");
        }
    }

    #[test]
    fn baseline_allows_its_defaults() {
        let pod = with(json!({"spec": {
            "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}],
                "seLinuxOptions": {"type": "container_t", "level": "s0:c1"}},
            "containers": [container(json!({"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"]}, "procMount": "Default"}))],
            "volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}],
        }}));
        assert!(run(BASELINE, &pod).is_empty(), "{:?}", run(BASELINE, &pod));
        // An older version does not know the newer safe sysctls.
        let old = Policy { level: Level::Baseline, minor: 28 };
        assert_eq!(run(old, &pod), ["forbidden sysctls (net.ipv4.tcp_keepalive_time)"]);
    }

    #[test]
    fn restricted_checks() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "volume types",
                json!({"spec": {"volumes": [
                    {"name": "a", "nfs": {"server": "s", "path": "/"}},
                    {"name": "b", "hostPath": {"path": "/"}},
                    {"name": "c", "configMap": {"name": "x"}},
                ]}}),
                "restricted volume types (volumes \"a\", \"b\" use restricted volume types \"hostPath\", \"nfs\")",
            ),
            (
                "allowPrivilegeEscalation",
                json!({"spec": {"containers": [container(json!({"allowPrivilegeEscalation": true}))]}}),
                "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)",
            ),
            (
                "capabilities add",
                json!({"spec": {"containers": [container(json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CHOWN"]}}))]}}),
                "unrestricted capabilities (container \"c\" must not include \"CHOWN\" in securityContext.capabilities.add)",
            ),
            (
                "capabilities drop",
                json!({"spec": {"containers": [container(json!({"capabilities": {"drop": ["NET_RAW"]}}))]}}),
                "unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"])",
            ),
            (
                "runAsNonRoot false",
                json!({"spec": {"securityContext": {"runAsNonRoot": false}}}),
                "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)",
            ),
            (
                "runAsNonRoot unset",
                json!({"spec": {"securityContext": {"runAsNonRoot": null}}}),
                "runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true)",
            ),
            (
                "runAsUser 0",
                json!({"spec": {"securityContext": {"runAsUser": 0}, "containers": [container(json!({"runAsUser": 0}))]}}),
                "runAsUser=0 (pod and container \"c\" must not set runAsUser=0)",
            ),
            (
                "seccomp unset",
                json!({"spec": {"securityContext": {"seccompProfile": null}}}),
                "seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            ),
            (
                "seccomp Unconfined in a container",
                json!({"spec": {"containers": [container(json!({"seccompProfile": {"type": "Unconfined"}}))]}}),
                "seccompProfile (container \"c\" must not set securityContext.seccompProfile.type to \"Unconfined\")",
            ),
        ];
        for (name, patch, expected) in cases {
            assert_eq!(run(RESTRICTED, &with(patch)), [expected], "{name}");
        }
    }

    #[test]
    fn restricted_replaces_baselines_own_checks_and_keeps_the_others() {
        let pod = with(json!({"spec": {
            "hostNetwork": true,
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "containers": [container(json!({"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}))],
        }}));
        assert_eq!(
            run(RESTRICTED, &pod),
            [
                "host namespaces (hostNetwork=true)",
                "unrestricted capabilities (container \"c\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)",
                "restricted volume types (volume \"h\" uses restricted volume type \"hostPath\")",
            ]
        );
        assert_eq!(
            run(BASELINE, &pod),
            [
                "host namespaces (hostNetwork=true)",
                "non-default capabilities (container \"c\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)",
                "hostPath volumes (volume \"h\")",
            ]
        );
    }

    #[test]
    fn container_level_settings_satisfy_restricted_and_init_containers_count() {
        let sc = json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            "runAsNonRoot": true,
            "runAsUser": 1000,
            "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
        });
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "i", "securityContext": sc},
        ]}});
        assert!(run(RESTRICTED, &pod).is_empty(), "{:?}", run(RESTRICTED, &pod));
        let mut pod = pod;
        pod["spec"]["initContainers"] = json!([{"name": "init", "image": "i"}]);
        pod["spec"]["ephemeralContainers"] =
            json!([{"name": "debug", "image": "i", "targetContainerName": "c", "securityContext": sc}]);
        assert_eq!(
            run(RESTRICTED, &pod),
            [
                "allowPrivilegeEscalation != false (container \"init\" must set securityContext.allowPrivilegeEscalation=false)",
                "unrestricted capabilities (container \"init\" must set securityContext.capabilities.drop=[\"ALL\"])",
                "runAsNonRoot != true (pod or container \"init\" must set securityContext.runAsNonRoot=true)",
                "seccompProfile (pod or container \"init\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            ]
        );
    }

    #[test]
    fn user_namespaces_relax_the_root_checks() {
        let pod =
            with(json!({"spec": {"hostUsers": false, "securityContext": {"runAsNonRoot": null, "runAsUser": 0}}}));
        assert!(run(RESTRICTED, &pod).is_empty(), "{:?}", run(RESTRICTED, &pod));
    }
}
