//! The checked-in JSON Schemas are those the Rust types generate; every example SPEC in
//! `plans/` and every changeset `plan` writes validates against them.
//! Run with `TIDYPLEX_UPDATE_SCHEMAS=1` to rewrite the files after changing the types.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn checked_in_schemas_are_up_to_date() {
    for (path, text) in tidyplex::schema::all() {
        let file = root().join(path);
        if std::env::var_os("TIDYPLEX_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&file, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            on_disk == text,
            "{path} is stale: run `TIDYPLEX_UPDATE_SCHEMAS=1 cargo test --test schemas`"
        );
    }
}

fn validator(name: &str) -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("schemas").join(name)).unwrap())
            .unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> =
        v.iter_errors(doc).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}");
}

#[test]
fn example_specs_validate() {
    let v = validator("spec.schema.json");
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("plans")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let doc: Value = yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_valid(&v, &doc, &path.display().to_string());
        tidyplex::spec::Spec::load(&path).unwrap();
        seen += 1;
    }
    assert!(seen > 0, "plans/ has examples");
}

#[test]
fn planned_changesets_validate() {
    let v = validator("changeset.schema.json");
    for extra in [&["--triggers", "broad"][..], &["--windows"]] {
        let (tmp, dir, _) = fixture(extra);
        for stage in ["1", "2", "3"] {
            let out = tmp.path().join(format!("plan-{stage}.yaml"));
            run(&dir, &["plan", "--stage", stage, "-o", out.to_str().unwrap()], 0);
            let doc: Value = yaml_serde::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
            assert_valid(&v, &doc, &format!("stage {stage} {extra:?}"));
        }
    }
}
