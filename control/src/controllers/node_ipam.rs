//! Node IPAM (kube-controller-manager's range allocator): gives each Node a `spec.podCIDR` (and
//! the same single entry in `spec.podCIDRs`) cut from `--cluster-cidr` at
//! `--node-cidr-mask-size`. A set podCIDR is never changed (the API refuses it anyway); a deleted
//! Node's range is free again and the next allocation may reuse it (the lowest free range is
//! taken). When no range is left, the Node gets an Event `CIDRNotAvailable` (once, until it is
//! allocated or the range frees up) and stays without one.
//!
//! The controller keeps every Node's podCIDR from a watch (not a kube-runtime Controller: one
//! allocation depends on all the others) and runs an allocation pass after each change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::events::{EventType, Recorder};

/// What the allocator knows of one Node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    uid: Option<String>,
    /// `spec.podCIDR` as written (it may not parse, or lie outside the cluster range).
    pod_cidr: Option<String>,
}

/// What a pass decides for a Node without a podCIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Assign(Ipv4Net),
    /// The cluster range has no free node range left.
    Exhausted,
}

/// The ranges `taken` occupies: every node-sized range of `cluster` that overlaps one of them.
fn occupied(cluster: Ipv4Net, prefix: u8, taken: impl Iterator<Item = Ipv4Net>) -> BTreeSet<Ipv4Net> {
    let mut out = BTreeSet::new();
    for net in taken {
        let Ok(ranges) = cluster.subnets(prefix) else { continue };
        if net.prefix_len() <= prefix {
            // A range as large as or larger than a node's: every node range inside it.
            out.extend(ranges.filter(|r| net.contains(r)));
        } else if cluster.contains(&net) {
            // A smaller one: the node range holding it.
            out.insert(Ipv4Net::new(net.network(), prefix).expect("prefix checked").trunc());
        }
    }
    out
}

/// The decisions of one pass, for the Nodes (in name order) that have no podCIDR: the lowest
/// free node range of `cluster` each, or `Exhausted`.
fn decide(cluster: Ipv4Net, prefix: u8, nodes: &BTreeMap<String, Known>) -> Vec<(String, Decision)> {
    let taken = nodes.values().filter_map(|k| k.pod_cidr.as_deref()).filter_map(|c| c.parse::<Ipv4Net>().ok());
    let mut used = occupied(cluster, prefix, taken);
    let mut free = cluster.subnets(prefix).into_iter().flatten();
    let mut out = Vec::new();
    for (name, known) in nodes {
        if known.pod_cidr.as_deref().is_some_and(|c| !c.is_empty()) {
            continue;
        }
        match free.by_ref().find(|r| !used.contains(r)) {
            Some(range) => {
                used.insert(range);
                out.push((name.clone(), Decision::Assign(range)));
            }
            None => out.push((name.clone(), Decision::Exhausted)),
        }
    }
    out
}

fn known(node: &Node) -> Known {
    Known {
        uid: node.metadata.uid.clone(),
        pod_cidr: node.spec.as_ref().and_then(|s| s.pod_cidr.clone()).filter(|c| !c.is_empty()),
    }
}

/// The allocator's state between passes.
struct Allocator {
    api: Api<Node>,
    recorder: Recorder,
    cluster: Ipv4Net,
    prefix: u8,
    nodes: BTreeMap<String, Known>,
    /// Nodes told `CIDRNotAvailable` since they last changed state.
    warned: BTreeSet<String>,
}

impl Allocator {
    /// Allocates for every Node without a podCIDR; false if a write failed (try again soon).
    async fn pass(&mut self) -> bool {
        let mut ok = true;
        for (name, decision) in decide(self.cluster, self.prefix, &self.nodes) {
            match decision {
                Decision::Assign(range) => {
                    let cidr = range.to_string();
                    let patch = json!({
                        "metadata": {"uid": self.nodes[&name].uid},
                        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
                    });
                    match self.api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
                        Ok(node) => {
                            tracing::info!(node = %name, pod_cidr = %cidr, "allocated the node's pod range");
                            self.warned.remove(&name);
                            self.nodes.insert(name, known(&node));
                        }
                        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                            // Gone or replaced: the watch brings what is there now.
                            self.nodes.remove(&name);
                        }
                        Err(e) => {
                            tracing::warn!(node = %name, error = %e, "cannot set the node's podCIDR");
                            ok = false;
                        }
                    }
                }
                Decision::Exhausted => {
                    if self.warned.insert(name.clone()) {
                        let node = Node {
                            metadata: kube::api::ObjectMeta {
                                name: Some(name.clone()),
                                uid: self.nodes[&name].uid.clone(),
                                ..Default::default()
                            },
                            ..Default::default()
                        };
                        let message = format!("Node {name} status is now: CIDRNotAvailable");
                        self.recorder.record(&node, EventType::Warning, "CIDRNotAvailable", &message);
                        tracing::warn!(node = %name, cluster_cidr = %self.cluster, "no pod range left for the node");
                    }
                }
            }
        }
        ok
    }
}

