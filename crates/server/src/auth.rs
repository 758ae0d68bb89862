//! Authorization header checks. Signatures are not verified yet (any credentials are
//! accepted), but a request without credentials, or with a malformed AWS4 header, gets the
//! error AWS gives. The credential scope's region selects the region the request acts in.

use http::HeaderMap;
use kinesin_wire::WireError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    MissingToken,
    #[error("{0}")]
    IncompleteSignature(String),
    #[error(
        "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."
    )]
    BothForms,
}

impl AuthError {
    pub fn into_wire(self) -> WireError {
        let code = match self {
            AuthError::MissingToken => "MissingAuthenticationTokenException",
            AuthError::IncompleteSignature(_) => "IncompleteSignatureException",
            AuthError::BothForms => "InvalidSignatureException",
        };
        WireError::new(code, 400, Some(self.to_string()))
    }
}

fn query_has(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.split('=').next().is_some_and(|k| k == name))
    })
}

/// Returns the region named by the credential scope, if any.
pub fn check(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, AuthError> {
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let presigned = query_has(query, "X-Amz-Algorithm");
    let auth = match (auth, presigned) {
        (Some(_), true) => return Err(AuthError::BothForms),
        (None, true) => return Ok(None),
        (None, false) => return Err(AuthError::MissingToken),
        (Some(a), false) => a,
    };
    // `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`; separators are
    // ", " but clients vary, so split on both.
    let mut credential = None;
    let mut signed_headers = false;
    let mut signature = false;
    for part in auth.split([',', ' ']).skip(1).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = true,
            "Signature" => signature = true,
            _ => {}
        }
    }
    let mut msg = String::new();
    if credential.is_none() {
        msg.push_str("Authorization header requires 'Credential' parameter. ");
    }
    if !signature {
        msg.push_str("Authorization header requires 'Signature' parameter. ");
    }
    if !signed_headers {
        msg.push_str("Authorization header requires 'SignedHeaders' parameter. ");
    }
    if !headers.contains_key("x-amz-date") && !headers.contains_key(http::header::DATE) {
        msg.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    if !msg.is_empty() {
        msg.push_str("Authorization=");
        msg.push_str(auth);
        return Err(AuthError::IncompleteSignature(msg));
    }
    // Credential = AKID/date/region/service/aws4_request
    let region = credential
        .and_then(|c| c.split('/').nth(2))
        .filter(|r| !r.is_empty() && r.len() <= 64)
        .map(str::to_owned);
    Ok(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("test header"));
        }
        h
    }

    #[test]
    fn missing_and_malformed() {
        assert_eq!(check(&headers(&[]), None), Err(AuthError::MissingToken));
        let e = check(&headers(&[("authorization", "AWS4-HMAC-SHA256 foo")]), None);
        assert_eq!(e, Err(AuthError::IncompleteSignature("Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 foo".into())));
    }

    #[test]
    fn region_from_scope() {
        let h = headers(&[
            ("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"),
            ("x-amz-date", "20240101T000000Z"),
        ]);
        assert_eq!(check(&h, None), Ok(Some("eu-west-1".into())));
        assert_eq!(
            check(&h, Some("X-Amz-Algorithm=AWS4")),
            Err(AuthError::BothForms)
        );
    }
}
