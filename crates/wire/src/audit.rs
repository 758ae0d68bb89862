//! Audit log lines: one JSON object per API call, with CloudTrail's field names where they fit.

use serde_json::{json, Map, Value};

/// What the server knows about one call.
#[derive(Debug, Clone, Default)]
pub struct AuditRecord {
    /// Epoch seconds.
    pub time_secs: i64,
    pub operation: String,
    pub region: String,
    pub account: String,
    pub source_ip: String,
    pub user_agent: Option<String>,
    /// (user name, access key id) of a verified caller; `None` in open development mode.
    pub user: Option<(String, String)>,
    pub access_key_id: Option<String>,
    pub resource_arn: Option<String>,
    pub request_id: String,
    pub http_status: u16,
    pub error_code: Option<String>,
    pub read_only: bool,
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn iso8601(t: i64) -> String {
    let c = crate::sigv4::format_amz_date(t);
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &c[0..4],
        &c[4..6],
        &c[6..8],
        &c[9..11],
        &c[11..13],
        &c[13..15]
    )
}

/// One line (without the newline).
pub fn line(r: &AuditRecord) -> String {
    let identity = match &r.user {
        Some((name, akid)) => json!({
            "type": "IAMUser",
            "userName": name,
            "accessKeyId": akid,
            "accountId": r.account,
            "arn": format!("arn:aws:iam::{}:user/{name}", r.account),
        }),
        None => json!({
            "type": "Unverified",
            "accessKeyId": r.access_key_id,
            "accountId": r.account,
        }),
    };
    let mut m = Map::new();
    m.insert("eventVersion".into(), json!("1.08"));
    m.insert("eventTime".into(), json!(iso8601(r.time_secs)));
    m.insert("eventSource".into(), json!("kinesis.amazonaws.com"));
    m.insert("eventName".into(), json!(r.operation));
    m.insert("awsRegion".into(), json!(r.region));
    m.insert("sourceIPAddress".into(), json!(r.source_ip));
    if let Some(ua) = &r.user_agent {
        m.insert("userAgent".into(), json!(ua));
    }
    m.insert("userIdentity".into(), identity);
    m.insert("requestID".into(), json!(r.request_id));
    m.insert("eventType".into(), json!("AwsApiCall"));
    m.insert("readOnly".into(), json!(r.read_only));
    m.insert("recipientAccountId".into(), json!(r.account));
    if let Some(arn) = &r.resource_arn {
        m.insert(
            "resources".into(),
            json!([{ "ARN": arn, "accountId": r.account }]),
        );
    }
    m.insert("httpStatus".into(), json!(r.http_status));
    if let Some(code) = &r.error_code {
        m.insert("errorCode".into(), json!(code));
    }
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_cloudtrail_fields() {
        let l = line(&AuditRecord {
            time_secs: 1_700_000_000,
            operation: "PutRecord".into(),
            region: "us-east-1".into(),
            account: "000000000000".into(),
            source_ip: "127.0.0.1".into(),
            user: Some(("producer".into(), "AKID".into())),
            resource_arn: Some("arn:aws:kinesis:us-east-1:000000000000:stream/s".into()),
            request_id: "r".into(),
            http_status: 400,
            error_code: Some("AccessDeniedException".into()),
            ..Default::default()
        });
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20Z");
        assert_eq!(
            v["userIdentity"]["arn"],
            "arn:aws:iam::000000000000:user/producer"
        );
        assert_eq!(v["errorCode"], "AccessDeniedException");
        assert_eq!(
            v["resources"][0]["ARN"],
            "arn:aws:kinesis:us-east-1:000000000000:stream/s"
        );
    }
}
