//! Leader election among the servers sharing one database, as client-go's `leaderelection`
//! does it with a coordination.k8s.io/v1 Lease: the controller manager's Lease
//! `kube-system/wharf-controller-manager` names its holder; a candidate takes it when it is
//! absent, released or expired (its `renewTime` plus `leaseDurationSeconds` has passed), writing
//! with the `resourceVersion` it read so two candidates cannot both win; the holder renews it
//! every [`RETRY_PERIOD`] and stops leading when it has not renewed for [`RENEW_DEADLINE`]
//! (before the lease expires for the others at [`LEASE_DURATION`]). On a graceful stop the
//! holder releases it so another server takes over at once.
//!
//! Leading is only half the story: a deposed leader may still have requests in flight. Its
//! controllers send `Wharf-Fence: <identity>` and the store commits such a write only while the
//! Lease still names that identity (see `store::Fence`).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::ObjectKey;

pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "wharf-controller-manager";
/// How long a lease holds without renewal before another server may take it.
pub const LEASE_DURATION: Duration = Duration::from_secs(10);
/// How often a candidate tries to take the lease, and the holder renews it.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// How long the holder keeps leading without a successful renewal.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(7);
/// The header carrying the controllers' identity; the API server fences their writes with it.
pub const FENCE_HEADER: &str = "wharf-fence";

/// A new identity for this server's run: `<hostname>_<8 random hex digits>`.
pub fn new_identity() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|h| h.trim().to_string())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "wharf".to_string());
    format!("{host}_{:08x}", rand::random::<u32>())
}

/// Where the controller manager's Lease is stored: the key writes are fenced against.
pub fn fence_lease_key() -> ObjectKey {
    let leases = crate::registry::kinds::lookup("coordination.k8s.io", "v1", "leases")
        .expect("coordination.k8s.io/v1 leases is served");
    ObjectKey::new(leases.storage_key(), LEASE_NAMESPACE, LEASE_NAME)
}

/// What a candidate does with the Lease it read.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write this spec (create the Lease when there was none): take or renew it.
    Write(LeaseSpec),
    /// Another server holds it and it has not expired.
    HeldBy(String),
}

fn seconds(d: Duration) -> i32 {
    d.as_secs() as i32
}

/// Whether `spec`'s holder has let it lapse by `now`.
pub fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else { return true };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    renewed.0 + jiff::SignedDuration::from_secs(duration) < now
}

/// The decision of client-go's `tryAcquireOrRenew`, over the Lease as read: renew our own lease,
/// take one that is absent, released (no holder) or expired, leave one another server holds.
/// `exclusive`: this server is the only one on its database (SQLite), so a holder named in the
/// Lease is a previous run of it and the lease is taken at once.
pub fn decide(current: Option<&LeaseSpec>, identity: &str, now: Timestamp, exclusive: bool) -> Decision {
    let mine = LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(seconds(LEASE_DURATION)),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(0),
        ..Default::default()
    };
    let Some(current) = current else { return Decision::Write(mine) };
    let holder = current.holder_identity.as_deref().filter(|h| !h.is_empty());
    let transitions = current.lease_transitions.unwrap_or(0);
    match holder {
        Some(h) if h == identity => Decision::Write(LeaseSpec {
            acquire_time: current.acquire_time.clone().or(mine.acquire_time),
            lease_transitions: Some(transitions),
            ..mine
        }),
        Some(h) if !exclusive && !expired(current, now) => Decision::HeldBy(h.to_string()),
        // Released (no holder): client-go counts the change of holder all the same.
        _ => Decision::Write(LeaseSpec { lease_transitions: Some(transitions + 1), ..mine }),
    }
}

/// What one attempt to take or renew the lease came to.
#[derive(Debug)]
enum Attempt {
    /// This server holds the lease (newly or still).
    Holds,
    /// Another server holds it.
    HeldBy(String),
    /// The Lease changed between the read and the write: the next attempt reads it again.
    Conflict,
}

/// Reads the Lease and takes or renews it.
async fn try_acquire_or_renew(api: &Api<Lease>, identity: &str, exclusive: bool) -> kube::Result<Attempt> {
    let current = api.get_opt(LEASE_NAME).await?;
    let spec = match decide(current.as_ref().and_then(|l| l.spec.as_ref()), identity, Timestamp::now(), exclusive) {
        Decision::HeldBy(holder) => return Ok(Attempt::HeldBy(holder)),
        Decision::Write(spec) => spec,
    };
    let written = match current {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
        // The resourceVersion read travels with the update: a concurrent writer makes it a 409.
        Some(mut lease) => {
            lease.spec = Some(spec);
            api.replace(LEASE_NAME, &PostParams::default(), &lease).await
        }
    };
    match written {
        Ok(_) => Ok(Attempt::Holds),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
        Err(e) => Err(e),
    }
}

/// Gives the lease up if this server still holds it: no holder, and a one-second duration, as
/// client-go's `ReleaseOnCancel` leaves it.
async fn release(api: &Api<Lease>, identity: &str) -> kube::Result<()> {
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else { return Ok(()) };
    let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
    if spec.holder_identity.as_deref() != Some(identity) {
        return Ok(());
    }
    let now = Some(MicroTime(Timestamp::now()));
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = now.clone();
    spec.acquire_time = now;
    api.replace(LEASE_NAME, &PostParams::default(), &lease).await?;
    Ok(())
}

