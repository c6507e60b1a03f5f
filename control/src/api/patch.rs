//! The three body types of a `PATCH` request, applied to an object as JSON: RFC 7386 merge patch,
//! RFC 6902 JSON patch, and Kubernetes' strategic merge patch.
//!
//! A strategic merge patch merges lists of objects item by item on a merge key instead of
//! replacing them, and understands the directives kubectl sends: `$patch` (`replace`, `delete`),
//! `$retainKeys`, `$setElementOrder/FIELD` and `$deleteFromPrimitiveList/FIELD`. Each field's
//! strategy comes from `registry::patch_strategy`, found by walking the kind's OpenAPI schema
//! alongside the object; where the schema says nothing, maps merge and lists are replaced, as in
//! kube-apiserver (`k8s.io/apimachinery/pkg/util/strategicpatch`).

use serde_json::{Map, Value};

use crate::Error;
use crate::registry::patch_strategy::{self, FieldStrategy};
use crate::registry::schema;

type Object = Map<String, Value>;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

// kube-apiserver's messages (k8s.io/apimachinery/pkg/util/mergepatch), which kubectl prints.
const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

/// RFC 7386 JSON merge patch (`application/merge-patch+json`).
pub fn apply_merge_patch(target: &Value, patch: &Value) -> Result<Value, Error> {
    if !patch.is_object() {
        return Err(not_an_object(patch, "map[string]interface {}"));
    }
    let mut result = target.clone();
    json_patch::merge(&mut result, patch);
    Ok(result)
}

/// RFC 6902 JSON patch (`application/json-patch+json`), via the json-patch crate.
pub fn apply_json_patch(target: &Value, patch: &Value) -> Result<Value, Error> {
    if !patch.is_array() {
        return Err(not_an_object(patch, "jsonpatch.Patch"));
    }
    let operations: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| bad(format!("invalid JSON patch: {e}")))?;
    let mut result = target.clone();
    json_patch::patch(&mut result, &operations).map_err(|e| {
        use json_patch::{PatchErrorKind, PatchOperation};
        let path = &e.path;
        let (name, from) = match operations.get(e.operation) {
            Some(PatchOperation::Add(_)) => ("add", None),
            Some(PatchOperation::Remove(_)) => ("remove", None),
            Some(PatchOperation::Replace(_)) => ("replace", None),
            Some(PatchOperation::Move(op)) => ("move", Some(&op.from)),
            Some(PatchOperation::Copy(op)) => ("copy", Some(&op.from)),
            Some(PatchOperation::Test(_)) | None => ("test", None),
        };
        bad(match (e.kind, from) {
            (PatchErrorKind::TestFailed, _) => format!("testing value {path} failed: test failed"),
            (PatchErrorKind::InvalidPointer, _) => {
                format!("{name} operation does not apply: doc is missing path: \"{path}\": missing value")
            }
            (PatchErrorKind::InvalidFromPointer, Some(from)) => {
                format!("{name} operation does not apply: doc is missing from path: \"{from}\": missing value")
            }
            (kind, _) => format!("{name} operation at \"{path}\" does not apply: {kind}"),
        })
    })?;
    Ok(result)
}

/// Kubernetes strategic merge patch (`application/strategic-merge-patch+json`). `definition` is
/// the OpenAPI definition name of the object's kind, e.g. "io.k8s.api.apps.v1.Deployment".
pub fn apply_strategic_merge_patch(target: &Value, patch: &Value, definition: &str) -> Result<Value, Error> {
    let Value::Object(patch) = patch else {
        return Err(not_an_object(patch, "map[string]interface {}"));
    };
    let Value::Object(original) = target else {
        return Err(bad("the object to patch is not a JSON object"));
    };
    let shape = schema::definitions()
        .get_key_value(definition)
        .map(|(name, schema)| Shape { name: Some(name.as_str()), schema: Some(schema) })
        .unwrap_or_default();
    // `$patch: delete` at the top leaves an empty object, as in kube-apiserver.
    Ok(Value::Object(merge_map(original.clone(), patch.clone(), shape)?.unwrap_or_default()))
}

/// Where the walk is in the kind's schema: the definition's name (the key of the strategy table)
/// and its schema. Both are unknown below fields the schema does not describe.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    name: Option<&'static str>,
    schema: Option<&'static Value>,
}

impl Shape {
    fn of(schema: &'static Value) -> Shape {
        let (name, schema) = schema::resolve(schema);
        Shape { name, schema: Some(schema) }
    }

    /// The shape of `field` of this object, and the field's strategy.
    fn field(self, field: &str) -> (Shape, Option<FieldStrategy>) {
        let strategy = self.name.and_then(|parent| patch_strategy::for_field(parent, field));
        let schema = self.schema.and_then(|s| {
            s.get("properties")
                .and_then(|p| p.get(field))
                .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
        });
        (schema.map(Shape::of).unwrap_or_default(), strategy)
    }

    /// The shape of the items of this list.
    fn items(self) -> Shape {
        self.schema.and_then(|s| s.get("items")).map(Shape::of).unwrap_or_default()
    }
}

