//! What a module must export to be a transform, checked when it is linked,
//! before anything runs, so a module built against another contract says
//! so in words ("`transform` takes (batch: string); the contract says
//! (batch: list<u8>)") instead of failing its first batch.
//!
//! Compatibility rule: the host's contract is `fvhost:transform@0.1.0`, and a
//! module built for another version links when that version is
//! semver-compatible as wasmtime matches versions: the same major version,
//! and for 0.x the same minor (a module built for `0.1.9` runs here; `0.2.0`
//! and `1.0.0` do not). Patch releases of the contract only add what older
//! hosts can ignore; anything else changes the minor (0.x) or major version.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};

/// The contract version this host implements.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The exported interface every transform implements.
pub const TRANSFORMER_INTERFACE: &str = "fvhost:transform/transformer@0.1.0";

/// The functions of [`TRANSFORMER_INTERFACE`], as `name(params) -> result`.
const EXPECTED: [(&str, &str); 2] = [
    (
        "init",
        "(config: list<tuple<string, string>>) -> result<_, string>",
    ),
    (
        "transform",
        "(batch: list<u8>) -> result<record { batch: list<u8>, rejected: list<record { row: u32, reason: string }> }, string>",
    ),
];

/// Checks that `component` exports the transformer interface with the
/// contract's signatures; the error says what differs.
pub fn check(engine: &Engine, component: &Component) -> Result<(), String> {
    let Some((ComponentItem::ComponentInstance(_), interface)) =
        component.get_export(None, TRANSFORMER_INTERFACE)
    else {
        return Err(format!(
            "it does not export `{TRANSFORMER_INTERFACE}` (exports: {}); a module must be built against \
             fvhost:transform {CONTRACT_VERSION} or a compatible 0.1.x version",
            export_names(engine, component)
        ));
    };
    let mut differences = Vec::new();
    for (name, expected) in EXPECTED {
        match component.get_export(Some(&interface), name) {
            Some((ComponentItem::ComponentFunc(func), _)) => {
                let found = signature(&func);
                if found != expected {
                    differences.push(format!("`{name}` is {found}; the contract says {expected}"));
                }
            }
            _ => differences.push(format!("`{name}` is missing")),
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "its `{TRANSFORMER_INTERFACE}` differs from the contract: {}",
            differences.join("; ")
        ))
    }
}

fn export_names(engine: &Engine, component: &Component) -> String {
    let component_type = component.component_type();
    let names: Vec<&str> = component_type
        .exports(engine)
        .map(|(name, _)| name)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// `(name: type, ...) -> result` in WIT's spelling.
fn signature(func: &ComponentFunc) -> String {
    let params: Vec<String> = func
        .params()
        .map(|(name, ty)| format!("{name}: {}", type_name(&ty)))
        .collect();
    let results: Vec<String> = func.results().map(|ty| type_name(&ty)).collect();
    match results.as_slice() {
        [] => format!("({})", params.join(", ")),
        [one] => format!("({}) -> {one}", params.join(", ")),
        many => format!("({}) -> ({})", params.join(", "), many.join(", ")),
    }
}

fn type_name(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", type_name(&list.ty())),
        Type::Record(record) => {
            let fields: Vec<String> = record
                .fields()
                .map(|field| format!("{}: {}", field.name, type_name(&field.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(tuple) => {
            let types: Vec<String> = tuple.types().map(|t| type_name(&t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        Type::Option(option) => format!("option<{}>", type_name(&option.ty())),
        Type::Result(result) => {
            let part = |t: Option<Type>| t.map_or("_".to_string(), |t| type_name(&t));
            format!("result<{}, {}>", part(result.ok()), part(result.err()))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or("another type")
            .to_lowercase(),
    }
}
