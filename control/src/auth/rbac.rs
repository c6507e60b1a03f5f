//! RBAC: Roles, ClusterRoles and their bindings decide what users, groups and ServiceAccounts
//! may do, with Kubernetes' semantics (`plugin/pkg/auth/authorizer/rbac`): a request is allowed
//! when a rule of a role bound to the user (or one of its groups) matches it; ClusterRoleBindings
//! grant everywhere, RoleBindings only in their namespace (also when they bind a ClusterRole).
//!
//! No request scans the store: an [`Index`] of the four RBAC kinds, keyed by subject, is rebuilt
//! when one of them changes. The authorizer follows the store's event stream and drains it on
//! the next request, so a binding written before a request is seen by it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::authz::Decision;
use super::{Attributes, User};
use crate::store::{Store, WatchSource, WatchStart};

pub const GROUP: &str = "rbac.authorization.k8s.io";

/// A `PolicyRule`, with absent lists empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
    pub verbs: Vec<String>,
}

impl Rule {
    /// A resource rule: `verbs` on `resources` of `groups`.
    pub fn resources(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Self {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Self { api_groups: own(groups), resources: own(resources), verbs: own(verbs), ..Default::default() }
    }

    /// A non-resource rule: `verbs` on `urls`.
    pub fn urls(urls: &[&str], verbs: &[&str]) -> Self {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Self { non_resource_urls: own(urls), verbs: own(verbs), ..Default::default() }
    }

    /// The rules of a Role's or ClusterRole's `rules` (entries that do not decode are skipped).
    pub fn parse_all(rules: &Value) -> Vec<Rule> {
        rules
            .as_array()
            .map(|rules| rules.iter().filter_map(|r| serde_json::from_value(r.clone()).ok()).collect())
            .unwrap_or_default()
    }
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|s| s == item)
}

fn verb_matches(rule: &Rule, verb: &str) -> bool {
    has(&rule.verbs, "*") || has(&rule.verbs, verb)
}

fn resource_matches(rule: &Rule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty()
                && r.len() == subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(subresource))
    })
}

fn url_matches(rule: &Rule, path: &str) -> bool {
    rule.non_resource_urls
        .iter()
        .any(|u| u == "*" || u == path || u.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix)))
}

/// Whether `rule` allows the request, as Kubernetes' `RuleAllows`.
pub fn rule_allows(attributes: &Attributes, rule: &Rule) -> bool {
    if !verb_matches(rule, &attributes.verb) {
        return false;
    }
    match &attributes.resource {
        Some(r) => {
            let combined =
                if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
            (has(&rule.api_groups, "*") || has(&rule.api_groups, &r.group))
                && resource_matches(rule, &combined, &r.subresource)
                && (rule.resource_names.is_empty() || has(&rule.resource_names, &r.name))
        }
        None => url_matches(rule, &attributes.path),
    }
}

/// What a binding refers to.
#[derive(Debug, Clone)]
struct RoleRef {
    cluster: bool,
    name: String,
}

/// The roles bound to users and to groups (ServiceAccounts are users), in one scope.
#[derive(Default)]
struct BySubject {
    users: HashMap<String, Vec<RoleRef>>,
    groups: HashMap<String, Vec<RoleRef>>,
}

impl BySubject {
    /// Records a binding's subject; unknown kinds are skipped. A ServiceAccount's namespace
    /// defaults to the binding's.
    fn add(&mut self, subject: &Value, binding_namespace: &str, role: &RoleRef) {
        let Some(name) = subject["name"].as_str() else { return };
        let (map, key) = match subject["kind"].as_str() {
            Some("User") => (&mut self.users, name.to_string()),
            Some("Group") => (&mut self.groups, name.to_string()),
            Some("ServiceAccount") => {
                let ns = subject["namespace"].as_str().filter(|s| !s.is_empty()).unwrap_or(binding_namespace);
                (&mut self.users, format!("system:serviceaccount:{ns}:{name}"))
            }
            _ => return,
        };
        map.entry(key).or_default().push(role.clone());
    }

    /// The roles bound to `user` or one of its groups.
    fn of<'a>(&'a self, user: &'a User) -> impl Iterator<Item = &'a RoleRef> {
        let groups = user.groups.iter().flat_map(|g| self.groups.get(g).into_iter().flatten());
        self.users.get(&user.name).into_iter().flatten().chain(groups)
    }
}

