//! Identity and confinement: the image's USER and the securityContext, read-only root
//! filesystem, capabilities, no_new_privs, seccomp, masked and read-only paths, privileged.

mod common;

use common::Fixture;
use wharf_shim::{Exit, Seccomp, Shim, ShimError};

/// The value of a field of /proc/self/status as the container's shell sees it.
fn status_field(field: &str) -> String {
    format!("grep '^{field}:' /proc/self/status | cut -f2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_user_and_run_as_user() {
    let fx = Fixture::new();
    let id = "echo $(id -u):$(id -g):$(id -G)";
    assert_eq!(fx.output(fx.sh(id)).await, (Exit::Code(0), "0:0:0\n".into()));

    let (mut spec, sink) = fx.sh(id);
    spec.linux.image_user = Some("nobody".into());
    assert_eq!(fx.output((spec, sink)).await, (Exit::Code(0), "65534:65534:65534\n".into()));

    let (mut spec, sink) = fx.sh(id);
    spec.linux.image_user = Some("nobody".into());
    spec.linux.run_as_user = Some(1234);
    spec.linux.run_as_group = Some(42);
    spec.linux.supplemental_groups = vec![7, 8];
    assert_eq!(fx.output((spec, sink)).await, (Exit::Code(0), "1234:42:42 7 8\n".into()));

    let (mut spec, sink) = fx.sh(id);
    spec.linux.image_user = Some("1000:0".into());
    assert_eq!(fx.output((spec, sink)).await, (Exit::Code(0), "1000:0:0\n".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_non_root_refuses_root() {
    let fx = Fixture::new();
    let (mut spec, _) = fx.spec(&["true"]);
    spec.linux.run_as_non_root = true;
    let id = spec.id.clone();
    match fx.shim.start(spec).await {
        Err(ShimError::InvalidArtifact(message)) => {
            assert_eq!(message, "container has runAsNonRoot and image will run as root")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|c| c.id().to_string())),
    }
    assert!(!fx.root().join("containers").join(&id).exists(), "the bundle was left behind");
    assert!(common::mounts_under(&fx.root()).is_empty());

    let (mut spec, sink) = fx.sh("id -u");
    spec.linux.run_as_non_root = true;
    spec.linux.image_user = Some("nobody".into());
    assert_eq!(fx.output((spec, sink)).await, (Exit::Code(0), "65534\n".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_root_filesystem() {
    let fx = Fixture::new();
    let script = "touch /made-here && echo writable; touch /dev/shm/x && echo shm";
    assert_eq!(fx.output(fx.sh(script)).await, (Exit::Code(0), "writable\nshm\n".into()));
    let (mut spec, sink) = fx.sh(script);
    spec.linux.read_only_root_filesystem = true;
    assert_eq!(fx.output((spec, sink)).await, (Exit::Code(0), "shm\n".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_follow_the_security_context() {
    let fx = Fixture::new();
    let script = status_field("CapEff");
    let (_, default) = fx.output(fx.sh(&script)).await;
    // CHOWN … AUDIT_WRITE: the usual container default set.
    assert_eq!(default, "00000000a80425fb\n");

    let (mut spec, sink) = fx.sh(&script);
    spec.linux.capabilities_drop = vec!["ALL".into()];
    assert_eq!(fx.output((spec, sink)).await.1, "0000000000000000\n");

    let (mut spec, sink) = fx.sh(&script);
    spec.linux.capabilities_add = vec!["NET_ADMIN".into()];
    spec.linux.capabilities_drop = vec!["CAP_KILL".into()];
    assert_eq!(fx.output((spec, sink)).await.1, "00000000a80435db\n");

    let (mut spec, sink) = fx.sh(&script);
    spec.linux.privileged = true;
    let (_, privileged) = fx.output((spec, sink)).await;
    assert!(privileged.starts_with("000001ff"), "{privileged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_privileges() {
    let fx = Fixture::new();
    let script = status_field("NoNewPrivs");
    assert_eq!(fx.output(fx.sh(&script)).await.1, "0\n");
    let (mut spec, sink) = fx.sh(&script);
    spec.linux.no_new_privileges = true;
    assert_eq!(fx.output((spec, sink)).await.1, "1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_seccomp_filter() {
    let fx = Fixture::new();
    let script = format!(
        "echo $({}); unshare -U true && echo unshared; mount -t tmpfs none /mnt 2>/dev/null && echo mounted; true",
        status_field("Seccomp")
    );
    // RuntimeDefault: filtered, and user namespaces refused.
    assert_eq!(fx.output(fx.sh(&script)).await, (Exit::Code(0), "2\n".into()));

    let (mut spec, sink) = fx.sh(&script);
    spec.linux.seccomp = Seccomp::Unconfined;
    assert_eq!(fx.output((spec, sink)).await, (Exit::Code(0), "0\nunshared\n".into()));

    // Privileged containers have no filter (and may mount).
    let (mut spec, sink) = fx.sh(&script);
    spec.linux.privileged = true;
    assert_eq!(fx.output((spec, sink)).await, (Exit::Code(0), "0\nunshared\nmounted\n".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_and_read_only_paths() {
    let fx = Fixture::new();
    let script = "echo timer_list=$(cat /proc/timer_list | wc -c) firmware=$(ls /sys/firmware | wc -l); \
                  echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo proc-sys-writable; true";
    assert_eq!(fx.output(fx.sh(script)).await, (Exit::Code(0), "timer_list=0 firmware=0\n".into()));

    let (mut spec, sink) = fx.sh(script);
    spec.linux.privileged = true;
    let (exit, out) = fx.output((spec, sink)).await;
    assert_eq!(exit, Exit::Code(0));
    assert!(!out.contains("timer_list=0 ") && !out.contains("firmware=0"), "{out}");
    assert!(out.ends_with("proc-sys-writable\n"), "{out}");
}
