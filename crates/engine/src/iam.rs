//! IAM-style authorization: identity policies attached to principals and resource policies
//! attached to streams and consumers, evaluated the way AWS combines them for same-account
//! access: an explicit Deny in any policy wins; otherwise an Allow in the identity policy or in
//! the resource policy (for this principal) grants; otherwise access is implicitly denied.
//!
//! Supported: `Effect`, `Action`/`NotAction` and `Resource`/`NotResource` (strings or lists,
//! `*` and `?` wildcards; actions match case-insensitively), `Principal` in resource policies
//! (`"*"`, `{"AWS": ...}` with an account id, account root ARN or user ARN). Not supported:
//! `Condition` (a statement with a condition never matches, so it cannot grant by accident, and
//! a Deny with a condition is treated as always applying: the safe side), cross-account access.

use serde_json::Value;

use crate::Error;

/// A parsed policy document.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    actions: Patterns,
    resources: Patterns,
    /// Resource policies only: who the statement is about.
    principals: Option<Vec<String>>,
    has_condition: bool,
}

#[derive(Debug, Clone)]
struct Patterns {
    negated: bool,
    list: Vec<String>,
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(String::from)).collect(),
        _ => None,
    }
}

/// Glob match with `*` (any run) and `?` (one character).
fn glob(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl Patterns {
    fn matches(&self, value: &str, case_insensitive: bool) -> bool {
        let hit = self.list.iter().any(|p| glob(p, value, case_insensitive));
        hit != self.negated
    }
}

fn invalid(why: &str) -> Error {
    Error::InvalidArgument(format!("Invalid policy document: {why}"))
}

impl Policy {
    /// Parses an IAM JSON policy document. `resource_policy` requires `Principal`.
    pub fn parse(text: &str, resource_policy: bool) -> Result<Policy, Error> {
        let doc: Value = serde_json::from_str(text).map_err(|_| invalid("not JSON"))?;
        let stmts = match doc.get("Statement") {
            Some(Value::Array(a)) => a.clone(),
            Some(o @ Value::Object(_)) => vec![o.clone()],
            _ => return Err(invalid("Statement is missing")),
        };
        if stmts.len() > 100 {
            return Err(invalid("too many statements"));
        }
        let mut statements = Vec::new();
        for s in &stmts {
            let allow = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                _ => return Err(invalid("Effect must be Allow or Deny")),
            };
            let patterns = |pos: &str, neg: &str| -> Result<Patterns, Error> {
                match (s.get(pos), s.get(neg)) {
                    (Some(v), None) => Ok(Patterns {
                        negated: false,
                        list: strings(v).ok_or_else(|| invalid(&format!("bad {pos}")))?,
                    }),
                    (None, Some(v)) => Ok(Patterns {
                        negated: true,
                        list: strings(v).ok_or_else(|| invalid(&format!("bad {neg}")))?,
                    }),
                    _ => Err(invalid(&format!(
                        "exactly one of {pos} or {neg} is required"
                    ))),
                }
            };
            let actions = patterns("Action", "NotAction")?;
            let resources =
                if resource_policy && s.get("Resource").is_none() && s.get("NotResource").is_none()
                {
                    Patterns {
                        negated: false,
                        list: vec!["*".into()],
                    }
                } else {
                    patterns("Resource", "NotResource")?
                };
            let principals = match s.get("Principal") {
                None if resource_policy => return Err(invalid("Principal is required")),
                None => None,
                Some(Value::String(p)) if p == "*" => Some(vec!["*".to_string()]),
                Some(Value::Object(o)) => Some(
                    o.get("AWS")
                        .and_then(strings)
                        .ok_or_else(|| invalid("Principal must name AWS principals"))?,
                ),
                Some(_) => return Err(invalid("bad Principal")),
            };
            statements.push(Statement {
                allow,
                actions,
                resources,
                principals,
                has_condition: s.get("Condition").is_some(),
            });
        }
        Ok(Policy { statements })
    }

    /// (explicitly denied, allowed) for a principal calling `action` on `resource`.
    fn evaluate(
        &self,
        principal_arn: &str,
        account: &str,
        action: &str,
        resource: &str,
    ) -> (bool, bool) {
        let mut denied = false;
        let mut allowed = false;
        for s in &self.statements {
            if !s.actions.matches(action, true) || !s.resources.matches(resource, false) {
                continue;
            }
            if let Some(ps) = &s.principals {
                let names_us = ps.iter().any(|p| {
                    p == "*"
                        || p == account
                        || *p == format!("arn:aws:iam::{account}:root")
                        || glob(p, principal_arn, false)
                });
                if !names_us {
                    continue;
                }
            }
            if s.allow {
                // Conditions are not evaluated: a conditional Allow never grants.
                if !s.has_condition {
                    allowed = true;
                }
            } else {
                denied = true;
            }
        }
        (denied, allowed)
    }
}

