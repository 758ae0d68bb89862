//! Test helpers: one logical request body, written both as JSON (what boto3/the CLI send) and as
//! CBOR the way the Java SDK's Jackson generator writes it (indefinite-length maps and arrays,
//! byte-string blobs, tag 1 + integer epoch-millisecond timestamps).
#![allow(dead_code)]

use base64::Engine as _;
use kinesin_wire::{decode_request, Protocol, Request, WireError};

/// A request value.
#[derive(Debug, Clone)]
pub enum V {
    Map(Vec<(&'static str, V)>),
    List(Vec<V>),
    Str(String),
    Blob(Vec<u8>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Epoch milliseconds.
    Ts(i64),
    Null,
}

pub fn s(v: &str) -> V {
    V::Str(v.to_owned())
}

pub fn map(entries: Vec<(&'static str, V)>) -> V {
    V::Map(entries)
}

pub fn to_json(v: &V) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        V::Map(e) => J::Object(
            e.iter()
                .map(|(k, v)| ((*k).to_owned(), to_json(v)))
                .collect(),
        ),
        V::List(items) => J::Array(items.iter().map(to_json).collect()),
        V::Str(s) => J::String(s.clone()),
        V::Blob(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        V::Int(i) => J::from(*i),
        V::Float(f) => J::from(*f),
        V::Bool(b) => J::Bool(*b),
        // JSON timestamps are epoch seconds; send a fraction only when there is one.
        V::Ts(ms) if ms % 1000 == 0 => J::from(ms / 1000),
        V::Ts(ms) => J::from(*ms as f64 / 1000.0),
        V::Null => J::Null,
    }
}

fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= 0xff {
        out.extend([m | 24, arg as u8]);
    } else if arg <= 0xffff {
        out.push(m | 25);
        out.extend((arg as u16).to_be_bytes());
    } else if arg <= 0xffff_ffff {
        out.push(m | 26);
        out.extend((arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend(arg.to_be_bytes());
    }
}

fn int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        head(out, 0, i as u64);
    } else {
        head(out, 1, !i as u64);
    }
}

/// CBOR as the AWS SDK for Java writes it.
pub fn to_java_cbor(v: &V) -> Vec<u8> {
    let mut out = Vec::new();
    java_cbor_into(v, &mut out);
    out
}

fn java_cbor_into(v: &V, out: &mut Vec<u8>) {
    match v {
        V::Map(e) => {
            out.push(0xbf);
            for (k, v) in e {
                head(out, 3, k.len() as u64);
                out.extend(k.as_bytes());
                java_cbor_into(v, out);
            }
            out.push(0xff);
        }
        V::List(items) => {
            out.push(0x9f);
            for item in items {
                java_cbor_into(item, out);
            }
            out.push(0xff);
        }
        V::Str(s) => {
            head(out, 3, s.len() as u64);
            out.extend(s.as_bytes());
        }
        V::Blob(b) => {
            head(out, 2, b.len() as u64);
            out.extend(b);
        }
        V::Int(i) => int(out, *i),
        V::Float(f) => {
            out.push(0xfb);
            out.extend(f.to_bits().to_be_bytes());
        }
        V::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        V::Ts(ms) => {
            out.push(0xc1);
            int(out, *ms);
        }
        V::Null => out.push(0xf6),
    }
}

pub fn decode_json(op: &str, v: &V) -> Result<Request, WireError> {
    decode_request(op, Protocol::Json, to_json(v).to_string().as_bytes())
}

pub fn decode_cbor(op: &str, v: &V) -> Result<Request, WireError> {
    decode_request(op, Protocol::Cbor, &to_java_cbor(v))
}

/// Decodes with both protocols, checks they agree, and returns the request.
pub fn decode_both(op: &str, v: &V) -> Request {
    let json = decode_json(op, v);
    let cbor = decode_cbor(op, v);
    let (json, cbor) = match (json, cbor) {
        (Ok(j), Ok(c)) => (j, c),
        other => panic!("{op}: decoding failed: {other:?}"),
    };
    assert_eq!(
        format!("{json:?}"),
        format!("{cbor:?}"),
        "{op}: JSON and CBOR disagree"
    );
    assert_eq!(json.operation(), op);
    json
}

/// The error of a JSON request, as (code, message).
pub fn json_error(op: &str, body: &str) -> (String, Option<String>) {
    match decode_request(op, Protocol::Json, body.as_bytes()) {
        Ok(r) => panic!("{op}: expected an error for {body}, got {r:?}"),
        Err(e) => (e.code().to_owned(), e.message().map(str::to_owned)),
    }
}

/// The ValidationException message of a JSON request (and checks the CBOR twin agrees).
pub fn validation(op: &str, v: &V) -> String {
    let json = decode_json(op, v);
    let cbor = decode_cbor(op, v);
    match (json, cbor) {
        (Err(j), Err(c)) => {
            assert_eq!(j, c, "{op}: JSON and CBOR errors differ");
            assert_eq!(j.code(), "ValidationException");
            assert_eq!(j.status(), 400);
            j.message().unwrap_or_default().to_owned()
        }
        other => panic!("{op}: expected a ValidationException, got {other:?}"),
    }
}

/// The SerializationException message of a JSON body.
pub fn serialization(op: &str, body: &str) -> Option<String> {
    let (code, message) = json_error(op, body);
    assert_eq!(code, "SerializationException", "{body}");
    message
}
