//! The two JSON encodings of the TUF 1.0 dialect.
//!
//! - [`canonical`]: OLPC canonical JSON exactly as securesystemslib's
//!   `encode_canonical` writes it, the bytes every signature covers: keys
//!   sorted by code point, no whitespace, integers only, and in strings only
//!   `"` and `\` escaped (raw UTF-8, raw control characters).
//! - [`compact`]: the file bytes python-tuf writes by default
//!   (`Metadata.to_bytes()` / `to_file()`: `JSONSerializer(compact=True)`,
//!   Python's `json.dumps(separators=(",", ":"), sort_keys=True)` with its
//!   default `ensure_ascii`), so files tufd writes are byte for byte what
//!   python-tuf writes for the same content.
//! - [`pretty`]: `JSONSerializer(compact=False)` (`indent=1`), for people.
//!
//! Neither is Notary v1's Go encoding (the `canonical` module of the daemon's `tufd-tuf` crate); the two
//! dialects keep separate encoders, each tested against its own reference.

use serde_json::Value;

/// A value the encoders cannot write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// OLPC canonical JSON has integers only.
    #[error("number {0} is not an integer; TUF metadata holds integers only")]
    NotAnInteger(String),
    /// A model value JSON cannot hold (an encoder error).
    #[error("cannot encode as JSON: {0}")]
    Unsupported(String),
}

/// OLPC canonical JSON of `value` (securesystemslib `encode_canonical`).
pub fn canonical(value: &Value) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out)?;
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), JsonError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_integer(n, out)?,
        Value::String(s) => write_canonical_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in sorted(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_string(k, out);
                out.push(b':');
                write_canonical(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// A string with only `"` and `\\` escaped.
pub(crate) fn write_canonical_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Object members sorted by code point (UTF-8 byte order is code point
/// order), whatever order the map keeps.
fn sorted(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut members: Vec<_> = map.iter().collect();
    members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    members
}

fn write_integer(n: &serde_json::Number, out: &mut Vec<u8>) -> Result<(), JsonError> {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else {
        return Err(JsonError::NotAnInteger(n.to_string()));
    }
    Ok(())
}

/// The file bytes python-tuf writes by default for `value`
/// (`JSONSerializer(compact=True)`).
pub fn compact(value: &Value) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::with_capacity(512);
    write_python(value, None, &mut out)?;
    Ok(out)
}

/// The bytes of python-tuf's `JSONSerializer(compact=False)`.
pub fn pretty(value: &Value) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::with_capacity(512);
    write_python(value, Some(0), &mut out)?;
    Ok(out)
}

pub(crate) fn newline(level: Option<usize>, out: &mut Vec<u8>) {
    if let Some(level) = level {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', level));
    }
}

/// Python's `json.dumps(sort_keys=True)`; `level` is `None` for
/// `indent=None, separators=(",", ":")`, the depth for `indent=1,
/// separators=(",", ": ")`.
fn write_python(value: &Value, level: Option<usize>, out: &mut Vec<u8>) -> Result<(), JsonError> {
    let inner = level.map(|l| l + 1);
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_integer(n, out)?,
        Value::String(s) => write_python_string(s, out),
        Value::Array(items) if items.is_empty() => out.extend_from_slice(b"[]"),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                newline(inner, out);
                write_python(item, inner, out)?;
            }
            newline(level, out);
            out.push(b']');
        }
        Value::Object(map) if map.is_empty() => out.extend_from_slice(b"{}"),
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in sorted(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                newline(inner, out);
                write_python_string(k, out);
                out.extend_from_slice(if level.is_some() { b": " } else { b":" });
                write_python(v, inner, out)?;
            }
            newline(level, out);
            out.push(b'}');
        }
    }
    Ok(())
}

/// A string as Python's `json.dumps` writes it with `ensure_ascii=True`:
/// printable ASCII as is, the short escapes, everything else `\uXXXX`
/// (lower-case hex, UTF-16 surrogate pairs above U+FFFF).
pub(crate) fn write_python_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(c as u8),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_escapes_only_quote_and_backslash() {
        let v = json!({"b": "a\"b\\c\nd\u{1}é😀", "a": [1, -2, true, null, {}], "B": []});
        assert_eq!(
            canonical(&v).unwrap(),
            "{\"B\":[],\"a\":[1,-2,true,null,{}],\"b\":\"a\\\"b\\\\c\nd\u{1}é😀\"}".as_bytes()
        );
    }

    #[test]
    fn canonical_refuses_floats() {
        assert!(matches!(
            canonical(&json!({"x": 1.5})),
            Err(JsonError::NotAnInteger(_))
        ));
    }

    #[test]
    fn pretty_is_pythons_layout() {
        let v = json!({"b": ["x", {}], "a": {"k": "é\n\u{7f}😀"}, "c": []});
        let expected = "{\n \"a\": {\n  \"k\": \"\\u00e9\\n\\u007f\\ud83d\\ude00\"\n },\n \"b\": [\n  \"x\",\n  {}\n ],\n \"c\": []\n}";
        assert_eq!(String::from_utf8(pretty(&v).unwrap()).unwrap(), expected);
        let expected =
            "{\"a\":{\"k\":\"\\u00e9\\n\\u007f\\ud83d\\ude00\"},\"b\":[\"x\",{}],\"c\":[]}";
        assert_eq!(String::from_utf8(compact(&v).unwrap()).unwrap(), expected);
    }

    #[test]
    fn keys_sorted_by_code_point() {
        let v = json!({"é": 1, "z": 2, "Z": 3, "\u{1f600}": 4, "\u{ffff}": 5});
        let s = String::from_utf8(canonical(&v).unwrap()).unwrap();
        assert_eq!(
            s,
            "{\"Z\":3,\"z\":2,\"é\":1,\"\u{ffff}\":5,\"\u{1f600}\":4}"
        );
    }
}
