//! Differential: `decode_request` (with the one-pass PutRecords/PutRecord decoder in front)
//! must answer exactly as the general path alone, for any JSON body.
//!
//! The first byte picks PutRecords or PutRecord. Any difference — a request the fast path
//! decodes otherwise, or one it accepts that the general path refuses — is a finding.
//!
//! Run: `cd crates/wire && RUSTC_BOOTSTRAP=1 cargo fuzz run fast_decode -- -rss_limit_mb=512`
#![no_main]

use kinesin_wire::{decode_request, decode_request_general, Protocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let op = if selector & 1 == 0 { "PutRecords" } else { "PutRecord" };
    let answer = |r: Result<kinesin_wire::Request, kinesin_wire::WireError>| {
        format!("{:?}", r.map_err(|e| e.to_string()))
    };
    assert_eq!(
        answer(decode_request(op, Protocol::Json, body)),
        answer(decode_request_general(op, Protocol::Json, body)),
    );
});
