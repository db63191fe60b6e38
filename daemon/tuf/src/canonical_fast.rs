//! Canonical JSON written straight from typed values into one buffer: no
//! intermediate `serde_json::Value`, no allocation per object. For large
//! targets files (100 000 tags) this is the difference between encoding
//! and building a tree of a million nodes first.
//!
//! The encoder only takes the easy road: it fails (and [`crate::canonical`]'s
//! general encoder is used instead) on anything it does not handle exactly
//! like it: keys that do not already come in byte order, keys with escapes,
//! control characters, floats. serde emits struct fields in declaration
//! order and `BTreeMap` keys sorted, so the metadata types all take the easy
//! road; the fallback keeps the result right for anything else.

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};
use std::io;

/// Canonical bytes of `value`, with `"_type": type_name` added to the
/// top-level object when given; `None` when the fast encoder cannot be
/// sure (use the general one then).
pub fn encode<T: Serialize + ?Sized>(value: &T, type_name: Option<&str>) -> Option<Vec<u8>> {
    encode_sized(value, type_name, 4096)
}

/// [`encode`] into a buffer of `capacity` bytes at first: the expected
/// size, when known, so that an 8.6 MB role is not grown (and copied)
/// twelve times on the way.
pub fn encode_sized<T: Serialize + ?Sized>(
    value: &T,
    type_name: Option<&str>,
    capacity: usize,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    let formatter = Canonical {
        out: &mut out,
        type_name,
        depth: 0,
        keys: Vec::new(),
        key_start: 0,
    };
    let mut ser = serde_json::Serializer::with_formatter(io::sink(), formatter);
    value.serialize(&mut ser).ok()?;
    Some(out)
}

/// Whether `raw` (the `signed` member of a file) is `canonical` after Go's
/// HTML escaping (`crate::canonical::html_escape`), compared without
/// building the escaped copy.
pub fn is_escaped_form_of(canonical: &[u8], raw: &[u8]) -> bool {
    let mut r = raw;
    let mut i = 0;
    while i < canonical.len() {
        let b = canonical[i];
        let expected: &[u8] = match b {
            b'<' => b"\\u003c",
            b'>' => b"\\u003e",
            b'&' => b"\\u0026",
            0xE2 if canonical.get(i + 1) == Some(&0x80)
                && matches!(canonical.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                let e: &[u8] = if canonical[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                };
                i += 2;
                e
            }
            _ => {
                // Runs of plain bytes compare at once.
                let run = canonical[i..]
                    .iter()
                    .position(|c| matches!(c, b'<' | b'>' | b'&' | 0xE2))
                    .unwrap_or(canonical.len() - i);
                let run = run.max(1);
                let plain = &canonical[i..i + run];
                if !r.starts_with(plain) {
                    return false;
                }
                r = &r[run..];
                i += run;
                continue;
            }
        };
        if !r.starts_with(expected) {
            return false;
        }
        r = &r[expected.len()..];
        i += 1;
    }
    r.is_empty()
}

/// Where the previous key of an open object lies in `out`.
#[derive(Clone, Copy)]
struct KeySpan {
    start: usize,
    end: usize,
}

struct Canonical<'a> {
    out: &'a mut Vec<u8>,
    type_name: Option<&'a str>,
    depth: usize,
    /// Per open object, its last key (none yet: `end == 0`).
    keys: Vec<KeySpan>,
    key_start: usize,
}

fn refuse<T>(why: &'static str) -> io::Result<T> {
    Err(io::Error::other(why))
}

impl Canonical<'_> {
    fn int(&mut self, v: impl itoa::Integer) -> io::Result<()> {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }
}

