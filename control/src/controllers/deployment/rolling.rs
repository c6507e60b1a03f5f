//! The replica arithmetic of a rollout, as kube-controller-manager's deployment controller does
//! it: maxSurge and maxUnavailable, how far the new ReplicaSet may grow and the old ones shrink
//! in one rolling step, and proportional scaling of all ReplicaSets when the Deployment is
//! scaled mid-rollout. Pure functions of small views of the ReplicaSets.

use std::cmp::Ordering;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetCondition};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::history::{DESIRED_REPLICAS, MAX_REPLICAS};

/// What the rollout arithmetic needs to know of a ReplicaSet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RsState {
    pub name: String,
    pub created: Option<Timestamp>,
    /// `spec.replicas`
    pub replicas: i32,
    /// `status.replicas`: pods that exist.
    pub status_replicas: i32,
    pub ready: i32,
    pub available: i32,
    /// The Deployment's replicas when this ReplicaSet was last scaled (annotation).
    pub desired: Option<i32>,
    /// The Deployment's replicas + maxSurge then (annotation).
    pub max: Option<i32>,
    /// Its ReplicaFailure condition, if True.
    pub failure: Option<ReplicaSetCondition>,
}

impl RsState {
    pub fn of(rs: &ReplicaSet) -> Self {
        let annotation =
            |key: &str| rs.metadata.annotations.as_ref().and_then(|a| a.get(key)).and_then(|v| v.parse::<i32>().ok());
        let status = rs.status.as_ref();
        RsState {
            name: rs.metadata.name.clone().unwrap_or_default(),
            created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            status_replicas: status.map(|s| s.replicas).unwrap_or(0),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            available: status.and_then(|s| s.available_replicas).unwrap_or(0),
            desired: annotation(DESIRED_REPLICAS),
            max: annotation(MAX_REPLICAS),
            failure: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "ReplicaFailure" && c.status == "True"))
                .cloned(),
        }
    }
}

/// The Deployment's numbers the arithmetic uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub replicas: i32,
    pub rolling: bool,
    /// maxSurge resolved against `replicas` (rounded up).
    pub surge: i32,
    /// maxUnavailable resolved against `replicas` (rounded down; 1 when both are 0).
    pub unavailable: i32,
    /// `status.replicas` (the fallback when a ReplicaSet lacks its max-replicas annotation).
    pub status_replicas: i32,
}

impl Params {
    pub fn of(d: &Deployment) -> Self {
        let spec = d.spec.as_ref();
        let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
        let strategy = spec.and_then(|s| s.strategy.as_ref());
        let rolling = strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") != "Recreate";
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        let quarter = IntOrString::String("25%".into());
        let surge = ru.and_then(|r| r.max_surge.clone()).unwrap_or_else(|| quarter.clone());
        let unavailable = ru.and_then(|r| r.max_unavailable.clone()).unwrap_or(quarter);
        let (surge, unavailable) = fenceposts(&surge, &unavailable, replicas);
        let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        Params { replicas, rolling, surge, unavailable, status_replicas }
    }

    /// MaxSurge: 0 unless rolling.
    pub fn max_surge(&self) -> i32 {
        if self.rolling { self.surge } else { 0 }
    }

    /// MaxUnavailable: 0 unless rolling with replicas, never above replicas.
    pub fn max_unavailable(&self) -> i32 {
        if !self.rolling || self.replicas == 0 { 0 } else { self.unavailable.min(self.replicas) }
    }
}

/// An int-or-percent scaled against `total`: percents round up or down as asked; a bad
/// percent counts as 0 (validation refuses them).
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let Some(percent) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else { return 0 };
            let product = percent * i64::from(total);
            let value = if round_up { (product + 99).div_euclid(100) } else { product.div_euclid(100) };
            i32::try_from(value).unwrap_or(i32::MAX)
        }
    }
}

/// maxSurge (rounded up) and maxUnavailable (rounded down) against `desired`; when both come
/// to 0, one pod may be unavailable so a rollout can proceed.
fn fenceposts(surge: &IntOrString, unavailable: &IntOrString, desired: i32) -> (i32, i32) {
    let surge = scaled_value(surge, desired, true);
    let unavailable = scaled_value(unavailable, desired, false);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

fn total(sets: &[&RsState]) -> i32 {
    sets.iter().map(|r| r.replicas).sum()
}

/// Oldest first (then by name).
pub fn by_creation(a: &RsState, b: &RsState) -> Ordering {
    a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name))
}

