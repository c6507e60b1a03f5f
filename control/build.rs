//! Derives the Kubernetes protobuf field table that `src/api/protobuf.rs` decodes with from the
//! prost sources of the `k8s-pb` crate (Kubernetes' `.proto` files compiled by prost-build):
//! every message of `k8s_pb::api` and `k8s_pb::apimachinery` with each field's number, Rust name,
//! label and type. The source is found through `cargo metadata`, so it is the exact `k8s-pb`
//! version that Cargo.lock pins, wherever Cargo keeps it (registry cache, vendor directory, ...).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

use syn::punctuated::Punctuated;
use syn::{Fields, GenericArgument, Item, LitStr, PathArguments, Token, Type};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let (src, lock) = k8s_pb_source();
    println!("cargo::rerun-if-changed={}", lock.display());
    println!("cargo::rerun-if-changed={}", src.display());

    let mut messages = Vec::new();
    for top in ["apimachinery", "api"] {
        collect_dir(&src.join(top), &[top.to_string()], &mut messages);
    }
    assert!(!messages.is_empty(), "no prost messages found under {}", src.display());
    let out = emit(&messages);
    let path = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("protobuf_table.rs");
    fs::write(&path, out).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// `k8s-pb`'s `src` directory and the Cargo.lock that pins it, from `cargo metadata`: offline
/// first (everything is normally downloaded already), then online, as a plain `cargo build` on a
/// fresh machine has not fetched the dev-dependencies that `cargo metadata` also lists.
fn k8s_pb_source() -> (PathBuf, PathBuf) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let target = env::var("TARGET").expect("TARGET");
    let run = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--filter-platform", &target, "--manifest-path"]).arg(&manifest);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().unwrap_or_else(|e| panic!("running `cargo metadata` to find k8s-pb's source: {e}"))
    };
    let mut output = run(true);
    if !output.status.success() {
        output = run(false);
    }
    if !output.status.success() {
        panic!(
            "`cargo metadata` failed, so the k8s-pb source the protobuf decoder is generated from cannot be \
             found (run `cargo fetch` and retry):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("`cargo metadata` printed invalid JSON");
    let packages = meta["packages"].as_array().expect("cargo metadata: packages");
    let manifest_of =
        |id: &str| packages.iter().find(|p| p["id"] == id).and_then(|p| p["manifest_path"].as_str()).map(PathBuf::from);
    let this = packages
        .iter()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        .and_then(|p| p["id"].as_str())
        .expect("cargo metadata does not list this package");
    let node = meta["resolve"]["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == this))
        .expect("cargo metadata: no resolve node for this package");
    let k8s_pb = node["deps"]
        .as_array()
        .and_then(|deps| deps.iter().find(|d| d["name"] == "k8s_pb"))
        .and_then(|d| d["pkg"].as_str())
        .and_then(manifest_of)
        .expect("this package must depend on k8s-pb (as a dev-dependency): its sources define the protobuf table");
    let lock =
        PathBuf::from(meta["workspace_root"].as_str().expect("cargo metadata: workspace_root")).join("Cargo.lock");
    let src = k8s_pb.parent().expect("k8s-pb manifest directory").join("src");
    assert!(src.is_dir(), "k8s-pb source directory {} is missing", src.display());
    (src, lock)
}

struct Message {
    /// Module path inside k8s-pb, e.g. `["api", "core", "v1"]`.
    module: Vec<String>,
    name: String,
    fields: Vec<Field>,
}

struct Field {
    tag: u32,
    name: String,
    /// `Single`, `Repeated` or `Map(key)`, as the table's `Label` spells it.
    label: String,
    /// Scalar type name (`Int32`, `String`, ...) or, for messages, the absolute Rust path.
    ty: FieldType,
}

enum FieldType {
    Scalar(&'static str),
    Message(String),
}

fn collect_dir(dir: &Path, module: &[String], out: &mut Vec<Message>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("UTF-8 file name").to_string();
        if path.is_dir() {
            collect_dir(&path, &[module, &[stem]].concat(), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let file_module = if stem == "mod" { module.to_vec() } else { [module, &[stem]].concat() };
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
            collect_items(&file.items, &file_module, out);
        }
    }
}

fn collect_items(items: &[Item], module: &[String], out: &mut Vec<Message>) {
    for item in items {
        match item {
            Item::Struct(s) => {
                if !derives_message(&s.attrs) {
                    continue;
                }
                let fields = match &s.fields {
                    Fields::Named(named) => named.named.iter().filter_map(|f| field(f, module, &s.ident)).collect(),
                    _ => Vec::new(),
                };
                out.push(Message { module: module.to_vec(), name: s.ident.to_string(), fields });
            }
            // prost puts nested messages in a module named after their parent.
            Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    collect_items(items, &[module, &[m.ident.to_string()]].concat(), out);
                }
            }
            _ => {}
        }
    }
}

/// Whether the struct has `#[derive(..., ::prost::Message)]`.
fn derives_message(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().filter(|a| a.path().is_ident("derive")).any(|a| {
        a.parse_args_with(Punctuated::<syn::Path, Token![,]>::parse_terminated)
            .is_ok_and(|paths| paths.iter().any(|p| p.segments.last().is_some_and(|s| s.ident == "Message")))
    })
}

/// The field described by a `#[prost(...)]` attribute, if the field has one.
fn field(f: &syn::Field, module: &[String], message: &syn::Ident) -> Option<Field> {
    let attr = f.attrs.iter().find(|a| a.path().is_ident("prost"))?;
    let name = f.ident.as_ref().expect("named field").to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name).to_string();
    let (mut kind, mut tag, mut repeated, mut map) = (None::<String>, None::<u32>, false, None::<String>);
    attr.parse_nested_meta(|meta| {
        let key = meta.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
        match key.as_str() {
            "optional" | "required" | "boxed" => {}
            "repeated" => repeated = true,
            "tag" => tag = Some(meta.value()?.parse::<LitStr>()?.value().parse().expect("numeric tag")),
            "packed" => {
                meta.value()?.parse::<LitStr>()?;
            }
            "btree_map" | "hash_map" | "map" => map = Some(meta.value()?.parse::<LitStr>()?.value()),
            "bytes" | "string" | "enumeration" => {
                if meta.input.peek(Token![=]) {
                    meta.value()?.parse::<LitStr>()?;
                }
                kind = Some(if key == "enumeration" { "int32".into() } else { key });
            }
            "oneof" => panic!("{message}.{name}: prost oneof fields are not supported by the protobuf table"),
            _ => kind = Some(key),
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{message}.{name}: bad #[prost] attribute: {e}"));
    let tag = tag.unwrap_or_else(|| panic!("{message}.{name}: #[prost] attribute without a tag"));
    let (label, ty) = match map {
        Some(spec) => {
            let (key, value) = spec.split_once(',').unwrap_or_else(|| panic!("{message}.{name}: map `{spec}`"));
            let label = format!("Map(Ty::{})", scalar(key.trim(), message, &name));
            (label, field_type(value.trim(), &f.ty, module, message, &name))
        }
        None => {
            let kind = kind.unwrap_or_else(|| panic!("{message}.{name}: #[prost] attribute without a type"));
            let label = if repeated { "Repeated" } else { "Single" };
            (label.to_string(), field_type(&kind, &f.ty, module, message, &name))
        }
    };
    Some(Field { tag, name, label, ty })
}

fn field_type(kind: &str, ty: &Type, module: &[String], message: &syn::Ident, name: &str) -> FieldType {
    if kind == "message" || kind == "group" {
        FieldType::Message(message_path(ty, module).unwrap_or_else(|| panic!("{message}.{name}: unresolvable type")))
    } else {
        FieldType::Scalar(scalar(kind, message, name))
    }
}

fn scalar(kind: &str, message: &syn::Ident, name: &str) -> &'static str {
    match kind {
        "double" => "Double",
        "float" => "Float",
        "int32" => "Int32",
        "int64" => "Int64",
        "uint32" => "Uint32",
        "uint64" => "Uint64",
        "sint32" => "Sint32",
        "sint64" => "Sint64",
        "fixed32" => "Fixed32",
        "fixed64" => "Fixed64",
        "sfixed32" => "Sfixed32",
        "sfixed64" => "Sfixed64",
        "bool" => "Bool",
        "string" => "String",
        "bytes" => "Bytes",
        other => panic!("{message}.{name}: unsupported protobuf type `{other}`"),
    }
}

/// The absolute module path (`api::core::v1::PodSpec`) of the message inside a field's type,
/// looking through `Option`, `Vec`, `Box` and map values.
fn message_path(ty: &Type, module: &[String]) -> Option<String> {
    let Type::Path(tp) = ty else { return None };
    let last = tp.path.segments.last()?;
    if matches!(last.ident.to_string().as_str(), "Option" | "Vec" | "Box" | "BTreeMap" | "HashMap") {
        let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
        let inner = args.args.iter().rev().find_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })?;
        return message_path(inner, module);
    }
    let mut path = module.to_vec();
    for (i, segment) in tp.path.segments.iter().enumerate() {
        match segment.ident.to_string().as_str() {
            "crate" if i == 0 => path.clear(),
            "self" if i == 0 => {}
            "super" => {
                path.pop()?;
            }
            ident => path.push(ident.to_string()),
        }
    }
    Some(path.join("::"))
}

