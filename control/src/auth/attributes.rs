//! What a request asks to do, in the terms authorization decides on (Kubernetes'
//! `authorizer.Attributes`): the user, the verb, and either a resource (group, resource,
//! subresource, namespace, name) or a non-resource path.

use axum::http::Method;

use super::User;
use crate::api::request::{Query, Target};

/// A request's attributes.
#[derive(Debug, Clone)]
pub struct Attributes {
    pub user: User,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection` for
    /// resources (or `impersonate`); the lower-case HTTP method for non-resource paths.
    pub verb: String,
    /// None for a non-resource request.
    pub resource: Option<ResourceAttributes>,
    /// The request path (what `nonResourceURLs` match).
    pub path: String,
}

/// The resource part of [`Attributes`]; empty strings where the request names none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub group: String,
    pub version: String,
    /// The plural: `pods`.
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The list's or watch's `fieldSelector` and `labelSelector` as sent (authorizers may
    /// allow a list only with a selector, as the node authorizer does for pods).
    pub field_selector: String,
    pub label_selector: String,
}

impl Attributes {
    /// The attributes of a request for a resource path.
    pub fn resource(user: User, method: &Method, target: &Target, query: &Query, path: &str) -> Self {
        let named = target.name.is_some();
        let verb = match *method {
            Method::GET | Method::HEAD if query.flag("watch") => "watch",
            Method::GET | Method::HEAD if named => "get",
            Method::GET | Method::HEAD => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if named => "delete",
            Method::DELETE => "deletecollection",
            _ => "",
        };
        use crate::registry::kinds::Subresource::{Exec, PortForward};
        // kubectl exec and port-forward arrive as WebSocket GETs; kube-apiserver asks for
        // `create` on them whatever the method.
        let verb = match target.subresource {
            Some(Exec | PortForward) => "create",
            _ => verb,
        };
        let r = target.resource;
        // A namespace's own requests are in that namespace, as kube-apiserver's RequestInfo has it.
        let namespace = match (&target.namespace, r.group, r.plural) {
            (Some(ns), _, _) => ns.clone(),
            (None, "", "namespaces") => target.name.clone().unwrap_or_default(),
            (None, _, _) => String::new(),
        };
        Self {
            user,
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                group: r.group.into(),
                version: r.version.into(),
                resource: r.plural.into(),
                subresource: target.subresource.map(|s| s.name().to_string()).unwrap_or_default(),
                namespace,
                name: target.name.clone().unwrap_or_default(),
                field_selector: query.get("fieldSelector").unwrap_or_default().to_string(),
                label_selector: query.get("labelSelector").unwrap_or_default().to_string(),
            }),
            path: path.into(),
        }
    }

    /// The attributes of a request for a non-resource path (discovery, `/metrics`, the registry).
    pub fn non_resource(user: User, method: &Method, path: &str) -> Self {
        let verb = if *method == Method::HEAD { "get".to_string() } else { method.as_str().to_ascii_lowercase() };
        Self { user, verb, resource: None, path: path.into() }
    }

    /// Kubernetes' message for a denied request, e.g. `pods is forbidden: User "alice" cannot
    /// list resource "pods" in API group "" in the namespace "default"`, with `reason` appended.
    pub fn forbidden_message(&self, reason: &str) -> String {
        let user = &self.user.name;
        let mut message = match &self.resource {
            None => format!("forbidden: User {user:?} cannot {} path {:?}", self.verb, self.path),
            Some(r) => {
                let resource = if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                };
                let subject = if r.name.is_empty() { resource.clone() } else { format!("{resource} {:?}", r.name) };
                let scope = if r.namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace {:?}", r.namespace)
                };
                format!(
                    "{subject} is forbidden: User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                    self.verb, r.group
                )
            }
        };
        if !reason.is_empty() {
            message.push_str(": ");
            message.push_str(reason);
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::parse_path;

    fn attributes(method: Method, path: &str, query: Option<&str>) -> Attributes {
        let target = parse_path(path).unwrap().unwrap();
        let query = Query::parse(query).unwrap();
        Attributes::resource(User::new("alice", ["dev"]), &method, &target, &query, path)
    }

    #[test]
    fn verbs_follow_the_method_and_the_path() {
        assert_eq!(attributes(Method::GET, "/api/v1/namespaces/a/pods", None).verb, "list");
        assert_eq!(attributes(Method::GET, "/api/v1/pods", Some("watch=true")).verb, "watch");
        assert_eq!(attributes(Method::GET, "/api/v1/namespaces/a/pods/p", None).verb, "get");
        assert_eq!(attributes(Method::DELETE, "/api/v1/namespaces/a/pods", None).verb, "deletecollection");
        assert_eq!(attributes(Method::GET, "/api/v1/namespaces/a/pods/p/exec", None).verb, "create");
        let scale = attributes(Method::PATCH, "/apis/apps/v1/namespaces/a/deployments/d/scale", None);
        assert_eq!(scale.verb, "patch");
        let r = scale.resource.unwrap();
        assert_eq!((r.group.as_str(), r.resource.as_str(), r.subresource.as_str()), ("apps", "deployments", "scale"));
        assert_eq!((r.namespace.as_str(), r.name.as_str()), ("a", "d"));
    }

    #[test]
    fn a_namespace_is_in_itself() {
        let r = attributes(Method::GET, "/api/v1/namespaces/team", None).resource.unwrap();
        assert_eq!(r.namespace, "team");
        assert_eq!(attributes(Method::GET, "/api/v1/namespaces", None).resource.unwrap().namespace, "");
    }

    #[test]
    fn messages_read_as_kubernetes_writes_them() {
        assert_eq!(
            attributes(Method::GET, "/api/v1/namespaces/default/pods", None).forbidden_message(""),
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        assert_eq!(
            attributes(Method::GET, "/api/v1/nodes/n1", None).forbidden_message("no RBAC policy matched"),
            r#"nodes "n1" is forbidden: User "alice" cannot get resource "nodes" in API group "" at the cluster scope: no RBAC policy matched"#
        );
        let metrics = Attributes::non_resource(User::new("alice", ["dev"]), &Method::GET, "/metrics");
        assert_eq!(metrics.forbidden_message(""), r#"forbidden: User "alice" cannot get path "/metrics""#);
    }
}