/// Merges `patch` into `original`; `None` when the patch deletes the whole map (`$patch: delete`).
fn merge_map(mut original: Object, mut patch: Object, shape: Shape) -> Result<Option<Object>, Error> {
    if let Some(directive) = patch.get(PATCH) {
        return match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(PATCH);
                merge_map(Object::new(), patch, shape)
            }
            Some("delete") => Ok(None),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    if let Some(keys) = patch.shift_remove(RETAIN_KEYS) {
        retain_keys(&mut original, &patch, &keys)?;
    }
    let orders: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for key in orders {
        let order = patch.shift_remove(&key).unwrap_or_default();
        set_element_order(&mut original, &mut patch, &key[SET_ELEMENT_ORDER.len()..], order, shape)?;
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            delete_from_primitive_list(&mut original, field, value)?;
            continue;
        }
        if value.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let (child, strategy) = shape.field(&key);
        let merged = match (original.get_mut(&key).map(Value::take), value) {
            (Some(Value::Object(o)), Value::Object(p)) => merge_map(o, p, child)?.map(Value::Object),
            (Some(Value::Array(o)), Value::Array(p)) => Some(Value::Array(merge_list(o, p, child, strategy)?)),
            (_, value) => fresh(value, child)?,
        };
        match merged {
            Some(value) => original.insert(key, value),
            None => original.shift_remove(&key),
        };
    }
    Ok(Some(original))
}

/// The value a patch sets where there is nothing of the same type to merge it with, with its
/// directives applied; `None` if it deletes itself.
fn fresh(value: Value, shape: Shape) -> Result<Option<Value>, Error> {
    Ok(match value {
        Value::Object(p) => merge_map(Object::new(), p, shape)?.map(Value::Object),
        Value::Array(p) => Some(Value::Array(replace_list(p, shape.items())?)),
        scalar => Some(scalar),
    })
}

/// A list the patch sets whole: items carrying `$patch` are dropped (as kube-apiserver does) and
/// the directives inside the others are applied.
fn replace_list(patch: Vec<Value>, items: Shape) -> Result<Vec<Value>, Error> {
    let mut list = Vec::with_capacity(patch.len());
    for item in patch {
        match item {
            Value::Object(m) if m.contains_key(PATCH) => {}
            Value::Object(m) => list.extend(merge_map(Object::new(), m, items)?.map(Value::Object)),
            other => list.push(other),
        }
    }
    Ok(list)
}

/// Merges two lists by the field's strategy: a set of scalars, objects matched by merge key, or
/// (no merge strategy) the patch replaces the list.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    shape: Shape,
    strategy: Option<FieldStrategy>,
) -> Result<Vec<Value>, Error> {
    let items = shape.items();
    let Some(strategy) = strategy.filter(FieldStrategy::merges) else {
        return replace_list(patch, items);
    };
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    if !holds_objects(&original, &patch)? {
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for value in original.iter().chain(&patch) {
            if !merged.contains(value) {
                merged.push(value.clone());
            }
        }
        return normalize_order(merged, &patch, &original, None);
    }
    let Some(key) = strategy.merge_key else {
        return Err(bad(format!("cannot merge lists without merge key for {}", items.name.unwrap_or("map"))));
    };

    let mut original = original;
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(PATCH) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let id = item.get(key).ok_or_else(|| no_merge_key(&item, key))?;
                original.retain(|o| o.get(key) != Some(id));
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(bad("merging lists cannot yet be specified in the patch")),
            _ => return Err(bad_patch_type(directive, item.as_object().unwrap_or(&Object::new()))),
        }
    }
    if replace {
        let list = replace_list(rest, items)?;
        for item in &list {
            identity(item, Some(key))?;
        }
        return Ok(list);
    }

    let server_order = original.clone();
    let mut merged = original;
    for item in rest.iter().cloned() {
        let Value::Object(p) = item else { continue };
        let id = p.get(key).cloned().ok_or_else(|| no_merge_key(&Value::Object(p.clone()), key))?;
        match merged.iter().position(|o| o.get(key) == Some(&id)) {
            Some(i) => {
                let o = merged[i].as_object_mut().map(std::mem::take).unwrap_or_default();
                match merge_map(o, p, items)? {
                    Some(m) => merged[i] = Value::Object(m),
                    None => drop(merged.remove(i)),
                }
            }
            None => merged.extend(merge_map(Object::new(), p, items)?.map(Value::Object)),
        }
    }
    normalize_order(merged, &rest, &server_order, Some(key))
}

/// Whether the items of a merging list are objects; lists of lists and mixed lists cannot merge.
fn holds_objects(original: &[Value], patch: &[Value]) -> Result<bool, Error> {
    let mut objects = None;
    for value in original.iter().chain(patch) {
        if value.is_array() {
            return Err(bad("lists of lists are not supported"));
        }
        if *objects.get_or_insert(value.is_object()) != value.is_object() {
            return Err(bad(format!(
                "list element types are not identical: {} {}",
                Value::Array(original.to_vec()),
                Value::Array(patch.to_vec())
            )));
        }
    }
    Ok(objects.unwrap_or(false))
}

