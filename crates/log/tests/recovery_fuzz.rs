//! The recovery fuzz target (`crates/log/fuzz`, target `recovery`) as a property test, so every
//! `cargo test` runs it: arbitrary bytes as log files, or a valid log with random edits (with
//! and without checksums fixed up afterwards), then open, read everything, append, reopen. It
//! must never panic. More cases: `RECOVERY_CASES=100000 cargo test -p kinesin-log --test
//! recovery_fuzz`.

use kinesin_log::testing::exercise_recovery;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("RECOVERY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn recovery_never_panics_on_arbitrary_bytes(input in prop::collection::vec(any::<u8>(), 0..4096)) {
        exercise_recovery(&input);
    }

    #[test]
    fn recovery_never_panics_on_a_damaged_valid_log(
        flags in any::<u8>(),
        edits in prop::collection::vec(any::<u8>(), 0..48),
    ) {
        let mut input = vec![flags | 1];
        input.extend(edits);
        exercise_recovery(&input);
    }
}

/// Inputs the fuzzer found (all with checksums fixed up after the edit, i.e. forged files).
#[test]
fn fuzz_findings_stay_fixed() {
    // A sidecar whose queue table claims more positions than its block list holds: reads
    // across the hole were returned with positions skipped; now they are `Corrupt`.
    exercise_recovery(&[0x03, 0x40, 0xde, 0x40, 0xff, 0xff, 0xff, 0xff]);
    // A sidecar block entry pointing gigabytes past the end of its segment: the read allocated
    // that much before failing; now the index is checked against the file size first.
    exercise_recovery(&[
        0xdf, 0xdd, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5,
        0xf6, 0xe5,
    ]);
    // A sidecar whose arrival summary disagrees with its blocks: time seeks through it fail
    // (`Corrupt`), so even a record just appended cannot be read while its retention cutoff
    // lies behind that segment; an error, not data, and only with forged files.
    exercise_recovery(&[0x5b, 0x32, 0x21, 0xe5]);
    // Forged summaries put a queue's trim horizon past its end: a read continued from a
    // position beyond every record (now clamped to the end).
    exercise_recovery(&[
        0x0f, 0x0f, 0x0f, 0x3d, 0x0f, 0xff, 0xff, 0xff, 0x06, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
        0x2f, 0x08, 0xe9,
    ]);
    // A forged checkpoint ahead of the blocks after it in the same segment: the log appended
    // at the checkpoint's position, a block the next recovery rejected as out of order, losing
    // it. Blocks after the newest checkpoint now decide where a queue continues.
    exercise_recovery(&[
        0x17, 0x9b, 0x11, 0x81, 0x00, 0x72, 0xf2, 0xf2, 0xf2, 0xf2, 0xf2, 0x08, 0x0d, 0xf2, 0x21,
        0x62, 0x72, 0xf8, 0xf8, 0xf8, 0xfa, 0xd2, 0x2f,
    ]);
    // A sidecar block at a position near u64::MAX: its end position overflowed. Decoders now
    // reject positions, LSNs, ids and offsets beyond 2^62.
    exercise_recovery(&[
        0x23, 0x28, 0xe9, 0x28, 0xd8, 0x01, 0x23, 0x28, 0xe9, 0x28, 0xd8, 0x01, 0xff, 0x00, 0x04,
        0xe9, 0x01, 0xff, 0x00, 0x04, 0xe9, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x04, 0xb0, 0xe6,
    ]);
}

/// The fuzz target's committed corpus (`crates/log/fuzz/corpus/recovery`), input by input.
#[test]
fn the_recovery_fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/recovery");
    let mut inputs: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} is empty", dir.display());
    for path in inputs {
        let input = std::fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| exercise_recovery(&input));
        assert!(outcome.is_ok(), "finding: {}", path.display());
    }
}
