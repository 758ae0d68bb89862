//! The 128-bit hash key space: partition-key hashing and even splits (kinesis-api.md §3.2–3.3).

use md5::{Digest, Md5};

/// MD5 of the partition key's UTF-8 bytes as an unsigned big-endian 128-bit integer.
pub fn partition_hash(partition_key: &[u8]) -> u128 {
    let digest = Md5::digest(partition_key);
    u128::from_be_bytes(digest.into())
}

/// The `i`-th of `n` even ranges: `floor(2^128 / n)` each, the remainder on the last.
pub fn even_range(i: u32, n: u32) -> (u128, u128) {
    debug_assert!(n > 0 && i < n);
    // floor(2^128 / n) computed without overflow: (u128::MAX / n) is floor((2^128-1)/n), which
    // equals floor(2^128/n) unless n divides 2^128 (n a power of two), where it is one less.
    let step = if n.is_power_of_two() {
        if n == 1 {
            0 // a single shard covers everything; step unused
        } else {
            1u128 << (128 - n.trailing_zeros())
        }
    } else {
        u128::MAX / n as u128
    };
    if n == 1 {
        return (0, u128::MAX);
    }
    let start = step * i as u128;
    let end = if i == n - 1 {
        u128::MAX
    } else {
        step * (i as u128 + 1) - 1
    };
    (start, end)
}

/// Parses a `HashKey` decimal (pattern-checked by the wire layer); `None` if above 2^128-1.
pub fn parse_hash_key(s: &str) -> Option<u128> {
    s.parse::<u128>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_shards_match_the_reference() {
        assert_eq!(
            even_range(0, 3),
            (0, 113427455640312821154458202477256070484)
        );
        assert_eq!(
            even_range(1, 3),
            (
                113427455640312821154458202477256070485,
                226854911280625642308916404954512140969
            )
        );
        assert_eq!(
            even_range(2, 3),
            (226854911280625642308916404954512140970, u128::MAX)
        );
    }

    #[test]
    fn two_shards_split_at_2_pow_127() {
        assert_eq!(even_range(0, 2), (0, (1u128 << 127) - 1));
        assert_eq!(even_range(1, 2), (1u128 << 127, u128::MAX));
        assert_eq!(even_range(0, 1), (0, u128::MAX));
    }

    #[test]
    fn ranges_tile_the_space() {
        for n in [1u32, 2, 3, 4, 5, 7, 8, 10, 64, 100, 1000, 10000] {
            let mut next = 0u128;
            for i in 0..n {
                let (s, e) = even_range(i, n);
                assert_eq!(s, next, "n={n} i={i}");
                assert!(e >= s);
                next = e.wrapping_add(1);
            }
            assert_eq!(next, 0, "n={n} covers up to 2^128-1");
        }
    }

    #[test]
    fn md5_is_big_endian() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(partition_hash(b""), 0xd41d8cd98f00b204e9800998ecf8427e_u128);
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455"),
            Some(u128::MAX)
        );
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211456"),
            None
        );
    }
}