/// `$retainKeys`: clears the keys of `original` that are not listed; every key the patch sets
/// must be listed.
fn retain_keys(original: &mut Object, patch: &Object, keys: &Value) -> Result<(), Error> {
    let Value::Array(keys) = keys else { return Err(bad(BAD_RETAIN_KEYS)) };
    let listed = |k: &str| keys.iter().any(|v| v.as_str() == Some(k));
    let unlisted = patch.iter().any(|(k, v)| {
        !v.is_null() && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST) && !k.starts_with(SET_ELEMENT_ORDER) && !listed(k)
    });
    if unlisted {
        return Err(bad(BAD_RETAIN_KEYS));
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder/FIELD`: merges the patch's list for FIELD (if any) and orders the result as
/// `order` says, the items it does not name interleaved by their place in the original list.
fn set_element_order(
    original: &mut Object,
    patch: &mut Object,
    field: &str,
    order: Value,
    shape: Shape,
) -> Result<(), Error> {
    let Value::Array(order) = order else { return Err(bad(BAD_SET_ELEMENT_ORDER)) };
    let (child, strategy) = shape.field(field);
    let merge_key = strategy.and_then(|s| s.merge_key);
    let patch_list = match patch.shift_remove(field) {
        None => None,
        Some(Value::Array(list)) => Some(list),
        Some(_) => return Err(bad(BAD_SET_ELEMENT_ORDER)),
    };
    let original_list = match original.get(field) {
        Some(Value::Array(list)) => Some(list.clone()),
        _ => None,
    };
    if let Some(list) = &patch_list {
        validate_order(list, &order, merge_key)?;
    }
    let merged = match (original_list.clone(), patch_list) {
        (None, None) => return Ok(()),
        (Some(o), None) => o,
        (Some(o), Some(p)) => merge_list(o, p, child, strategy)?,
        (None, Some(p)) => replace_list(p, child.items())?,
    };
    let ordered = normalize_order(merged, &order, &original_list.unwrap_or_default(), merge_key)?;
    original.insert(field.to_string(), Value::Array(ordered));
    Ok(())
}

/// The patch list's items (deletions aside) must appear in `order`, in the same relative order.
fn validate_order(patch: &[Value], order: &[Value], merge_key: Option<&str>) -> Result<(), Error> {
    let items: Vec<&Value> = patch.iter().filter(|v| v.get(PATCH).is_none()).collect();
    let mut next = 0;
    for wanted in order {
        let Some(item) = items.get(next) else { break };
        if identity(item, merge_key)? == identity(wanted, merge_key)? {
            next += 1;
        }
    }
    if next < items.len() {
        return Err(bad(format!(
            "The order in patch list:\n{}\n doesn't match {} list:\n{}\n",
            Value::Array(patch.to_vec()),
            SET_ELEMENT_ORDER.trim_end_matches('/'),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

/// `$deleteFromPrimitiveList/FIELD`: removes the listed scalars from FIELD.
fn delete_from_primitive_list(original: &mut Object, field: &str, remove: Value) -> Result<(), Error> {
    let Value::Array(remove) = remove else { return Err(bad(BAD_PRIMITIVE_LIST)) };
    if let Some(Value::Array(list)) = original.get_mut(field) {
        list.retain(|v| !remove.contains(v));
    }
    Ok(())
}

/// Kubernetes' order for a merged list (`normalizeElementOrder` and `mergeSortedSlice` in
/// apimachinery): the items named in `order` sorted by it, the others sorted by their place in
/// `server_order`; then the two are interleaved, a server-only item going first only when both it
/// and the next named item are in `server_order` and it comes earlier there. So an item new to
/// the list, patched without `$setElementOrder`, comes before the server-only items after it.
fn normalize_order(
    merged: Vec<Value>,
    order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Result<Vec<Value>, Error> {
    let order_ids = order.iter().map(|v| identity(v, merge_key)).collect::<Result<Vec<_>, _>>()?;
    let server_ids = server_order.iter().map(|v| identity(v, merge_key)).collect::<Result<Vec<_>, _>>()?;
    let mut named = Vec::new();
    let mut server_only = Vec::new();
    for item in merged {
        let id = identity(&item, merge_key)?;
        let in_server = server_ids.iter().position(|s| *s == id);
        match order_ids.iter().position(|o| *o == id) {
            Some(in_order) => named.push((in_order, in_server, item)),
            None => server_only.push((in_server, item)),
        }
    }
    named.sort_by_key(|(in_order, _, _)| *in_order);
    server_only.sort_by_key(|(in_server, _)| in_server.unwrap_or(usize::MAX));

    let mut list = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let server_first = match (server_only.peek(), named.peek()) {
            (None, None) => break,
            (Some((Some(left), _)), Some((_, Some(right), _))) => left < right,
            (Some(_), None) => true,
            _ => false,
        };
        let next = if server_first { server_only.next().map(|(_, v)| v) } else { named.next().map(|(_, _, v)| v) };
        list.extend(next);
    }
    Ok(list)
}

/// What identifies a list item: its merge key's value for an object of a keyed list, the item
/// itself otherwise.
fn identity<'a>(item: &'a Value, merge_key: Option<&str>) -> Result<&'a Value, Error> {
    match (item, merge_key) {
        (Value::Object(m), Some(key)) => m.get(key).ok_or_else(|| no_merge_key(item, key)),
        _ => Ok(item),
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(message.into())
}

fn no_merge_key(item: &Value, key: &str) -> Error {
    bad(format!("map: {item} does not contain declared merge key: {key}"))
}

fn bad_patch_type(directive: &Value, map: &Object) -> Error {
    let directive = directive.as_str().map_or_else(|| directive.to_string(), str::to_string);
    bad(format!("unknown patch type: {directive} in map: {}", Value::Object(map.clone())))
}

/// The error encoding/json gives kube-apiserver for a body of the wrong JSON type.
fn not_an_object(body: &Value, go_type: &str) -> Error {
    let kind = match body {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    bad(format!("json: cannot unmarshal {kind} into Go value of type {go_type}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
    const POD: &str = "io.k8s.api.core.v1.Pod";
    const SERVICE: &str = "io.k8s.api.core.v1.Service";

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web", "tier": "frontend"},
                "annotations": {"team": "blue"},
                "finalizers": ["a.example.com/one", "b.example.com/two"]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "web:1",
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                "env": [{"name": "MODE", "value": "prod"}, {"name": "DEBUG", "value": "0"}]
                            },
                            {"name": "sidecar", "image": "proxy:1", "args": ["--port", "9000"]}
                        ],
                        "tolerations": [
                            {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
                            {"key": "spot", "operator": "Exists"}
                        ],
                        "nodeSelector": {"disk": "hdd", "zone": "a"}
                    }
                }
            }
        })
    }

    fn service() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}
                ]
            }
        })
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {
                "containers": [{"name": "app", "image": "web:1", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "emptyDir": {"medium": "Memory"}}, {"name": "tmp", "emptyDir": {}}]
            },
            "status": {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
                ]
            }
        })
    }

    fn smp(target: &Value, patch: Value, definition: &str) -> Value {
        apply_strategic_merge_patch(target, &patch, definition).unwrap()
    }

    fn bad_request(result: Result<Value, Error>) -> String {
        match result {
            Err(Error::BadRequest(message)) => message,
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    fn containers(d: &Value) -> &Vec<Value> {
        d["spec"]["template"]["spec"]["containers"].as_array().unwrap()
    }

    fn names(list: &Value, key: &str) -> Vec<Value> {
        list.as_array().unwrap().iter().map(|v| v[key].clone()).collect()
    }

    fn assert_no_directives(value: &Value) {
        match value {
            Value::Object(m) => {
                for (k, v) in m {
                    assert!(!k.starts_with('$'), "directive {k} left in the result");
                    assert_no_directives(v);
                }
            }
            Value::Array(list) => list.iter().for_each(assert_no_directives),
            _ => {}
        }
    }

    // Merge patch

    #[test]
    fn merge_patch_sets_fields_and_null_removes_them() {
        let patch = json!({"metadata": {"labels": {"tier": null, "track": "stable"}}, "spec": {"replicas": 5}});
        let result = apply_merge_patch(&deployment(), &patch).unwrap();
        assert_eq!(result["metadata"]["labels"], json!({"app": "web", "track": "stable"}));
        assert_eq!(result["spec"]["replicas"], 5);
        assert_eq!(result["spec"]["template"], deployment()["spec"]["template"]);
    }

    #[test]
    fn merge_patch_replaces_lists_whole() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}});
        let result = apply_merge_patch(&deployment(), &patch).unwrap();
        assert_eq!(containers(&result), &vec![json!({"name": "app", "image": "web:2"})]);
    }

    #[test]
    fn merge_patch_must_be_an_object() {
        let message = bad_request(apply_merge_patch(&deployment(), &json!([{"op": "add"}])));
        assert_eq!(message, "json: cannot unmarshal array into Go value of type map[string]interface {}");
        bad_request(apply_merge_patch(&deployment(), &json!("spec")));
        bad_request(apply_merge_patch(&deployment(), &Value::Null));
    }

    #[test]
    fn empty_merge_patch_changes_nothing() {
        assert_eq!(apply_merge_patch(&deployment(), &json!({})).unwrap(), deployment());
    }

    // JSON patch

    #[test]
    fn json_patch_adds_replaces_and_removes() {
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 4},
            {"op": "add", "path": "/metadata/labels/track", "value": "canary"},
            {"op": "remove", "path": "/metadata/annotations/team"},
            {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "logger", "image": "log:1"}},
            {"op": "add", "path": "/spec/template/spec/containers/0/env/0", "value": {"name": "FIRST", "value": "1"}}
        ]);
        let result = apply_json_patch(&deployment(), &patch).unwrap();
        assert_eq!(result["spec"]["replicas"], 4);
        assert_eq!(result["metadata"]["labels"]["track"], "canary");
        assert_eq!(result["metadata"]["annotations"], json!({}));
        assert_eq!(names(&result["spec"]["template"]["spec"]["containers"], "name"), ["app", "sidecar", "logger"]);
        assert_eq!(names(&containers(&result)[0]["env"], "name"), ["FIRST", "MODE", "DEBUG"]);
    }

    #[test]
    fn json_patch_failing_test_is_a_bad_request() {
        let patch = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 9},
            {"op": "test", "path": "/spec/replicas", "value": 3}
        ]);
        let message = bad_request(apply_json_patch(&deployment(), &patch));
        assert_eq!(message, "testing value /spec/replicas failed: test failed");
    }

    #[test]
    fn json_patch_on_a_missing_path_is_a_bad_request() {
        let remove = json!([{"op": "remove", "path": "/spec/paused"}]);
        let message = bad_request(apply_json_patch(&deployment(), &remove));
        assert!(message.contains("remove operation does not apply") && message.contains("/spec/paused"), "{message}");
        let replace = json!([{"op": "replace", "path": "/spec/nothing/here", "value": 1}]);
        assert!(bad_request(apply_json_patch(&deployment(), &replace)).contains("/spec/nothing/here"));
        let out_of_range = json!([{"op": "add", "path": "/spec/template/spec/containers/7", "value": {}}]);
        bad_request(apply_json_patch(&deployment(), &out_of_range));
        let from = json!([{"op": "move", "from": "/spec/missing", "path": "/spec/other"}]);
        assert!(bad_request(apply_json_patch(&deployment(), &from)).contains("from path: \"/spec/missing\""));
    }

    #[test]
    fn json_patch_must_be_an_array_of_operations() {
        let message = bad_request(apply_json_patch(&deployment(), &json!({"spec": {"replicas": 1}})));
        assert_eq!(message, "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
        let message = bad_request(apply_json_patch(&deployment(), &json!([{"op": "frobnicate", "path": "/spec"}])));
        assert!(message.starts_with("invalid JSON patch"), "{message}");
        bad_request(apply_json_patch(&deployment(), &json!([{"op": "add", "value": 1}])));
    }

    #[test]
    fn json_patch_move_and_copy() {
        let patch = json!([
            {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/annotations/app"},
            {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/annotations/tier"}
        ]);
        let result = apply_json_patch(&deployment(), &patch).unwrap();
        assert_eq!(result["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(result["metadata"]["annotations"], json!({"team": "blue", "app": "web", "tier": "frontend"}));
    }

    // Strategic merge patch: maps and lists without a strategy

    #[test]
    fn strategic_null_removes_a_label_and_maps_merge() {
        let patch = json!({"metadata": {"labels": {"tier": null, "track": "stable"}, "annotations": {"owner": "me"}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(result["metadata"]["labels"], json!({"app": "web", "track": "stable"}));
        assert_eq!(result["metadata"]["annotations"], json!({"team": "blue", "owner": "me"}));
        assert_eq!(result["spec"], deployment()["spec"]);
    }

    #[test]
    fn strategic_tolerations_are_replaced_atomically() {
        let patch = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "gpu", "operator": "Exists"}]}}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(result["spec"]["template"]["spec"]["tolerations"], json!([{"key": "gpu", "operator": "Exists"}]));
    }

    #[test]
    fn strategic_args_of_a_container_are_replaced() {
        let patch =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "args": ["--verbose"]}]}}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(containers(&result)[1], json!({"name": "sidecar", "image": "proxy:1", "args": ["--verbose"]}));
    }

    #[test]
    fn strategic_empty_patch_returns_the_target() {
        assert_eq!(smp(&deployment(), json!({}), DEPLOYMENT), deployment());
        assert_eq!(smp(&pod(), json!({}), POD), pod());
    }

    #[test]
    fn strategic_patch_of_the_same_values_returns_the_target() {
        let patch = json!({
            "metadata": {"labels": {"app": "web"}, "finalizers": ["b.example.com/two"]},
            "spec": {
                "replicas": 2,
                "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                    "containers": [{"name": "app", "image": "web:1", "env": [{"name": "DEBUG", "value": "0"}]}],
                    "tolerations": deployment()["spec"]["template"]["spec"]["tolerations"].clone()
                }}
            }
        });
        assert_eq!(smp(&deployment(), patch, DEPLOYMENT), deployment());
    }

    #[test]
    fn strategic_scalars_and_mismatched_types_are_replaced() {
        let patch = json!({"spec": {"replicas": 3, "paused": true, "strategy": "Recreate"}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(result["spec"]["replicas"], 3);
        assert_eq!(result["spec"]["paused"], true);
        assert_eq!(result["spec"]["strategy"], "Recreate");
    }

    // Strategic merge patch: lists merged by key

    #[test]
    fn strategic_containers_merge_by_name_keeping_the_others() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        let before = deployment();
        let mut app = containers(&before)[0].clone();
        app["image"] = json!("web:2");
        assert_eq!(containers(&result), &vec![app, containers(&before)[1].clone()]);
    }

    #[test]
    fn env_added_by_kubectl_patch_survives_a_later_apply() {
        // kubectl patch deployment web -p '{"spec":...{"containers":[{"name":"app","env":[...]}]}}'
        let patched = smp(
            &deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "FEATURE_X", "value": "on"}]}
            ]}}}}),
            DEPLOYMENT,
        );
        assert_eq!(names(&containers(&patched)[0]["env"], "name"), ["FEATURE_X", "MODE", "DEBUG"]);

        // kubectl apply with the image changed from web:1 to web:2: the three-way patch it computes
        // (last-applied vs new config vs live) only carries the image, the element order and the
        // new last-applied annotation.
        let last_applied = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{}}"#;
        let apply = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                "containers": [{"image": "web:2", "name": "app"}]
            }}}
        });
        let result = smp(&patched, apply, DEPLOYMENT);
        let app = &containers(&result)[0];
        assert_eq!(app["image"], "web:2");
        assert_eq!(app["env"][0], json!({"name": "FEATURE_X", "value": "on"}));
        assert_eq!(app["ports"], json!([{"containerPort": 8080, "protocol": "TCP"}]));
        assert_eq!(names(&result["spec"]["template"]["spec"]["containers"], "name"), ["app", "sidecar"]);
        assert_eq!(result["metadata"]["annotations"]["team"], "blue");
        assert_no_directives(&result);
    }

    #[test]
    fn service_ports_merge_by_port() {
        let patch = json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}});
        let result = smp(&service(), patch, SERVICE);
        assert_eq!(
            result["spec"]["ports"],
            json!([
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 9443, "protocol": "TCP"}
            ])
        );
    }

    #[test]
    fn service_port_added_with_set_element_order_goes_where_ordered() {
        let patch = json!({"spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 8080}, {"port": 443}],
            "ports": [{"name": "admin", "port": 8080, "targetPort": 8081}]
        }});
        let result = smp(&service(), patch, SERVICE);
        assert_eq!(names(&result["spec"]["ports"], "port"), [80, 8080, 443]);
        assert_eq!(result["spec"]["ports"][1], json!({"name": "admin", "port": 8080, "targetPort": 8081}));
    }

    #[test]
    fn item_new_to_a_list_without_order_comes_first_as_in_kubernetes() {
        let patch = json!({"spec": {"ports": [{"name": "admin", "port": 8080}]}});
        assert_eq!(names(&smp(&service(), patch, SERVICE)["spec"]["ports"], "port"), [8080, 80, 443]);
        // A new item after an existing one in the patch follows it.
        let patch = json!({"spec": {"ports": [{"port": 80, "name": "web"}, {"name": "admin", "port": 8080}]}});
        assert_eq!(names(&smp(&service(), patch, SERVICE)["spec"]["ports"], "port"), [80, 8080, 443]);
    }

    #[test]
    fn set_element_order_alone_reorders() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]
        }}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(names(&result["spec"]["template"]["spec"]["containers"], "name"), ["sidecar", "app"]);
        assert_eq!(containers(&result)[1], containers(&deployment())[0]);
    }

    #[test]
    fn set_element_order_for_a_list_the_object_lacks() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/initContainers": [{"name": "migrate"}, {"name": "warm"}],
            "initContainers": [{"name": "migrate", "image": "db:1"}, {"name": "warm", "image": "cache:1"}]
        }}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(names(&result["spec"]["template"]["spec"]["initContainers"], "name"), ["migrate", "warm"]);
        assert_no_directives(&result);
    }

    #[test]
    fn set_element_order_must_agree_with_the_patch_list() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "sidecar", "image": "proxy:2"}, {"name": "app", "image": "web:2"}]
        }}}});
        let message = bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
        assert!(message.starts_with("The order in patch list:"), "{message}");
        let patch = json!({"spec": {"template": {"spec": {"$setElementOrder/containers": {"name": "app"}}}}});
        let message = bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
        assert_eq!(message, "invalid patch format of setElementOrder list");
    }

    #[test]
    fn env_entry_deleted_with_patch_delete() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "env": [{"$patch": "delete", "name": "DEBUG"}, {"name": "LEVEL", "value": "info"}]}
        ]}}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(
            containers(&result)[0]["env"],
            json!([{"name": "LEVEL", "value": "info"}, {"name": "MODE", "value": "prod"}])
        );
        assert_no_directives(&result);
    }

    #[test]
    fn kubectl_apply_removing_a_container_and_an_env_var() {
        // The new config drops the sidecar and DEBUG: kubectl sends deletions after the changes.
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [
                {"$setElementOrder/env": [{"name": "MODE"}], "name": "app", "env": [{"$patch": "delete", "name": "DEBUG"}]},
                {"$patch": "delete", "name": "sidecar"}
            ]
        }}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(names(&result["spec"]["template"]["spec"]["containers"], "name"), ["app"]);
        assert_eq!(containers(&result)[0]["env"], json!([{"name": "MODE", "value": "prod"}]));
        assert_no_directives(&result);
    }

    #[test]
    fn patch_replace_in_a_list_replaces_the_list() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "env": [{"$patch": "replace"}, {"name": "ONLY", "value": "1"}]}
        ]}}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(containers(&result)[0]["env"], json!([{"name": "ONLY", "value": "1"}]));
        assert_eq!(containers(&result)[0]["image"], "web:1");
        assert_no_directives(&result);
    }

    #[test]
    fn patch_replace_in_a_map_replaces_the_map() {
        let patch = json!({"spec": {"template": {"spec": {"nodeSelector": {"$patch": "replace", "disk": "ssd"}}}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(result["spec"]["template"]["spec"]["nodeSelector"], json!({"disk": "ssd"}));
        let patch = json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}});
        let merged = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(merged["spec"]["template"]["spec"]["nodeSelector"], json!({"disk": "ssd", "zone": "a"}));
    }

    #[test]
    fn patch_delete_in_a_map_deletes_it() {
        let patch = json!({"spec": {"strategy": {"$patch": "delete"}, "template": {"spec": {"affinity": {"$patch": "delete"}}}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert!(result["spec"].get("strategy").is_none());
        assert!(result["spec"]["template"]["spec"].get("affinity").is_none());
        assert_eq!(result["spec"]["replicas"], 2);
    }

    #[test]
    fn unknown_patch_directive_is_a_bad_request() {
        let patch = json!({"spec": {"strategy": {"$patch": "explode"}}});
        let message = bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
        assert!(message.starts_with("unknown patch type: explode in map:"), "{message}");
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "explode", "name": "app"}]}}}});
        bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge", "name": "app"}]}}}});
        let message = bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
        assert_eq!(message, "merging lists cannot yet be specified in the patch");
    }

    #[test]
    fn list_item_without_its_merge_key_is_a_bad_request() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "web:3"}]}}}});
        let message = bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
        assert_eq!(message, r#"map: {"image":"web:3"} does not contain declared merge key: name"#);
        let patch = json!({"spec": {"ports": [{"$patch": "delete", "name": "http"}]}});
        let message = bad_request(apply_strategic_merge_patch(&service(), &patch, SERVICE));
        assert!(message.ends_with("does not contain declared merge key: port"), "{message}");
    }

    #[test]
    fn mixed_or_nested_lists_cannot_merge() {
        let patch = json!({"spec": {"template": {"spec": {"containers": ["app"]}}}});
        bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
        let patch = json!({"metadata": {"finalizers": [["nested"]]}});
        let message = bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
        assert_eq!(message, "lists of lists are not supported");
    }

    #[test]
    fn pod_status_conditions_merge_by_type() {
        let patch = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "reason": null}]}});
        let result = smp(&pod(), patch, POD);
        assert_eq!(result["status"]["phase"], "Running");
        assert_eq!(
            result["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}])
        );
    }

    #[test]
    fn new_list_takes_the_patch_without_its_directives() {
        let patch = json!({"spec": {"template": {"spec": {"imagePullSecrets": [
            {"name": "registry"},
            {"$patch": "delete", "name": "old"},
            {"name": "mirror", "extra": null}
        ]}}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(
            result["spec"]["template"]["spec"]["imagePullSecrets"],
            json!([{"name": "registry"}, {"name": "mirror"}])
        );
    }

    #[test]
    fn new_map_takes_the_patch_without_nulls_or_directives() {
        let patch = json!({"spec": {"template": {"spec": {"securityContext": {
            "runAsUser": 1000, "runAsGroup": null, "seccompProfile": {"$patch": "replace", "type": "RuntimeDefault"}
        }}}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(
            result["spec"]["template"]["spec"]["securityContext"],
            json!({"runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}})
        );
    }

    // $retainKeys

    #[test]
    fn retain_keys_switching_rolling_update_to_recreate_drops_rolling_update() {
        // What kubectl apply sends when the strategy changes to Recreate.
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(result["spec"]["strategy"], json!({"type": "Recreate"}));
        // The directive alone clears the unlisted keys too.
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        assert_eq!(smp(&deployment(), patch, DEPLOYMENT)["spec"]["strategy"], json!({"type": "Recreate"}));
        // Without it the strategy merges and rollingUpdate stays.
        let patch = json!({"spec": {"strategy": {"type": "Recreate"}}});
        assert!(smp(&deployment(), patch, DEPLOYMENT)["spec"]["strategy"]["rollingUpdate"].is_object());
    }

    #[test]
    fn retain_keys_in_a_volume_switches_its_source() {
        let patch = json!({"spec": {"volumes": [
            {"$retainKeys": ["configMap", "name"], "name": "data", "configMap": {"name": "settings"}}
        ]}});
        let result = smp(&pod(), patch, POD);
        assert_eq!(
            result["spec"]["volumes"],
            json!([{"name": "data", "configMap": {"name": "settings"}}, {"name": "tmp", "emptyDir": {}}])
        );
    }

    #[test]
    fn retain_keys_must_list_every_key_the_patch_sets() {
        let patch =
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "RollingUpdate", "rollingUpdate": {}}}});
        let message = bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
        assert_eq!(message, "invalid patch format of retainKeys");
        let patch = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
        bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
    }

    // Primitive lists merged as sets

    #[test]
    fn finalizers_merge_as_a_set() {
        let patch = json!({"metadata": {"finalizers": ["b.example.com/two", "c.example.com/three"]}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(
            result["metadata"]["finalizers"],
            json!(["a.example.com/one", "b.example.com/two", "c.example.com/three"])
        );
    }

    #[test]
    fn finalizers_removed_with_delete_from_primitive_list() {
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/one", "not-there"]}});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(result["metadata"]["finalizers"], json!(["b.example.com/two"]));
        assert_no_directives(&result);
    }

    #[test]
    fn finalizers_as_kubectl_apply_changes_them() {
        // [one, two] → [two, three]
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["b.example.com/two", "c.example.com/three"],
            "$deleteFromPrimitiveList/finalizers": ["a.example.com/one"],
            "finalizers": ["c.example.com/three"]
        }});
        let result = smp(&deployment(), patch, DEPLOYMENT);
        assert_eq!(result["metadata"]["finalizers"], json!(["b.example.com/two", "c.example.com/three"]));
        assert_no_directives(&result);
    }

    #[test]
    fn delete_from_primitive_list_must_be_a_list() {
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a.example.com/one"}});
        let message = bad_request(apply_strategic_merge_patch(&deployment(), &patch, DEPLOYMENT));
        assert_eq!(message, "invalid patch format of primitive list");
    }

    #[test]
    fn finalizers_merge_through_wharf_function_schema() {
        let function = json!({
            "apiVersion": "wharf.dev/v1", "kind": "Function",
            "metadata": {"name": "hello", "finalizers": ["wharf.dev/gateway"]},
            "spec": {"image": "hello:1", "args": ["a"]}
        });
        let patch = json!({"metadata": {"finalizers": ["wharf.dev/scaler"]}, "spec": {"args": ["b"]}});
        let result = smp(&function, patch, "dev.wharf.v1.Function");
        assert_eq!(result["metadata"]["finalizers"], json!(["wharf.dev/scaler", "wharf.dev/gateway"]));
        assert_eq!(result["spec"]["args"], json!(["b"]));
    }

    // Shapes and edge cases

    #[test]
    fn unknown_definition_merges_maps_and_replaces_lists() {
        let object =
            json!({"spec": {"items": [{"name": "a", "v": 1}], "map": {"x": 1}}, "metadata": {"finalizers": ["f"]}});
        let patch =
            json!({"spec": {"items": [{"name": "a", "v": 2}], "map": {"y": 2}}, "metadata": {"finalizers": ["g"]}});
        let result = smp(&object, patch, "example.com.v1.Widget");
        assert_eq!(
            result,
            json!({"spec": {"items": [{"name": "a", "v": 2}], "map": {"x": 1, "y": 2}}, "metadata": {"finalizers": ["g"]}})
        );
    }

    #[test]
    fn strategic_patch_must_be_an_object() {
        let message = bad_request(apply_strategic_merge_patch(&deployment(), &json!(["x"]), DEPLOYMENT));
        assert_eq!(message, "json: cannot unmarshal array into Go value of type map[string]interface {}");
    }

    #[test]
    fn replacing_the_whole_object() {
        let patch = json!({"$patch": "replace", "kind": "Deployment", "metadata": {"name": "web"}});
        assert_eq!(smp(&deployment(), patch, DEPLOYMENT), json!({"kind": "Deployment", "metadata": {"name": "web"}}));
    }

    #[test]
    fn schema_shapes_resolve_through_wrappers() {
        let deployment = Shape { name: Some(DEPLOYMENT), schema: schema::definition(DEPLOYMENT) };
        let (spec, _) = deployment.field("spec");
        assert_eq!(spec.name, Some("io.k8s.api.apps.v1.DeploymentSpec"));
        let (template, _) = spec.field("template");
        let (pod_spec, _) = template.field("spec");
        let (containers, strategy) = pod_spec.field("containers");
        assert_eq!(strategy.and_then(|s| s.merge_key), Some("name"));
        assert_eq!(containers.items().name, Some("io.k8s.api.core.v1.Container"));
        let (labels, _) = spec.field("selector").0.field("matchLabels");
        assert_eq!(labels.name, None);
        let function =
            Shape { name: Some("dev.wharf.v1.FunctionSpec"), schema: schema::definition("dev.wharf.v1.FunctionSpec") };
        assert_eq!(function.field("resources").0.name, Some("io.k8s.api.core.v1.ResourceRequirements"));
    }
}
