//! The generic value tree both body formats decode into, and the two bounded parsers.
//!
//! Strings and byte strings borrow from the request body whenever the format allows it (JSON
//! strings without escapes, definite-length CBOR strings), so a PutRecords body is not copied
//! before its blobs are decoded. Both parsers limit nesting depth ([`MAX_DEPTH`]) and the total
//! number of values ([`MAX_NODES`]); neither preallocates from a length the body claims.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Maximum nesting of arrays/maps (the deepest Kinesis input needs 4).
pub(crate) const MAX_DEPTH: usize = 32;
/// Maximum number of values in one body (500 PutRecords entries need about 2,000).
pub(crate) const MAX_NODES: usize = 250_000;

/// One decoded JSON or CBOR value. `Null` also stands for CBOR `undefined`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    /// Any integer: JSON (u64/i64) and CBOR (major types 0 and 1, -2^64..2^64-1).
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    /// CBOR byte strings only.
    Bytes(Cow<'a, [u8]>),
    Array(Vec<Value<'a>>),
    /// Entries in document order (duplicates kept; the later one wins when decoded).
    Map(Vec<(Cow<'a, str>, Value<'a>)>),
}

// ---------------------------------------------------------------------------------------------
// JSON (serde_json, borrowing where possible)
// ---------------------------------------------------------------------------------------------

/// Parses a whole JSON document. `None` for anything that is not exactly one valid JSON value
/// within the limits.
pub(crate) fn parse_json(body: &[u8]) -> Option<Value<'_>> {
    let budget = Cell::new(MAX_NODES);
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Seed {
        depth: 0,
        budget: &budget,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(value)
}

struct Seed<'b> {
    depth: usize,
    budget: &'b Cell<usize>,
}

