//! The headers every response carries: `x-amzn-RequestId`, `x-amz-id-2` and `Date`.
//!
//! They are built for every request, so they are built cheaply: ids come from a per-thread
//! wyrand stream seeded from the OS generator (ids must be unique, not secret; `rand::random`'s
//! ChaCha and `format!` made them ~8% of a PutRecord's instructions), written straight into
//! fixed buffers, and the date is formatted once per second per thread.

use std::cell::{Cell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;

thread_local! {
    static RNG: Cell<u64> = Cell::new(rand::random::<u64>());
    static DATE: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
}

/// wyrand: one multiply per 64 bits, full period over the state.
fn next_u64() -> u64 {
    RNG.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// A version-4 UUID as AWS formats request ids: `8-4-4-4-12` lower-case hex.
#[derive(Clone, Copy)]
pub struct RequestId([u8; 36]);

impl RequestId {
    pub fn new() -> RequestId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // The 128 bits as two halves (u128 shifts cost several instructions each): version 4
        // in the high half's bits 12..16, variant 10xx in the low half's top bits.
        let high = (next_u64() & !(0xF << 12)) | (0x4 << 12);
        let low = (next_u64() & !(0x3 << 62)) | (0x2 << 62);
        let mut hex = [0u8; 32];
        for (half, bits) in [high, low].into_iter().enumerate() {
            for (i, slot) in hex[half * 16..half * 16 + 16].iter_mut().enumerate() {
                *slot = HEX[((bits >> (60 - 4 * i)) & 0xF) as usize];
            }
        }
        let mut out = [b'-'; 36];
        out[..8].copy_from_slice(&hex[..8]);
        out[9..13].copy_from_slice(&hex[8..12]);
        out[14..18].copy_from_slice(&hex[12..16]);
        out[19..23].copy_from_slice(&hex[16..20]);
        out[24..].copy_from_slice(&hex[20..]);
        RequestId(out)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and dashes are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn header(&self) -> Option<HeaderValue> {
        HeaderValue::from_bytes(&self.0).ok()
    }
}

/// 72 random bytes in base64 (96 characters), as AWS sends in `x-amz-id-2`.
pub fn extended_request_id() -> Option<HeaderValue> {
    let mut random = [0u8; 72];
    for chunk in random.chunks_exact_mut(8) {
        chunk.copy_from_slice(&next_u64().to_le_bytes());
    }
    let mut out = [0u8; 96];
    let encoded = base64_simd::STANDARD.encode(&random, base64_simd::Out::from_slice(&mut out));
    HeaderValue::from_bytes(encoded).ok()
}

/// The current time as an HTTP date, formatted at most once per second per thread.
pub fn date() -> Option<HeaderValue> {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if let Some((at, value)) = cached.as_ref() {
            if *at == secs {
                return Some(value.clone());
            }
        }
        let value = HeaderValue::from_str(&httpdate::fmt_http_date(now)).ok()?;
        *cached = Some((secs, value.clone()));
        Some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_4_uuids_and_differ() {
        let a = RequestId::new();
        let b = RequestId::new();
        assert_ne!(a.as_str(), b.as_str());
        let s = a.as_str();
        let groups: Vec<&str> = s.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(s
            .bytes()
            .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert!(groups[2].starts_with('4'), "{s}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{s}"
        );
    }

    #[test]
    fn extended_ids_are_96_base64_characters() {
        let a = extended_request_id().expect("valid header");
        let b = extended_request_id().expect("valid header");
        assert_ne!(a, b);
        assert_eq!(a.len(), 96);
        assert!(a
            .as_bytes()
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/'));
    }

    #[test]
    fn date_is_an_http_date_near_now() {
        let v = date().expect("date");
        let parsed = httpdate::parse_http_date(v.to_str().expect("ascii")).expect("http date");
        let skew = SystemTime::now()
            .duration_since(parsed)
            .unwrap_or_default()
            .as_secs();
        assert!(skew <= 1, "{v:?}");
    }
}
