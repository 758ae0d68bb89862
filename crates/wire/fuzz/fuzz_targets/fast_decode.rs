//! Differential: `decode_request` (with the one-pass PutRecords/PutRecord decoder in front)
//! must answer exactly as the general path alone, for any JSON body.
//!
//! The first byte picks PutRecords or PutRecord. Any difference — a request the fast path
//! decodes otherwise, or one it accepts that the general path refuses — is a finding.
//!
//! Run: `cd crates/wire && RUSTC_BOOTSTRAP=1 cargo fuzz run fast_decode -- -rss_limit_mb=512`
//!
//! The checks live in `kinesin_wire::testing::exercise_fast_decode`, which `cargo test` also runs over
//! this target's committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kinesin_wire::testing::exercise_fast_decode(data);
});
