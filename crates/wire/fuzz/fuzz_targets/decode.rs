//! Feeds arbitrary bytes to `decode_request` for every operation and both protocols.
//!
//! The first byte picks one (operation, protocol) pair so that the fuzzer can focus; every
//! eighth input is additionally tried against all 39 operations in both formats. Any panic, or
//! an error that is not a well-formed 400 framework error, is a finding.
//!
//! Run: `cd crates/wire && RUSTC_BOOTSTRAP=1 cargo fuzz run decode -- -rss_limit_mb=512 -timeout=5`
//!
//! The checks live in `kinesin_wire::testing::exercise_decode`, which `cargo test` also runs over
//! this target's committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kinesin_wire::testing::exercise_decode(data);
});
