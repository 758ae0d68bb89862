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
    // Split as bytes: a char-set split decodes UTF-8 char by char, and this runs per request.
    // Pieces end at ASCII separators, so each is valid UTF-8 again.
    for part in auth
        .as_bytes()
        .split(|&b| b == b',' || b == b' ')
        .skip(1)
        .filter(|p| !p.is_empty())
    {
        let (k, v) = match part.iter().position(|&b| b == b'=') {
            Some(at) => (&part[..at], &part[at + 1..]),
            None => (part, &[][..]),
        };
        match k {
            b"Credential" => credential = std::str::from_utf8(v).ok(),
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
