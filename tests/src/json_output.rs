//! tufctl's `--output json` envelope, checked against the published schema
//! (`client/schema/tufctl-v1.schema.json`) by a JSON Schema validator.

use serde_json::Value;
use std::sync::OnceLock;

/// The published schema's path.
pub fn schema_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../client/schema/tufctl-v1.schema.json")
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text = std::fs::read_to_string(schema_path()).expect("the schema file is readable");
        let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
        jsonschema::draft202012::new(&schema).expect("the schema is a valid JSON Schema")
    })
}

/// The schema's complaints about `doc` (empty: it conforms).
pub fn violations(doc: &Value) -> Vec<String> {
    validator()
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Parses `stdout` as one envelope and asserts it conforms to the schema.
#[track_caller]
pub fn envelope(stdout: &str) -> Value {
    let doc: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("tufctl printed no JSON ({e}): {stdout}"));
    let errors = violations(&doc);
    assert!(
        errors.is_empty(),
        "tufctl's JSON does not conform to {}: {errors:#?}\n{stdout}",
        schema_path().display()
    );
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_schema_refuses_what_it_must() {
        let ok = json!({"schema": "tufctl/v1", "verb": "trust forget", "ok": true, "error": null,
            "data": {"repository": "r", "forgotten": true}});
        assert!(violations(&ok).is_empty(), "{:?}", violations(&ok));
        let token = json!({"name": "t", "kind": "pkcs11", "state": "unavailable", "detail": "",
            "label": "", "serial": "", "manufacturer": "", "model": "", "key_count": null, "default": true});
        let listing = json!({"schema": "tufctl/v1", "verb": "token list", "ok": true, "error": null,
            "data": {"tokens": [token]}});
        assert!(
            violations(&listing).is_empty(),
            "{:?}",
            violations(&listing)
        );
        for bad in [
            // Another schema version, a missing field, an error on success,
            // no error on failure, a verb's data of the wrong shape, no data.
            json!({"schema": "tufctl/v2", "verb": "x", "ok": true, "error": null, "data": 1}),
            json!({"schema": "tufctl/v1", "verb": "x", "ok": true, "data": 1}),
            json!({"schema": "tufctl/v1", "verb": "x", "ok": true, "data": 1,
                "error": {"code": "input", "message": "m"}}),
            json!({"schema": "tufctl/v1", "verb": "x", "ok": false, "data": null, "error": null}),
            json!({"schema": "tufctl/v1", "verb": "trust forget", "ok": true, "error": null,
                "data": {"repository": "r"}}),
            json!({"schema": "tufctl/v1", "verb": "token list", "ok": true, "error": null,
                "data": {"tokens": [{"name": "t"}]}}),
            json!({"schema": "tufctl/v1", "verb": "status", "ok": true, "error": null, "data": null}),
        ] {
            assert!(!violations(&bad).is_empty(), "accepted: {bad}");
        }
    }
}
