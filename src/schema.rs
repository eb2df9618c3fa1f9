//! JSON Schemas of the changeset and the SPEC, generated from the Rust types (`schemas/`).

use crate::changeset::{format2::Document, Changeset};
use crate::spec::Spec;

/// The checked-in schema files and their current text.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("schemas/changeset.schema.json", text(schemars::schema_for!(Document))),
        ("schemas/changeset-1.schema.json", text(schemars::schema_for!(Changeset))),
        ("schemas/spec.schema.json", text(schemars::schema_for!(Spec))),
    ]
}

fn text(schema: schemars::Schema) -> String {
    let mut s = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    s.push('\n');
    s
}