/// This server's candidacy: runs until [`Election::release`].
pub struct Election {
    leading: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Election {
    /// Starts campaigning with `client` (one WITHOUT the fence header: the lease itself is not
    /// fenced). The first attempt is immediate, so a lone server leads at once.
    pub fn spawn(client: kube::Client, identity: String, exclusive: bool) -> Self {
        let (leading_tx, leading) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let api: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
        let task = tokio::spawn(campaign(api, identity, exclusive, leading_tx, stop_rx));
        Election { leading, stop, task }
    }

    /// Whether this server leads, as it changes.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Stops campaigning: reports not leading (the controllers stop), then gives the lease up.
    /// (Dropping the Election stops campaigning too, without waiting.)
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn campaign(
    api: Api<Lease>,
    identity: String,
    exclusive: bool,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    // When the lease was last renewed by this server, while it leads.
    let mut renewed: Option<tokio::time::Instant> = None;
    loop {
        // A renewal may not outlast the deadline: a hung request must not keep us leading.
        let budget = match renewed {
            Some(at) => RENEW_DEADLINE.saturating_sub(at.elapsed()).max(Duration::from_millis(100)),
            None => RETRY_PERIOD * 2,
        };
        // The lease's renewTime is set before the write is sent: count the deadline from there.
        let started = tokio::time::Instant::now();
        let attempt = tokio::time::timeout(budget, try_acquire_or_renew(&api, &identity, exclusive)).await;
        match attempt {
            Ok(Ok(Attempt::Holds)) => {
                if renewed.is_none() {
                    tracing::info!(%identity, lease = %format!("{LEASE_NAMESPACE}/{LEASE_NAME}"), "leading: controllers start");
                }
                renewed = Some(started);
                leading.send_if_modified(|l| !std::mem::replace(l, true));
            }
            Ok(Ok(Attempt::HeldBy(holder))) => {
                if renewed.take().is_some() {
                    tracing::warn!(%identity, %holder, "another server took the lease: controllers stop");
                }
                leading.send_if_modified(|l| std::mem::replace(l, false));
            }
            // Lost a race (or our own late write landed first): read again; the deadline holds.
            Ok(Ok(Attempt::Conflict)) => tracing::debug!("the controller-manager lease changed while it was written"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot take or renew the controller-manager lease"),
            Err(_) => tracing::warn!("taking or renewing the controller-manager lease timed out"),
        }
        if renewed.is_some_and(|at| at.elapsed() >= RENEW_DEADLINE) {
            tracing::warn!(%identity, "could not renew the lease within {RENEW_DEADLINE:?}: controllers stop");
            renewed = None;
            leading.send_if_modified(|l| std::mem::replace(l, false));
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_PERIOD) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    leading.send_replace(false);
    if renewed.is_some() {
        match tokio::time::timeout(RETRY_PERIOD, release(&api, &identity)).await {
            Ok(Ok(())) => tracing::info!(%identity, "released the controller-manager lease"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot release the controller-manager lease"),
            Err(_) => tracing::warn!("releasing the controller-manager lease timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn held(holder: &str, renewed: i64, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(10),
            acquire_time: Some(MicroTime(at(0))),
            renew_time: Some(MicroTime(at(renewed))),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    fn written(decision: Decision) -> LeaseSpec {
        match decision {
            Decision::Write(spec) => spec,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn an_absent_lease_is_taken_with_no_transition() {
        let spec = written(decide(None, "a_1", at(5), false));
        assert_eq!(spec.holder_identity.as_deref(), Some("a_1"));
        assert_eq!(spec.lease_duration_seconds, Some(10));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.renew_time, Some(MicroTime(at(5))));
    }

    #[test]
    fn the_holder_renews_keeping_acquire_time_and_transitions() {
        let spec = written(decide(Some(&held("a_1", 4, 3)), "a_1", at(6), false));
        assert_eq!(spec.renew_time, Some(MicroTime(at(6))));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(spec.lease_transitions, Some(3));
    }

    #[test]
    fn a_live_lease_of_another_server_is_left_alone() {
        assert_eq!(decide(Some(&held("b_2", 4, 1)), "a_1", at(14), false), Decision::HeldBy("b_2".into()));
    }

    #[test]
    fn an_expired_lease_is_taken_and_the_transition_counted() {
        // renewTime 4 + 10 s < 15.
        let spec = written(decide(Some(&held("b_2", 4, 1)), "a_1", at(15), false));
        assert_eq!(spec.holder_identity.as_deref(), Some("a_1"));
        assert_eq!(spec.lease_transitions, Some(2));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(15))));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let mut released = held("b_2", 4, 1);
        released.holder_identity = None;
        released.lease_duration_seconds = Some(1);
        let spec = written(decide(Some(&released), "a_1", at(4), false));
        assert_eq!(spec.holder_identity.as_deref(), Some("a_1"));
        assert_eq!(spec.lease_transitions, Some(2));
    }

    #[test]
    fn a_server_alone_on_its_database_takes_its_previous_runs_lease_at_once() {
        let spec = written(decide(Some(&held("a_old", 4, 0)), "a_new", at(5), true));
        assert_eq!(spec.holder_identity.as_deref(), Some("a_new"));
        assert_eq!(spec.lease_transitions, Some(1));
    }

    #[test]
    fn identities_are_hostname_and_eight_hex_digits_new_each_time() {
        let (a, b) = (new_identity(), new_identity());
        let (host, suffix) = a.rsplit_once('_').unwrap();
        assert!(!host.is_empty());
        assert_eq!(suffix.len(), 8);
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_fence_key_is_the_leases_storage_key() {
        let key = fence_lease_key();
        assert_eq!(
            (key.resource.as_str(), key.namespace.as_str(), key.name.as_str()),
            ("leases.coordination.k8s.io", "kube-system", "wharf-controller-manager")
        );
    }
}
