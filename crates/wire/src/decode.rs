//! Model-driven decoding: value tree -> typed members (type errors are coral's
//! SerializationException texts) -> constraint validation (coral's ValidationException texts)
//! -> engine input.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use kinesin_engine::api::*;
use kinesin_engine::api_ops::*;

use crate::model::{self, Shape, StrShape, StructShape};
use crate::value::Value;
use crate::{Protocol, Request, WireError};

/// At most this many constraint violations are listed (and counted), as coral does.
const MAX_VALIDATION_ERRORS: usize = 10;

// ---------------------------------------------------------------------------------------------
// Typed values
// ---------------------------------------------------------------------------------------------

/// A value converted to its modeled type. `None` members/elements are absent or null.
#[derive(Debug)]
pub(crate) enum Typed<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    Blob(Bytes),
    /// Epoch milliseconds.
    Timestamp(i64),
    List(Vec<Option<Typed<'a>>>),
    Map(Vec<(Cow<'a, str>, Option<Typed<'a>>)>),
    Struct(Fields<'a>),
}

/// The members of a structure, indexed like `shape.members`.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    shape: &'static StructShape,
    values: Vec<Option<Typed<'a>>>,
}

// Coral's type-error texts (SerializationException `Message`).
const NUMBER_CLASS: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";
const BOOLEAN_CLASS: &str = "class java.lang.Boolean";
const STRING_CLASS: &str = "class java.lang.String";
/// What a CBOR byte string is called where another type is expected (a guess: Java's `byte[]`).
const BYTES_CLASS: &str = "class [B";
const LIST_FOUND: &str = "Start of list found where not expected";
const MAP_FOUND: &str = "Start of structure or map found where not expected.";

fn type_error(msg: impl Into<String>) -> WireError {
    WireError::serialization(Some(msg.into()))
}

fn cannot_convert(class: &str, target: &str) -> WireError {
    type_error(format!("{class} can not be converted to {target}"))
}

/// Converts the entries of a map into the members of `shape`, in document order: the first
/// type error wins. Unknown members are ignored; null means absent; a repeated member takes
/// its last value.
pub(crate) fn convert_struct<'a>(
    entries: Vec<(Cow<'a, str>, Value<'a>)>,
    shape: &'static StructShape,
    protocol: Protocol,
) -> Result<Fields<'a>, WireError> {
    let mut values: Vec<Option<Typed<'a>>> = shape.members.iter().map(|_| None).collect();
    for (key, value) in entries {
        let Some(index) = shape.index_of(&key) else {
            continue;
        };
        let (Some(member), Some(slot)) = (shape.members.get(index), values.get_mut(index)) else {
            continue;
        };
        *slot = convert(value, member.shape, protocol)?;
    }
    Ok(Fields { shape, values })
}

fn convert<'a>(
    value: Value<'a>,
    shape: &'static Shape,
    protocol: Protocol,
) -> Result<Option<Typed<'a>>, WireError> {
    if value == Value::Null {
        return Ok(None);
    }
    let typed = match shape {
        Shape::Str(_) => match value {
            Value::Str(s) => Typed::Str(s),
            other => return Err(scalar_mismatch(&other, "an String")),
        },
        Shape::Int { .. } => match value {
            Value::Int(i) => Typed::Int(clamp_i32(i)),
            Value::Float(f) => Typed::Int(clamp_i32(f.trunc() as i128)),
            Value::Str(_) => return Err(cannot_convert(STRING_CLASS, "an Integer")),
            other => return Err(scalar_mismatch(&other, "an Integer")),
        },
        Shape::Bool => match value {
            Value::Bool(b) => Typed::Bool(b),
            // Coral reads doubles as booleans without complaint (kinesalite's notes).
            Value::Float(f) => Typed::Bool(f != 0.0),
            Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Typed::Bool(true),
                "false" | "no" | "0" => Typed::Bool(false),
                _ => {
                    return Err(type_error(format!(
                        "'{}' can not be converted to an Boolean",
                        s.to_uppercase()
                    )))
                }
            },
            other => return Err(scalar_mismatch(&other, "an Boolean")),
        },
        Shape::Blob { .. } => match value {
            Value::Str(s) => Typed::Blob(decode_base64(&s)?),
            Value::Bytes(b) => Typed::Blob(Bytes::from(b.into_owned())),
            other => return Err(scalar_mismatch(&other, "a Blob")),
        },
        Shape::Timestamp => match value {
            Value::Int(i) => Typed::Timestamp(int_timestamp(i, protocol)?),
            Value::Float(f) => Typed::Timestamp(float_timestamp(f, protocol)?),
            Value::Str(_) => {
                return Err(cannot_convert(STRING_CLASS, "milliseconds since epoch"));
            }
            other => return Err(scalar_mismatch(&other, "milliseconds since epoch")),
        },
        Shape::List { member, .. } => match value {
            Value::Array(items) => Typed::List(
                items
                    .into_iter()
                    .map(|item| convert(item, member, protocol))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(_) => return Err(type_error(MAP_FOUND)),
            _ => return Err(type_error("Expected list or null")),
        },
        Shape::Map {
            value: value_shape, ..
        } => match value {
            Value::Map(entries) => Typed::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| Ok((k, convert(v, value_shape, protocol)?)))
                    .collect::<Result<_, WireError>>()?,
            ),
            Value::Array(_) => return Err(type_error(LIST_FOUND)),
            _ => return Err(type_error("Expected map or null")),
        },
        Shape::Struct(inner) => match value {
            Value::Map(entries) => Typed::Struct(convert_struct(entries, inner, protocol)?),
            Value::Array(_) => return Err(type_error(LIST_FOUND)),
            _ => return Err(type_error("Expected null")),
        },
    };
    Ok(Some(typed))
}