/// Decides one request. `identity` is the caller's policy (None: no policy attached, which
/// allows nothing); `resource` the policy of the stream or consumer, if any.
pub fn authorize(
    principal_arn: &str,
    account: &str,
    identity: Option<&Policy>,
    resource_policy: Option<&Policy>,
    action: &str,
    resource: &str,
) -> Result<(), Error> {
    let (id_deny, id_allow) = identity
        .map(|p| p.evaluate(principal_arn, account, action, resource))
        .unwrap_or((false, false));
    let (rp_deny, rp_allow) = resource_policy
        .map(|p| p.evaluate(principal_arn, account, action, resource))
        .unwrap_or((false, false));
    if id_deny || rp_deny {
        return Err(Error::AccessDenied(format!(
            "User: {principal_arn} is not authorized to perform: {action} on resource: {resource} with an explicit deny"
        )));
    }
    if id_allow || rp_allow {
        return Ok(());
    }
    Err(Error::AccessDenied(format!(
        "User: {principal_arn} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCT: &str = "000000000000";
    const PRODUCER: &str = "arn:aws:iam::000000000000:user/producer";
    const STREAM: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/clicks";

    #[test]
    fn globs() {
        assert!(glob("kinesis:Put*", "kinesis:PutRecords", true));
        assert!(glob("kinesis:put*", "kinesis:PutRecords", true));
        assert!(!glob("kinesis:Get*", "kinesis:PutRecords", true));
        assert!(glob("arn:aws:kinesis:*:*:stream/c?icks", STREAM, false));
        assert!(!glob("arn:aws:kinesis:*:*:stream/other", STREAM, false));
        assert!(glob("*", "", false));
    }

    #[test]
    fn least_privilege_producer_and_consumer() {
        let producer = Policy::parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":"arn:aws:kinesis:*:*:stream/clicks"}]}"#, false).unwrap();
        assert!(authorize(
            PRODUCER,
            ACCT,
            Some(&producer),
            None,
            "kinesis:PutRecords",
            STREAM
        )
        .is_ok());
        let e = authorize(
            PRODUCER,
            ACCT,
            Some(&producer),
            None,
            "kinesis:GetRecords",
            STREAM,
        )
        .unwrap_err();
        assert_eq!(e.code(), "AccessDeniedException");
        assert!(authorize(
            PRODUCER,
            ACCT,
            Some(&producer),
            None,
            "kinesis:PutRecords",
            "arn:aws:kinesis:us-east-1:000000000000:stream/other"
        )
        .is_err());
        assert!(
            authorize(PRODUCER, ACCT, None, None, "kinesis:ListStreams", "*").is_err(),
            "no policy, no access"
        );
    }

    #[test]
    fn deny_beats_allow_and_resource_policies_grant() {
        let admin = Policy::parse(r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:*","Resource":"*"},{"Effect":"Deny","Action":"kinesis:DeleteStream","Resource":"*"}]}"#, false).unwrap();
        assert!(authorize(
            PRODUCER,
            ACCT,
            Some(&admin),
            None,
            "kinesis:CreateStream",
            STREAM
        )
        .is_ok());
        assert!(authorize(
            PRODUCER,
            ACCT,
            Some(&admin),
            None,
            "kinesis:DeleteStream",
            STREAM
        )
        .is_err());
        let rp = Policy::parse(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/producer"},"Action":"kinesis:GetRecords","Resource":"*"}]}"#, true).unwrap();
        assert!(authorize(
            PRODUCER,
            ACCT,
            None,
            Some(&rp),
            "kinesis:GetRecords",
            STREAM
        )
        .is_ok());
        assert!(authorize(
            "arn:aws:iam::000000000000:user/other",
            ACCT,
            None,
            Some(&rp),
            "kinesis:GetRecords",
            STREAM
        )
        .is_err());
        let deny_rp = Policy::parse(r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kinesis:*","Resource":"*"}]}"#, true).unwrap();
        assert!(authorize(
            PRODUCER,
            ACCT,
            Some(&admin),
            Some(&deny_rp),
            "kinesis:PutRecord",
            STREAM
        )
        .is_err());
    }

    #[test]
    fn bad_documents_are_refused() {
        for doc in [
            "nope",
            "{}",
            r#"{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
        ] {
            assert!(Policy::parse(doc, false).is_err(), "{doc}");
        }
        assert!(
            Policy::parse(
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
                true
            )
            .is_err(),
            "resource policies need a Principal"
        );
    }
}
