//! Feeds arbitrary bytes to `decode_request` for every operation and both protocols.
//!
//! The first byte picks one (operation, protocol) pair so that the fuzzer can focus; every
//! eighth input is additionally tried against all 39 operations in both formats. Any panic, or
//! an error that is not a well-formed 400 framework error, is a finding.
//!
//! Run: `cd crates/wire && RUSTC_BOOTSTRAP=1 cargo fuzz run decode -- -rss_limit_mb=512 -timeout=5`
#![no_main]

use kinesin_wire::{decode_request, encode_response, encode_wire_error, operations, Protocol};
use libfuzzer_sys::fuzz_target;

fn one(op: &str, protocol: Protocol, body: &[u8]) {
    match decode_request(op, protocol, body) {
        Ok(request) => assert_eq!(request.operation(), op),
        Err(e) => {
            assert!(matches!(e.code(), "SerializationException" | "ValidationException"));
            assert_eq!(e.status(), 400);
            let (status, out) = encode_wire_error(protocol, &e);
            assert_eq!(status, 400);
            assert!(!out.is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let ops: Vec<&'static str> = operations().collect();
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let protocol = if selector & 0x80 == 0 { Protocol::Json } else { Protocol::Cbor };
    if let Some(op) = ops.get(usize::from(selector & 0x7f) % ops.len()) {
        one(op, protocol, body);
    }
    if selector % 8 == 0 {
        for op in &ops {
            one(op, Protocol::Json, body);
            one(op, Protocol::Cbor, body);
        }
    }
    // Encoding an empty response must stay empty.
    assert!(encode_response(protocol, &kinesin_wire::Response::Empty).is_empty());
});