/// The RBAC objects arranged for lookups by subject (no allocation per lookup).
#[derive(Default)]
pub struct Index {
    cluster_roles: HashMap<String, Arc<Vec<Rule>>>,
    /// namespace → name → rules.
    roles: HashMap<String, HashMap<String, Arc<Vec<Rule>>>>,
    /// ClusterRoleBindings.
    cluster_bindings: BySubject,
    /// namespace → its RoleBindings.
    bindings: HashMap<String, BySubject>,
    /// How many bindings the index holds (for figures).
    pub binding_count: usize,
}

fn role_ref(binding: &Value) -> Option<RoleRef> {
    let r = &binding["roleRef"];
    let name = r["name"].as_str()?.to_string();
    match r["kind"].as_str()? {
        "ClusterRole" => Some(RoleRef { cluster: true, name }),
        "Role" => Some(RoleRef { cluster: false, name }),
        _ => None,
    }
}

fn storage_key(plural: &str) -> String {
    format!("{plural}.{GROUP}")
}

fn is_rbac(resource: &str) -> bool {
    resource
        .strip_suffix(GROUP)
        .and_then(|p| p.strip_suffix('.'))
        .is_some_and(|p| matches!(p, "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"))
}

impl Index {
    /// Reads the four RBAC kinds from the store.
    pub fn build(store: &Store) -> Self {
        let all = |plural: &str| store.list(&storage_key(plural), None, None, 0, |_| true).items;
        let mut index = Index::default();
        for stored in all("clusterroles") {
            index.cluster_roles.insert(stored.key.name.clone(), Arc::new(Rule::parse_all(&stored.object["rules"])));
        }
        for stored in all("roles") {
            let rules = Arc::new(Rule::parse_all(&stored.object["rules"]));
            index.roles.entry(stored.key.namespace.clone()).or_default().insert(stored.key.name.clone(), rules);
        }
        for stored in all("clusterrolebindings") {
            let Some(role @ RoleRef { cluster: true, .. }) = role_ref(&stored.object) else { continue };
            index.binding_count += 1;
            for subject in stored.object["subjects"].as_array().into_iter().flatten() {
                index.cluster_bindings.add(subject, "", &role);
            }
        }
        for stored in all("rolebindings") {
            let Some(role) = role_ref(&stored.object) else { continue };
            index.binding_count += 1;
            let ns = &stored.key.namespace;
            let bindings = index.bindings.entry(ns.clone()).or_default();
            for subject in stored.object["subjects"].as_array().into_iter().flatten() {
                bindings.add(subject, ns, &role);
            }
        }
        index
    }

    /// The rules of the role `role` refers to, from a binding in `namespace`.
    fn rules(&self, role: &RoleRef, namespace: &str) -> Option<&Arc<Vec<Rule>>> {
        if role.cluster { self.cluster_roles.get(&role.name) } else { self.roles.get(namespace)?.get(&role.name) }
    }

    /// Calls `visit` with the rules of every role bound to `user` that applies in `namespace`
    /// (cluster-wide bindings first), until it returns true; returns whether it did, and the
    /// errors met (bindings to roles that do not exist), as Kubernetes' rule visitor.
    fn visit(&self, user: &User, namespace: &str, mut visit: impl FnMut(&Rule) -> bool) -> (bool, Vec<String>) {
        let mut errors = Vec::new();
        let cluster = self.cluster_bindings.of(user).map(|role| (role, ""));
        let local = self.bindings.get(namespace).filter(|_| !namespace.is_empty());
        let local = local.into_iter().flat_map(|b| b.of(user)).map(|role| (role, namespace));
        for (role, ns) in cluster.chain(local) {
            match self.rules(role, ns) {
                Some(rules) if rules.iter().any(&mut visit) => return (true, Vec::new()),
                Some(_) => {}
                None => {
                    let kind = if role.cluster { "clusterrole" } else { "role" };
                    errors.push(format!("{kind}.{GROUP} {:?} not found", role.name));
                }
            }
        }
        (false, errors)
    }

