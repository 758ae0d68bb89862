//! One-pass decoding of the JSON bodies SDKs send for PutRecords and PutRecord, straight from
//! the body into the engine's input, without the value tree and typed members in between.
//!
//! The rule that keeps it exact: whatever this accepts, the general path
//! ([`crate::decode_request`] without it) decodes to the same request. Anything else — an
//! escape, a null, a number, an unknown or repeated member, a missing member, a value that
//! fails a constraint — returns `None`, and the general path decides, with coral's error texts.
//! Strings are checked with the model's own rules and Data with the same strict base64 decoder;
//! a property test compares both paths on generated and mutated bodies.

use std::ops::Range;

use bytes::Bytes;
use kinesin_engine::api::{
    PartitionKey, PutRecordInput, PutRecordsEntry, PutRecordsInput, StreamRef,
};

use crate::decode::{
    decode_base64_strict, decode_base64_strict_append, length_valid, string_valid,
};
use crate::model::{self, Shape};
use crate::Request;

/// A PutRecords JSON body in the common shape, or `None` (take the general path).
pub(crate) fn put_records(body: &[u8]) -> Option<Request> {
    let mut c = Cursor {
        body,
        at: 0,
        arena: Some(Arena::new(body.len())),
    };
    let mut records = None;
    let mut stream = StreamRef::default();
    c.object(|c, key| match key {
        b"Records" if records.is_none() => {
            records = Some(c.records()?);
            Some(())
        }
        _ => c.stream_member(key, &mut stream),
    })?;
    c.end()?;
    let chunks = c.arena.take().map(Arena::finish).unwrap_or_default();
    let records = records?
        .into_iter()
        .map(|(data, partition_key, explicit_hash_key)| {
            Some(PutRecordsEntry {
                data: data.resolve(&chunks)?,
                partition_key: PartitionKey::from_utf8(partition_key.resolve(&chunks)?).ok()?,
                explicit_hash_key,
            })
        })
        .collect::<Option<_>>()?;
    Some(Request::PutRecords(PutRecordsInput { records, stream }))
}

/// A PutRecord JSON body in the common shape, or `None` (take the general path).
pub(crate) fn put_record(body: &[u8]) -> Option<Request> {
    let mut c = Cursor {
        body,
        at: 0,
        arena: None,
    };
    let mut record = Entry::default();
    let mut sequence_number_for_ordering = None;
    let mut stream = StreamRef::default();
    c.object(|c, key| match key {
        b"SequenceNumberForOrdering" => {
            c.text_once(&mut sequence_number_for_ordering, &model::SEQUENCE_NUMBER)
        }
        b"StreamName" | b"StreamARN" => c.stream_member(key, &mut stream),
        _ => record.member(c, key),
    })?;
    c.end()?;
    let data = record.data?.resolve(&[])?;
    let partition_key = PartitionKey::from_utf8(record.partition_key?.resolve(&[])?).ok()?;
    Some(Request::PutRecord(PutRecordInput {
        stream,
        data,
        partition_key,
        explicit_hash_key: record.explicit_hash_key,
        sequence_number_for_ordering,
    }))
}

/// Where a member's bytes (decoded Data, or a partition key) are: their own buffer, or a range
/// of one of the arena's chunks.
enum Slice {
    Own(Bytes),
    Packed { chunk: usize, range: Range<usize> },
}

impl Slice {
    fn len(&self) -> usize {
        match self {
            Slice::Own(bytes) => bytes.len(),
            Slice::Packed { range, .. } => range.len(),
        }
    }

    fn resolve(self, chunks: &[Bytes]) -> Option<Bytes> {
        match self {
            Slice::Own(bytes) => Some(bytes),
            Slice::Packed { chunk, range } => {
                let chunk = chunks.get(chunk)?;
                (range.end <= chunk.len()).then(|| chunk.slice(range))
            }
        }
    }
}

