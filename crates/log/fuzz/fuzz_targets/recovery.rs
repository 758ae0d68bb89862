//! Recovery from arbitrary bytes: the input becomes a log directory (from nothing, or a small
//! valid log edited: bytes set, flipped, truncated, overwritten, files removed, swapped or grown,
//! optionally with every checksum recomputed so the edits get past them), which is opened,
//! read in full, appended to, closed and opened again. See
//! `kinesin_log::testing::exercise_recovery`. Any panic (in any thread), hang or runaway
//! allocation is a finding. `cargo test -p kinesin-log --test recovery_fuzz` replays the committed
//! corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kinesin_log::testing::exercise_recovery(data);
});