/// The error for a value of the wrong kind where a scalar of type `target` was expected.
fn scalar_mismatch(value: &Value<'_>, target: &str) -> WireError {
    match value {
        Value::Array(_) => type_error(LIST_FOUND),
        Value::Map(_) => type_error(MAP_FOUND),
        Value::Bool(_) => cannot_convert(BOOLEAN_CLASS, target),
        Value::Int(_) | Value::Float(_) => cannot_convert(NUMBER_CLASS, target),
        Value::Str(_) => cannot_convert(STRING_CLASS, target),
        Value::Bytes(_) => cannot_convert(BYTES_CLASS, target),
        Value::Null => type_error("Unexpected null"),
    }
}

fn clamp_i32(i: i128) -> i64 {
    i.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i64
}

/// JSON timestamps are epoch seconds; CBOR timestamps (tag 1 or not) are epoch milliseconds.
fn int_timestamp(i: i128, protocol: Protocol) -> Result<i64, WireError> {
    let millis = match protocol {
        Protocol::Json => i.checked_mul(1000),
        Protocol::Cbor => Some(i),
    };
    millis
        .and_then(|m| i64::try_from(m).ok())
        .ok_or_else(|| WireError::serialization(None))
}

fn float_timestamp(f: f64, protocol: Protocol) -> Result<i64, WireError> {
    let millis = match protocol {
        Protocol::Json => (f * 1000.0).round(),
        Protocol::Cbor => f.round(),
    };
    // 2^63 is exactly representable; anything at or beyond it (or NaN) does not fit.
    if millis.is_finite() && millis.abs() < 9_223_372_036_854_775_808.0 {
        Ok(millis as i64)
    } else {
        Err(WireError::serialization(None))
    }
}

/// Strict standard base64 with padding, with the texts coral uses for each kind of mistake.
fn decode_base64(s: &str) -> Result<Bytes, WireError> {
    if let Some(bytes) = decode_base64_strict(s.as_bytes()) {
        return Ok(bytes);
    }
    let fail = |why: String| type_error(format!("'{s}' can not be converted to a Blob: {why}"));
    let len = utf16_len(s);
    if !len.is_multiple_of(4) {
        return Err(fail(format!(
            "Base64 encoded length is expected a multiple of 4 bytes but found: {len}"
        )));
    }
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let valid = c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
        let pad_then_data = c == '=' && chars.peek().is_some_and(|&n| n != '=');
        if !valid || pad_then_data {
            return Err(fail(format!("Invalid Base64 character: '{c}'")));
        }
    }
    Err(fail(
        "Invalid last non-pad Base64 character dectected".to_owned(),
    ))
}

/// Strict standard base64 (SIMD; a scalar decoder was an eighth of PutRecord's instructions):
/// whatever it accepts — canonical padding, zero trailing bits — passes all of coral's checks.
/// `None` for anything else, including backslashes and control characters.
pub(crate) fn decode_base64_strict(text: &[u8]) -> Option<Bytes> {
    let mut out = Vec::new();
    decode_base64_strict_append(text, &mut out)?;
    Some(Bytes::from(out))
}

/// [`decode_base64_strict`], appending to `out` (whose length is unchanged on invalid input).
pub(crate) fn decode_base64_strict_append(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    base64_simd::STANDARD.decode_append(text, out).ok()
}

/// A string's length as Java counts it (UTF-16 code units).
pub(crate) fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

struct Violations {
    list: Vec<String>,
}

impl Violations {
    fn full(&self) -> bool {
        self.list.len() >= MAX_VALIDATION_ERRORS
    }

    /// `value` is the already-rendered value (`None` for null).
    fn push(&mut self, value: Option<&str>, path: &Path<'_>, constraint: &str) {
        if self.full() {
            return;
        }
        let value = match value {
            Some(v) => format!("'{v}'"),
            None => "null".to_owned(),
        };
        let mut rendered = String::new();
        path.render(&mut rendered);
        self.list.push(format!(
            "Value {value} at '{rendered}' failed to satisfy constraint: {constraint}"
        ));
    }
}

/// Where a value sits in the input, rendered (lowerCamel members, 1-based `N.member` list
/// elements) only when a violation is reported.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Member(&'p Path<'p>, &'static str),
    Element(&'p Path<'p>, usize),
}

impl Path<'_> {
    fn render(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Member(parent, name) => {
                parent.render(out);
                if !out.is_empty() {
                    out.push('.');
                }
                let mut chars = name.chars();
                if let Some(c) = chars.next() {
                    out.push(c.to_ascii_lowercase());
                    out.push_str(chars.as_str());
                }
            }
            Path::Element(parent, index) => {
                parent.render(out);
                let _ = write!(out, ".{}.member", index + 1);
            }
        }
    }
}

