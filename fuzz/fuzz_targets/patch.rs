//! The three PATCH bodies (strategic merge, JSON merge, JSON patch) applied to a fuzzed object of
//! a kind picked by byte 0; the object and the patch are two JSON documents separated by a 0xff
//! byte (which never occurs in UTF-8). A patched object goes on through defaults and validation,
//! as a PATCH request does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wharf_control::api::patch;
use wharf_control::registry::fields;

fuzz_target!(|data: &[u8]| {
    let [kind, rest @ ..] = data else { return };
    let Some(split) = rest.iter().position(|b| *b == 0xff) else { return };
    let (object, patch_body) = (&rest[..split], &rest[split + 1..]);
    let Ok((object, _)) = fields::parse_json(object) else { return };
    let Ok((patch_body, _)) = fields::parse_json(patch_body) else { return };
    let resource = wharf_fuzz::kind(*kind);
    let definitions = [resource.definition, "io.k8s.api.autoscaling.v1.Scale", "io.k8s.api.apps.v1.Deployment"];
    let definition = definitions[(*kind as usize / 64) % definitions.len()];
    let results = [
        patch::apply_strategic_merge_patch(&object, &patch_body, definition),
        patch::apply_merge_patch(&object, &patch_body),
        patch::apply_json_patch(&object, &patch_body),
    ];
    for patched in results.into_iter().flatten() {
        let _ = fields::unknown_fields(definition, &patched);
        if let Value::Object(_) = patched {
            wharf_fuzz::default_and_validate(resource, patched);
        }
    }
});
