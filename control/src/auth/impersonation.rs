//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): `Impersonate-*` headers make a
//! request act as another user, when the requester may `impersonate` them, as kube-apiserver's
//! impersonation filter: `users`, `groups` and `serviceaccounts` in the core group, `uids` and
//! `userextras/KEY` in `authentication.k8s.io`. The impersonated user is `system:authenticated`
//! too; a ServiceAccount impersonated without groups gets its ServiceAccount groups.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

use super::authz::{Authorizer, Decision};
use super::{AUTHENTICATED, Attributes, ResourceAttributes, User};
use crate::error::{Error, Result};

pub const USER: &str = "impersonate-user";
pub const GROUP: &str = "impersonate-group";
pub const UID: &str = "impersonate-uid";
pub const EXTRA_PREFIX: &str = "impersonate-extra-";

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// What a request asks to act as.
#[derive(Debug, Default, PartialEq, Eq)]
struct Wanted {
    user: Option<String>,
    groups: Vec<String>,
    uid: Option<String>,
    extra: BTreeMap<String, Vec<String>>,
}

fn text(value: &axum::http::HeaderValue) -> Result<String> {
    value.to_str().map(str::to_string).map_err(|_| Error::BadRequest("invalid impersonation header value".into()))
}

/// `%XX` escapes of an `Impersonate-Extra-` key decoded, as Kubernetes does.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&key[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_lowercase()
}

fn wanted(headers: &HeaderMap) -> Result<Wanted> {
    let mut wanted = Wanted::default();
    for (name, value) in headers {
        let name = name.as_str();
        if name == USER {
            wanted.user = Some(text(value)?);
        } else if name == GROUP {
            wanted.groups.push(text(value)?);
        } else if name == UID {
            wanted.uid = Some(text(value)?);
        } else if let Some(key) = name.strip_prefix(EXTRA_PREFIX) {
            wanted.extra.entry(unescape(key)).or_default().push(text(value)?);
        }
    }
    Ok(wanted)
}

/// The check of one impersonated attribute, as the filter asks it.
fn check(authorizer: &Authorizer, user: &User, resource: ResourceAttributes) -> Result<()> {
    let attributes =
        Attributes { user: user.clone(), verb: "impersonate".into(), resource: Some(resource), path: String::new() };
    match authorizer.decide(&attributes) {
        Decision::Allow => Ok(()),
        Decision::Deny(reason) | Decision::NoOpinion(reason) => {
            Err(Error::Forbidden(attributes.forbidden_message(&reason)))
        }
    }
}

fn resource(group: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> ResourceAttributes {
    ResourceAttributes {
        group: group.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        namespace: namespace.into(),
        name: name.into(),
        ..Default::default()
    }
}

/// The user a request acts as: `user` itself without `Impersonate-*` headers.
pub fn apply(authorizer: &Authorizer, user: User, headers: &HeaderMap) -> Result<User> {
    let wanted = wanted(headers)?;
    let Some(name) = wanted.user.clone() else {
        if wanted.groups.is_empty() && wanted.uid.is_none() && wanted.extra.is_empty() {
            return Ok(user);
        }
        return Err(Error::BadRequest(
            "requested Impersonate-Group, Impersonate-Uid or Impersonate-Extra without impersonating a user".into(),
        ));
    };
    let service_account = name
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, sa)| (ns.to_string(), sa.to_string()));
    match &service_account {
        Some((ns, sa)) => check(authorizer, &user, resource("", "serviceaccounts", "", ns, sa))?,
        None => check(authorizer, &user, resource("", "users", "", "", &name))?,
    }
    for group in &wanted.groups {
        check(authorizer, &user, resource("", "groups", "", "", group))?;
    }
    if let Some(uid) = &wanted.uid {
        check(authorizer, &user, resource("authentication.k8s.io", "uids", "", "", uid))?;
    }
    for (key, values) in &wanted.extra {
        for value in values {
            check(authorizer, &user, resource("authentication.k8s.io", "userextras", key, "", value))?;
        }
    }
    let mut groups = wanted.groups;
    if groups.is_empty()
        && let Some((ns, _)) = &service_account
    {
        groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
    }
    if name != "system:anonymous" && !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    Ok(User { name, uid: wanted.uid.unwrap_or_default(), groups, extra: wanted.extra })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_as_kubernetes_reads_them() {
        let mut headers = HeaderMap::new();
        headers.insert("Impersonate-User", "bob".parse().unwrap());
        headers.append("Impersonate-Group", "dev".parse().unwrap());
        headers.append("Impersonate-Group", "ops".parse().unwrap());
        headers.insert("Impersonate-Extra-Scopes%2Fa", "x".parse().unwrap());
        let wanted = wanted(&headers).unwrap();
        assert_eq!(wanted.user.as_deref(), Some("bob"));
        assert_eq!(wanted.groups, ["dev", "ops"]);
        assert_eq!(wanted.extra["scopes/a"], ["x"]);
    }
}
