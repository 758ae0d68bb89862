//! kinesin-wire: the bytes of the Kinesis API, sans-IO.
//!
//! Decodes AWS JSON 1.1 and CBOR request bodies into engine inputs, validating them against the
//! Kinesis model (type errors -> SerializationException, constraint violations ->
//! ValidationException with coral's exact texts), and encodes engine outputs and errors.
//!
//! Decoding is three steps over one generic value tree (`value.rs`): the body is parsed (depth
//! at most 32, at most 250,000 values, strings borrowed from the body, no length in the body
//! trusted for preallocation), converted member by member to the modeled types (`model.rs`;
//! the first type error in document order wins), then checked against every model constraint
//! (all violations, at most 10, in coral's order) before the engine input is built.
//!
//! Choices where AWS's behaviour is not pinned down (see also `model.rs`):
//! - JSON timestamps are epoch seconds (integer or fractional, rounded to the millisecond); CBOR
//!   timestamps are epoch milliseconds whether tagged (tag 1) or not, integer or float.
//! - Out-of-range timestamps, malformed bodies, bodies that are not a single object/map and
//!   empty bodies are `SerializationException` without a message.
//! - Integers: floats are truncated, then values clamped to Java's `int` range.
//! - Booleans accept `true/false/yes/no/1/0` strings (any case) and doubles, as coral does.
//! - A CBOR byte string where another type is expected is reported as `class [B ...` (Java's
//!   `byte[]`); other type-error texts are the JSON ones, for both formats.
//! - Violations of list-element and map key/value constraints are reported once for the whole
//!   collection: `Member must satisfy constraint: [...]`, `Map keys must satisfy constraint:
//!   [...]`, `Map value must satisfy constraint: [...]`, listing the element's constraints
//!   (max length, min length, pattern, enum). Lists of structures are validated element by
//!   element with paths like `records.1.member.partitionKey`.
//! - The CBOR parser is our own rather than ciborium's: it borrows from the body, accepts
//!   indefinite lengths and tags anywhere, and bounds depth and allocations.

use std::borrow::Cow;
use std::fmt;

use kinesin_engine::api::*;
use kinesin_engine::api_ops::*;

pub mod audit;
mod decode;
mod encode;
pub use encode::GetRecordsWriter;
pub mod eventstream;
mod fast;
mod model;
pub mod sigv4;
#[doc(hidden)]
pub mod testing;
mod value;

/// The body format of a request; responses and errors use the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `application/x-amz-json-1.1`
    Json,
    /// `application/x-amz-cbor-1.1`
    Cbor,
}

impl Protocol {
    /// From a Content-Type header value (parameters after ';' ignored, case-insensitive):
    /// `application/x-amz-json-1.1` -> Json, `application/x-amz-cbor-1.1` -> Cbor, anything
    /// else `None`.
    pub fn from_content_type(ct: &str) -> Option<Protocol> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        if base.eq_ignore_ascii_case("application/x-amz-json-1.1") {
            Some(Protocol::Json)
        } else if base.eq_ignore_ascii_case("application/x-amz-cbor-1.1") {
            Some(Protocol::Cbor)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/x-amz-json-1.1",
            Protocol::Cbor => "application/x-amz-cbor-1.1",
        }
    }
}

/// One decoded request, one variant per Kinesis operation (all 39), named exactly as the
/// operation.
#[derive(Debug, Clone)]
pub enum Request {
    AddTagsToStream(AddTagsInput),
    CreateStream(CreateStreamInput),
    DecreaseStreamRetentionPeriod(RetentionInput),
    DeleteResourcePolicy(DeleteResourcePolicyInput),
    DeleteStream(DeleteStreamInput),
    DeregisterStreamConsumer(ConsumerRef),
    DescribeAccountSettings,
    DescribeLimits,
    DescribeStream(DescribeStreamInput),
    DescribeStreamConsumer(ConsumerRef),
    DescribeStreamSummary(StreamRef),
    DisableEnhancedMonitoring(EnhancedMonitoringInput),
    EnableEnhancedMonitoring(EnhancedMonitoringInput),
    GetRecords(GetRecordsInput),
    GetResourcePolicy(GetResourcePolicyInput),
    GetShardIterator(GetShardIteratorInput),
    IncreaseStreamRetentionPeriod(RetentionInput),
    ListShards(ListShardsInput),
    ListStreamConsumers(ListStreamConsumersInput),
    ListStreams(ListStreamsInput),
    ListTagsForResource(ListTagsForResourceInput),
    ListTagsForStream(ListTagsForStreamInput),
    MergeShards(MergeShardsInput),
    PutRecord(PutRecordInput),
    PutRecords(PutRecordsInput),
    PutResourcePolicy(PutResourcePolicyInput),
    RegisterStreamConsumer(RegisterStreamConsumerInput),
    RemoveTagsFromStream(RemoveTagsInput),
    SplitShard(SplitShardInput),
    StartStreamEncryption(StreamEncryptionInput),
    StopStreamEncryption(StreamEncryptionInput),
    SubscribeToShard(SubscribeToShardInput),
    TagResource(TagResourceInput),
    UntagResource(UntagResourceInput),
    UpdateAccountSettings(UpdateAccountSettingsInput),
    UpdateMaxRecordSize(UpdateMaxRecordSizeInput),
    UpdateShardCount(UpdateShardCountInput),
    UpdateStreamMode(UpdateStreamModeInput),
    UpdateStreamWarmThroughput(UpdateStreamWarmThroughputInput),
}