impl Seed<'_> {
    fn spend<E: de::Error>(&self) -> Result<(), E> {
        let left = self.budget.get();
        if left == 0 {
            return Err(E::custom("too many values"));
        }
        self.budget.set(left - 1);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value<'de>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value<'de>, D::Error> {
        self.spend()?;
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Int(i128::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Int(i128::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Float(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Seed {
            depth,
            budget: self.budget,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(Seed {
                depth,
                budget: self.budget,
            })?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// Map keys, borrowed when they have no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

// ---------------------------------------------------------------------------------------------
// CBOR (RFC 8949), hand-rolled so that it borrows, bounds and never trusts a length
// ---------------------------------------------------------------------------------------------

/// Parses a whole CBOR document: exactly one data item, definite or indefinite lengths, tags
/// skipped (the model says what a value means), `undefined` read as null. `None` for anything
/// malformed, trailing bytes, non-text map keys, invalid UTF-8 or limits exceeded.
pub(crate) fn parse_cbor(body: &[u8]) -> Option<Value<'_>> {
    let mut p = CborParser {
        buf: body,
        pos: 0,
        budget: MAX_NODES,
    };
    let value = p.item(0)?;
    if p.pos != body.len() {
        return None;
    }
    Some(value)
}

const BREAK: u8 = 0xff;

/// An item head: major type, additional info, argument (`None` = indefinite length).
struct Head {
    major: u8,
    info: u8,
    arg: Option<u64>,
}

struct CborParser<'a> {
    buf: &'a [u8],
    pos: usize,
    budget: usize,
}

impl<'a> CborParser<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        if n > self.remaining() {
            return None;
        }
        let slice = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(slice)
    }

    fn uint(&mut self, len: u64) -> Option<u64> {
        let bytes = self.take(len)?;
        Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn head(&mut self) -> Option<Head> {
        let b = self.byte()?;
        let major = b >> 5;
        let info = b & 0x1f;
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(self.uint(1)?),
            25 => Some(self.uint(2)?),
            26 => Some(self.uint(4)?),
            27 => Some(self.uint(8)?),
            31 => None,
            _ => return None,
        };
        Some(Head { major, info, arg })
    }

    fn spend(&mut self) -> Option<()> {
        self.budget = self.budget.checked_sub(1)?;
        Some(())
    }

    fn item(&mut self, depth: usize) -> Option<Value<'a>> {
        self.spend()?;
        loop {
            let head = self.head()?;
            return match head.major {
                0 => Some(Value::Int(i128::from(head.arg?))),
                1 => Some(Value::Int(-1 - i128::from(head.arg?))),
                2 => Some(Value::Bytes(self.bytes_body(head.arg)?)),
                3 => Some(Value::Str(self.text_body(head.arg)?)),
                4 => {
                    let depth = depth + 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                    let mut items = Vec::new();
                    match head.arg {
                        Some(n) => {
                            // Every item takes at least one byte: never trust n beyond that.
                            if n > self.remaining() as u64 {
                                return None;
                            }
                            for _ in 0..n {
                                items.push(self.item(depth)?);
                            }
                        }
                        None => loop {
                            if self.peek()? == BREAK {
                                self.pos += 1;
                                break;
                            }
                            items.push(self.item(depth)?);
                        },
                    }
                    Some(Value::Array(items))
                }
                5 => {
                    let depth = depth + 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                    let mut entries = Vec::new();
                    match head.arg {
                        Some(n) => {
                            if n > (self.remaining() / 2) as u64 {
                                return None;
                            }
                            for _ in 0..n {
                                let key = self.key()?;
                                let value = self.item(depth)?;
                                entries.push((key, value));
                            }
                        }
                        None => loop {
                            if self.peek()? == BREAK {
                                self.pos += 1;
                                break;
                            }
                            let key = self.key()?;
                            let value = self.item(depth)?;
                            entries.push((key, value));
                        },
                    }
                    Some(Value::Map(entries))
                }
                // A tag: its number is ignored and the tagged item read in its place.
                6 => {
                    head.arg?;
                    continue;
                }
                _ => self.simple(head),
            };
        }
    }

    fn simple(&mut self, head: Head) -> Option<Value<'a>> {
        match head.info {
            20 => Some(Value::Bool(false)),
            21 => Some(Value::Bool(true)),
            22 | 23 => Some(Value::Null),
            25 => Some(Value::Float(f16_to_f64(u16::try_from(head.arg?).ok()?))),
            26 => Some(Value::Float(f64::from(f32::from_bits(
                u32::try_from(head.arg?).ok()?,
            )))),
            27 => Some(Value::Float(f64::from_bits(head.arg?))),
            _ => None,
        }
    }

    /// A map key: a text string, possibly tagged.
    fn key(&mut self) -> Option<Cow<'a, str>> {
        loop {
            let head = self.head()?;
            return match head.major {
                3 => self.text_body(head.arg),
                6 => {
                    head.arg?;
                    continue;
                }
                _ => None,
            };
        }
    }

    /// The content of a byte string (major 2) whose head has been read.
    fn bytes_body(&mut self, arg: Option<u64>) -> Option<Cow<'a, [u8]>> {
        match arg {
            Some(n) => Some(Cow::Borrowed(self.take(n)?)),
            None => {
                let mut out = Vec::new();
                loop {
                    if self.peek()? == BREAK {
                        self.pos += 1;
                        return Some(Cow::Owned(out));
                    }
                    let chunk = self.head()?;
                    if chunk.major != 2 {
                        return None;
                    }
                    out.extend_from_slice(self.take(chunk.arg?)?);
                }
            }
        }
    }

    /// The content of a text string (major 3) whose head has been read; each chunk must be
    /// valid UTF-8 on its own (RFC 8949 §3.2.3).
    fn text_body(&mut self, arg: Option<u64>) -> Option<Cow<'a, str>> {
        match arg {
            Some(n) => Some(Cow::Borrowed(std::str::from_utf8(self.take(n)?).ok()?)),
            None => {
                let mut out = String::new();
                loop {
                    if self.peek()? == BREAK {
                        self.pos += 1;
                        return Some(Cow::Owned(out));
                    }
                    let chunk = self.head()?;
                    if chunk.major != 3 {
                        return None;
                    }
                    out.push_str(std::str::from_utf8(self.take(chunk.arg?)?).ok()?);
                }
            }
        }
    }
}

