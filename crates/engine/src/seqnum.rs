//! Sequence numbers in Kinesis's 186-bit layout (kinesis-api.md §3.4).
//!
//! As 47 hex digits, most significant first:
//!
//! ```text
//! digit  0      : 2                              (constant)
//! digits 1..=9  : shard creation time, epoch s   (36 bits)
//! digit  10     : shard index & 0xF
//! digits 11..=26: counter                        (64 bits; our log position)
//! digits 27..=28: 00
//! digits 29..=37: arrival time, epoch s          (36 bits)
//! digits 38..=45: shard index                    (32 bits)
//! digit  46     : 2                              (format version)
//! ```
//!
//! For a fixed shard, numeric order is counter order, so numbers grow strictly with the log
//! position; children sort after parents because their creation time is later.

use std::fmt;

/// The decoded fields of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqNum {
    pub shard_created_secs: u64,
    pub counter: u64,
    pub arrival_secs: u64,
    pub shard_index: u32,
}

/// The counter a closed shard's `EndingSequenceNumber` carries (as kinesalite and kinesis-mock).
pub const MAX_COUNTER: u64 = 0x7FFF_FFFF_FFFF_FFFF;

const MASK36: u64 = (1 << 36) - 1;

/// Why a decimal string is not one of our sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNumError {
    /// Not a decimal number of this layout at all.
    Malformed,
}

impl SeqNum {
    /// The 188-bit value as three words, most significant first (top word holds 60 bits).
    fn to_words(self) -> [u64; 3] {
        // Assemble the 47 nibbles into a u128 pair: high part = digits 0..=26 (27 nibbles,
        // 108 bits), low part = digits 27..=46 (20 nibbles, 80 bits).
        let hi: u128 = (2u128 << 104)
            | (((self.shard_created_secs & MASK36) as u128) << 68)
            | (((self.shard_index & 0xF) as u128) << 64)
            | self.counter as u128;
        let lo: u128 = (((self.arrival_secs & MASK36) as u128) << 36)
            | ((self.shard_index as u128) << 4)
            | 2u128;
        // value = hi << 80 | lo
        let w2 = (lo & ((1u128 << 64) - 1)) as u64; // low 64 bits
        let mid = (hi << 16) | (lo >> 64); // bits 64..=187 as u128 (124 bits)
        let w1 = (mid & ((1u128 << 64) - 1)) as u64;
        let w0 = (mid >> 64) as u64;
        [w0, w1, w2]
    }

    fn from_words(w: [u64; 3]) -> Result<SeqNum, SeqNumError> {
        let mid = ((w[0] as u128) << 64) | w[1] as u128; // bits 64.. of value
        let lo_top16 = (mid & 0xFFFF) as u64; // bits 64..80 of value belong to `lo`
        let hi = mid >> 16;
        let lo = ((lo_top16 as u128) << 64) | w[2] as u128;
        if hi >> 104 != 2 {
            return Err(SeqNumError::Malformed);
        }
        if lo & 0xF != 2 {
            return Err(SeqNumError::Malformed);
        }
        let shard_created_secs = ((hi >> 68) as u64) & MASK36;
        let low_nibble = ((hi >> 64) & 0xF) as u32;
        let counter = hi as u64;
        let arrival_secs = ((lo >> 36) as u64) & MASK36;
        let shard_index = ((lo >> 4) & 0xFFFF_FFFF) as u32;
        if lo >> 72 != 0 {
            return Err(SeqNumError::Malformed);
        }
        if low_nibble != shard_index & 0xF {
            return Err(SeqNumError::Malformed);
        }
        Ok(SeqNum {
            shard_created_secs,
            counter,
            arrival_secs,
            shard_index,
        })
    }

    /// Parses a decimal sequence number of our layout.
    pub fn parse(s: &str) -> Result<SeqNum, SeqNumError> {
        if s.is_empty() || s.len() > 60 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SeqNumError::Malformed);
        }
        // Decimal to 192-bit: words * 10 + digit, with overflow check.
        let mut w = [0u64; 3];
        for b in s.bytes() {
            let mut carry = (b - b'0') as u128;
            for word in w.iter_mut().rev() {
                let v = (*word as u128) * 10 + carry;
                *word = v as u64;
                carry = v >> 64;
            }
            if carry != 0 {
                return Err(SeqNumError::Malformed);
            }
        }
        Self::from_words(w)
    }
}

/// Room for any sequence number in decimal (2^192 < 10^58), rounded up to whole nine-digit
/// chunks.
pub const DECIMAL_BUFFER: usize = 63;

