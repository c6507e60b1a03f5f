//! Label and field selectors as `?labelSelector=` / `?fieldSelector=` and as JSON
//! (`metav1.LabelSelector`), matched against objects. Byte 0 picks the kind; the rest, as text,
//! is the selector, then after the first newline a JSON object to match (labels or a whole
//! object), which is also read as a JSON label selector.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use wharf_control::registry::selector::{FieldSelector, LabelSelector};

fuzz_target!(|data: &[u8]| {
    let [kind, rest @ ..] = data else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let (selector, object) = text.split_once('\n').unwrap_or((text, ""));
    let object: Value = serde_json::from_str(object).unwrap_or_else(|_| {
        json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "1"}},
               "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    });
    let labels = object.get("metadata").and_then(|m| m.get("labels"));
    let resource = wharf_fuzz::kind(*kind);
    if let Ok(s) = LabelSelector::parse(selector) {
        let _ = s.is_empty();
        let _ = s.matches(labels);
        let _ = s.matches(Some(&object));
        let _ = s.matches(None);
    }
    if let Ok(s) = FieldSelector::parse(selector, resource) {
        let _ = s.is_empty();
        let _ = s.pinned_name();
        let _ = s.matches(resource, &object);
    }
    if let Ok(s) = LabelSelector::from_json(&object) {
        let _ = s.matches(labels);
    }
    if let Some(sel) = object.get("selector")
        && let Ok(s) = LabelSelector::from_json(sel)
    {
        let _ = s.matches(labels);
    }
});