impl Request {
    /// The operation name, as in `X-Amz-Target: Kinesis_20131202.<name>`.
    pub fn operation(&self) -> &'static str {
        match self {
            Request::AddTagsToStream(_) => "AddTagsToStream",
            Request::CreateStream(_) => "CreateStream",
            Request::DecreaseStreamRetentionPeriod(_) => "DecreaseStreamRetentionPeriod",
            Request::DeleteResourcePolicy(_) => "DeleteResourcePolicy",
            Request::DeleteStream(_) => "DeleteStream",
            Request::DeregisterStreamConsumer(_) => "DeregisterStreamConsumer",
            Request::DescribeAccountSettings => "DescribeAccountSettings",
            Request::DescribeLimits => "DescribeLimits",
            Request::DescribeStream(_) => "DescribeStream",
            Request::DescribeStreamConsumer(_) => "DescribeStreamConsumer",
            Request::DescribeStreamSummary(_) => "DescribeStreamSummary",
            Request::DisableEnhancedMonitoring(_) => "DisableEnhancedMonitoring",
            Request::EnableEnhancedMonitoring(_) => "EnableEnhancedMonitoring",
            Request::GetRecords(_) => "GetRecords",
            Request::GetResourcePolicy(_) => "GetResourcePolicy",
            Request::GetShardIterator(_) => "GetShardIterator",
            Request::IncreaseStreamRetentionPeriod(_) => "IncreaseStreamRetentionPeriod",
            Request::ListShards(_) => "ListShards",
            Request::ListStreamConsumers(_) => "ListStreamConsumers",
            Request::ListStreams(_) => "ListStreams",
            Request::ListTagsForResource(_) => "ListTagsForResource",
            Request::ListTagsForStream(_) => "ListTagsForStream",
            Request::MergeShards(_) => "MergeShards",
            Request::PutRecord(_) => "PutRecord",
            Request::PutRecords(_) => "PutRecords",
            Request::PutResourcePolicy(_) => "PutResourcePolicy",
            Request::RegisterStreamConsumer(_) => "RegisterStreamConsumer",
            Request::RemoveTagsFromStream(_) => "RemoveTagsFromStream",
            Request::SplitShard(_) => "SplitShard",
            Request::StartStreamEncryption(_) => "StartStreamEncryption",
            Request::StopStreamEncryption(_) => "StopStreamEncryption",
            Request::SubscribeToShard(_) => "SubscribeToShard",
            Request::TagResource(_) => "TagResource",
            Request::UntagResource(_) => "UntagResource",
            Request::UpdateAccountSettings(_) => "UpdateAccountSettings",
            Request::UpdateMaxRecordSize(_) => "UpdateMaxRecordSize",
            Request::UpdateShardCount(_) => "UpdateShardCount",
            Request::UpdateStreamMode(_) => "UpdateStreamMode",
            Request::UpdateStreamWarmThroughput(_) => "UpdateStreamWarmThroughput",
        }
    }
}

/// The names of all 39 operations [`decode_request`] understands.
pub fn operations() -> impl Iterator<Item = &'static str> {
    decode::OPERATIONS.iter().map(|op| op.name)
}