/// The new ReplicaSet's size in this step: as far as maxSurge allows, never above the
/// Deployment's replicas (Recreate: the Deployment's replicas at once).
pub fn new_rs_replicas(p: &Params, all: &[&RsState], new_replicas: i32) -> i32 {
    if !p.rolling {
        return p.replicas;
    }
    let current = total(all);
    let max_total = p.replicas + p.max_surge();
    if current >= max_total {
        return new_replicas;
    }
    let up = (max_total - current).min(p.replicas - new_replicas);
    new_replicas + up.max(0)
}

/// reconcileNewReplicaSet: the size the new ReplicaSet should move to now, if it should move.
pub fn new_rs_target(p: &Params, all: &[&RsState], new: &RsState) -> Option<i32> {
    let target = match new.replicas.cmp(&p.replicas) {
        Ordering::Equal => return None,
        Ordering::Greater => p.replicas,
        Ordering::Less => new_rs_replicas(p, all, new.replicas),
    };
    (target != new.replicas).then_some(target)
}

/// reconcileOldReplicaSets: the old ReplicaSets to shrink in this step and their new sizes.
/// First unhealthy replicas (those not available), then available ones down to what
/// maxUnavailable allows; oldest ReplicaSets first.
pub fn old_rs_targets(p: &Params, new: &RsState, old: &[RsState]) -> Vec<(String, i32)> {
    let mut old: Vec<RsState> = old.to_vec();
    old.sort_by(by_creation);
    let old_count: i32 = old.iter().map(|r| r.replicas).sum();
    if old_count == 0 {
        return Vec::new();
    }
    let all_count = old_count + new.replicas;
    let min_available = p.replicas - p.max_unavailable();
    let new_unavailable = new.replicas - new.available;
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let originals: Vec<i32> = old.iter().map(|r| r.replicas).collect();
    // Unhealthy replicas go first.
    let mut cleaned = 0;
    for rs in old.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        if rs.replicas == 0 || rs.replicas == rs.available {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(rs.replicas - rs.available);
        rs.replicas -= down;
        cleaned += down;
    }
    // Then available ones, as far as minAvailable allows.
    let available: i32 = old.iter().map(|r| r.available).sum::<i32>() + new.available;
    if available > min_available {
        let wanted = available - min_available;
        let mut scaled = 0;
        for rs in old.iter_mut() {
            if scaled >= wanted {
                break;
            }
            if rs.replicas == 0 {
                continue;
            }
            let down = rs.replicas.min(wanted - scaled);
            rs.replicas -= down;
            scaled += down;
        }
    }
    old.iter()
        .zip(originals)
        .filter(|(rs, was)| rs.replicas != *was)
        .map(|(rs, _)| (rs.name.clone(), rs.replicas))
        .collect()
}

/// The new ReplicaSet is at full size and fully available.
fn is_saturated(p: &Params, new: Option<&RsState>) -> bool {
    new.is_some_and(|n| n.replicas == p.replicas && n.desired == Some(p.replicas) && n.available == p.replicas)
}

/// The Deployment was scaled: an active ReplicaSet was sized for another replica count.
pub fn is_scaling_event(p: &Params, new: Option<&RsState>, old: &[RsState]) -> bool {
    new.into_iter().chain(old).filter(|r| r.replicas > 0).any(|r| r.desired.is_some_and(|d| d != p.replicas))
}

fn fraction(rs: &RsState, p: &Params) -> i32 {
    if p.replicas == 0 {
        return -rs.replicas;
    }
    let max_now = p.replicas + p.max_surge();
    let before = match rs.max {
        Some(m) if m != 0 => m,
        _ if p.status_replicas == 0 => return 0,
        _ => p.status_replicas,
    };
    let size = f64::from(rs.replicas) * f64::from(max_now) / f64::from(before);
    size.round() as i32 - rs.replicas
}

fn proportion(rs: &RsState, p: &Params, to_add: i32, added: i32) -> i32 {
    if rs.replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let allowed = to_add - added;
    let fraction = fraction(rs, p);
    if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
}

