//! What the fuzz targets in `crates/wire/fuzz` run on each input, here so that ordinary tests
//! replay the committed corpora through exactly the same checks (`tests/robustness.rs`).

use crate::{
    decode_request, decode_request_general, encode_response, encode_wire_error, operations,
    Protocol, Request, Response, WireError,
};

/// Target `decode`: the first byte picks one (operation, protocol) pair, and every eighth input
/// is also tried against every operation in both formats. Panics on a finding: a panic in the
/// decoder, a decoded request of another operation, or an error that is not a well-formed 400
/// framework error.
pub fn exercise_decode(data: &[u8]) {
    let ops: Vec<&'static str> = operations().collect();
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let protocol = if selector & 0x80 == 0 {
        Protocol::Json
    } else {
        Protocol::Cbor
    };
    if let Some(op) = ops.get(usize::from(selector & 0x7f) % ops.len()) {
        decode_one(op, protocol, body);
    }
    if selector % 8 == 0 {
        for op in &ops {
            decode_one(op, Protocol::Json, body);
            decode_one(op, Protocol::Cbor, body);
        }
    }
    // Encoding an empty response must stay empty.
    assert!(encode_response(protocol, &Response::Empty).is_empty());
}

fn decode_one(op: &str, protocol: Protocol, body: &[u8]) {
    match decode_request(op, protocol, body) {
        Ok(request) => assert_eq!(request.operation(), op),
        Err(e) => {
            assert!(matches!(
                e.code(),
                "SerializationException" | "ValidationException"
            ));
            assert_eq!(e.status(), 400);
            let (status, out) = encode_wire_error(protocol, &e);
            assert_eq!(status, 400);
            assert!(!out.is_empty());
        }
    }
}

/// Target `fast_decode`, differential: the first byte picks PutRecords or PutRecord, and
/// `decode_request` (fast path in front) must answer exactly as the general path alone.
pub fn exercise_fast_decode(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let op = if selector & 1 == 0 {
        "PutRecords"
    } else {
        "PutRecord"
    };
    let answer = |r: Result<Request, WireError>| format!("{:?}", r.map_err(|e| e.to_string()));
    assert_eq!(
        answer(decode_request(op, Protocol::Json, body)),
        answer(decode_request_general(op, Protocol::Json, body)),
        "the fast path and the general path disagree"
    );
}