fn emit(messages: &[Message]) -> String {
    let index: HashMap<String, usize> =
        messages.iter().enumerate().map(|(i, m)| (format!("{}::{}", m.module.join("::"), m.name), i)).collect();
    let mut out = String::from("// @generated by build.rs from the k8s-pb crate's prost sources.\n\n");
    out.push_str("static MESSAGES: &[Message] = &[\n");
    for m in messages {
        let package = format!("io.k8s.{}", m.module.join(".").replace('_', "-"));
        writeln!(out, "    Message {{ package: {package:?}, name: {:?}, fields: &[", m.name).unwrap();
        let mut fields: Vec<&Field> = m.fields.iter().collect();
        fields.sort_by_key(|f| f.tag);
        for f in fields {
            let ty = match &f.ty {
                FieldType::Scalar(s) => format!("Ty::{s}"),
                FieldType::Message(path) => {
                    let i = index.get(path).unwrap_or_else(|| panic!("{}.{}: unknown message {path}", m.name, f.name));
                    format!("Ty::Message({i})")
                }
            };
            let label = &f.label;
            writeln!(out, "        Field {{ tag: {}, name: {:?}, label: Label::{label}, ty: {ty} }},", f.tag, f.name)
                .unwrap();
        }
        out.push_str("    ] },\n");
    }
    out.push_str("];\n");
    out
}
