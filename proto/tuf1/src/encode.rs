//! The encodings of [`crate::json`] written straight from a serde model,
//! without building a `serde_json::Value` tree first: a repository of
//! 100 000 targets is a few megabytes of JSON but a `Value` tree of
//! hundreds of megabytes. Objects buffer their members' bytes to sort
//! them; nothing else is held. The output is byte for byte what the
//! `Value` encoders write for `serde_json::to_value` of the same model
//! (tested below and against python-tuf).

use serde::Serialize;
use serde::ser::{self, Impossible};

use crate::json::{JsonError, newline, write_canonical_string, write_python_string};

/// OLPC canonical JSON of `value` (see [`crate::json::canonical`]).
pub fn canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    encode(value, Style::Canonical, None)
}

/// python-tuf's compact file bytes (see [`crate::json::compact`]).
pub fn compact<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    encode(value, Style::Python, None)
}

/// python-tuf's `indent=1` layout (see [`crate::json::pretty`]).
pub fn pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    encode(value, Style::Python, Some(0))
}

fn encode<T: Serialize + ?Sized>(
    value: &T,
    style: Style,
    level: Option<usize>,
) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::with_capacity(4096);
    value.serialize(Out {
        out: &mut out,
        style,
        level,
    })?;
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Canonical,
    Python,
}

impl ser::Error for JsonError {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        JsonError::Unsupported(msg.to_string())
    }
}

/// Writes one value at `level` (`None`: no whitespace).
struct Out<'a> {
    out: &'a mut Vec<u8>,
    style: Style,
    level: Option<usize>,
}

impl<'a> Out<'a> {
    fn string(self, s: &str) -> Result<(), JsonError> {
        match self.style {
            Style::Canonical => write_canonical_string(s, self.out),
            Style::Python => write_python_string(s, self.out),
        }
        Ok(())
    }

    fn raw(self, s: &str) -> Result<(), JsonError> {
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn object(self) -> Object<'a> {
        Object {
            out: self.out,
            style: self.style,
            level: self.level,
            members: Vec::new(),
            key: None,
        }
    }

    fn array(self) -> Array<'a> {
        self.out.push(b'[');
        Array {
            out: self.out,
            style: self.style,
            level: self.level,
            empty: true,
        }
    }
}

fn not_an_integer(v: impl std::fmt::Display) -> JsonError {
    JsonError::NotAnInteger(v.to_string())
}

impl<'a> ser::Serializer for Out<'a> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Impossible<(), JsonError>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Impossible<(), JsonError>;

    fn serialize_bool(self, v: bool) -> Result<(), JsonError> {
        self.raw(if v { "true" } else { "false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), JsonError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), JsonError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), JsonError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), JsonError> {
        self.raw(&v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<(), JsonError> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), JsonError> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), JsonError> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), JsonError> {
        self.raw(&v.to_string())
    }
    fn serialize_f32(self, v: f32) -> Result<(), JsonError> {
        Err(not_an_integer(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), JsonError> {
        Err(not_an_integer(v))
    }
    fn serialize_char(self, v: char) -> Result<(), JsonError> {
        self.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        self.string(v)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), JsonError> {
        Err(JsonError::Unsupported("raw bytes".into()))
    }
    fn serialize_none(self) -> Result<(), JsonError> {
        self.raw("null")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), JsonError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), JsonError> {
        self.raw("null")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), JsonError> {
        self.raw("null")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        self.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), JsonError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), JsonError> {
        let mut o = self.object();
        ser::SerializeStruct::serialize_field(&mut o, variant, v)?;
        ser::SerializeStruct::end(o)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a>, JsonError> {
        Ok(self.array())
    }
    fn serialize_tuple(self, _: usize) -> Result<Array<'a>, JsonError> {
        Ok(self.array())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Array<'a>, JsonError> {
        Ok(self.array())
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, JsonError> {
        Err(JsonError::Unsupported(format!("tuple variant of {name}")))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'a>, JsonError> {
        Ok(self.object())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Object<'a>, JsonError> {
        Ok(self.object())
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, JsonError> {
        Err(JsonError::Unsupported(format!("struct variant of {name}")))
    }
}

/// An array, written as its items come.
struct Array<'a> {
    out: &'a mut Vec<u8>,
    style: Style,
    level: Option<usize>,
    empty: bool,
}

impl Array<'_> {
    fn item<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), JsonError> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        let inner = self.level.map(|l| l + 1);
        newline(inner, self.out);
        v.serialize(Out {
            out: self.out,
            style: self.style,
            level: inner,
        })
    }

    fn close(self) -> Result<(), JsonError> {
        if !self.empty {
            newline(self.level, self.out);
        }
        self.out.push(b']');
        Ok(())
    }
}

/// serde's three sequence traits, all one array.
macro_rules! array_trait {
    ($trait:ident, $method:ident) => {
        impl ser::$trait for Array<'_> {
            type Ok = ();
            type Error = JsonError;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), JsonError> {
                self.item(v)
            }
            fn end(self) -> Result<(), JsonError> {
                self.close()
            }
        }
    };
}
array_trait!(SerializeSeq, serialize_element);
array_trait!(SerializeTuple, serialize_element);
array_trait!(SerializeTupleStruct, serialize_field);

