//! Authentication. Every request needs a well-formed AWS4 Authorization header (or AWS's
//! error). With configured [`Credentials`], its SigV4 signature is verified too; without, the
//! server is in open development mode and accepts any credentials. The credential scope's
//! region selects the region the request acts in.

use std::collections::HashMap;

use http::HeaderMap;
use kinesin_wire::sigv4;
use kinesin_wire::WireError;

/// A principal allowed to call the API.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub secret_access_key: String,
    /// When set, requests must carry this `X-Amz-Security-Token` (signed).
    pub session_token: Option<String>,
    /// The user's identity policy.
    pub policy: kinesin_engine::iam::Policy,
}

/// The users requests may be signed by, keyed by access key id.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub users: HashMap<String, User>,
}

/// The parts of a request head SigV4 signs.
pub struct SignedHead {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl SignedHead {
    pub fn of<B>(req: &http::Request<B>) -> SignedHead {
        let mut headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        // HTTP/2 carries the host as the :authority pseudo-header, which clients sign either as
        // `host` (Rust, Java) or literally as `:authority` (JavaScript).
        if let Some(a) = req.uri().authority() {
            if !headers.iter().any(|(k, _)| k == "host") {
                headers.push(("host".into(), a.as_str().to_string()));
            }
            headers.push((":authority".into(), a.as_str().to_string()));
        }
        SignedHead {
            method: req.method().as_str().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().unwrap_or_default().to_string(),
            headers,
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Credentials {
    /// Verifies the request's signature; returns the access key id and its user.
    pub fn verify(&self, head: &SignedHead, body: &[u8]) -> Result<(String, &User), WireError> {
        let Some(value) = head
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str())
        else {
            // Presigned (query-string) requests are not accepted when signatures are checked.
            return Err(AuthError::MissingToken.into_wire());
        };
        let auth = sigv4::parse_authorization(value)?;
        let req = sigv4::SignedRequest {
            method: &head.method,
            path: &head.path,
            query: &head.query,
            headers: &head.headers,
            body,
        };
        let user = self.users.get(&auth.access_key_id);
        sigv4::verify(&req, &auth, "kinesis", now_secs(), |_| {
            user.map(|u| sigv4::Secret {
                secret_access_key: &u.secret_access_key,
                session_token: u.session_token.as_deref(),
            })
        })?;
        // verify() refuses unknown keys, so the user is there.
        user.map(|u| (auth.access_key_id.clone(), u))
            .ok_or_else(|| AuthError::MissingToken.into_wire())
    }
}

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
pub fn check<'h>(
    headers: &'h HeaderMap,
    query: Option<&str>,
) -> Result<Option<&'h str>, AuthError> {
    // `HeaderValue::to_str`'s rule (visible ASCII or tab), checked without an early exit so
    // that it vectorizes: this runs on every request.
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .map(http::HeaderValue::as_bytes)
        .filter(|b| {
            b.iter()
                .fold(true, |ok, &c| ok & ((32..127).contains(&c) | (c == b'\t')))
        });
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
    // Split as bytes, at separators found with memchr: this runs per request. The header is
    // visible ASCII (checked above), so every piece is valid UTF-8. The first piece is the
    // algorithm.
    let bytes = auth;
    let ends = memchr::memchr2_iter(b',', b' ', bytes).chain(std::iter::once(bytes.len()));
    let mut start = 0;
    for (i, end) in ends.enumerate() {
        let part = bytes.get(start..end).unwrap_or_default();
        start = end + 1;
        if i == 0 || part.is_empty() {
            continue;
        }
        let (k, v) = match memchr::memchr(b'=', part) {
            Some(at) => (&part[..at], &part[at + 1..]),
            None => (part, &[][..]),
        };
        match k {
            b"Credential" => credential = Some(v),
            b"SignedHeaders" => signed_headers = true,
            b"Signature" => signature = true,
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
    const X_AMZ_DATE: http::HeaderName = http::HeaderName::from_static("x-amz-date");
    if !headers.contains_key(X_AMZ_DATE) && !headers.contains_key(http::header::DATE) {
        msg.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    if !msg.is_empty() {
        msg.push_str("Authorization=");
        msg.push_str(&String::from_utf8_lossy(auth));
        return Err(AuthError::IncompleteSignature(msg));
    }
    // Credential = AKID/date/region/service/aws4_request
    let region = credential.and_then(|c| {
        let mut slashes = memchr::memchr_iter(b'/', c);
        let start = slashes.nth(1)? + 1;
        let end = slashes.next().unwrap_or(c.len());
        std::str::from_utf8(c.get(start..end)?).ok()
    });
    Ok(region.filter(|r| !r.is_empty() && r.len() <= 64))
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
        let h = headers(&[("authorization", "AWS4-HMAC-SHA256 foo")]);
        let e = check(&h, None);
        assert_eq!(e, Err(AuthError::IncompleteSignature("Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 foo".into())));
    }

    #[test]
    fn region_from_scope() {
        let h = headers(&[
            ("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"),
            ("x-amz-date", "20240101T000000Z"),
        ]);
        assert_eq!(check(&h, None), Ok(Some("eu-west-1")));
        assert_eq!(
            check(&h, Some("X-Amz-Algorithm=AWS4")),
            Err(AuthError::BothForms)
        );
    }

    /// The parameters `check` finds, as the straightforward char-by-char split finds them
    /// (the reference the byte-level split must agree with).
    fn reference_params(header: &[u8]) -> Option<(Option<String>, bool, bool)> {
        let auth = http::HeaderValue::from_bytes(header).ok()?;
        let auth = auth.to_str().ok()?;
        let (mut credential, mut signed, mut signature) = (None, false, false);
        for part in auth.split([',', ' ']).skip(1).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            match k {
                "Credential" => credential = Some(v.to_owned()),
                "SignedHeaders" => signed = true,
                "Signature" => signature = true,
                _ => {}
            }
        }
        Some((credential, signed, signature))
    }

    proptest::proptest! {
        /// Same answer as the reference split for headers built from the real pieces, odd
        /// separators, tabs, and bytes `to_str` refuses.
        #[test]
        fn byte_split_agrees_with_the_reference(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "AWS4-HMAC-SHA256", "Credential=AKID/20240101/eu-west-1/kinesis/aws4_request",
                "Credential=", "Credential=a/b", "SignedHeaders=host;x-amz-date", "Signature=abc",
                "Signature", "=x", ",", " ", ", ", "\t", "\u{7f}", "\u{e9}", "x=y=z",
            ]), 0..8),
            complete in proptest::bool::ANY,
        ) {
            // Half start from a complete header, so the accepting path is compared too.
            let start = if complete {
                "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/kinesis/aws4_request, \
                 SignedHeaders=host, Signature=abc"
            } else {
                ""
            };
            let header = format!("{start}{}", pieces.concat());
            let Some(expected) = reference_params(header.as_bytes()) else {
                // `to_str` refuses it: the header counts as absent (or cannot be built).
                if let Ok(v) = http::HeaderValue::from_bytes(header.as_bytes()) {
                    let mut h = HeaderMap::new();
                    h.insert(http::header::AUTHORIZATION, v);
                    proptest::prop_assert_eq!(check(&h, None), Err(AuthError::MissingToken));
                }
                return Ok(());
            };
            let mut h = HeaderMap::new();
            h.insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_bytes(header.as_bytes()).expect("built above"),
            );
            h.insert("x-amz-date", http::HeaderValue::from_static("20240101T000000Z"));
            let got = check(&h, None);
            match expected {
                (Some(credential), true, true) => {
                    let region = credential
                        .split('/')
                        .nth(2)
                        .filter(|r| !r.is_empty() && r.len() <= 64);
                    proptest::prop_assert_eq!(got, Ok(region));
                }
                (credential, signed, signature) => {
                    let Err(AuthError::IncompleteSignature(msg)) = got else {
                        return Err(proptest::test_runner::TestCaseError::fail("accepted"));
                    };
                    proptest::prop_assert_eq!(msg.contains("'Credential'"), credential.is_none());
                    proptest::prop_assert_eq!(msg.contains("'SignedHeaders'"), !signed);
                    proptest::prop_assert_eq!(msg.contains("'Signature'"), !signature);
                }
            }
        }
    }
}
