//! Canonical JSON exactly as notary's `github.com/docker/go/canonical/json`
//! encoder produces it, and the HTML-escaping step of the file envelope.
//!
//! Rules (format notes §1): no whitespace, object keys sorted by their UTF-8
//! bytes at every level, arrays in their given order, strings with only `"`
//! and `\` escaped and every other byte written raw, integers only.
//!
//! notary writes control characters raw and then fails to publish the file,
//! so this encoder rejects them up front with [`CanonicalError::ControlCharacter`].
//! It does **not** Unicode-normalize (unlike `olpc-cjson`): the bytes signed
//! are the bytes notary re-derives from the parsed object.

use serde::Serialize;
use serde_json::{Map, Number, Value};

/// Why a value cannot be encoded as notary canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// A string (or object key) holds a byte below U+0020. notary emits it
    /// raw and then cannot build the file envelope, so it can never publish it.
    #[error(
        "string {string:?} contains the control character U+{code:04X}; notary cannot publish control characters in metadata (rename it)"
    )]
    ControlCharacter {
        /// The offending string.
        string: String,
        /// The control character's code point.
        code: u32,
    },
    /// A number that is not an integer; notary metadata holds integers only.
    #[error("number {0} is not an integer; notary canonical JSON only encodes integers")]
    NonInteger(String),
    /// The value could not be turned into JSON at all.
    #[error("cannot serialize to JSON: {0}")]
    Serialize(String),
}

/// Canonical bytes of any serializable value.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let value =
        serde_json::to_value(value).map_err(|e| CanonicalError::Serialize(e.to_string()))?;
    canonicalize(&value)
}

/// Canonical bytes of a parsed JSON value (what notary's verifier re-derives
/// from `signed` before checking a signature).
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) -> Result<(), CanonicalError> {
    // Sort explicitly: serde_json's map may keep insertion order when another
    // crate in the build enables `preserve_order`. `str` ordering is byte order.
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, key)?;
        out.push(b':');
        write_value(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_number(out: &mut Vec<u8>, n: &Number) -> Result<(), CanonicalError> {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else {
        // Go decodes into float64 and re-encodes integral floats as integers.
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.223_372_036_854_776e18 {
            out.extend_from_slice((f as i64).to_string().as_bytes());
        } else {
            return Err(CanonicalError::NonInteger(n.to_string()));
        }
    }
    Ok(())
}

fn write_string(out: &mut Vec<u8>, s: &str) -> Result<(), CanonicalError> {
    if let Some(c) = s.chars().find(|c| (*c as u32) < 0x20) {
        return Err(CanonicalError::ControlCharacter {
            string: s.to_owned(),
            code: c as u32,
        });
    }
    out.push(b'"');
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
    Ok(())
}

/// Go's HTML-safe compaction as applied to `json.RawMessage` by
/// `json.Marshal`: `<`, `>`, `&`, U+2028 and U+2029 become `\u003c`,
/// `\u003e`, `\u0026`, `\u2028`, `\u2029`; every other byte is kept.
///
/// This turns canonical bytes into the `signed` member of the file envelope.
pub fn html_escape(canonical: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(canonical.len() + 16);
    html_escape_into(canonical, &mut out);
    out
}

/// [`html_escape`], appended to `out` (no copy of its own: plain runs are
/// copied at once).
pub fn html_escape_into(canonical: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < canonical.len() {
        let run = canonical[i..]
            .iter()
            .position(|c| matches!(c, b'<' | b'>' | b'&' | 0xE2))
            .unwrap_or(canonical.len() - i);
        out.extend_from_slice(&canonical[i..i + run]);
        i += run;
        let Some(&b) = canonical.get(i) else {
            break;
        };
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            // U+2028 / U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
            0xE2 if canonical.get(i + 1) == Some(&0x80)
                && matches!(canonical.get(i + 2), Some(0xA8) | Some(0xA9)) =>
            {
                let last = if canonical[i + 2] == 0xA8 { b'8' } else { b'9' };
                out.extend_from_slice(b"\\u202");
                out.push(last);
                i += 3;
                continue;
            }
            _ => out.push(b),
        }
        i += 1;
    }
}

/// A string as Go's `json.Marshal` writes it (HTML-safe, control characters
/// escaped). Used for the envelope's signature objects, which are not canonical.
pub fn go_json_string(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{0}'..='\u{1f}' => {
                let code = c as u32;
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(HEX[((code >> shift) & 0xF) as usize] as char);
                }
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_by_bytes_and_keeps_arrays() {
        let v = json!({"b": [3, 1, 2], "a": {"z": true, "Z": null}, "é": 1, "e": -2});
        assert_eq!(
            canonicalize(&v).unwrap(),
            r#"{"a":{"Z":null,"z":true},"b":[3,1,2],"e":-2,"é":1}"#
                .as_bytes()
                .to_vec()
        );
    }

    #[test]
    fn escapes_only_quote_and_backslash() {
        let v = json!({"k": "a<b>&c \"q\" \\ ü€ \u{2028} /"});
        assert_eq!(
            String::from_utf8(canonicalize(&v).unwrap()).unwrap(),
            "{\"k\":\"a<b>&c \\\"q\\\" \\\\ ü€ \u{2028} /\"}"
        );
    }

    #[test]
    fn rejects_control_characters_in_values_and_keys() {
        assert!(matches!(
            canonicalize(&json!({"k": "tab\there"})),
            Err(CanonicalError::ControlCharacter { code: 9, .. })
        ));
        assert!(matches!(
            canonicalize(&json!({"new\nline": 1})),
            Err(CanonicalError::ControlCharacter { code: 10, .. })
        ));
    }

    #[test]
    fn integral_floats_become_integers_and_fractions_fail() {
        let v: Value = serde_json::from_str(r#"{"a":1.0,"b":1e3}"#).unwrap();
        assert_eq!(canonicalize(&v).unwrap(), br#"{"a":1,"b":1000}"#.to_vec());
        let v: Value = serde_json::from_str(r#"{"a":1.5}"#).unwrap();
        assert!(matches!(
            canonicalize(&v),
            Err(CanonicalError::NonInteger(_))
        ));
    }

    #[test]
    fn html_escape_matches_go() {
        let input = "{\"a<b>&c\":\"\u{2028}\u{2029}ü\"}";
        assert_eq!(
            String::from_utf8(html_escape(input.as_bytes())).unwrap(),
            r#"{"a\u003cb\u003e\u0026c":"\u2028\u2029ü"}"#
        );
    }

    #[test]
    fn go_string_escapes() {
        assert_eq!(go_json_string("a<\n\u{1}"), r#""a\u003c\n\u0001""#);
    }
}