/// A PutRecords body's decoded Data and partition keys, packed into a few shared buffers
/// rather than an allocation each: those allocations and frees were ~8% and ~5% of PutRecords'
/// instructions (callgrind). Chunks are at most [`ARENA_CHUNK`] unless one record needs more,
/// so they stay below glibc's mmap threshold (1 MiB, `main.rs`) and come from the heap rather
/// than fresh mappings; and no chunk is larger than what the rest of the body could still
/// become.
struct Arena {
    full: Vec<Bytes>,
    current: Vec<u8>,
    /// The body's bytes not yet packed: a bound on what the rest can add (base64 decodes to
    /// less than its text, a key is its text).
    left: usize,
}

const ARENA_CHUNK: usize = 512 << 10;

impl Arena {
    fn new(body_len: usize) -> Arena {
        Arena {
            full: Vec::new(),
            current: Vec::new(),
            left: body_len,
        }
    }

    /// Makes room for `most` more bytes in the current chunk (starting a new one if needed),
    /// for a member whose text is `text_len` bytes of the body.
    fn room(&mut self, most: usize, text_len: usize) {
        if self.current.capacity() - self.current.len() < most {
            if !self.current.is_empty() {
                self.full
                    .push(Bytes::from(std::mem::take(&mut self.current)));
            }
            self.current = Vec::with_capacity(most.max(ARENA_CHUNK.min(self.left)));
        }
        self.left = self.left.saturating_sub(text_len);
    }

    /// Decodes a Data member's text into the arena.
    fn decode(&mut self, text: &[u8]) -> Option<Slice> {
        self.room(text.len().div_ceil(4) * 3, text.len());
        let start = self.current.len();
        decode_base64_strict_append(text, &mut self.current)?;
        Some(self.packed(start))
    }

    /// Copies a partition key's bytes into the arena.
    fn copy(&mut self, key: &[u8]) -> Slice {
        self.room(key.len(), key.len());
        let start = self.current.len();
        self.current.extend_from_slice(key);
        self.packed(start)
    }

    /// What was added to the current chunk since `start`.
    fn packed(&self, start: usize) -> Slice {
        Slice::Packed {
            chunk: self.full.len(),
            range: start..self.current.len(),
        }
    }

    fn finish(mut self) -> Vec<Bytes> {
        self.full.push(Bytes::from(self.current));
        self.full
    }
}

/// The members a PutRecords entry and a PutRecord share.
#[derive(Default)]
struct Entry {
    data: Option<Slice>,
    partition_key: Option<Slice>,
    explicit_hash_key: Option<String>,
}

impl Entry {
    fn member(&mut self, c: &mut Cursor<'_>, key: &[u8]) -> Option<()> {
        match key {
            b"Data" if self.data.is_none() => {
                self.data = Some(c.data()?);
                Some(())
            }
            b"PartitionKey" if self.partition_key.is_none() => {
                self.partition_key = Some(c.partition_key()?);
                Some(())
            }
            b"ExplicitHashKey" => c.text_once(&mut self.explicit_hash_key, &model::HASH_KEY),
            _ => None,
        }
    }
}

struct Cursor<'a> {
    body: &'a [u8],
    at: usize,
    /// Where Data members go: packed into an arena (PutRecords), or each its own buffer.
    arena: Option<Arena>,
}