/// Checks every model constraint; `Err` is the ValidationException.
pub(crate) fn validate(fields: &Fields<'_>) -> Result<(), WireError> {
    let mut violations = Violations { list: Vec::new() };
    validate_struct(fields, &Path::Root, &mut violations);
    if violations.list.is_empty() {
        return Ok(());
    }
    let n = violations.list.len();
    Err(WireError::validation(format!(
        "{n} validation error{} detected: {}",
        if n == 1 { "" } else { "s" },
        violations.list.join("; ")
    )))
}

fn validate_struct(fields: &Fields<'_>, parent: &Path<'_>, out: &mut Violations) {
    for (member, value) in fields.shape.members.iter().zip(&fields.values) {
        if out.full() {
            return;
        }
        let path = Path::Member(parent, member.name);
        match value {
            None if member.required => out.push(None, &path, "Member must not be null"),
            None => {}
            Some(v) => validate_value(v, member.shape, &path, out),
        }
    }
}

fn validate_value(value: &Typed<'_>, shape: &'static Shape, path: &Path<'_>, out: &mut Violations) {
    if out.full() {
        return;
    }
    match (shape, value) {
        (Shape::Str(rules), Typed::Str(s)) => {
            for constraint in string_violations(rules, s) {
                out.push(Some(s), path, &constraint);
            }
        }
        (Shape::Int { min, max }, Typed::Int(i)) => {
            if let Some(min) = min.filter(|m| i < m) {
                let c = format!("Member must have value greater than or equal to {min}");
                out.push(Some(&i.to_string()), path, &c);
            }
            if let Some(max) = max.filter(|m| i > m) {
                let c = format!("Member must have value less than or equal to {max}");
                out.push(Some(&i.to_string()), path, &c);
            }
        }
        (Shape::Blob { min, max }, Typed::Blob(b)) => {
            length_violations(b.len(), *min, *max, || render(value), path, out);
        }
        (Shape::List { member, min, max }, Typed::List(items)) => {
            length_violations(items.len(), *min, *max, || render(value), path, out);
            if let Shape::Struct(_) = member {
                for (i, item) in items.iter().enumerate() {
                    if out.full() {
                        return;
                    }
                    let item_path = Path::Element(path, i);
                    match item {
                        Some(Typed::Struct(f)) => validate_struct(f, &item_path, out),
                        Some(_) => {}
                        None => out.push(None, &item_path, "Member must not be null"),
                    }
                }
            } else if items.iter().any(|item| !element_ok(member, item.as_ref())) {
                let c = format!("Member must satisfy constraint: [{}]", summary(member));
                out.push(Some(&render(value)), path, &c);
            }
        }
        (
            Shape::Map {
                key,
                value: value_shape,
                min,
                max,
            },
            Typed::Map(entries),
        ) => {
            length_violations(entries.len(), *min, *max, || render(value), path, out);
            if entries.iter().any(|(k, _)| !key_ok(key, k)) {
                let c = format!("Map keys must satisfy constraint: [{}]", summary(key));
                out.push(Some(&render(value)), path, &c);
            }
            if entries
                .iter()
                .any(|(_, v)| !element_ok(value_shape, v.as_ref()))
            {
                let c = format!(
                    "Map value must satisfy constraint: [{}]",
                    summary(value_shape)
                );
                out.push(Some(&render(value)), path, &c);
            }
        }
        (Shape::Struct(_), Typed::Struct(f)) => validate_struct(f, path, out),
        _ => {}
    }
}

fn length_violations(
    len: usize,
    min: Option<usize>,
    max: Option<usize>,
    shown: impl Fn() -> String,
    path: &Path<'_>,
    out: &mut Violations,
) {
    if let Some(min) = min.filter(|&m| len < m) {
        let c = format!("Member must have length greater than or equal to {min}");
        out.push(Some(&shown()), path, &c);
    }
    if let Some(max) = max.filter(|&m| len > m) {
        let c = format!("Member must have length less than or equal to {max}");
        out.push(Some(&shown()), path, &c);
    }
}

/// A string member's violations, in coral's order: pattern, min length, max length, enum.
fn string_violations(rules: &StrShape, s: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(p) = rules.pattern.filter(|p| !p.matches(s)) {
        found.push(format!(
            "Member must satisfy regular expression pattern: {}",
            p.source()
        ));
    }
    let needs_len = rules.min.is_some() || rules.max.is_some();
    let len = if needs_len { utf16_len(s) } else { 0 };
    if let Some(min) = rules.min.filter(|&m| len < m) {
        found.push(format!(
            "Member must have length greater than or equal to {min}"
        ));
    }
    if let Some(max) = rules.max.filter(|&m| len > m) {
        found.push(format!(
            "Member must have length less than or equal to {max}"
        ));
    }
    if let Some(values) = rules.enum_values.filter(|v| !v.contains(&s)) {
        found.push(format!(
            "Member must satisfy enum value set: [{}]",
            values.join(", ")
        ));
    }
    found
}