/// Runs the allocator until the process ends.
pub async fn run(client: kube::Client, cluster: Ipv4Net, prefix: u8) {
    if prefix < cluster.prefix_len() || prefix > 32 {
        tracing::error!(%cluster, prefix, "--node-cidr-mask-size must be between the cluster CIDR's prefix and 32: no pod ranges are allocated");
        return;
    }
    let api: Api<Node> = Api::all(client.clone());
    let mut allocator = Allocator {
        api: api.clone(),
        recorder: Recorder::new(client, "node-ipam-controller"),
        cluster: cluster.trunc(),
        prefix,
        nodes: BTreeMap::new(),
        warned: BTreeSet::new(),
    };
    let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut listing: Option<BTreeMap<String, Known>> = None;
    let mut retry = false;
    loop {
        let event = if retry {
            tokio::select! {
                event = events.next() => event,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {
                    retry = !allocator.pass().await;
                    continue;
                }
            }
        } else {
            events.next().await
        };
        let Some(event) = event else { return };
        match event {
            Ok(watcher::Event::Init) => {
                listing = Some(BTreeMap::new());
                continue;
            }
            Ok(watcher::Event::InitApply(node)) => {
                if let Some(listing) = listing.as_mut() {
                    listing.insert(node.metadata.name.clone().unwrap_or_default(), known(&node));
                }
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                allocator.nodes = listing.take().unwrap_or_default();
                allocator.warned.retain(|n| allocator.nodes.contains_key(n));
            }
            Ok(watcher::Event::Apply(node)) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                let now = known(&node);
                if allocator.nodes.get(&name) == Some(&now) {
                    continue;
                }
                allocator.nodes.insert(name, now);
            }
            Ok(watcher::Event::Delete(node)) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                allocator.nodes.remove(&name);
                // A range freed: nodes told it was exhausted may get one now.
                allocator.warned.remove(&name);
            }
            Err(e) => {
                tracing::debug!(error = %e, "node watch failed; retrying");
                continue;
            }
        }
        retry = !allocator.pass().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(entries: &[(&str, Option<&str>)]) -> BTreeMap<String, Known> {
        entries.iter().map(|(n, c)| (n.to_string(), Known { uid: None, pod_cidr: c.map(String::from) })).collect()
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn new_nodes_get_the_lowest_free_ranges_in_name_order() {
        let cluster = net("10.244.0.0/16");
        let got = decide(cluster, 24, &nodes(&[("b", None), ("a", Some("10.244.0.0/24")), ("c", None)]));
        assert_eq!(
            got,
            vec![
                ("b".to_string(), Decision::Assign(net("10.244.1.0/24"))),
                ("c".to_string(), Decision::Assign(net("10.244.2.0/24"))),
            ]
        );
    }

    #[test]
    fn set_ranges_are_never_reassigned() {
        let cluster = net("10.244.0.0/16");
        let all = nodes(&[("a", Some("10.244.7.0/24")), ("b", Some("not-a-cidr")), ("c", Some("192.168.0.0/24"))]);
        assert!(decide(cluster, 24, &all).is_empty());
    }

    #[test]
    fn a_deleted_nodes_range_is_reused() {
        let cluster = net("10.244.0.0/16");
        // "a" held 10.244.0.0/24 and is gone; "b" still holds .1.
        let got = decide(cluster, 24, &nodes(&[("b", Some("10.244.1.0/24")), ("c", None)]));
        assert_eq!(got, vec![("c".to_string(), Decision::Assign(net("10.244.0.0/24")))]);
    }

    #[test]
    fn an_exhausted_range_says_so_for_each_node_left_over() {
        let cluster = net("10.1.0.0/23");
        let got = decide(cluster, 24, &nodes(&[("a", None), ("b", Some("10.1.1.0/24")), ("c", None), ("d", None)]));
        assert_eq!(
            got,
            vec![
                ("a".to_string(), Decision::Assign(net("10.1.0.0/24"))),
                ("c".to_string(), Decision::Exhausted),
                ("d".to_string(), Decision::Exhausted),
            ]
        );
    }

    #[test]
    fn ranges_of_other_sizes_occupy_what_they_overlap() {
        let cluster = net("10.0.0.0/22");
        let taken = [net("10.0.0.0/23"), net("10.0.3.128/25"), net("172.16.0.0/24")];
        let used = occupied(cluster, 24, taken.into_iter());
        assert_eq!(used, BTreeSet::from([net("10.0.0.0/24"), net("10.0.1.0/24"), net("10.0.3.0/24")]));
        let got = decide(cluster, 24, &nodes(&[("a", Some("10.0.0.0/23")), ("b", Some("10.0.3.128/25")), ("c", None)]));
        assert_eq!(got, vec![("c".to_string(), Decision::Assign(net("10.0.2.0/24")))]);
    }
}