impl<'a> Cursor<'a> {
    /// Skips JSON whitespace (exactly the four characters RFC 8259 allows).
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.body.get(self.at) {
            self.at += 1;
        }
    }

    /// The next non-whitespace byte, consumed.
    fn next(&mut self) -> Option<u8> {
        self.skip_ws();
        let b = *self.body.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// Only whitespace may follow the document.
    fn end(&mut self) -> Option<()> {
        self.skip_ws();
        (self.at == self.body.len()).then_some(())
    }

    /// The raw bytes between the quotes of the next string, up to the first `"`. Whether they
    /// are a valid JSON string is for the caller to check: an escaped quote ends it early, and
    /// leaves a backslash at its end.
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let rest = self.body.get(self.at..)?;
        let len = memchr::memchr(b'"', rest)?;
        self.at += len + 1;
        rest.get(..len)
    }

    /// The next string, if it has no escapes and no control characters (serde_json rejects
    /// those raw) and is UTF-8.
    fn plain_string(&mut self) -> Option<&'a str> {
        let raw = self.raw_string()?;
        if raw.iter().any(|&b| b == b'\\' || b < 0x20) {
            return None;
        }
        std::str::from_utf8(raw).ok()
    }

    /// A string member that satisfies `shape`.
    fn text(&mut self, shape: &Shape) -> Option<String> {
        let s = self.plain_string()?;
        string_valid(shape, s).then(|| s.to_owned())
    }

    /// A Data member: a string the strict base64 decoder accepts (it rejects backslashes and
    /// control characters, so nothing else needs checking), within Data's length limits.
    fn data(&mut self) -> Option<Slice> {
        let text = self.raw_string()?;
        let data = match &mut self.arena {
            Some(arena) => arena.decode(text)?,
            None => Slice::Own(decode_base64_strict(text)?),
        };
        length_valid(&model::DATA, data.len()).then_some(data)
    }

    /// A PartitionKey member that satisfies its shape, as bytes.
    fn partition_key(&mut self) -> Option<Slice> {
        let key = self.plain_string()?;
        if !string_valid(&model::PARTITION_KEY, key) {
            return None;
        }
        Some(match &mut self.arena {
            Some(arena) => arena.copy(key.as_bytes()),
            None => Slice::Own(Bytes::copy_from_slice(key.as_bytes())),
        })
    }

    /// An object of at least one member; `member` reads each value after its key.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        loop {
            let key = self.plain_string()?.as_bytes();
            self.expect(b':')?;
            member(self, key)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A string member into an empty `slot`; a repeated member is the general path's business.
    fn text_once(&mut self, slot: &mut Option<String>, shape: &Shape) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(self.text(shape)?);
        Some(())
    }

    fn stream_member(&mut self, key: &[u8], stream: &mut StreamRef) -> Option<()> {
        match key {
            b"StreamName" => self.text_once(&mut stream.name, &model::STREAM_NAME),
            b"StreamARN" => self.text_once(&mut stream.arn, &model::STREAM_ARN),
            _ => None,
        }
    }

    /// The Records list: 1 to 500 entries, each with Data and PartitionKey.
    fn records(&mut self) -> Option<Vec<(Slice, Slice, Option<String>)>> {
        self.expect(b'[')?;
        let mut records = Vec::new();
        loop {
            let mut entry = Entry::default();
            self.object(|c, key| entry.member(c, key))?;
            records.push((entry.data?, entry.partition_key?, entry.explicit_hash_key));
            if !length_valid(&model::PUT_RECORDS_REQUEST_ENTRY_LIST, records.len()) {
                return None;
            }
            match self.next()? {
                b',' => {}
                b']' => return Some(records),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{decode_request, decode_request_general, Protocol};

    /// Both paths' results, as comparable text.
    fn both(operation: &str, body: &[u8]) -> (Option<String>, String) {
        let fast = match operation {
            "PutRecords" => put_records(body),
            _ => put_record(body),
        };
        let general = decode_request_general(operation, Protocol::Json, body);
        (
            fast.map(|r| format!("{r:?}")),
            format!("{:?}", general.map_err(|e| e.to_string())),
        )
    }

    #[test]
    fn takes_the_bodies_sdks_send() {
        // boto3 and the CLI (", " and ": "), the JS and Rust SDKs (compact), pretty-printed.
        let bodies: [&[u8]; 4] = [
            br#"{"Records": [{"Data": "aGVsbG8=", "PartitionKey": "k1"}, {"Data": "", "PartitionKey": "k2", "ExplicitHashKey": "42"}], "StreamName": "s"}"#,
            br#"{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","Records":[{"Data":"aGk=","PartitionKey":"\u00e9t\u00e9"}]}"#,
            b"{\n  \"Records\" : [\n    {\"PartitionKey\":\"k\",\"Data\":\"AAAA\"}\n  ],\n  \"StreamName\":\"s\"\n}\n",
            br#"{"Records":[{"Data":"aGk=","PartitionKey":"k"}]}"#,
        ];
        let taken = bodies
            .iter()
            .filter(|body| put_records(body).is_some())
            .count();
        // The second has escapes in a partition key: the general path's business.
        assert_eq!(taken, 3);
        for body in bodies {
            let (fast, general) = both("PutRecords", body);
            if let Some(fast) = fast {
                assert_eq!(format!("Ok({fast})"), general);
            }
        }
        let record = br#"{"StreamName":"s","Data":"aGVsbG8=","PartitionKey":"k","ExplicitHashKey":"0","SequenceNumberForOrdering":"49590338271490256608559692538361571095921575989136588898"}"#;
        let Some(Request::PutRecord(input)) = put_record(record) else {
            panic!("not taken");
        };
        assert_eq!(&input.data[..], b"hello");
        assert_eq!(input.stream.name.as_deref(), Some("s"));
        let (fast, general) = both("PutRecord", record);
        assert_eq!(format!("Ok({})", fast.unwrap_or_default()), general);
    }

    #[test]
    fn packs_data_across_arena_chunks_as_the_general_path_decodes_it() {
        use base64::Engine as _;
        // Records of 0 bytes to 1 MiB, each filled with its own index: some share a chunk,
        // some start a new one, one is larger than a chunk, and one is empty.
        let sizes: Vec<usize> = (0..40)
            .map(|i| match i {
                7 => 0,
                20 => 1 << 20,
                _ => 1000 + i * 7919,
            })
            .collect();
        let records: Vec<String> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let data = base64::engine::general_purpose::STANDARD.encode(vec![i as u8; n]);
                format!(r#"{{"Data":"{data}","PartitionKey":"k{i}"}}"#)
            })
            .collect();
        let body = format!(r#"{{"Records":[{}],"StreamName":"s"}}"#, records.join(","));
        let Some(Request::PutRecords(input)) = put_records(body.as_bytes()) else {
            panic!("not taken");
        };
        assert_eq!(input.records.len(), sizes.len());
        for (i, (record, &n)) in input.records.iter().zip(&sizes).enumerate() {
            assert_eq!(record.data.len(), n, "record {i}");
            assert!(record.data.iter().all(|&b| b == i as u8), "record {i}");
        }
        let (fast, general) = both("PutRecords", body.as_bytes());
        assert_eq!(format!("Ok({})", fast.unwrap_or_default()), general);
    }

    #[test]
    fn leaves_everything_unusual_to_the_general_path() {
        for body in [
            &br#"{"Records":[],"StreamName":"s"}"#[..],
            br#"{"Records":[{"Data":"aGk=","PartitionKey":""}],"StreamName":"s"}"#,
            br#"{"Records":[{"Data":"aGk","PartitionKey":"k"}],"StreamName":"s"}"#,
            br#"{"Records":[{"Data":"aGk=","PartitionKey":"k","Foo":1}],"StreamName":"s"}"#,
            br#"{"Records":[{"Data":"aGk=","PartitionKey":"k"}],"StreamName":"s","StreamName":"t"}"#,
            br#"{"Records":[{"Data":"aGk=","PartitionKey":"k"}],"StreamName":"bad name"}"#,
            br#"{"Records":[{"Data":"aGk=","PartitionKey":"k"}],"StreamName":null}"#,
            br#"{"Records":[{"Data":"aGk=","PartitionKey":"k"}],"StreamName":"s"} x"#,
            br#"{"Records":[{"Data":"aGk=","PartitionKey":"k","ExplicitHashKey":"01"}]}"#,
            br#"{"Records":[{"Data":"aG\"k=","PartitionKey":"k"}]}"#,
            b"{\"Records\":[{\"Data\":\"aGk=\",\"PartitionKey\":\"k\x01\"}]}",
            b"{\"Records\":[{\"Data\":\"aGk=\",\"PartitionKey\":\"\xff\"}]}",
            br#"{"Records":[{"PartitionKey":"k"}]}"#,
        ] {
            assert!(
                put_records(body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let five_hundred_and_one = format!(
            "{{\"Records\":[{}]}}",
            vec![r#"{"Data":"","PartitionKey":"k"}"#; 501].join(",")
        );
        assert!(put_records(five_hundred_and_one.as_bytes()).is_none());
        let five_hundred =
            five_hundred_and_one.replacen(r#"{"Data":"","PartitionKey":"k"},"#, "", 1);
        assert!(put_records(five_hundred.as_bytes()).is_some());
    }

    /// A member value: mostly valid, sometimes one of the unusual or invalid ones.
    fn pick(valid: &'static [&'static str], odd: Vec<String>) -> BoxedStrategy<String> {
        let valid = proptest::sample::select(valid).prop_map(str::to_owned);
        prop_oneof![12 => valid, 1 => proptest::sample::select(odd)].boxed()
    }

    /// An entry (or, with `extra`, a PutRecord body's record members): Data and PartitionKey
    /// in either order, maybe ExplicitHashKey, maybe a member from `extra`.
    fn members(extra: Vec<String>) -> impl Strategy<Value = Vec<String>> {
        let data = pick(
            &[r#""Data":"aGVsbG8=""#, r#""Data":"""#, r#""Data":"AAAA""#],
            vec![
                r#""Data":"aGVsbG8""#.to_owned(),
                r#""Data":"aGVsbG9=""#.to_owned(),
                r#""Data":"aGVs
bG8=""#
                    .to_owned(),
                r#""Data":"aGVs\/bG8=""#.to_owned(),
                r#""Data":null"#.to_owned(),
                r#""Data":12"#.to_owned(),
            ],
        );
        let key = pick(
            &[
                r#""PartitionKey":"k""#,
                "\"PartitionKey\":\"\u{e9}t\u{e9}\"",
            ],
            vec![
                r#""PartitionKey":"""#.to_owned(),
                r#""PartitionKey":"\u0041""#.to_owned(),
                format!(r#""PartitionKey":"{}""#, "p".repeat(256)),
                format!(r#""PartitionKey":"{}""#, "p".repeat(257)),
                format!("\"PartitionKey\":\"{}\"", "\u{1F600}".repeat(129)),
                r#""PartitionKey":["k"]"#.to_owned(),
            ],
        );
        let hash = pick(
            &[r#""ExplicitHashKey":"340282366920938463463374607431768211455""#],
            vec![
                r#""ExplicitHashKey":"012""#.to_owned(),
                r#""ExplicitHashKey":"340282366920938463463374607431768211456""#.to_owned(),
                r#""ExplicitHashKey":true"#.to_owned(),
            ],
        );
        let mut odd = vec![
            r#""Other":{"a":[1,2]}"#.to_owned(),
            r#""Data":"AAAA""#.to_owned(),
            r#""PartitionKey":"again""#.to_owned(),
        ];
        odd.extend(extra);
        (
            data,
            key,
            proptest::option::of(hash),
            proptest::option::weighted(0.1, proptest::sample::select(odd)),
            any::<bool>(),
        )
            .prop_map(|(data, key, hash, odd, swap)| {
                let mut members = if swap {
                    vec![key, data]
                } else {
                    vec![data, key]
                };
                members.extend(hash);
                members.extend(odd);
                members
            })
    }

    fn ws() -> impl Strategy<Value = &'static str> {
        prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just("\n\t "), 1 => Just("\x0c")]
    }

    /// An object of `members`, with whitespace of `space` around each.
    fn object(members: Vec<String>, space: Vec<&'static str>) -> String {
        let inner: Vec<String> = members
            .into_iter()
            .zip(space.into_iter().cycle())
            .map(|(m, w)| format!("{w}{m}{w}"))
            .collect();
        format!("{{{}}}", inner.join(","))
    }

    fn spaced(members: impl Strategy<Value = Vec<String>>) -> impl Strategy<Value = String> {
        (members, proptest::collection::vec(ws(), 1..4)).prop_map(|(m, w)| object(m, w))
    }

    /// The stream members a body may have.
    fn stream() -> impl Strategy<Value = Vec<String>> {
        let name = pick(
            &[r#""StreamName":"s-1.x_y""#],
            vec![
                r#""StreamName":"no such/name""#.to_owned(),
                r#""StreamName":"""#.to_owned(),
                r#""StreamName":null"#.to_owned(),
            ],
        );
        let arn = pick(
            &[r#""StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s""#],
            vec![r#""StreamARN":"arn:nope""#.to_owned()],
        );
        (
            proptest::option::of(name),
            proptest::option::weighted(0.3, arn),
        )
            .prop_map(|(name, arn)| name.into_iter().chain(arn).collect())
    }

    fn put_records_body() -> impl Strategy<Value = String> {
        let entry = spaced(members(Vec::new()));
        let records = prop_oneof![
            8 => proptest::collection::vec(entry, 1..4)
                .prop_map(|entries| format!(r#""Records":[{}]"#, entries.join(","))),
            1 => Just(r#""Records":[]"#.to_owned()),
            1 => Just(r#""Records":null"#.to_owned()),
            1 => Just(r#""Records":{}"#.to_owned()),
        ];
        let odd = vec![
            r#""StreamId":"abcdefghij0123456789-abc""#.to_owned(),
            r#""Records":[{"Data":"","PartitionKey":"k"}]"#.to_owned(),
        ];
        let members = (
            records,
            stream(),
            proptest::option::weighted(0.2, proptest::sample::select(odd)),
            any::<bool>(),
        )
            .prop_map(|(records, stream, odd, first)| {
                let mut members = stream;
                let at = if first { 0 } else { members.len() };
                members.insert(at, records);
                members.extend(odd);
                members
            });
        spaced(members)
    }

    fn put_record_body() -> impl Strategy<Value = String> {
        let extra = vec![
            r#""SequenceNumberForOrdering":"x""#.to_owned(),
            r#""StreamId":"abcdefghij0123456789-abc""#.to_owned(),
        ];
        let sequence = proptest::option::of(Just(r#""SequenceNumberForOrdering":"1""#.to_owned()));
        let members = (members(extra), stream(), sequence).prop_map(|(mut m, stream, seq)| {
            m.extend(stream);
            m.extend(seq);
            m
        });
        spaced(members)
    }

    /// A body with, sometimes, a byte changed, cut or inserted.
    fn edited(body: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<u8>> {
        let edit = proptest::option::weighted(0.2, (any::<usize>(), any::<u8>(), 0..3u8));
        (body, edit).prop_map(|(body, edit)| {
            let mut body = body.into_bytes();
            if let Some((at, byte, how)) = edit {
                let at = at % (body.len() + 1);
                match how {
                    0 => body.truncate(at),
                    1 => body.insert(at, byte),
                    _ => {
                        if let Some(b) = body.get_mut(at) {
                            *b = byte;
                        }
                    }
                }
            }
            body
        })
    }

    /// Whatever the fast path takes, the general path decodes to the same request; and
    /// `decode_request` answers exactly as the general path does.
    fn check(operation: &str, body: &[u8]) -> Result<bool, TestCaseError> {
        let (fast, general) = both(operation, body);
        let taken = fast.is_some();
        if let Some(fast) = fast {
            prop_assert_eq!(format!("Ok({fast})"), general.clone());
        }
        let public = decode_request(operation, Protocol::Json, body).map_err(|e| e.to_string());
        prop_assert_eq!(format!("{public:?}"), general);
        Ok(taken)
    }

    proptest! {
        #[test]
        fn put_records_agrees_with_the_general_path(body in edited(put_records_body())) {
            check("PutRecords", &body)?;
        }

        #[test]
        fn put_record_agrees_with_the_general_path(body in edited(put_record_body())) {
            check("PutRecord", &body)?;
        }
    }

    /// The generators reach both outcomes, so the properties above compare real requests.
    #[test]
    fn the_generated_bodies_are_often_taken_and_often_not() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for (operation, strategy) in [
            ("PutRecords", edited(put_records_body()).boxed()),
            ("PutRecord", edited(put_record_body()).boxed()),
        ] {
            let mut taken = 0;
            for _ in 0..1000 {
                let body = strategy
                    .new_tree(&mut runner)
                    .map(|tree| tree.current())
                    .unwrap_or_default();
                match check(operation, &body) {
                    Ok(true) => taken += 1,
                    Ok(false) => {}
                    Err(e) => panic!("{operation}: the paths disagree: {e}"),
                }
            }
            assert!(
                (50..=950).contains(&taken),
                "{operation}: {taken} of 1000 taken"
            );
        }
    }
}