/// The sizes of the ReplicaSets after the Deployment's replicas changed (kube's `scale`): the
/// only active one (or the newest) takes the new count; a saturated new one leaves old ones at
/// 0; mid-rollout the change is spread proportionally (larger first; newer first when growing,
/// older first when shrinking), leftovers to the first. Lists every ReplicaSet it sizes.
pub fn scale_targets(p: &Params, new: Option<&RsState>, old: &[RsState]) -> Vec<(String, i32)> {
    let mut olds: Vec<&RsState> = old.iter().collect();
    olds.sort_by(|a, b| by_creation(b, a));
    let active: Vec<&RsState> = olds.iter().copied().chain(new).filter(|r| r.replicas > 0).collect();
    let only = match active.len() {
        0 => new.or(olds.first().copied()),
        1 => Some(active[0]),
        _ => None,
    };
    if active.len() <= 1 {
        return only
            .filter(|r| r.replicas != p.replicas)
            .map(|r| vec![(r.name.clone(), p.replicas)])
            .unwrap_or_default();
    }
    if is_saturated(p, new) {
        return active
            .iter()
            .filter(|r| Some(r.name.as_str()) != new.map(|n| n.name.as_str()))
            .map(|r| (r.name.clone(), 0))
            .collect();
    }
    if !p.rolling {
        return Vec::new();
    }
    let mut sets = active;
    let allowed = if p.replicas > 0 { p.replicas + p.max_surge() } else { 0 };
    let to_add = allowed - total(&sets);
    match to_add.cmp(&0) {
        Ordering::Greater => sets.sort_by(|a, b| b.replicas.cmp(&a.replicas).then_with(|| by_creation(b, a))),
        Ordering::Less => sets.sort_by(|a, b| b.replicas.cmp(&a.replicas).then_with(|| by_creation(a, b))),
        Ordering::Equal => {}
    }
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(sets.len());
    for rs in &sets {
        let share = proportion(rs, p, to_add, added);
        sizes.push(rs.replicas + share);
        added += share;
    }
    if to_add != 0 {
        sizes[0] = (sizes[0] + to_add - added).max(0);
    }
    sets.iter().zip(sizes).map(|(r, size)| (r.name.clone(), size)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i32) -> IntOrString {
        IntOrString::Int(n)
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    fn rs(name: &str, created: i64, replicas: i32, available: i32) -> RsState {
        RsState {
            name: name.into(),
            created: Some(Timestamp::from_second(created).unwrap()),
            replicas,
            status_replicas: replicas,
            ready: available,
            available,
            ..Default::default()
        }
    }

    fn params(replicas: i32, surge: i32, unavailable: i32) -> Params {
        Params { replicas, rolling: true, surge, unavailable, status_replicas: replicas }
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        assert_eq!(fenceposts(&pct("25%"), &pct("25%"), 5), (2, 1));
        assert_eq!(fenceposts(&pct("25%"), &pct("25%"), 10), (3, 2));
        assert_eq!(fenceposts(&pct("25%"), &pct("25%"), 1), (1, 0));
        assert_eq!(fenceposts(&int(0), &int(0), 4), (0, 1), "both zero: one may be unavailable");
        assert_eq!(fenceposts(&pct("0%"), &pct("10%"), 5), (0, 1), "10% of 5 rounds down to 0");
        assert_eq!(fenceposts(&int(3), &pct("50%"), 7), (3, 3));
        assert_eq!(scaled_value(&pct("100%"), 1000, true), 1000);
    }

    #[test]
    fn params_of_a_defaulted_and_a_recreate_deployment() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 10, "selector": {}, "template": {},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}},
        }))
        .unwrap();
        let p = Params::of(&d);
        assert_eq!((p.max_surge(), p.max_unavailable()), (3, 0));
        let recreate: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 4, "selector": {}, "template": {}, "strategy": {"type": "Recreate"}},
        }))
        .unwrap();
        let p = Params::of(&recreate);
        assert_eq!((p.rolling, p.max_surge(), p.max_unavailable()), (false, 0, 0));
        assert_eq!(new_rs_replicas(&p, &[], 0), 4);
    }

    #[test]
    fn a_rolling_step_surges_then_shrinks_the_old() {
        // 5 replicas, surge 2, unavailable 1: the new RS starts at 2 beside 5 old.
        let p = params(5, 2, 1);
        let old = rs("old", 1, 5, 5);
        let new = rs("new", 2, 0, 0);
        assert_eq!(new_rs_target(&p, &[&old, &new], &new), Some(2));
        // With 2 new not yet available, the old may lose only 1 (min available 4).
        let new = rs("new", 2, 2, 0);
        assert_eq!(new_rs_target(&p, &[&old, &new], &new), None, "7 pods = 5 + maxSurge");
        assert_eq!(old_rs_targets(&p, &new, std::slice::from_ref(&old)), vec![("old".to_string(), 4)]);
        // Once the 2 new are available the old shrinks to 2 (7 - 2 available over min... ).
        let new = rs("new", 2, 2, 2);
        let old = rs("old", 1, 4, 4);
        assert_eq!(old_rs_targets(&p, &new, &[old]), vec![("old".to_string(), 2)]);
        // Unhealthy old replicas are removed first, beyond what availability alone allows.
        let sick = rs("sick", 0, 3, 0);
        let new = rs("new", 2, 5, 5);
        assert_eq!(old_rs_targets(&p, &new, &[sick]), vec![("sick".to_string(), 0)]);
        // Nothing to shrink when nothing is old.
        assert!(old_rs_targets(&p, &new, &[rs("gone", 0, 0, 0)]).is_empty());
        // The new RS never grows past the Deployment's replicas, and shrinks to it.
        let big = rs("new", 2, 7, 7);
        assert_eq!(new_rs_target(&p, &[&big], &big), Some(5));
    }

    #[test]
    fn a_whole_rollout_stays_within_surge_and_unavailability() {
        for (surge, unavailable) in [(3, 2), (1, 0), (0, 1), (10, 10)] {
            let p = params(10, surge, unavailable);
            let mut old = rs("old", 1, 10, 10);
            let mut new = rs("new", 2, 0, 0);
            let mut steps = 0;
            while new.replicas != 10 || old.replicas != 0 {
                steps += 1;
                assert!(steps < 50, "no convergence with surge {surge}, unavailable {unavailable}");
                let all = [&old, &new];
                if let Some(to) = new_rs_target(&p, &all, &new) {
                    new.replicas = to;
                } else {
                    for (_, to) in old_rs_targets(&p, &new, std::slice::from_ref(&old)) {
                        old.replicas = to;
                    }
                }
                // Right after the step, before new pods are ready.
                old.available = old.available.min(old.replicas);
                assert!(old.replicas + new.replicas <= 10 + surge, "surge exceeded at step {steps}");
                assert!(old.available + new.available >= 10 - unavailable, "too few available at step {steps}");
                // Then the new pods become available.
                new.available = new.replicas;
            }
        }
    }

    #[test]
    fn max_unavailable_zero_waits_for_new_pods() {
        let p = params(3, 1, 0);
        let old = rs("old", 1, 3, 3);
        let new = rs("new", 2, 1, 0);
        assert!(old_rs_targets(&p, &new, std::slice::from_ref(&old)).is_empty(), "the surged pod is not available yet");
        let new = rs("new", 2, 1, 1);
        assert_eq!(old_rs_targets(&p, &new, &[old]), vec![("old".to_string(), 2)]);
    }

    #[test]
    fn scaling_goes_to_the_only_active_set_or_proportionally() {
        let p = params(8, 2, 2);
        let only = RsState { desired: Some(5), ..rs("web-a", 1, 5, 5) };
        assert!(is_scaling_event(&p, Some(&only), &[]));
        assert_eq!(scale_targets(&p, Some(&only), &[rs("web-old", 0, 0, 0)]), vec![("web-a".to_string(), 8)]);
        assert!(scale_targets(&params(5, 2, 1), Some(&rs("web-a", 1, 5, 5)), &[]).is_empty());

        // Mid-rollout 10 → 20 (surge 25%: 13 → 25 pods): old 8 + new 5, both annotated max 13.
        let p = params(20, 5, 5);
        let old = RsState { max: Some(13), ..rs("old", 1, 8, 8) };
        let new = RsState { max: Some(13), ..rs("new", 2, 5, 0) };
        let targets = scale_targets(&p, Some(&new), &[old]);
        let total: i32 = targets.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 25);
        assert_eq!(targets, vec![("old".to_string(), 15), ("new".to_string(), 10)]);

        // Scaling down to 0 empties every set.
        let p = params(0, 0, 0);
        let a = rs("a", 1, 3, 3);
        let b = rs("b", 2, 2, 2);
        let mut targets = scale_targets(&p, Some(&b), &[a]);
        targets.sort();
        assert_eq!(targets, vec![("a".to_string(), 0), ("b".to_string(), 0)]);
    }

    #[test]
    fn a_saturated_new_set_scales_old_ones_to_zero() {
        let p = params(3, 1, 0);
        let new = RsState { desired: Some(3), ..rs("new", 2, 3, 3) };
        let old = rs("old", 1, 1, 1);
        assert_eq!(scale_targets(&p, Some(&new), &[old]), vec![("old".to_string(), 0)]);
    }
}