/// An object: members encoded one by one, then written sorted by key
/// (code point order; a repeated key keeps its last value, as a map
/// would).
struct Object<'a> {
    out: &'a mut Vec<u8>,
    style: Style,
    level: Option<usize>,
    members: Vec<(String, Vec<u8>)>,
    key: Option<String>,
}

impl Object<'_> {
    fn member<T: Serialize + ?Sized>(&mut self, key: String, v: &T) -> Result<(), JsonError> {
        let mut bytes = Vec::new();
        v.serialize(Out {
            out: &mut bytes,
            style: self.style,
            level: self.level.map(|l| l + 1),
        })?;
        self.members.push((key, bytes));
        Ok(())
    }

    fn close(mut self) -> Result<(), JsonError> {
        if self.members.is_empty() {
            self.out.extend_from_slice(b"{}");
            return Ok(());
        }
        self.members.reverse();
        self.members
            .sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        self.members.dedup_by(|later, first| later.0 == first.0);
        let inner = self.level.map(|l| l + 1);
        self.out.push(b'{');
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            newline(inner, self.out);
            Out {
                out: self.out,
                style: self.style,
                level: inner,
            }
            .string(k)?;
            self.out
                .extend_from_slice(if self.level.is_some() { b": " } else { b":" });
            self.out.extend_from_slice(v);
        }
        newline(self.level, self.out);
        self.out.push(b'}');
        Ok(())
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), JsonError> {
        self.key = Some(key.serialize(KeyName)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), JsonError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| JsonError::Unsupported("a map value without a key".into()))?;
        self.member(key, v)
    }
    fn end(self) -> Result<(), JsonError> {
        self.close()
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), JsonError> {
        self.member(key.to_owned(), v)
    }
    fn end(self) -> Result<(), JsonError> {
        self.close()
    }
}

/// Map keys: strings only (TUF metadata has no other keys).
struct KeyName;

fn key_error() -> JsonError {
    JsonError::Unsupported("an object key that is not a string".into())
}

/// Scalar keys are refused.
macro_rules! refuse_keys {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, _: $ty) -> Result<String, JsonError> {
            Err(key_error())
        })*
    };
}

impl ser::Serializer for KeyName {
    type Ok = String;
    type Error = JsonError;
    type SerializeSeq = Impossible<String, JsonError>;
    type SerializeTuple = Impossible<String, JsonError>;
    type SerializeTupleStruct = Impossible<String, JsonError>;
    type SerializeTupleVariant = Impossible<String, JsonError>;
    type SerializeMap = Impossible<String, JsonError>;
    type SerializeStruct = Impossible<String, JsonError>;
    type SerializeStructVariant = Impossible<String, JsonError>;

    fn serialize_str(self, v: &str) -> Result<String, JsonError> {
        Ok(v.to_owned())
    }
    fn serialize_char(self, v: char) -> Result<String, JsonError> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, JsonError> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<String, JsonError> {
        v.serialize(self)
    }
    refuse_keys!(
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_f32: f32,
        serialize_f64: f64,
        serialize_bytes: &[u8]
    );
    fn serialize_none(self) -> Result<String, JsonError> {
        Err(key_error())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, JsonError> {
        Err(key_error())
    }
    fn serialize_unit(self) -> Result<String, JsonError> {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, JsonError> {
        Err(key_error())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, JsonError> {
        Err(key_error())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, JsonError> {
        Err(key_error())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, JsonError> {
        Err(key_error())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, JsonError> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, JsonError> {
        Err(key_error())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, JsonError> {
        Err(key_error())
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, JsonError> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, JsonError> {
        Err(key_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;
    use serde_json::{Value, json};

    /// Every encoder agrees with its `Value` twin.
    fn same(v: &Value) {
        assert_eq!(canonical(v).unwrap(), json::canonical(v).unwrap(), "{v}");
        assert_eq!(compact(v).unwrap(), json::compact(v).unwrap(), "{v}");
        assert_eq!(pretty(v).unwrap(), json::pretty(v).unwrap(), "{v}");
    }

    #[test]
    fn agrees_with_the_value_encoders() {
        same(&json!({"b": "a\"b\\c\nd\u{1}é😀", "a": [1, -2, true, null, {}], "B": []}));
        same(&json!({"é": 1, "z": 2, "Z": 3, "\u{1f600}": 4, "\u{ffff}": [[], [{}], {"x": [1]}]}));
        same(&json!([]));
        same(&json!("x"));
        assert!(matches!(
            canonical(&json!({"x": 1.5})),
            Err(JsonError::NotAnInteger(_))
        ));
    }

    #[test]
    fn a_struct_with_flattened_members_is_sorted_as_one_object() {
        #[derive(Serialize)]
        struct S {
            zeta: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<u64>,
            alpha: Vec<&'static str>,
            #[serde(flatten)]
            rest: std::collections::BTreeMap<String, Value>,
        }
        let s = S {
            zeta: 1,
            skipped: None,
            alpha: vec!["a"],
            rest: [("m".to_owned(), json!({"k": null}))].into(),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(canonical(&s).unwrap(), json::canonical(&v).unwrap());
        assert_eq!(pretty(&s).unwrap(), json::pretty(&v).unwrap());
        assert_eq!(compact(&s).unwrap(), json::compact(&v).unwrap());
    }
}