    /// The decision on a request, as Kubernetes' RBAC authorizer gives it (no opinion when no
    /// rule allows it; the reason names the roles that were missing).
    pub fn authorize(&self, attributes: &Attributes) -> Decision {
        let namespace = attributes.resource.as_ref().map(|r| r.namespace.as_str()).unwrap_or_default();
        let (allowed, errors) = self.visit(&attributes.user, namespace, |rule| rule_allows(attributes, rule));
        if allowed {
            return Decision::Allow;
        }
        let reason = if errors.is_empty() { String::new() } else { format!("RBAC: [{}]", errors.join(", ")) };
        Decision::NoOpinion(reason)
    }

    /// Every rule `user` holds in `namespace` (cluster-wide ones included), and the errors met.
    pub fn rules_for(&self, user: &User, namespace: &str) -> (Vec<Rule>, Vec<String>) {
        let mut rules = Vec::new();
        let (_, errors) = self.visit(user, namespace, |rule| {
            rules.push(rule.clone());
            false
        });
        (rules, errors)
    }
}

/// The index and the event stream that says when it is stale.
struct Cache {
    events: Option<WatchSource>,
    index: Arc<Index>,
}

pub struct RbacAuthorizer {
    store: Store,
    cache: Mutex<Cache>,
}

impl RbacAuthorizer {
    pub fn new(store: Store) -> Self {
        let events = store.watch(WatchStart::Now).ok();
        let index = Arc::new(Index::build(&store));
        Self { store, cache: Mutex::new(Cache { events, index }) }
    }

    /// The current index: rebuilt first when an RBAC object changed since the last request.
    pub fn index(&self) -> Arc<Index> {
        let mut cache = self.cache.lock().expect("rbac cache lock");
        let mut stale = false;
        loop {
            let Some(events) = cache.events.as_mut() else {
                stale = true;
                break;
            };
            match events.try_next() {
                Some(Ok(event)) => stale |= is_rbac(&event.object.key.resource),
                Some(Err(_)) => {
                    // Fell behind the window: start again from now with a fresh index.
                    cache.events = None;
                }
                None => break,
            }
        }
        if cache.events.is_none() {
            cache.events = self.store.watch(WatchStart::Now).ok();
        }
        if stale {
            cache.index = Arc::new(Index::build(&self.store));
        }
        cache.index.clone()
    }

    pub fn authorize(&self, attributes: &Attributes) -> Decision {
        self.index().authorize(attributes)
    }

    /// Every rule `user` holds in `namespace`, and the errors met collecting them.
    pub fn rules_for(&self, user: &User, namespace: &str) -> (Vec<Rule>, Vec<String>) {
        self.index().rules_for(user, namespace)
    }
}

// ---------------------------------------------------------------------------------------------
// Escalation: whether one set of rules covers another (Kubernetes' `validation.Covers`).

/// `rule` split into rules of one verb, group, resource and name (or one URL and verb).
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut atoms = Vec::new();
    let one = |s: &String| vec![s.clone()];
    for verb in &rule.verbs {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                if rule.resource_names.is_empty() {
                    atoms.push(Rule {
                        api_groups: one(group),
                        resources: one(resource),
                        verbs: one(verb),
                        ..Default::default()
                    });
                }
                for name in &rule.resource_names {
                    atoms.push(Rule {
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        verbs: one(verb),
                        ..Default::default()
                    });
                }
            }
        }
        for url in &rule.non_resource_urls {
            atoms.push(Rule { non_resource_urls: one(url), verbs: one(verb), ..Default::default() });
        }
    }
    atoms
}

fn has_all(owner: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(owner, w))
}

fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, "*") {
        return true;
    }
    wanted.iter().all(|w| {
        has(owner, w)
            || w.split_once('/')
                .is_some_and(|(resource, sub)| has(owner, &format!("*/{sub}")) || has(owner, &format!("{resource}/*")))
    })
}

fn urls_cover(owner: &[String], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|w| owner.iter().any(|o| o == w || o.strip_suffix('*').is_some_and(|prefix| w.starts_with(prefix))))
}

fn rule_covers(owner: &Rule, wanted: &Rule) -> bool {
    let names = if wanted.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &wanted.resource_names)
    };
    (has(&owner.verbs, "*") || has_all(&owner.verbs, &wanted.verbs))
        && (has(&owner.api_groups, "*") || has_all(&owner.api_groups, &wanted.api_groups))
        && resources_cover(&owner.resources, &wanted.resources)
        && urls_cover(&owner.non_resource_urls, &wanted.non_resource_urls)
        && names
}

