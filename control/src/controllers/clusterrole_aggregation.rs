//! ClusterRole aggregation, as kube-controller-manager's `clusterrole-aggregation` controller:
//! a ClusterRole with an `aggregationRule` gets as rules the union of the rules of the
//! ClusterRoles its `clusterRoleSelectors` match, kept current as those change (so labelling a
//! new ClusterRole `rbac.authorization.k8s.io/aggregate-to-view: "true"` extends `view` live).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::Value;

use super::{ReconcileError, retry_soon};
use crate::auth::bootstrap_policy::aggregate;

pub struct Ctx {
    client: kube::Client,
    roles: Store<ClusterRole>,
}

/// The rules `role` should have, given every ClusterRole; None when it aggregates nothing or
/// already has them (decide, no I/O).
pub fn wanted_rules(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Value> {
    let rule = role.aggregation_rule.as_ref()?;
    let name = role.metadata.name.as_deref().unwrap_or_default();
    let rule = serde_json::to_value(rule).ok()?;
    let objects: Vec<Value> = all.iter().filter_map(|r| serde_json::to_value(r.as_ref()).ok()).collect();
    let wanted = Value::Array(aggregate(name, &rule, &objects));
    let current = serde_json::to_value(role.rules.clone().unwrap_or_default()).ok()?;
    (current != wanted).then_some(wanted)
}

async fn reconcile(role: Arc<ClusterRole>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let Some(rules) = wanted_rules(&role, &ctx.roles.state()) else { return Ok(Action::await_change()) };
    let mut updated = (*role).clone();
    updated.rules = serde_json::from_value(rules).ok();
    let name = role.metadata.name.clone().unwrap_or_default();
    let api: Api<ClusterRole> = Api::all(ctx.client.clone());
    api.replace(&name, &PostParams::default(), &updated).await?;
    tracing::info!(clusterrole = %name, "aggregated rules updated");
    Ok(Action::await_change())
}

pub async fn run(client: kube::Client) {
    let api: Api<ClusterRole> = Api::all(client.clone());
    let controller = Controller::new(api.clone(), watcher::Config::default());
    let roles = controller.store();
    let lookup = roles.clone();
    // A change to any ClusterRole re-examines every aggregating one.
    let aggregating = move |_: ClusterRole| -> Vec<ObjectRef<ClusterRole>> {
        lookup
            .state()
            .iter()
            .filter(|r| r.aggregation_rule.is_some())
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect()
    };
    controller
        .watches(api, watcher::Config::default(), aggregating)
        .run(reconcile, retry_soon, Arc::new(Ctx { client, roles }))
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(value: Value) -> Arc<ClusterRole> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn an_aggregating_role_gets_the_rules_of_the_roles_it_selects() {
        let view = role(serde_json::json!({"metadata": {"name": "view"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}}));
        let extra = role(
            serde_json::json!({"metadata": {"name": "crontabs", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"apiGroups": ["example.com"], "resources": ["crontabs"], "verbs": ["get"]}]}),
        );
        let other = role(serde_json::json!({"metadata": {"name": "other"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}));
        let all = vec![view.clone(), extra.clone(), other];
        let wanted = wanted_rules(&view, &all).unwrap();
        assert_eq!(
            wanted,
            serde_json::json!([{"apiGroups": ["example.com"], "resources": ["crontabs"], "verbs": ["get"]}])
        );
        let mut done = (*view).clone();
        done.rules = serde_json::from_value(wanted).unwrap();
        assert_eq!(wanted_rules(&done, &all), None);
        assert_eq!(wanted_rules(&extra, &all), None, "a role without aggregationRule is left alone");
    }
}