/// A sequence number's decimal text, held inline: a GetRecords reply carries up to 10,000 of
/// them, which then cost no allocation each.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SeqText {
    len: u8,
    digits: [u8; DECIMAL_BUFFER],
}

impl SeqText {
    /// `text`, if it is 1 to [`DECIMAL_BUFFER`] ASCII digits.
    pub fn new(text: &str) -> Option<SeqText> {
        let b = text.as_bytes();
        (!b.is_empty() && b.len() <= DECIMAL_BUFFER && b.iter().all(u8::is_ascii_digit))
            .then(|| SeqText::from_digits(b))
    }

    /// `digits`: ASCII digits, at most DECIMAL_BUFFER of them.
    fn from_digits(digits: &[u8]) -> SeqText {
        let len = digits.len().min(DECIMAL_BUFFER);
        let mut text = SeqText {
            len: len as u8,
            digits: [b'0'; DECIMAL_BUFFER],
        };
        text.digits[..len].copy_from_slice(&digits[..len]);
        text
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }

    /// Its length in digits (never 0).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever held.
        std::str::from_utf8(self.as_bytes()).unwrap_or("0")
    }
}

impl std::ops::Deref for SeqText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for SeqText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SeqText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for SeqText {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for SeqText {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for SeqText {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// "00" to "99", for writing two digits at a time.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

impl SeqNum {
    /// The decimal form, written into `buf` without allocating (one is written per record).
    pub fn write_decimal(self, buf: &mut [u8; DECIMAL_BUFFER]) -> &str {
        // 192 bits as six 32-bit limbs, most significant first, turned into decimal nine digits
        // at a time; every division is a u64 one by a constant, and limbs already divided down
        // to zero are skipped.
        let w = self.to_words();
        let limbs = [
            (w[0] >> 32) as u32,
            w[0] as u32,
            (w[1] >> 32) as u32,
            w[1] as u32,
            (w[2] >> 32) as u32,
            w[2] as u32,
        ];
        write_limbs(limbs, buf)
    }
}

/// A 192-bit number (six limbs, most significant first) in decimal, written into `buf`.
fn write_limbs(mut limbs: [u32; 6], buf: &mut [u8; DECIMAL_BUFFER]) -> &str {
    const CHUNK: u64 = 1_000_000_000;
    let mut top = 0;
    let mut end = buf.len();
    while end >= 9 && top < limbs.len() {
        let Some(live) = limbs.get_mut(top..) else {
            break;
        };
        let mut rem = 0u64;
        for limb in live.iter_mut() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / CHUNK) as u32;
            rem = cur % CHUNK;
        }
        // rem < 10^9: four pairs and a single digit.
        let mut chunk = rem as u32;
        for _ in 0..4 {
            let pair = (chunk % 100) as usize * 2;
            chunk /= 100;
            end -= 2;
            buf[end..end + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        }
        end -= 1;
        buf[end] = b'0' + chunk as u8;
        while limbs.get(top) == Some(&0) {
            top += 1;
        }
    }
    // Only the most significant chunk can start with zeros (all nine of them for zero);
    // nothing before `end` was written.
    let written = buf.get(end..).unwrap_or_default();
    let zeros = written
        .iter()
        .take_while(|&&d| d == b'0')
        .count()
        .min(written.len().saturating_sub(1));
    // Only ASCII digits were written.
    std::str::from_utf8(&written[zeros..]).unwrap_or("0")
}

/// 10^16: the last 32 decimal digits are kept as two numbers below this.
const E16: u64 = 10_000_000_000_000_000;
/// 2^80 (1208925819614629174706176), the weight of the counter field, as (digits 17..=32
/// from the right, digits 1..=16).
const COUNTER_STEP: (u64, u64) = (120_892_581, 9_614_629_174_706_176);

/// Decimal forms of a run of sequence numbers in which each is usually its predecessor's
/// successor (one shard's records, read in order). A successor differs only in a counter one
/// higher, i.e. by exactly 2^80, which changes only the last 32 decimal digits (but once in
/// ~10^7 steps): those are kept as two u64s, added to, and written out again, instead of
/// dividing 192 bits down to decimal for every record.
pub struct SeqDecimals {
    last: Option<SeqNum>,
    /// The last number's digits are `buf[start..]`; `buf[..start]` holds '0's.
    buf: [u8; DECIMAL_BUFFER],
    start: usize,
    /// The last 32 digits, as (the upper 16, the lower 16).
    low: (u64, u64),
}

impl Default for SeqDecimals {
    fn default() -> Self {
        SeqDecimals {
            last: None,
            buf: [b'0'; DECIMAL_BUFFER],
            start: DECIMAL_BUFFER - 1,
            low: (0, 0),
        }
    }
}

impl SeqDecimals {
    /// The decimal form of `n`.
    pub fn format(&mut self, n: SeqNum) -> &str {
        self.advance(n);
        // Only ASCII digits are ever written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("0")
    }