/// The parts of `wanted` that `owner` does not cover (empty: covered).
pub fn uncovered(owner: &[Rule], wanted: &[Rule]) -> Vec<Rule> {
    wanted.iter().flat_map(breakdown).filter(|atom| !owner.iter().any(|o| rule_covers(o, atom))).collect()
}

/// A rule as Kubernetes prints it in escalation messages:
/// `{APIGroups:[""], Resources:["pods"], Verbs:["create"]}`.
pub fn compact(rule: &Rule) -> String {
    let list = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" ");
    let mut parts = Vec::new();
    if !rule.api_groups.is_empty() {
        parts.push(format!("APIGroups:[{}]", list(&rule.api_groups)));
    }
    if !rule.resources.is_empty() {
        parts.push(format!("Resources:[{}]", list(&rule.resources)));
    }
    if !rule.resource_names.is_empty() {
        parts.push(format!("ResourceNames:[{}]", list(&rule.resource_names)));
    }
    if !rule.non_resource_urls.is_empty() {
        parts.push(format!("NonResourceURLs:[{}]", list(&rule.non_resource_urls)));
    }
    parts.push(format!("Verbs:[{}]", list(&rule.verbs)));
    format!("{{{}}}", parts.join(", "))
}

/// Kubernetes' escalation prevention on writes of RBAC objects: a Role or ClusterRole may be
/// created or given new rules only by a user who holds every permission in it (or may
/// `escalate` it); a binding may be created or pointed at a role only by a user who holds the
/// role's permissions where it applies (or may `bind` it). Masters may do both.
pub fn confirm_no_escalation(
    authz: &super::authz::Authorizer,
    request: &crate::api::admission::Request<'_>,
    object: &Value,
    old: Option<&Value>,
) -> crate::error::Result<()> {
    use crate::api::admission::Operation;
    let resource = request.resource;
    if resource.group != GROUP || request.operation == Operation::Delete || request.subresource.is_some() {
        return Ok(());
    }
    let user = request.user;
    let allowed = |verb: &str, plural: &str, namespace: &str, name: &str| {
        let attributes = Attributes {
            user: user.clone(),
            verb: verb.into(),
            resource: Some(super::ResourceAttributes {
                group: GROUP.into(),
                resource: plural.into(),
                namespace: namespace.into(),
                name: name.into(),
                ..Default::default()
            }),
            path: String::new(),
        };
        authz.decide(&attributes) == Decision::Allow
    };
    let forbidden = |detail: String| {
        crate::error::Error::Forbidden(format!("{}.{GROUP} {:?} is forbidden: {detail}", resource.plural, request.name))
    };
    let wanted = match resource.kind {
        "Role" | "ClusterRole" => {
            let same = |field: &str| old.is_some_and(|old| old.get(field) == object.get(field));
            if same("rules") && same("aggregationRule")
                || allowed("escalate", resource.plural, request.namespace, request.name)
            {
                return Ok(());
            }
            if object.get("aggregationRule").is_some_and(|r| !r.is_null()) {
                return Err(forbidden("must have cluster-admin privileges to use the aggregationRule".into()));
            }
            Rule::parse_all(&object["rules"])
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            if old.is_some_and(|old| old["roleRef"] == object["roleRef"]) {
                return Ok(());
            }
            let Some(role) = role_ref(object) else { return Ok(()) };
            let plural = if role.cluster { "clusterroles" } else { "roles" };
            if allowed("bind", plural, request.namespace, &role.name) {
                return Ok(());
            }
            let index = authz.rbac.index();
            match index.rules(&role, request.namespace) {
                Some(rules) => rules.to_vec(),
                None => {
                    let kind = if role.cluster { "clusterroles" } else { "roles" };
                    return Err(forbidden(format!("{kind}.{GROUP} {:?} not found", role.name)));
                }
            }
        }
        _ => return Ok(()),
    };
    let (owned, _) = authz.rbac.rules_for(user, request.namespace);
    let missing = uncovered(&owned, &wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let groups = user.groups.iter().map(|g| format!("{g:?}")).collect::<Vec<_>>().join(" ");
    let rules = missing.iter().map(compact).collect::<Vec<_>>().join("\n");
    Err(forbidden(format!(
        "user {:?} (groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n{rules}",
        user.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ResourceAttributes;
    use crate::store::{ObjectKey, StoreOptions, Write};
    use serde_json::json;

    fn request(user: &User, verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Attributes {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Attributes {
            user: user.clone(),
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                subresource: subresource.into(),
                namespace: ns.into(),
                name: name.into(),
                ..Default::default()
            }),
            path: String::new(),
        }
    }

    fn url(user: &User, verb: &str, path: &str) -> Attributes {
        Attributes { user: user.clone(), verb: verb.into(), resource: None, path: path.into() }
    }

    #[test]
    fn rules_match_as_kubernetes_matches_them() {
        let u = User::new("alice", ["dev"]);
        let pods = Rule::resources(&[""], &["pods"], &["get", "list"]);
        assert!(rule_allows(&request(&u, "get", "", "pods", "a", "p"), &pods));
        assert!(!rule_allows(&request(&u, "get", "", "pods/log", "a", "p"), &pods));
        assert!(!rule_allows(&request(&u, "get", "apps", "pods", "a", "p"), &pods));
        assert!(!rule_allows(&request(&u, "delete", "", "pods", "a", "p"), &pods));
        let any_status = Rule::resources(&["*"], &["*/status"], &["*"]);
        assert!(rule_allows(&request(&u, "patch", "apps", "deployments/status", "a", "d"), &any_status));
        assert!(!rule_allows(&request(&u, "patch", "apps", "deployments", "a", "d"), &any_status));
        let named = Rule { resource_names: vec!["cm1".into()], ..Rule::resources(&[""], &["configmaps"], &["*"]) };
        assert!(rule_allows(&request(&u, "get", "", "configmaps", "a", "cm1"), &named));
        assert!(!rule_allows(&request(&u, "get", "", "configmaps", "a", "cm2"), &named));
        assert!(!rule_allows(&request(&u, "list", "", "configmaps", "a", ""), &named));
        let api = Rule::urls(&["/api", "/api/*", "/healthz"], &["get"]);
        assert!(rule_allows(&url(&u, "get", "/api/v1"), &api));
        assert!(rule_allows(&url(&u, "get", "/api"), &api));
        assert!(!rule_allows(&url(&u, "get", "/apis"), &api));
        assert!(!rule_allows(&url(&u, "post", "/healthz"), &api));
        assert!(!rule_allows(&request(&u, "get", "", "pods", "a", "p"), &api));
    }

    #[test]
    fn covering_follows_kubernetes() {
        let owner = vec![Rule::resources(&[""], &["pods", "*/status"], &["get", "list"])];
        assert!(uncovered(&owner, &[Rule::resources(&[""], &["pods"], &["get"])]).is_empty());
        assert!(uncovered(&owner, &[Rule::resources(&[""], &["services/status"], &["list"])]).is_empty());
        let missing = uncovered(&owner, &[Rule::resources(&[""], &["pods"], &["get", "create"])]);
        assert_eq!(
            missing.iter().map(compact).collect::<Vec<_>>(),
            [r#"{APIGroups:[""], Resources:["pods"], Verbs:["create"]}"#]
        );
        let star = vec![Rule::resources(&["*"], &["*"], &["*"]), Rule::urls(&["*"], &["*"])];
        assert!(uncovered(&star, &[Rule::urls(&["/v2/*"], &["put"])]).is_empty());
        assert!(!uncovered(&owner, &[Rule::urls(&["/v2/*"], &["put"])]).is_empty());
    }

    async fn put(store: &Store, plural: &str, ns: &str, object: Value) {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let key = ObjectKey::new(storage_key(plural), ns, name);
        store.write(Write::Create { key, object }).await.unwrap();
    }

    fn binding(kind: &str, name: &str, role_kind: &str, role: &str, subjects: Value) -> Value {
        json!({"kind": kind, "metadata": {"name": name},
            "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": role}, "subjects": subjects})
    }

    #[tokio::test]
    async fn bindings_grant_where_they_apply_and_changes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
        let rbac = RbacAuthorizer::new(store.clone());
        let alice = User::new("alice", ["dev"]);
        let get_pods = request(&alice, "list", "", "pods", "team", "");
        assert_eq!(rbac.authorize(&get_pods), Decision::NoOpinion(String::new()));

        let view = json!({"metadata": {"name": "pod-reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
        put(&store, "clusterroles", "", view).await;
        let rb =
            binding("RoleBinding", "read", "ClusterRole", "pod-reader", json!([{"kind": "User", "name": "alice"}]));
        put(&store, "rolebindings", "team", rb).await;
        assert_eq!(rbac.authorize(&get_pods), Decision::Allow);
        assert!(rbac.authorize(&request(&alice, "list", "", "pods", "other", "")) != Decision::Allow);
        assert!(rbac.authorize(&request(&alice, "list", "", "pods", "", "")) != Decision::Allow);
        assert!(rbac.authorize(&request(&alice, "create", "", "pods", "team", "")) != Decision::Allow);

        // Groups and ServiceAccounts (namespace defaulting to the binding's).
        let rb = binding(
            "RoleBinding",
            "sa",
            "ClusterRole",
            "pod-reader",
            json!([{"kind": "ServiceAccount", "name": "robot"}, {"kind": "Group", "name": "ops"}]),
        );
        put(&store, "rolebindings", "prod", rb).await;
        let robot = User::new("system:serviceaccount:prod:robot", ["system:serviceaccounts"]);
        assert_eq!(rbac.authorize(&request(&robot, "get", "", "pods", "prod", "p")), Decision::Allow);
        let bob = User::new("bob", ["ops"]);
        assert_eq!(rbac.authorize(&request(&bob, "get", "", "pods", "prod", "p")), Decision::Allow);

        // A binding to a missing role says so.
        let crb = binding("ClusterRoleBinding", "x", "ClusterRole", "nope", json!([{"kind": "User", "name": "carol"}]));
        put(&store, "clusterrolebindings", "", crb).await;
        let carol = User::new("carol", Vec::<String>::new());
        assert_eq!(
            rbac.authorize(&request(&carol, "get", "", "pods", "a", "p")),
            Decision::NoOpinion(r#"RBAC: [clusterrole.rbac.authorization.k8s.io "nope" not found]"#.into())
        );
        let (rules, _) = rbac.rules_for(&alice, "team");
        assert_eq!(rules, [Rule::resources(&[""], &["pods"], &["get", "list"])]);
    }

    /// The cost of one decision with 1,000 bindings (printed; no timed assertion).
    #[tokio::test]
    async fn authorize_cost_with_a_thousand_bindings() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
        let role = json!({"metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]}]});
        put(&store, "clusterroles", "", role).await;
        for i in 0..1000 {
            let subjects =
                json!([{"kind": "User", "name": format!("user{i}")}, {"kind": "Group", "name": format!("team{i}")}]);
            let (plural, ns, kind) = if i % 2 == 0 {
                ("rolebindings", format!("ns{}", i % 50), "RoleBinding")
            } else {
                ("clusterrolebindings", String::new(), "ClusterRoleBinding")
            };
            put(&store, plural, &ns, binding(kind, &format!("b{i}"), "ClusterRole", "reader", subjects)).await;
        }
        let rbac = RbacAuthorizer::new(store.clone());
        assert_eq!(rbac.index().binding_count, 1000);
        let user = User::new("user998", ["team5", "team7"]);
        let allowed = request(&user, "list", "", "pods", "ns48", "");
        let denied = request(&User::new("nobody", ["x", "y"]), "list", "", "pods", "ns48", "");
        assert_eq!(rbac.authorize(&allowed), Decision::Allow);
        let n = 100_000;
        let started = std::time::Instant::now();
        for _ in 0..n {
            assert_eq!(rbac.authorize(&allowed), Decision::Allow);
            assert!(rbac.authorize(&denied) != Decision::Allow);
        }
        let per = started.elapsed() / (2 * n);
        let started = std::time::Instant::now();
        let rebuilt = Index::build(&store);
        println!(
            "rbac: authorize() with 1,000 bindings: {per:?} per decision (debug build); index rebuild: {:?} for {} bindings",
            started.elapsed(),
            rebuilt.binding_count
        );
    }
}
