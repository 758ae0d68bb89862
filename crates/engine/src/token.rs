//! Opaque, authenticated tokens: shard iterators and pagination tokens.
//!
//! Layout before base64: `[version u8][kind u8][payload ...][tag 16 bytes]`, where the tag is
//! HMAC-SHA256(server key, version..payload) truncated to 16 bytes. The key lives in the metadata
//! store, so tokens survive restarts; a forged or altered token fails the tag check.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TokenKind {
    ShardIterator = 1,
    ListStreams = 2,
    ListShards = 3,
    ListConsumers = 4,
}

/// A shard iterator's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorToken {
    pub issued_ms: i64,
    pub stream_created_ms: i64,
    pub shard_index: u32,
    pub position: u64,
    pub account: String,
    pub region: String,
    pub stream_name: String,
}

/// A pagination token's contents (ListStreams / ListShards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub issued_ms: i64,
    /// ListShards: the stream's creation time; ListStreams: 0.
    pub stream_created_ms: i64,
    pub max_results: u32,
    /// ListShards: stream name; ListStreams: the last stream name returned.
    pub name: String,
    /// ListShards: the last shard index returned.
    pub after_index: u32,
    /// ListShards: the filter's bounds, re-applied on later pages.
    pub filter: Vec<u8>,
}

#[derive(Clone)]
pub struct TokenCodec {
    key: [u8; 32],
}

struct Writer(Vec<u8>);
impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
}

struct Reader<'a>(&'a [u8]);
impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        Some(self.take(n)?.to_vec())
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
}

impl TokenCodec {
    pub fn new(key: [u8; 32]) -> Self {
        TokenCodec { key }
    }

    fn seal(&self, kind: TokenKind, payload: Writer) -> String {
        let mut buf = Vec::with_capacity(payload.0.len() + 2 + TAG_LEN);
        buf.push(VERSION);
        buf.push(kind as u8);
        buf.extend_from_slice(&payload.0);
        let tag = self.tag(&buf);
        buf.extend_from_slice(&tag);
        STANDARD.encode(buf)
    }

    fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(data);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full[..TAG_LEN]);
        out
    }

    fn open<'a>(&self, kind: TokenKind, raw: &'a mut Vec<u8>, token: &str) -> Option<Reader<'a>> {
        if token.len() > 4096 {
            return None;
        }
        *raw = STANDARD.decode(token).ok()?;
        if raw.len() < 2 + TAG_LEN || raw[0] != VERSION || raw[1] != kind as u8 {
            return None;
        }
        let (body, tag) = raw.split_at(raw.len() - TAG_LEN);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(body);
        mac.verify_truncated_left(tag).ok()?;
        Some(Reader(&raw[2..raw.len() - TAG_LEN]))
    }

    pub fn encode_iterator(&self, t: &IteratorToken) -> String {
        let mut w = Writer(Vec::with_capacity(64 + t.stream_name.len()));
        w.u64(t.issued_ms as u64);
        w.u64(t.stream_created_ms as u64);
        w.u32(t.shard_index);
        w.u64(t.position);
        w.bytes(t.account.as_bytes());
        w.bytes(t.region.as_bytes());
        w.bytes(t.stream_name.as_bytes());
        self.seal(TokenKind::ShardIterator, w)
    }

    pub fn decode_iterator(&self, token: &str) -> Option<IteratorToken> {
        let mut raw = Vec::new();
        let mut r = self.open(TokenKind::ShardIterator, &mut raw, token)?;
        let t = IteratorToken {
            issued_ms: r.u64()? as i64,
            stream_created_ms: r.u64()? as i64,
            shard_index: r.u32()?,
            position: r.u64()?,
            account: r.string()?,
            region: r.string()?,
            stream_name: r.string()?,
        };
        r.0.is_empty().then_some(t)
    }

    pub fn encode_page(&self, kind: TokenKind, t: &PageToken) -> String {
        let mut w = Writer(Vec::with_capacity(48 + t.name.len() + t.filter.len()));
        w.u64(t.issued_ms as u64);
        w.u64(t.stream_created_ms as u64);
        w.u32(t.max_results);
        w.bytes(t.name.as_bytes());
        w.u32(t.after_index);
        w.bytes(&t.filter);
        w.u8(0);
        self.seal(kind, w)
    }

    pub fn decode_page(&self, kind: TokenKind, token: &str) -> Option<PageToken> {
        let mut raw = Vec::new();
        let mut r = self.open(kind, &mut raw, token)?;
        let t = PageToken {
            issued_ms: r.u64()? as i64,
            stream_created_ms: r.u64()? as i64,
            max_results: r.u32()?,
            name: r.string()?,
            after_index: r.u32()?,
            filter: r.bytes()?,
        };
        r.take(1)?;
        r.0.is_empty().then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterator_round_trip_and_tamper() {
        let c = TokenCodec::new([7; 32]);
        let t = IteratorToken {
            issued_ms: 1_700_000_000_000,
            stream_created_ms: 1_690_000_000_000,
            shard_index: 3,
            position: 42,
            account: "000000000000".into(),
            region: "us-east-1".into(),
            stream_name: "s".repeat(128),
        };
        let s = c.encode_iterator(&t);
        assert!(s.len() <= 512, "{}", s.len());
        assert_eq!(c.decode_iterator(&s), Some(t));
        let mut bytes = STANDARD.decode(&s).unwrap();
        bytes[5] ^= 1;
        assert_eq!(c.decode_iterator(&STANDARD.encode(bytes)), None);
        assert_eq!(TokenCodec::new([8; 32]).decode_iterator(&s), None);
        assert_eq!(c.decode_iterator("garbage"), None);
        assert_eq!(c.decode_page(TokenKind::ListShards, &s), None);
    }

    #[test]
    fn page_round_trip() {
        let c = TokenCodec::new([1; 32]);
        let t = PageToken {
            issued_ms: 5,
            stream_created_ms: 6,
            max_results: 100,
            name: "abc".into(),
            after_index: 9,
            filter: vec![1, 2, 3],
        };
        let s = c.encode_page(TokenKind::ListShards, &t);
        assert_eq!(c.decode_page(TokenKind::ListShards, &s), Some(t));
        assert_eq!(c.decode_page(TokenKind::ListStreams, &s), None);
    }
}