/// IEEE 754 half precision to f64.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    let magnitude = match exp {
        0 => mant * 2f64.powi(-24),
        31 => {
            if mant == 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        }
        _ => (1.0 + mant / 1024.0) * 2f64.powi(exp - 15),
    };
    sign * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_borrows_plain_strings() {
        let v = parse_json(br#"{"a":"x","b\u0041":"y\n"}"#).expect("valid");
        let Value::Map(entries) = v else {
            panic!("not a map")
        };
        assert!(matches!(entries[0].0, Cow::Borrowed("a")));
        assert!(matches!(entries[0].1, Value::Str(Cow::Borrowed("x"))));
        assert_eq!(entries[1].0, "bA");
        assert_eq!(entries[1].1, Value::Str(Cow::Owned("y\n".into())));
    }

    #[test]
    fn json_rejects_garbage_and_depth() {
        assert!(parse_json(b"").is_none());
        assert!(parse_json(b"{} x").is_none());
        assert!(parse_json(b"{\"a\":").is_none());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_json(deep.as_bytes()).is_some());
        let deeper = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse_json(deeper.as_bytes()).is_none());
        let huge = format!("[{}0]", "0,".repeat(MAX_NODES));
        assert!(parse_json(huge.as_bytes()).is_none());
    }

    #[test]
    fn cbor_definite_and_indefinite() {
        // {_ "a": (_ h'01', h'02'), "b": [_ 1, -2, 1.5], "c": _"x" "y", "d": 1(1700000000000)}
        let mut b = vec![0xbf, 0x61, b'a', 0x5f, 0x41, 1, 0x41, 2, 0xff];
        b.extend([0x61, b'b', 0x9f, 0x01, 0x21, 0xf9, 0x3e, 0x00, 0xff]);
        b.extend([0x61, b'c', 0x7f, 0x61, b'x', 0x61, b'y', 0xff]);
        b.extend([0x61, b'd', 0xc1, 0x1b]);
        b.extend(1_700_000_000_000u64.to_be_bytes());
        b.extend([0x61, b'e', 0xf7, 0xff]);
        let v = parse_cbor(&b).expect("valid");
        assert_eq!(
            v,
            Value::Map(vec![
                ("a".into(), Value::Bytes(Cow::Owned(vec![1, 2]))),
                (
                    "b".into(),
                    Value::Array(vec![Value::Int(1), Value::Int(-2), Value::Float(1.5)])
                ),
                ("c".into(), Value::Str("xy".into())),
                ("d".into(), Value::Int(1_700_000_000_000)),
                ("e".into(), Value::Null),
            ])
        );
    }

    #[test]
    fn cbor_rejects_lies_and_garbage() {
        // Array claiming 2^32 elements.
        assert!(parse_cbor(&[0x9a, 0xff, 0xff, 0xff, 0xff, 0x00]).is_none());
        // Byte string longer than the body.
        assert!(parse_cbor(&[0x5a, 0x00, 0x10, 0x00, 0x00, 0x00]).is_none());
        // Trailing bytes, stray break, reserved info, non-text key, bad UTF-8.
        assert!(parse_cbor(&[0xa0, 0x00]).is_none());
        assert!(parse_cbor(&[0xff]).is_none());
        assert!(parse_cbor(&[0x1c]).is_none());
        assert!(parse_cbor(&[0xa1, 0x01, 0x01]).is_none());
        assert!(parse_cbor(&[0x62, 0xff, 0xfe]).is_none());
        // Unterminated indefinite map.
        assert!(parse_cbor(&[0xbf, 0x61, b'a', 0x01]).is_none());
        // Too deep.
        let mut deep = vec![0x81; MAX_DEPTH + 1];
        deep.push(0x00);
        assert!(parse_cbor(&deep).is_none());
        let mut ok = vec![0x81; MAX_DEPTH];
        ok.push(0x00);
        assert!(parse_cbor(&ok).is_some());
        // Many tags are fine (no recursion).
        let mut tags = vec![0xc1; 10_000];
        tags.push(0x00);
        assert_eq!(parse_cbor(&tags), Some(Value::Int(0)));
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert!(f16_to_f64(0x7e00).is_nan());
        assert_eq!(f16_to_f64(0x7c00), f64::INFINITY);
    }
}
