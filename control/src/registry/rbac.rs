//! Validation of Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, with
//! kube-apiserver's field paths and messages (`pkg/apis/rbac/validation`).

use serde_json::Value;

use crate::Cause;
use crate::auth::rbac::GROUP;
use crate::registry::kinds::ResourceInfo;

fn strings(v: &Value) -> usize {
    v.as_array().map(Vec::len).unwrap_or(0)
}

fn rendered(v: &Value) -> String {
    let items: Vec<&str> = v.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    format!("[]string{{{}}}", items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "))
}

fn invalid_raw(field: String, value: String, detail: &str) -> Cause {
    Cause { reason: "FieldValueInvalid".into(), message: format!("Invalid value: {value}: {detail}"), field }
}

fn required(field: String, detail: &str) -> Cause {
    Cause { message: format!("Required value: {detail}"), ..Cause::required(field) }
}

/// `ValidatePolicyRule`: verbs always; URLs (cluster-wide only) or groups and resources.
fn rule(rule: &Value, namespaced: bool, path: &str, errs: &mut Vec<Cause>) {
    let field = |name: &str| format!("{path}.{name}");
    if strings(&rule["verbs"]) == 0 {
        errs.push(required(field("verbs"), "verbs must contain at least one value"));
    }
    if strings(&rule["nonResourceURLs"]) > 0 {
        let urls = rendered(&rule["nonResourceURLs"]);
        if namespaced {
            errs.push(invalid_raw(
                field("nonResourceURLs"),
                urls.clone(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if strings(&rule["apiGroups"]) > 0 || strings(&rule["resources"]) > 0 || strings(&rule["resourceNames"]) > 0 {
            errs.push(invalid_raw(
                field("nonResourceURLs"),
                urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if strings(&rule["apiGroups"]) == 0 {
        errs.push(required(field("apiGroups"), "resource rules must supply at least one api group"));
    }
    if strings(&rule["resources"]) == 0 {
        errs.push(required(field("resources"), "resource rules must supply at least one resource"));
    }
}

/// `ValidatePathSegmentName`: what a role's name may not be.
fn path_segment(name: &str) -> Option<String> {
    match name {
        "." | ".." => Some(format!("may not be '{name}'")),
        _ => ["/", "%"].iter().find(|c| name.contains(**c)).map(|c| format!("may not contain '{c}'")),
    }
}

fn role_ref(binding: &Value, namespaced: bool, errs: &mut Vec<Cause>) {
    let r = &binding["roleRef"];
    let api_group = r["apiGroup"].as_str().unwrap_or_default();
    if api_group != GROUP {
        errs.push(Cause::not_supported("roleRef.apiGroup", api_group, &[GROUP]));
    }
    let kind = r["kind"].as_str().unwrap_or_default();
    let kinds: &[&str] = if namespaced { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
    if !kinds.contains(&kind) {
        errs.push(Cause::not_supported("roleRef.kind", kind, kinds));
    }
    match r["name"].as_str().unwrap_or_default() {
        "" => errs.push(Cause::required("roleRef.name")),
        name => {
            if let Some(problem) = path_segment(name) {
                errs.push(Cause::invalid("roleRef.name", name, problem));
            }
        }
    }
}

fn subject(subject: &Value, namespaced: bool, path: &str, errs: &mut Vec<Cause>) {
    let field = |name: &str| format!("{path}.{name}");
    let name = subject["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        errs.push(Cause::required(field("name")));
    }
    let api_group = subject["apiGroup"].as_str().unwrap_or_default();
    match subject["kind"].as_str().unwrap_or_default() {
        "ServiceAccount" => {
            if !api_group.is_empty() {
                errs.push(Cause::not_supported(field("apiGroup"), api_group, &[""]));
            }
            if !namespaced && subject["namespace"].as_str().unwrap_or_default().is_empty() {
                errs.push(Cause::required(field("namespace")));
            }
        }
        "User" | "Group" => {
            if api_group != GROUP {
                errs.push(Cause::not_supported(field("apiGroup"), api_group, &[GROUP]));
            }
        }
        other => errs.push(Cause::not_supported(field("kind"), other, &["ServiceAccount", "User", "Group"])),
    }
}

/// The problems of an RBAC object about to be written (`old` the stored one on updates).
pub fn validate(resource: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut errs = Vec::new();
    match resource.kind {
        "Role" | "ClusterRole" => {
            for (i, r) in obj["rules"].as_array().into_iter().flatten().enumerate() {
                rule(r, resource.namespaced, &format!("rules[{i}]"), &mut errs);
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            role_ref(obj, resource.namespaced, &mut errs);
            for (i, s) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
                subject(s, resource.namespaced, &format!("subjects[{i}]"), &mut errs);
            }
            if let Some(old) = old
                && old["roleRef"] != obj["roleRef"]
            {
                let shown = format!(
                    "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
                    obj["roleRef"]["apiGroup"].as_str().unwrap_or_default(),
                    obj["roleRef"]["kind"].as_str().unwrap_or_default(),
                    obj["roleRef"]["name"].as_str().unwrap_or_default()
                );
                errs.push(invalid_raw("roleRef".into(), shown, "cannot change roleRef"));
            }
        }
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::kinds::lookup;
    use serde_json::json;

    fn messages(plural: &str, obj: Value, old: Option<&Value>) -> Vec<String> {
        let resource = lookup(GROUP, "v1", plural).unwrap();
        validate(resource, &obj, old).into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn rules_need_verbs_and_what_they_apply_to() {
        let role = json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}, {"nonResourceURLs": ["/x"], "verbs": ["get"]}, {"verbs": ["get"]}]});
        assert_eq!(
            messages("roles", role, None),
            [
                "rules[0].verbs: Required value: verbs must contain at least one value",
                r#"rules[1].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot apply to non-resource URLs"#,
                "rules[2].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[2].resources: Required value: resource rules must supply at least one resource",
            ]
        );
        let cluster = json!({"rules": [{"nonResourceURLs": ["/x"], "verbs": ["get"]}]});
        assert!(messages("clusterroles", cluster, None).is_empty());
    }

    #[test]
    fn bindings_name_a_role_and_known_subjects() {
        let binding = json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot"}, {"kind": "Robot", "name": "x"}]});
        assert_eq!(
            messages("clusterrolebindings", binding.clone(), None),
            [
                r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#,
                "subjects[0].namespace: Required value",
                r#"subjects[1].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#,
            ]
        );
        let mut changed = binding.clone();
        changed["roleRef"]["name"] = json!("other");
        changed["subjects"] = json!([]);
        assert_eq!(
            messages("rolebindings", changed, Some(&binding)),
            [
                r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"other"}: cannot change roleRef"#
            ]
        );
    }
}