/// Whether `s` satisfies the string shape `shape` with no violation (for the fast decoder:
/// the same rules validation applies).
pub(crate) fn string_valid(shape: &Shape, s: &str) -> bool {
    matches!(shape, Shape::Str(rules) if string_violations(rules, s).is_empty())
}

/// Whether `len` is within the length limits of a blob or list shape.
pub(crate) fn length_valid(shape: &Shape, len: usize) -> bool {
    let (Shape::Blob { min, max } | Shape::List { min, max, .. }) = shape else {
        return false;
    };
    min.is_none_or(|m| len >= m) && max.is_none_or(|m| len <= m)
}

/// Whether a list element / map key / map value satisfies its (scalar) shape.
fn element_ok(shape: &Shape, value: Option<&Typed<'_>>) -> bool {
    match (shape, value) {
        (_, None) => false,
        (Shape::Str(rules), Some(Typed::Str(s))) => string_violations(rules, s).is_empty(),
        _ => true,
    }
}

/// Whether a map key satisfies its (string) shape.
fn key_ok(shape: &Shape, key: &str) -> bool {
    match shape {
        Shape::Str(rules) => string_violations(rules, key).is_empty(),
        _ => true,
    }
}

/// The element constraints coral lists for a collection: max, min, pattern, enum.
fn summary(shape: &Shape) -> String {
    let mut parts = Vec::new();
    if let Shape::Str(rules) = shape {
        if let Some(max) = rules.max {
            parts.push(format!(
                "Member must have length less than or equal to {max}"
            ));
        }
        if let Some(min) = rules.min {
            parts.push(format!(
                "Member must have length greater than or equal to {min}"
            ));
        }
        if let Some(p) = rules.pattern {
            parts.push(format!(
                "Member must satisfy regular expression pattern: {}",
                p.source()
            ));
        }
        if let Some(values) = rules.enum_values {
            parts.push(format!(
                "Member must satisfy enum value set: [{}]",
                values.join(", ")
            ));
        }
    }
    parts.join(", ")
}

/// A value as coral prints it (Java `toString`).
fn render(value: &Typed<'_>) -> String {
    let mut out = String::new();
    render_into(value, &mut out);
    out
}