/// One response body per operation output; `Empty` for operations without output (encoded as
/// an empty body, Content-Length 0, as real Kinesis does). `SubscribeToShard` has no variant:
/// its response is an event stream, not a body.
#[derive(Debug, Clone)]
pub enum Response {
    Empty,
    DescribeStream(StreamDescription),
    DescribeStreamSummary(StreamDescriptionSummary),
    ListStreams(ListStreamsOutput),
    ListShards(ListShardsOutput),
    PutRecord(PutRecordOutput),
    PutRecords(PutRecordsOutput),
    GetShardIterator(GetShardIteratorOutput),
    GetRecords(GetRecordsOutput),
    ListTagsForStream(ListTagsForStreamOutput),
    ListTagsForResource(ListTagsForResourceOutput),
    DescribeLimits(DescribeLimitsOutput),
    UpdateShardCount(UpdateShardCountOutput),
    UpdateStreamWarmThroughput(UpdateStreamWarmThroughputOutput),
    /// `{"Consumer": {...}}`
    RegisterStreamConsumer(Consumer),
    /// `{"ConsumerDescription": {...}}`
    DescribeStreamConsumer(ConsumerDescription),
    ListStreamConsumers(ListStreamConsumersOutput),
    /// Enable- and DisableEnhancedMonitoring.
    EnhancedMonitoring(EnhancedMonitoringOutput),
    GetResourcePolicy(GetResourcePolicyOutput),
    /// DescribeAccountSettings and UpdateAccountSettings.
    AccountSettings(AccountSettingsOutput),
}

/// A framework-level error (serialization, validation, unknown operation, authentication...),
/// carrying AWS's exact code, HTTP status and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    code: Cow<'static, str>,
    status: u16,
    message: Option<String>,
    /// Coral's SerializationException spells the body key `Message`; everything else `message`.
    capital_message: bool,
}

impl WireError {
    /// Any error, with the usual lower-case `message` body key.
    pub fn new(
        code: impl Into<Cow<'static, str>>,
        status: u16,
        message: Option<String>,
    ) -> WireError {
        WireError {
            code: code.into(),
            status,
            message,
            capital_message: false,
        }
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The body key of the message: `Message` for SerializationException, else `message`.
    pub fn message_key(&self) -> &'static str {
        if self.capital_message {
            "Message"
        } else {
            "message"
        }
    }

    /// 400 `UnknownOperationException`, no message.
    pub fn unknown_operation() -> WireError {
        WireError::new("UnknownOperationException", 400, None)
    }

    /// 400 `SerializationException`; the message (if any) is sent under `Message`.
    pub fn serialization(msg: Option<String>) -> WireError {
        WireError {
            capital_message: true,
            ..WireError::new("SerializationException", 400, msg)
        }
    }

    /// 400 `ValidationException` with coral's "N validation error(s) detected: ..." text.
    pub fn validation(msg: String) -> WireError {
        WireError::new("ValidationException", 400, Some(msg))
    }

    /// 500 `InternalFailure` (coral's own fault code), no message.
    pub fn internal_failure() -> WireError {
        WireError::new("InternalFailure", 500, None)
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{}: {m}", self.code),
            None => f.write_str(&self.code),
        }
    }
}

impl std::error::Error for WireError {}

/// Decodes and validates one request body. `operation` is the part of `X-Amz-Target` after
/// `Kinesis_20131202.` (the server checks the prefix).
pub fn decode_request(
    operation: &str,
    protocol: Protocol,
    body: &[u8],
) -> Result<Request, WireError> {
    // The bodies that carry the data, in the shape SDKs send, skip the value tree (JSON parsing
    // was a third of PutRecords' instructions); anything else falls through unchanged.
    if protocol == Protocol::Json {
        let fast = match operation {
            "PutRecords" => fast::put_records(body),
            "PutRecord" => fast::put_record(body),
            _ => None,
        };
        if let Some(request) = fast {
            return Ok(request);
        }
    }
    decode_request_general(operation, protocol, body)
}

/// [`decode_request`] without the fast path for PutRecords and PutRecord: public only so the
/// differential fuzz target (`crates/wire/fuzz`, `fast_decode`) can compare the two.
#[doc(hidden)]
pub fn decode_request_general(
    operation: &str,
    protocol: Protocol,
    body: &[u8],
) -> Result<Request, WireError> {
    let op = decode::find(operation).ok_or_else(WireError::unknown_operation)?;
    if body.is_empty() {
        return Err(WireError::serialization(None));
    }
    let parsed = match protocol {
        Protocol::Json => value::parse_json(body),
        Protocol::Cbor => value::parse_cbor(body),
    };
    let Some(value::Value::Map(entries)) = parsed else {
        return Err(WireError::serialization(None));
    };
    let fields = decode::convert_struct(entries, op.shape, protocol)?;
    decode::validate(&fields)?;
    (op.build)(fields)
}