    /// The decimal form of `n`, as a value of its own.
    pub fn text(&mut self, n: SeqNum) -> SeqText {
        self.advance(n);
        SeqText::from_digits(&self.buf[self.start..])
    }

    /// Makes `buf[start..]` the decimal form of `n`.
    fn advance(&mut self, n: SeqNum) {
        let successor = self.last.is_some_and(|p| {
            p.counter.checked_add(1) == Some(n.counter)
                && SeqNum {
                    counter: n.counter,
                    ..p
                } == n
        });
        if !(successor && self.add_counter_step()) {
            self.write_whole(n);
        }
        self.last = Some(n);
    }

    fn write_whole(&mut self, n: SeqNum) {
        let len = n.write_decimal(&mut self.buf).len();
        self.start = DECIMAL_BUFFER - len;
        self.buf[..self.start].fill(b'0');
        let digits = |range: std::ops::Range<usize>| {
            self.buf[range]
                .iter()
                .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'))
        };
        let n = DECIMAL_BUFFER;
        self.low = (digits(n - 32..n - 16), digits(n - 16..n));
    }

    /// Adds 2^80 to the number in `buf`; false if that carries past the last 32 digits.
    fn add_counter_step(&mut self) -> bool {
        let mut lower = self.low.1 + COUNTER_STEP.1;
        let mut carry = 0;
        if lower >= E16 {
            lower -= E16;
            carry = 1;
        }
        let upper = self.low.0 + COUNTER_STEP.0 + carry;
        if upper >= E16 {
            return false;
        }
        self.low = (upper, lower);
        let n = DECIMAL_BUFFER;
        write_16_digits(&mut self.buf[n - 32..n - 16], upper);
        write_16_digits(&mut self.buf[n - 16..], lower);
        if self.start > n - 32 {
            // A short number may have grown a digit.
            self.start = self.buf[..n - 1]
                .iter()
                .position(|&d| d != b'0')
                .unwrap_or(n - 1);
        }
        true
    }
}

/// `v` (below 10^16) as exactly 16 digits, leading zeros included, into `out` (16 bytes).
fn write_16_digits(out: &mut [u8], mut v: u64) {
    for pair_at in (0..16).step_by(2).rev() {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        if let (Some(dst), Some(src)) =
            (out.get_mut(pair_at..pair_at + 2), PAIRS.get(pair..pair + 2))
        {
            dst.copy_from_slice(src);
        }
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write_decimal(&mut [0; DECIMAL_BUFFER]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seq_decimals_agree_with_the_divider(
            start in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()),
            steps in proptest::collection::vec((0u8..10, any::<u64>()), 1..60),
        ) {
            let mut n = SeqNum {
                shard_created_secs: start.0 & MASK36,
                counter: start.1,
                arrival_secs: start.2 & MASK36,
                shard_index: start.3,
            };
            let mut decimals = SeqDecimals::default();
            for (kind, value) in steps {
                // Mostly successors; sometimes a jump, a new arrival second or another shard.
                match kind {
                    0 => n.counter = value,
                    1 => n.arrival_secs = value & MASK36,
                    2 => n.shard_index = value as u32,
                    3 => n.counter = u64::MAX - (value % 3),
                    _ => n.counter = n.counter.wrapping_add(1),
                }
                // Either form: both advance the same digits.
                if value & 1 == 0 {
                    prop_assert_eq!(decimals.format(n), n.to_string());
                } else {
                    prop_assert_eq!(decimals.text(n), n.to_string());
                }
            }
        }
    }

    #[test]
    fn seq_text_holds_only_short_runs_of_digits() {
        let longest = "9".repeat(DECIMAL_BUFFER);
        for ok in [
            "0",
            "49590338271490256608559692538361571095921575989136588898",
            &longest,
        ] {
            let text = SeqText::new(ok).expect("digits");
            assert_eq!(text, ok);
            assert_eq!(text.len(), ok.len());
            assert_eq!(format!("{text}"), ok);
            assert_eq!(format!("{text:?}"), format!("{ok:?}"));
            assert_eq!(text.to_string(), ok);
        }
        let too_long = "1".repeat(DECIMAL_BUFFER + 1);
        for bad in ["", "12a", "-1", " 1", "١٢", &too_long] {
            assert_eq!(SeqText::new(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn seq_decimals_fall_back_when_a_step_carries_past_the_last_32_digits() {
        // The counter at which the last 32 digits are within one step of wrapping.
        let mut n = SeqNum {
            shard_created_secs: 1_704_067_200,
            counter: 0,
            arrival_secs: 1_704_067_260,
            shard_index: 3,
        };
        let text = n.to_string();
        let last32: u128 = text[text.len() - 32..].parse().expect("digits");
        let (wrap, step) = (10u128.pow(32), 1u128 << 80);
        n.counter = (wrap - step - last32).div_ceil(step) as u64;
        let mut decimals = SeqDecimals::default();
        for _ in 0..4 {
            assert_eq!(decimals.format(n), n.to_string());
            n.counter += 1;
        }
        let text = n.to_string();
        let crossed: u128 = text[text.len() - 32..].parse().expect("digits");
        assert!(
            crossed < step * 4,
            "the steps above crossed a multiple of 10^32"
        );
    }

    #[test]
    fn seq_decimals_carry_through_every_digit_of_the_step() {
        let mut decimals = SeqDecimals::default();
        let mut n = SeqNum {
            shard_created_secs: MASK36,
            counter: u64::MAX - 5,
            arrival_secs: MASK36,
            shard_index: u32::MAX,
        };
        for _ in 0..5 {
            n.counter += 1;
            assert_eq!(decimals.format(n), n.to_string());
        }
    }

    #[test]
    fn decodes_the_documented_example() {
        // kinesis-api.md §3.4: shard 6 created 2018-11-21T04:57:38Z, counter 1734642199,
        // arrived 2018-12-17T22:10:50Z.
        let s = "49590338271490256608559692538361571095921575989136588898";
        let n = SeqNum::parse(s).expect("parses");
        assert_eq!(n.shard_created_secs, 0x05bf4e5c2);
        assert_eq!(n.counter, 1734642199);
        assert_eq!(n.arrival_secs, 0x05c181eea);
        assert_eq!(n.shard_index, 6);
        assert_eq!(n.to_string(), s);
    }

    #[test]
    fn writes_zero_and_small_values_without_leading_zeros() {
        // Not our layout (no leading 2), but the formatter must still be exact.
        let mut buf = [0; DECIMAL_BUFFER];
        let words = |w: [u64; 3]| {
            let mut limbs = [0u32; 6];
            for (i, word) in w.iter().enumerate() {
                limbs[2 * i] = (word >> 32) as u32;
                limbs[2 * i + 1] = *word as u32;
            }
            limbs
        };
        assert_eq!(write_limbs(words([0, 0, 0]), &mut buf), "0");
        assert_eq!(write_limbs(words([0, 0, 7]), &mut buf), "7");
        assert_eq!(
            write_limbs(words([0, 0, 1_000_000_000]), &mut buf),
            "1000000000"
        );
        assert_eq!(
            write_limbs(words([0, 0, u64::MAX]), &mut buf),
            u64::MAX.to_string()
        );
        assert_eq!(
            write_limbs(words([0, 1, 0]), &mut buf),
            (1u128 << 64).to_string()
        );
    }

    #[test]
    fn encodes_appendix_b_examples() {
        let rec = SeqNum {
            shard_created_secs: 1704067200,
            counter: 0,
            arrival_secs: 1704067260,
            shard_index: 0,
        };
        assert_eq!(
            rec.to_string(),
            "49647888802562419836923936470999665672519603631991816194"
        );
        let start = SeqNum {
            arrival_secs: 1704067200,
            ..rec
        };
        assert_eq!(
            start.to_string(),
            "49647888802562419836923936470999665672519599508823212034"
        );
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "abc", "0", "1", "-5", &"9".repeat(61), &"9".repeat(57)] {
            assert!(SeqNum::parse(s).is_err(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn round_trips_and_orders_by_counter(
            created in 0u64..(1 << 36), idx in any::<u32>(),
            c1 in 0u64..=MAX_COUNTER, c2 in 0u64..=MAX_COUNTER,
            a1 in 0u64..(1 << 36), a2 in 0u64..(1 << 36),
        ) {
            let n1 = SeqNum { shard_created_secs: created, counter: c1, arrival_secs: a1, shard_index: idx };
            let n2 = SeqNum { counter: c2, arrival_secs: a2, ..n1 };
            let s1 = n1.to_string();
            let s2 = n2.to_string();
            prop_assert_eq!(SeqNum::parse(&s1).unwrap(), n1);
            prop_assert_eq!(SeqNum::parse(&s2).unwrap(), n2);
            // Numeric order (length, then lexicographic) follows the counter.
            let ord = s1.len().cmp(&s2.len()).then(s1.cmp(&s2));
            if c1 != c2 { prop_assert_eq!(ord, c1.cmp(&c2)); }
        }
    }
}