impl Formatter for Canonical<'_> {
    fn write_null<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn write_bool<W: ?Sized + io::Write>(&mut self, _: &mut W, v: bool) -> io::Result<()> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn write_i8<W: ?Sized + io::Write>(&mut self, _: &mut W, v: i8) -> io::Result<()> {
        self.int(v)
    }
    fn write_i16<W: ?Sized + io::Write>(&mut self, _: &mut W, v: i16) -> io::Result<()> {
        self.int(v)
    }
    fn write_i32<W: ?Sized + io::Write>(&mut self, _: &mut W, v: i32) -> io::Result<()> {
        self.int(v)
    }
    fn write_i64<W: ?Sized + io::Write>(&mut self, _: &mut W, v: i64) -> io::Result<()> {
        self.int(v)
    }
    fn write_i128<W: ?Sized + io::Write>(&mut self, _: &mut W, v: i128) -> io::Result<()> {
        self.int(v)
    }
    fn write_u8<W: ?Sized + io::Write>(&mut self, _: &mut W, v: u8) -> io::Result<()> {
        self.int(v)
    }
    fn write_u16<W: ?Sized + io::Write>(&mut self, _: &mut W, v: u16) -> io::Result<()> {
        self.int(v)
    }
    fn write_u32<W: ?Sized + io::Write>(&mut self, _: &mut W, v: u32) -> io::Result<()> {
        self.int(v)
    }
    fn write_u64<W: ?Sized + io::Write>(&mut self, _: &mut W, v: u64) -> io::Result<()> {
        self.int(v)
    }
    fn write_u128<W: ?Sized + io::Write>(&mut self, _: &mut W, v: u128) -> io::Result<()> {
        self.int(v)
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, _: &mut W, _: f32) -> io::Result<()> {
        refuse("float")
    }
    fn write_f64<W: ?Sized + io::Write>(&mut self, _: &mut W, _: f64) -> io::Result<()> {
        refuse("float")
    }
    fn write_number_str<W: ?Sized + io::Write>(&mut self, _: &mut W, _: &str) -> io::Result<()> {
        refuse("number")
    }
    fn begin_string<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.out.push(b'"');
        Ok(())
    }
    fn end_string<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.out.push(b'"');
        Ok(())
    }
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        self.out.extend_from_slice(fragment.as_bytes());
        Ok(())
    }
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        match escape {
            CharEscape::Quote => self.out.extend_from_slice(b"\\\""),
            CharEscape::ReverseSolidus => self.out.extend_from_slice(b"\\\\"),
            // Control characters: the general encoder names the string.
            _ => return refuse("control character"),
        }
        Ok(())
    }
    fn write_byte_array<W: ?Sized + io::Write>(&mut self, _: &mut W, _: &[u8]) -> io::Result<()> {
        refuse("bytes")
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.out.push(b'[');
        Ok(())
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.out.push(b']');
        Ok(())
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if !first {
            self.out.push(b',');
        }
        Ok(())
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        Ok(())
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.out.push(b'{');
        self.depth += 1;
        self.keys.push(KeySpan { start: 0, end: 0 });
        if self.depth == 1
            && let Some(t) = self.type_name.take()
        {
            self.out.extend_from_slice(b"\"_type\":");
            let start = self.out.len();
            self.out.push(b'"');
            self.out.extend_from_slice(t.as_bytes());
            self.out.push(b'"');
            if t.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
                return refuse("type name");
            }
            // The key "_type" itself, for the order check: it lies 9 bytes
            // before the value.
            let key = KeySpan {
                start: start - 8,
                end: start - 1,
            };
            if let Some(k) = self.keys.last_mut() {
                *k = key;
            }
        }
        Ok(())
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.out.push(b'}');
        self.depth -= 1;
        self.keys.pop();
        Ok(())
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        _first: bool,
    ) -> io::Result<()> {
        // `first` is the serializer's view; the injected `_type` counts too.
        if self.keys.last().is_some_and(|k| k.end != 0) {
            self.out.push(b',');
        }
        self.key_start = self.out.len();
        Ok(())
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        let key = KeySpan {
            start: self.key_start,
            end: self.out.len(),
        };
        let bytes = &self.out[key.start..key.end];
        if bytes.len() < 2 || bytes[0] != b'"' || bytes[1..bytes.len() - 1].contains(&b'\\') {
            // Escaped keys sort differently from their escaped bytes.
            return refuse("key with escapes");
        }
        let Some(last) = self.keys.last_mut() else {
            return refuse("key outside an object");
        };
        // Compared without their quotes: byte order of the strings.
        let inner = |k: KeySpan| k.start + 1..k.end - 1;
        if last.end != 0 && self.out[inner(*last)] >= self.out[inner(key)] {
            return refuse("keys out of order");
        }
        *last = key;
        Ok(())
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.out.push(b':');
        Ok(())
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, _: &mut W) -> io::Result<()> {
        Ok(())
    }
    fn write_raw_fragment<W: ?Sized + io::Write>(
        &mut self,
        _: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // Opaque JSON (a target's `custom`): parsed and written canonically.
        let value: serde_json::Value = serde_json::from_str(fragment).map_err(io::Error::other)?;
        let bytes = crate::canonical::canonicalize(&value).map_err(io::Error::other)?;
        self.out.extend_from_slice(&bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{canonicalize, html_escape};
    use crate::metadata::{Metadata, TargetMeta, Targets};
    use crate::{Key, RoleName};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn general<T: Metadata>(t: &T) -> Vec<u8> {
        canonicalize(&t.to_json_value().unwrap()).unwrap()
    }

    fn targets() -> Targets {
        let mut t = Targets::new(time::macros::datetime!(2030-01-02 03:04:05 UTC));
        t.version = 7;
        for (name, n) in [("v1", 1u8), ("a<b>&c", 2), ("ü \u{2028}", 3)] {
            t.targets
                .insert(name.into(), TargetMeta::sha256_only([n; 32], u64::from(n)));
        }
        let mut custom = TargetMeta::of(b"x");
        custom.custom = Some(
            serde_json::value::to_raw_value(&json!({"z": 1, "a": [true, null, "s"]})).unwrap(),
        );
        t.targets.insert("custom".into(), custom);
        let alice = RoleName::parse("targets/alice").unwrap();
        t.delegations
            .add_to_role(&alice, &[Key::ecdsa(vec![9; 65])], &["".into()])
            .unwrap();
        t
    }

    /// The direct encoder writes what the general one writes, `_type` and
    /// HTML-significant characters included.
    #[test]
    fn equals_the_general_encoder() {
        let t = targets();
        let fast = encode(&t, Some(Targets::TYPE)).expect("the easy road");
        assert_eq!(
            String::from_utf8(fast.clone()),
            String::from_utf8(general(&t))
        );
        assert!(fast.starts_with(b"{\"_type\":\"Targets\",\"delegations\":"));
        assert!(is_escaped_form_of(&fast, &html_escape(&fast)));
    }

    /// What it cannot be sure of, it leaves to the general encoder.
    #[test]
    fn refuses_what_it_cannot_be_sure_of() {
        let mut t = targets();
        t.targets
            .insert("tab\there".into(), TargetMeta::sha256_only([0; 32], 1));
        assert!(
            encode(&t, Some(Targets::TYPE)).is_none(),
            "control character"
        );
        #[derive(serde::Serialize)]
        struct Unsorted {
            b: u8,
            a: u8,
        }
        assert!(encode(&Unsorted { b: 1, a: 2 }, None).is_none());
        #[derive(serde::Serialize)]
        struct Upper {
            #[serde(rename = "Z")]
            z: u8,
        }
        assert!(
            encode(&Upper { z: 1 }, Some("T")).is_none(),
            "Z sorts before _type"
        );
        assert_eq!(encode(&Upper { z: 1 }, None), Some(br#"{"Z":1}"#.to_vec()));
        let escaped: BTreeMap<&str, u8> = [("a\"", 1)].into();
        assert!(encode(&escaped, None).is_none(), "a key with an escape");
        assert!(encode(&json!({"f": 1.5}), None).is_none());
        assert_eq!(
            encode(&json!({"b": [], "a": {}}), None),
            Some(br#"{"a":{},"b":[]}"#.to_vec()),
            "serde_json's map is sorted"
        );
    }

    #[test]
    fn escaped_form_comparison() {
        let c = "{\"k\":\"<a>&\u{2028}\u{2029}é\"}".as_bytes();
        let raw = html_escape(c);
        assert!(is_escaped_form_of(c, &raw));
        assert!(
            !is_escaped_form_of(c, c),
            "unescaped is not the file's form"
        );
        assert!(!is_escaped_form_of(c, &raw[..raw.len() - 1]));
        let mut longer = raw.clone();
        longer.push(b' ');
        assert!(!is_escaped_form_of(c, &longer));
        assert!(is_escaped_form_of(b"", b""));
    }

    /// A file in canonical form parses on the easy road; one with a field
    /// the types do not know keeps that field in the signed bytes (generic
    /// road), as notary's verifier derives them.
    #[test]
    fn parsed_files_keep_the_bytes_signatures_cover() {
        let t = targets();
        let canonical = general(&t);
        let file = crate::signed::envelope(&canonical, &[]);
        let parsed = crate::Signed::<Targets>::from_bytes(&file).unwrap();
        assert_eq!(parsed.canonical_bytes(), canonical.as_slice());
        assert_eq!(parsed.signed(), &t);

        let text = String::from_utf8(file).unwrap();
        let extra = text.replacen("\"version\":7", "\"version\":7,\"zz\":[1]", 1);
        let parsed = crate::Signed::<Targets>::from_bytes(extra.as_bytes()).unwrap();
        assert!(
            parsed
                .canonical_bytes()
                .ends_with(b"\"version\":7,\"zz\":[1]}")
        );
        let spaced = text.replacen("\"version\":7", "\"version\": 7", 1);
        let parsed = crate::Signed::<Targets>::from_bytes(spaced.as_bytes()).unwrap();
        assert_eq!(parsed.canonical_bytes(), canonical.as_slice());
        assert_eq!(parsed.bytes(), spaced.as_bytes());
    }

    #[test]
    fn version_of_reads_only_the_version() {
        let file = crate::signed::envelope(&general(&targets()), &[]);
        assert_eq!(crate::Signed::<Targets>::version_of(&file), Some(7));
        assert_eq!(
            crate::Signed::<crate::Snapshot>::version_of(&file),
            None,
            "wrong _type"
        );
        assert_eq!(crate::Signed::<Targets>::version_of(b"{}"), None);
    }
}