/// Encodes with the protocol's sink, writing after whatever `buf` holds.
fn encode_with(protocol: Protocol, buf: Vec<u8>, write: impl FnOnce(&mut dyn FnSink)) -> Vec<u8> {
    match protocol {
        Protocol::Json => {
            let mut sink = encode::JsonSink::with_buffer(buf);
            write(&mut sink);
            sink.out
        }
        Protocol::Cbor => {
            let mut sink = encode::CborSink::with_buffer(buf);
            write(&mut sink);
            sink.out
        }
    }
}

/// Object-safe bridge so that encoding needs no generic plumbing.
trait FnSink {
    fn error(&mut self, code: &str, key: &'static str, message: Option<&str>);
    fn response(&mut self, response: &Response);
}

impl<S: encode::Sink> FnSink for S {
    fn error(&mut self, code: &str, key: &'static str, message: Option<&str>) {
        encode::write_error(self, code, key, message);
    }

    fn response(&mut self, response: &Response) {
        encode::write_response(self, response);
    }
}

/// The body of a successful response (empty for [`Response::Empty`]).
pub fn encode_response(protocol: Protocol, response: &Response) -> Vec<u8> {
    encode_response_into(protocol, response, Vec::new())
}

/// [`encode_response`] into `buf` (cleared first): a caller that reuses large buffers saves
/// touching fresh memory for every big response.
pub fn encode_response_into(protocol: Protocol, response: &Response, mut buf: Vec<u8>) -> Vec<u8> {
    buf.clear();
    if let Response::Empty = response {
        return buf;
    }
    buf.reserve(encode::size_hint(response));
    encode_with(protocol, buf, |s| s.response(response))
}

/// Body and HTTP status for an engine error (client errors 400, InternalFailureException 500).
pub fn encode_engine_error(protocol: Protocol, error: &kinesin_engine::Error) -> (u16, Vec<u8>) {
    let status = match error {
        kinesin_engine::Error::InternalFailure(_) => 500,
        _ => 400,
    };
    let body = encode_with(
        protocol,
        Vec::with_capacity(128 + error.message().len()),
        |s| s.error(error.code(), "message", Some(error.message())),
    );
    (status, body)
}

/// Body and HTTP status for a framework error.
pub fn encode_wire_error(protocol: Protocol, error: &WireError) -> (u16, Vec<u8>) {
    let len = error.message().map_or(0, str::len);
    let body = encode_with(protocol, Vec::with_capacity(128 + len), |s| {
        s.error(error.code(), error.message_key(), error.message())
    });
    (error.status(), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for (ct, p) in [
            ("application/x-amz-json-1.1", Some(Protocol::Json)),
            (
                "Application/X-Amz-JSON-1.1; charset=utf-8",
                Some(Protocol::Json),
            ),
            (" application/x-amz-cbor-1.1 ", Some(Protocol::Cbor)),
            ("application/x-amz-cbor-1.1;x=y", Some(Protocol::Cbor)),
            ("application/json", None),
            ("application/x-amz-json-1.0", None),
            ("", None),
        ] {
            assert_eq!(Protocol::from_content_type(ct), p, "{ct}");
        }
        for p in [Protocol::Json, Protocol::Cbor] {
            assert_eq!(Protocol::from_content_type(p.content_type()), Some(p));
        }
    }

    #[test]
    fn operation_names_match_the_table() {
        let names: Vec<&str> = operations().collect();
        assert_eq!(names.len(), 39);
        // Every Request::operation() name is decodable (the variants are exhaustive by match).
        let request = Request::DescribeLimits;
        assert!(names.contains(&request.operation()));
        assert!(names.contains(&Request::DescribeAccountSettings.operation()));
    }

    #[test]
    fn wire_error_accessors() {
        let e = WireError::serialization(Some("Expected null".into()));
        assert_eq!(e.code(), "SerializationException");
        assert_eq!(e.status(), 400);
        assert_eq!(e.message(), Some("Expected null"));
        assert_eq!(e.message_key(), "Message");
        assert_eq!(e.to_string(), "SerializationException: Expected null");
        let e = WireError::new("InvalidSignatureException", 403, None);
        assert_eq!(
            (e.code(), e.status(), e.message(), e.message_key()),
            ("InvalidSignatureException", 403, None, "message")
        );
        assert_eq!(
            WireError::unknown_operation().to_string(),
            "UnknownOperationException"
        );
    }
}
