//! `application/vnd.amazon.eventstream` framing for SubscribeToShard responses.
//!
//! ```text
//! [u32 total_len][u32 headers_len][u32 prelude_crc = crc32(bytes 0..8)]
//! [headers ...][payload ...][u32 message_crc = crc32(bytes 0..total_len-4)]
//! header = [u8 name_len][name][u8 type = 7 (string)][u16 value_len][value]
//! ```
//! All integers big-endian; CRC-32/IEEE. The events' payloads use the request's protocol
//! (JSON or CBOR), as the SDKs' event unmarshallers expect.

use kinesin_engine::api_ops::SubscribeToShardEvent;

use crate::encode::{self, Sink};
use crate::Protocol;

/// The Content-Type of an event-stream response.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

fn payload_content_type(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Json => "application/json",
        Protocol::Cbor => "application/x-amz-cbor-1.1",
    }
}

/// Longest header name the format allows (its length is one byte).
pub const MAX_HEADER_NAME_BYTES: usize = 255;
/// Longest string header value: the length field is a u16, but the protocol (and the AWS
/// decoders of the CRT, Java and Go) limit values to `i16::MAX` bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = i16::MAX as usize;

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    s.get(..n).unwrap_or("")
}

/// One frame with string headers. Names longer than [`MAX_HEADER_NAME_BYTES`] and values
/// longer than [`MAX_HEADER_VALUE_BYTES`] are cut (at a character boundary), so the frame is
/// always well formed; our callers only pass short constants. The payload must be under 4 GiB.
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| {
            (
                cut(k, MAX_HEADER_NAME_BYTES),
                cut(v, MAX_HEADER_VALUE_BYTES),
            )
        })
        .collect();
    let headers_len: usize = headers
        .iter()
        .map(|(k, v)| 1 + k.len() + 1 + 2 + v.len())
        .sum();
    let total = 12 + headers_len + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers_len as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out[..8]);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    for (k, v) in &headers {
        // Both fit their length fields: cut above.
        out.push(k.len() as u8);
        out.extend_from_slice(k.as_bytes());
        out.push(7);
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn event(protocol: Protocol, event_type: &str, payload: &[u8]) -> Vec<u8> {
    frame(
        &[
            (":message-type", "event"),
            (":event-type", event_type),
            (":content-type", payload_content_type(protocol)),
        ],
        payload,
    )
}

/// The first message of every subscription: an empty `initial-response` event.
pub fn initial_response(protocol: Protocol) -> Vec<u8> {
    let payload: &[u8] = match protocol {
        Protocol::Json => b"{}",
        Protocol::Cbor => &[0xa0],
    };
    event(protocol, "initial-response", payload)
}

/// A `SubscribeToShardEvent` message.
pub fn subscribe_event(protocol: Protocol, e: &SubscribeToShardEvent) -> Vec<u8> {
    let hint = 256
        + e.records
            .iter()
            .map(|r| r.data.len() * 4 / 3 + 160)
            .sum::<usize>();
    let payload = match protocol {
        Protocol::Json => {
            let mut sink = encode::JsonSink::with_capacity(hint);
            encode::subscribe_event(&mut sink, e);
            sink.out
        }
        Protocol::Cbor => {
            let mut sink = encode::CborSink::with_capacity(hint);
            encode::subscribe_event(&mut sink, e);
            sink.out
        }
    };
    event(protocol, "SubscribeToShardEvent", &payload)
}

/// A modeled exception that ends the stream (e.g. `ResourceInUseException` on takeover).
pub fn exception(protocol: Protocol, error: &kinesin_engine::Error) -> Vec<u8> {
    let payload = match protocol {
        Protocol::Json => {
            let mut sink = encode::JsonSink::with_capacity(64 + error.message().len());
            sink.begin_struct();
            sink.key("message");
            sink.string(error.message());
            sink.end_struct();
            sink.out
        }
        Protocol::Cbor => {
            let mut sink = encode::CborSink::with_capacity(64 + error.message().len());
            sink.begin_struct();
            sink.key("message");
            sink.string(error.message());
            sink.end_struct();
            sink.out
        }
    };
    frame(
        &[
            (":message-type", "exception"),
            (":exception-type", error.code()),
            (":content-type", payload_content_type(protocol)),
        ],
        &payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a frame back into (headers, payload), checking both CRCs.
    fn parse(f: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
        let total = u32::from_be_bytes(f[0..4].try_into().unwrap()) as usize;
        let hlen = u32::from_be_bytes(f[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, f.len());
        assert_eq!(
            u32::from_be_bytes(f[8..12].try_into().unwrap()),
            crc32fast::hash(&f[..8])
        );
        assert_eq!(
            u32::from_be_bytes(f[total - 4..].try_into().unwrap()),
            crc32fast::hash(&f[..total - 4])
        );
        let mut h = &f[12..12 + hlen];
        let mut headers = Vec::new();
        while !h.is_empty() {
            let n = h[0] as usize;
            let name = String::from_utf8(h[1..1 + n].to_vec()).unwrap();
            assert_eq!(h[1 + n], 7);
            let vl = u16::from_be_bytes([h[2 + n], h[3 + n]]) as usize;
            let value = String::from_utf8(h[4 + n..4 + n + vl].to_vec()).unwrap();
            headers.push((name, value));
            h = &h[4 + n + vl..];
        }
        (headers, f[12 + hlen..total - 4].to_vec())
    }

    #[test]
    fn oversized_headers_are_cut_consistently() {
        // Found by fuzzing: the lengths used to count the uncut header, giving a corrupt frame.
        let name = "n".repeat(300);
        let value = "\u{e9}".repeat(20_000); // 40,000 bytes of 2-byte characters
        let (h, p) = parse(&frame(&[(&name, &value)], b"x"));
        assert_eq!(h, [("n".repeat(255), "\u{e9}".repeat(16_383))]);
        assert_eq!(p, b"x");
    }

    #[test]
    fn frames_carry_headers_payload_and_crcs() {
        let f = initial_response(Protocol::Json);
        let (h, p) = parse(&f);
        assert_eq!(
            h[1],
            (":event-type".to_string(), "initial-response".to_string())
        );
        assert_eq!(p, b"{}");
        let e = SubscribeToShardEvent {
            records: vec![],
            continuation_sequence_number: None,
            millis_behind_latest: 0,
            child_shards: Some(vec![]),
        };
        let (h, p) = parse(&subscribe_event(Protocol::Json, &e));
        assert_eq!(h[1].1, "SubscribeToShardEvent");
        assert_eq!(
            String::from_utf8(p).unwrap(),
            r#"{"Records":[],"MillisBehindLatest":0,"ChildShards":[]}"#
        );
        let (h, p) = parse(&exception(
            Protocol::Json,
            &kinesin_engine::Error::ResourceInUse("taken".into()),
        ));
        assert_eq!(h[0].1, "exception");
        assert_eq!(
            h[1],
            (
                ":exception-type".to_string(),
                "ResourceInUseException".to_string()
            )
        );
        assert_eq!(p, br#"{"message":"taken"}"#);
    }
}