fn render_into(value: &Typed<'_>, out: &mut String) {
    match value {
        Typed::Str(s) => out.push_str(s),
        Typed::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Typed::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Typed::Timestamp(ms) => {
            let _ = write!(out, "{ms}");
        }
        Typed::Blob(b) => {
            let _ = write!(
                out,
                "java.nio.HeapByteBuffer[pos=0 lim={0} cap={0}]",
                b.len()
            );
        }
        Typed::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match item {
                    Some(v) => render_into(v, out),
                    None => out.push_str("null"),
                }
            }
            out.push(']');
        }
        Typed::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                match v {
                    Some(v) => render_into(v, out),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
        // Coral's generated classes print as `<package>.<Shape>@<hash>`; kinesalite, recorded
        // against AWS, shows `@2` for PutRecordsRequestEntry.
        Typed::Struct(f) => {
            let _ = write!(out, "com.amazonaws.kinesis.v20131202.{}@2", f.shape.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building engine inputs
// ---------------------------------------------------------------------------------------------

/// Validation guarantees every required member is present and every enum valid, so these
/// failures cannot happen; they still map to an error rather than a panic.
fn required<T>(v: Option<T>) -> Result<T, WireError> {
    v.ok_or_else(|| WireError::serialization(None))
}

impl<'a> Fields<'a> {
    fn take(&mut self, name: &str) -> Option<Typed<'a>> {
        let index = self.shape.index_of(name)?;
        self.values.get_mut(index)?.take()
    }

    fn string(&mut self, name: &str) -> Option<String> {
        match self.take(name)? {
            Typed::Str(s) => Some(s.into_owned()),
            _ => None,
        }
    }

    fn int(&mut self, name: &str) -> Option<i64> {
        match self.take(name)? {
            Typed::Int(i) => Some(i),
            _ => None,
        }
    }

    fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.take(name)? {
            Typed::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn blob(&mut self, name: &str) -> Option<Bytes> {
        match self.take(name)? {
            Typed::Blob(b) => Some(b),
            _ => None,
        }
    }

    fn timestamp(&mut self, name: &str) -> Option<Millis> {
        match self.take(name)? {
            Typed::Timestamp(t) => Some(t),
            _ => None,
        }
    }

    fn structure(&mut self, name: &str) -> Option<Fields<'a>> {
        match self.take(name)? {
            Typed::Struct(f) => Some(f),
            _ => None,
        }
    }

    fn list(&mut self, name: &str) -> Option<Vec<Option<Typed<'a>>>> {
        match self.take(name)? {
            Typed::List(items) => Some(items),
            _ => None,
        }
    }

    fn strings(&mut self, name: &str) -> Option<Vec<String>> {
        let items = self.list(name)?;
        Some(
            items
                .into_iter()
                .filter_map(|item| match item {
                    Some(Typed::Str(s)) => Some(s.into_owned()),
                    _ => None,
                })
                .collect(),
        )
    }

    fn string_map(&mut self, name: &str) -> Option<BTreeMap<String, String>> {
        match self.take(name)? {
            Typed::Map(entries) => Some(
                entries
                    .into_iter()
                    .filter_map(|(k, v)| match v {
                        Some(Typed::Str(v)) => Some((k.into_owned(), v.into_owned())),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    fn stream(&mut self) -> StreamRef {
        StreamRef {
            name: self.string("StreamName"),
            arn: self.string("StreamARN"),
        }
    }
}

fn stream_mode(s: &str) -> Result<StreamMode, WireError> {
    match s {
        "PROVISIONED" => Ok(StreamMode::Provisioned),
        "ON_DEMAND" => Ok(StreamMode::OnDemand),
        _ => required(None),
    }
}

fn stream_mode_details(fields: Option<Fields<'_>>) -> Result<Option<StreamMode>, WireError> {
    match fields {
        Some(mut f) => Ok(Some(stream_mode(&required(f.string("StreamMode"))?)?)),
        None => Ok(None),
    }
}

fn shard_iterator_type(s: &str) -> Result<ShardIteratorType, WireError> {
    match s {
        "AT_SEQUENCE_NUMBER" => Ok(ShardIteratorType::AtSequenceNumber),
        "AFTER_SEQUENCE_NUMBER" => Ok(ShardIteratorType::AfterSequenceNumber),
        "TRIM_HORIZON" => Ok(ShardIteratorType::TrimHorizon),
        "LATEST" => Ok(ShardIteratorType::Latest),
        "AT_TIMESTAMP" => Ok(ShardIteratorType::AtTimestamp),
        _ => required(None),
    }
}

fn shard_filter_type(s: &str) -> Result<ShardFilterType, WireError> {
    match s {
        "AFTER_SHARD_ID" => Ok(ShardFilterType::AfterShardId),
        "AT_TRIM_HORIZON" => Ok(ShardFilterType::AtTrimHorizon),
        "FROM_TRIM_HORIZON" => Ok(ShardFilterType::FromTrimHorizon),
        "AT_LATEST" => Ok(ShardFilterType::AtLatest),
        "AT_TIMESTAMP" => Ok(ShardFilterType::AtTimestamp),
        "FROM_TIMESTAMP" => Ok(ShardFilterType::FromTimestamp),
        _ => required(None),
    }
}

fn encryption_type(s: &str) -> Result<EncryptionType, WireError> {
    match s {
        "NONE" => Ok(EncryptionType::None),
        "KMS" => Ok(EncryptionType::Kms),
        _ => required(None),
    }
}

/// One decodable operation: its name, input shape and builder.
pub(crate) struct Operation {
    pub name: &'static str,
    pub shape: &'static StructShape,
    pub build: fn(Fields<'_>) -> Result<Request, WireError>,
}

macro_rules! op {
    ($name:literal, $shape:expr, $build:expr) => {
        Operation {
            name: $name,
            shape: &$shape,
            build: $build,
        }
    };
}

/// All 39 Kinesis operations.
pub(crate) static OPERATIONS: &[Operation] = &[
    op!("AddTagsToStream", model::ADD_TAGS_TO_STREAM, |mut f| {
        Ok(Request::AddTagsToStream(AddTagsInput {
            tags: required(f.string_map("Tags"))?,
            stream: f.stream(),
        }))
    }),
    op!("CreateStream", model::CREATE_STREAM, |mut f| {
        Ok(Request::CreateStream(CreateStreamInput {
            stream_name: required(f.string("StreamName"))?,
            shard_count: f.int("ShardCount"),
            stream_mode: stream_mode_details(f.structure("StreamModeDetails"))?,
            tags: f.string_map("Tags"),
            warm_throughput_mibps: f.int("WarmThroughputMiBps"),
            max_record_size_kib: f.int("MaxRecordSizeInKiB"),
        }))
    }),
    op!(
        "DecreaseStreamRetentionPeriod",
        model::DECREASE_STREAM_RETENTION_PERIOD,
        |mut f| {
            Ok(Request::DecreaseStreamRetentionPeriod(RetentionInput {
                retention_period_hours: required(f.int("RetentionPeriodHours"))?,
                stream: f.stream(),
            }))
        }
    ),
    op!(
        "DeleteResourcePolicy",
        model::DELETE_RESOURCE_POLICY,
        |mut f| {
            Ok(Request::DeleteResourcePolicy(DeleteResourcePolicyInput {
                resource_arn: required(f.string("ResourceARN"))?,
            }))
        }
    ),
    op!("DeleteStream", model::DELETE_STREAM, |mut f| {
        Ok(Request::DeleteStream(DeleteStreamInput {
            enforce_consumer_deletion: f.boolean("EnforceConsumerDeletion").unwrap_or(false),
            stream: f.stream(),
        }))
    }),
    op!(
        "DeregisterStreamConsumer",
        model::DEREGISTER_STREAM_CONSUMER,
        |mut f| {
            Ok(Request::DeregisterStreamConsumer(ConsumerRef {
                stream_arn: f.string("StreamARN"),
                consumer_name: f.string("ConsumerName"),
                consumer_arn: f.string("ConsumerARN"),
            }))
        }
    ),
    op!(
        "DescribeAccountSettings",
        model::DESCRIBE_ACCOUNT_SETTINGS,
        |_| { Ok(Request::DescribeAccountSettings) }
    ),
    op!("DescribeLimits", model::DESCRIBE_LIMITS, |_| Ok(
        Request::DescribeLimits
    )),
    op!("DescribeStream", model::DESCRIBE_STREAM, |mut f| {
        Ok(Request::DescribeStream(DescribeStreamInput {
            limit: f.int("Limit"),
            exclusive_start_shard_id: f.string("ExclusiveStartShardId"),
            stream: f.stream(),
        }))
    }),
    op!(
        "DescribeStreamConsumer",
        model::DESCRIBE_STREAM_CONSUMER,
        |mut f| {
            Ok(Request::DescribeStreamConsumer(ConsumerRef {
                stream_arn: f.string("StreamARN"),
                consumer_name: f.string("ConsumerName"),
                consumer_arn: f.string("ConsumerARN"),
            }))
        }
    ),
    op!(
        "DescribeStreamSummary",
        model::DESCRIBE_STREAM_SUMMARY,
        |mut f| { Ok(Request::DescribeStreamSummary(f.stream())) }
    ),
    op!(
        "DisableEnhancedMonitoring",
        model::DISABLE_ENHANCED_MONITORING,
        |mut f| {
            Ok(Request::DisableEnhancedMonitoring(
                EnhancedMonitoringInput {
                    shard_level_metrics: required(f.strings("ShardLevelMetrics"))?,
                    stream: f.stream(),
                },
            ))
        }
    ),
    op!(
        "EnableEnhancedMonitoring",
        model::ENABLE_ENHANCED_MONITORING,
        |mut f| {
            Ok(Request::EnableEnhancedMonitoring(EnhancedMonitoringInput {
                shard_level_metrics: required(f.strings("ShardLevelMetrics"))?,
                stream: f.stream(),
            }))
        }
    ),
    op!("GetRecords", model::GET_RECORDS, |mut f| {
        Ok(Request::GetRecords(GetRecordsInput {
            shard_iterator: required(f.string("ShardIterator"))?,
            limit: f.int("Limit"),
            stream_arn: f.string("StreamARN"),
        }))
    }),
    op!("GetResourcePolicy", model::GET_RESOURCE_POLICY, |mut f| {
        Ok(Request::GetResourcePolicy(GetResourcePolicyInput {
            resource_arn: required(f.string("ResourceARN"))?,
        }))
    }),
    op!("GetShardIterator", model::GET_SHARD_ITERATOR, |mut f| {
        Ok(Request::GetShardIterator(GetShardIteratorInput {
            shard_id: required(f.string("ShardId"))?,
            shard_iterator_type: shard_iterator_type(&required(f.string("ShardIteratorType"))?)?,
            starting_sequence_number: f.string("StartingSequenceNumber"),
            timestamp: f.timestamp("Timestamp"),
            stream: f.stream(),
        }))
    }),
    op!(
        "IncreaseStreamRetentionPeriod",
        model::INCREASE_STREAM_RETENTION_PERIOD,
        |mut f| {
            Ok(Request::IncreaseStreamRetentionPeriod(RetentionInput {
                retention_period_hours: required(f.int("RetentionPeriodHours"))?,
                stream: f.stream(),
            }))
        }
    ),
    op!("ListShards", model::LIST_SHARDS, |mut f| {
        let shard_filter = match f.structure("ShardFilter") {
            Some(mut sf) => Some(ShardFilter {
                kind: shard_filter_type(&required(sf.string("Type"))?)?,
                shard_id: sf.string("ShardId"),
                timestamp: sf.timestamp("Timestamp"),
            }),
            None => None,
        };
        Ok(Request::ListShards(ListShardsInput {
            next_token: f.string("NextToken"),
            exclusive_start_shard_id: f.string("ExclusiveStartShardId"),
            max_results: f.int("MaxResults"),
            stream_creation_timestamp: f.timestamp("StreamCreationTimestamp"),
            shard_filter,
            stream: f.stream(),
        }))
    }),
    op!(
        "ListStreamConsumers",
        model::LIST_STREAM_CONSUMERS,
        |mut f| {
            Ok(Request::ListStreamConsumers(ListStreamConsumersInput {
                stream_arn: required(f.string("StreamARN"))?,
                next_token: f.string("NextToken"),
                max_results: f.int("MaxResults"),
                stream_creation_timestamp: f.timestamp("StreamCreationTimestamp"),
            }))
        }
    ),
    op!("ListStreams", model::LIST_STREAMS, |mut f| {
        Ok(Request::ListStreams(ListStreamsInput {
            limit: f.int("Limit"),
            exclusive_start_stream_name: f.string("ExclusiveStartStreamName"),
            next_token: f.string("NextToken"),
        }))
    }),
    op!(
        "ListTagsForResource",
        model::LIST_TAGS_FOR_RESOURCE,
        |mut f| {
            Ok(Request::ListTagsForResource(ListTagsForResourceInput {
                resource_arn: required(f.string("ResourceARN"))?,
            }))
        }
    ),
    op!("ListTagsForStream", model::LIST_TAGS_FOR_STREAM, |mut f| {
        Ok(Request::ListTagsForStream(ListTagsForStreamInput {
            exclusive_start_tag_key: f.string("ExclusiveStartTagKey"),
            limit: f.int("Limit"),
            stream: f.stream(),
        }))
    }),
    op!("MergeShards", model::MERGE_SHARDS, |mut f| {
        Ok(Request::MergeShards(MergeShardsInput {
            shard_to_merge: required(f.string("ShardToMerge"))?,
            adjacent_shard_to_merge: required(f.string("AdjacentShardToMerge"))?,
            stream: f.stream(),
        }))
    }),
    op!("PutRecord", model::PUT_RECORD, |mut f| {
        Ok(Request::PutRecord(PutRecordInput {
            data: required(f.blob("Data"))?,
            partition_key: required(f.string("PartitionKey"))?.into(),
            explicit_hash_key: f.string("ExplicitHashKey"),
            sequence_number_for_ordering: f.string("SequenceNumberForOrdering"),
            stream: f.stream(),
        }))
    }),
    op!("PutRecords", model::PUT_RECORDS, |mut f| {
        let items = required(f.list("Records"))?;
        let mut records = Vec::with_capacity(items.len());
        for item in items {
            let Some(Typed::Struct(mut entry)) = item else {
                return required(None);
            };
            records.push(PutRecordsEntry {
                data: required(entry.blob("Data"))?,
                partition_key: required(entry.string("PartitionKey"))?.into(),
                explicit_hash_key: entry.string("ExplicitHashKey"),
            });
        }
        Ok(Request::PutRecords(PutRecordsInput {
            records,
            stream: f.stream(),
        }))
    }),
    op!("PutResourcePolicy", model::PUT_RESOURCE_POLICY, |mut f| {
        Ok(Request::PutResourcePolicy(PutResourcePolicyInput {
            resource_arn: required(f.string("ResourceARN"))?,
            policy: required(f.string("Policy"))?,
        }))
    }),
    op!(
        "RegisterStreamConsumer",
        model::REGISTER_STREAM_CONSUMER,
        |mut f| {
            Ok(Request::RegisterStreamConsumer(
                RegisterStreamConsumerInput {
                    stream_arn: required(f.string("StreamARN"))?,
                    consumer_name: required(f.string("ConsumerName"))?,
                    tags: f.string_map("Tags"),
                },
            ))
        }
    ),
    op!(
        "RemoveTagsFromStream",
        model::REMOVE_TAGS_FROM_STREAM,
        |mut f| {
            Ok(Request::RemoveTagsFromStream(RemoveTagsInput {
                tag_keys: required(f.strings("TagKeys"))?,
                stream: f.stream(),
            }))
        }
    ),
    op!("SplitShard", model::SPLIT_SHARD, |mut f| {
        Ok(Request::SplitShard(SplitShardInput {
            shard_to_split: required(f.string("ShardToSplit"))?,
            new_starting_hash_key: required(f.string("NewStartingHashKey"))?,
            stream: f.stream(),
        }))
    }),
    op!(
        "StartStreamEncryption",
        model::START_STREAM_ENCRYPTION,
        |mut f| {
            Ok(Request::StartStreamEncryption(StreamEncryptionInput {
                encryption_type: encryption_type(&required(f.string("EncryptionType"))?)?,
                key_id: required(f.string("KeyId"))?,
                stream: f.stream(),
            }))
        }
    ),
    op!(
        "StopStreamEncryption",
        model::STOP_STREAM_ENCRYPTION,
        |mut f| {
            Ok(Request::StopStreamEncryption(StreamEncryptionInput {
                encryption_type: encryption_type(&required(f.string("EncryptionType"))?)?,
                key_id: required(f.string("KeyId"))?,
                stream: f.stream(),
            }))
        }
    ),
    op!("SubscribeToShard", model::SUBSCRIBE_TO_SHARD, |mut f| {
        let mut position = required(f.structure("StartingPosition"))?;
        Ok(Request::SubscribeToShard(SubscribeToShardInput {
            consumer_arn: required(f.string("ConsumerARN"))?,
            shard_id: required(f.string("ShardId"))?,
            starting_position: StartingPosition {
                kind: shard_iterator_type(&required(position.string("Type"))?)?,
                sequence_number: position.string("SequenceNumber"),
                timestamp: position.timestamp("Timestamp"),
            },
        }))
    }),
    op!("TagResource", model::TAG_RESOURCE, |mut f| {
        Ok(Request::TagResource(TagResourceInput {
            resource_arn: required(f.string("ResourceARN"))?,
            tags: required(f.string_map("Tags"))?,
        }))
    }),
    op!("UntagResource", model::UNTAG_RESOURCE, |mut f| {
        Ok(Request::UntagResource(UntagResourceInput {
            resource_arn: required(f.string("ResourceARN"))?,
            tag_keys: required(f.strings("TagKeys"))?,
        }))
    }),
    op!(
        "UpdateAccountSettings",
        model::UPDATE_ACCOUNT_SETTINGS,
        |mut f| {
            let mut commitment = required(f.structure("MinimumThroughputBillingCommitment"))?;
            let status = match required(commitment.string("Status"))?.as_str() {
                "ENABLED" => CommitmentStatus::Enabled,
                "DISABLED" => CommitmentStatus::Disabled,
                _ => return required(None),
            };
            Ok(Request::UpdateAccountSettings(UpdateAccountSettingsInput {
                minimum_throughput_billing_commitment: status,
            }))
        }
    ),
    op!(
        "UpdateMaxRecordSize",
        model::UPDATE_MAX_RECORD_SIZE,
        |mut f| {
            Ok(Request::UpdateMaxRecordSize(UpdateMaxRecordSizeInput {
                max_record_size_kib: required(f.int("MaxRecordSizeInKiB"))?,
                stream: StreamRef {
                    name: None,
                    arn: f.string("StreamARN"),
                },
            }))
        }
    ),
    op!("UpdateShardCount", model::UPDATE_SHARD_COUNT, |mut f| {
        Ok(Request::UpdateShardCount(UpdateShardCountInput {
            target_shard_count: required(f.int("TargetShardCount"))?,
            scaling_type: ScalingType::UniformScaling,
            stream: f.stream(),
        }))
    }),
    op!("UpdateStreamMode", model::UPDATE_STREAM_MODE, |mut f| {
        let mut details = required(f.structure("StreamModeDetails"))?;
        Ok(Request::UpdateStreamMode(UpdateStreamModeInput {
            stream_arn: required(f.string("StreamARN"))?,
            stream_mode: stream_mode(&required(details.string("StreamMode"))?)?,
            warm_throughput_mibps: f.int("WarmThroughputMiBps"),
        }))
    }),
    op!(
        "UpdateStreamWarmThroughput",
        model::UPDATE_STREAM_WARM_THROUGHPUT,
        |mut f| {
            Ok(Request::UpdateStreamWarmThroughput(
                UpdateStreamWarmThroughputInput {
                    warm_throughput_mibps: required(f.int("WarmThroughputMiBps"))?,
                    stream: f.stream(),
                },
            ))
        }
    ),
];

pub(crate) fn find(operation: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|op| op.name == operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64_err(s: &str) -> Option<String> {
        decode_base64(s)
            .err()
            .and_then(|e| e.message().map(str::to_owned))
    }

    #[test]
    fn base64_texts() {
        assert_eq!(
            decode_base64("aGVsbG8=").ok(),
            Some(Bytes::from_static(b"hello"))
        );
        assert_eq!(decode_base64("").ok(), Some(Bytes::new()));
        assert_eq!(
            b64_err("23456").as_deref(),
            Some("'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5")
        );
        assert_eq!(
            b64_err("=+/=").as_deref(),
            Some("'=+/=' can not be converted to a Blob: Invalid Base64 character: '='")
        );
        assert_eq!(
            b64_err("ab!d").as_deref(),
            Some("'ab!d' can not be converted to a Blob: Invalid Base64 character: '!'")
        );
        assert_eq!(
            b64_err("+/+=").as_deref(),
            Some("'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected")
        );
        assert!(b64_err("====").is_some());
        assert!(b64_err("A===").is_some());
        // Length counts UTF-16 units: "é" is one.
        assert!(b64_err("abé").unwrap_or_default().ends_with("found: 3"));
    }

    #[test]
    fn lengths_are_utf16() {
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("é"), 1);
        assert_eq!(utf16_len("😀"), 2);
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            int_timestamp(1_700_000_000, Protocol::Json).ok(),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            int_timestamp(1_700_000_000_123, Protocol::Cbor).ok(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            float_timestamp(1_700_000_000.123_6, Protocol::Json).ok(),
            Some(1_700_000_000_124)
        );
        assert_eq!(float_timestamp(-1.5, Protocol::Json).ok(), Some(-1500));
        assert!(int_timestamp(i128::from(i64::MAX), Protocol::Json).is_err());
        assert!(float_timestamp(1e300, Protocol::Json).is_err());
        assert!(float_timestamp(f64::NAN, Protocol::Cbor).is_err());
    }

    #[test]
    fn every_operation_is_listed_once() {
        assert_eq!(OPERATIONS.len(), 39);
        for (i, op) in OPERATIONS.iter().enumerate() {
            assert!(
                OPERATIONS[i + 1..].iter().all(|o| o.name != op.name),
                "{}",
                op.name
            );
        }
    }

    proptest::proptest! {
        /// The SIMD fast path accepts exactly what the strict reference decoder accepts, with
        /// the same bytes: near-valid inputs (bad trailing bits, misplaced padding, stray
        /// characters) must not slip through.
        #[test]
        fn simd_base64_agrees_with_the_strict_decoder(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
            edit in proptest::option::of((proptest::num::usize::ANY, proptest::sample::select(
                b"A/+=_-* \n\x00\xc3".to_vec()))),
        ) {
            use base64::Engine as _;
            let mut text = base64::engine::general_purpose::STANDARD.encode(&data).into_bytes();
            if let Some((at, byte)) = edit {
                if !text.is_empty() {
                    let at = at % text.len();
                    text[at] = byte;
                }
            }
            let reference = base64::engine::general_purpose::STANDARD.decode(&text).ok();
            let simd = base64_simd::STANDARD.decode_to_vec(&text).ok();
            proptest::prop_assert_eq!(simd, reference);
        }
    }
}
