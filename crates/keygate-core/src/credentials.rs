//! Where a request carries its token (DESIGN §3): the `Authorization` header with one of the
//! seeds' schemes (`apiToken`, `Api-Token`, `Token`, `Bearer`; case-insensitive as RFC 7235
//! says), or the `api-token` / `apiToken` / `api_token` query parameters.

use std::borrow::Cow;

/// The Authorization schemes keygate accepts, lower-cased.
pub const SCHEMES: &[&str] = &["apitoken", "api-token", "token", "bearer"];
/// Query parameters that may carry a token.
pub const QUERY_PARAMS: &[&str] = &["api-token", "apiToken", "api_token"];

/// What a request presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No header and no query parameter.
    Missing,
    /// Something was presented, but not in a form keygate accepts (unknown scheme, no token
    /// after the scheme, not UTF-8).
    Unusable,
    Token(Cow<'a, str>),
}

/// Parses an `Authorization` header value.
pub fn extract_from_authorization(value: &[u8]) -> Credential<'_> {
    let Ok(value) = std::str::from_utf8(value) else {
        return Credential::Unusable;
    };
    let value = value.trim();
    let Some((scheme, rest)) = value.split_once([' ', '\t']) else {
        return Credential::Unusable;
    };
    let token = rest.trim();
    let known = SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme));
    if !known || token.is_empty() || token.contains(char::is_whitespace) {
        return Credential::Unusable;
    }
    Credential::Token(Cow::Borrowed(token))
}

/// Looks for a token in a raw (still percent-encoded) query string.
pub fn extract_from_query(query: &str) -> Credential<'_> {
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if QUERY_PARAMS.contains(&k.as_ref()) {
            return if v.is_empty() {
                Credential::Unusable
            } else {
                Credential::Token(Cow::Owned(v.into_owned()))
            };
        }
    }
    Credential::Missing
}

/// Could this query parameter carry a secret? Token parameters under any spelling
/// (`API-TOKEN`, `access_token`, `key`, …) are redacted from logs, not only those we accept.
fn secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["token", "key", "secret", "password", "auth"]
        .iter()
        .any(|w| n.contains(w))
}

/// `text` with the secret of anything shaped like one of this deployment's tokens replaced
/// (checksum or not: a mistyped token is still mostly a secret). The id part stays, so a log
/// still says which token was involved.
pub fn redact_tokens(text: &str, prefix: &str) -> String {
    let head = format!("{prefix}_");
    let b = text.as_bytes();
    // Where the token starting at `start` (with `head`) has its `_` before the secret.
    let id_end_at = |start: usize| {
        let id_end = start + head.len() + crate::token::PUBLIC_ID_LEN;
        let is_token = id_end < b.len()
            && b[start..start + head.len()] == *head.as_bytes()
            && b[start + head.len()..id_end]
                .iter()
                .all(u8::is_ascii_alphanumeric)
            && b[id_end] == b'_';
        is_token.then_some(id_end)
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = text[i..].find(&head) {
        let start = i + found;
        let Some(id_end) = id_end_at(start) else {
            out.push_str(&text[i..start + head.len()]);
            i = start + head.len();
            continue;
        };
        let mut secret_end = b[id_end + 1..]
            .iter()
            .position(|c| !c.is_ascii_alphanumeric())
            .map_or(b.len(), |p| id_end + 1 + p);
        // Two tokens written together (`…<secret>kg_<id>_<secret>`): the first secret's
        // characters run into the second token's prefix, which must stay to be found.
        if let Some(next) = secret_end.checked_sub(prefix.len()) {
            if next > id_end && id_end_at(next).is_some() {
                secret_end = next;
            }
        }
        out.push_str(&text[i..=id_end]);
        out.push_str("REDACTED");
        i = secret_end;
    }
    out.push_str(&text[i..]);
    out
}

/// A raw query string made safe for logs: values of parameters that may hold a secret are
/// replaced, and so is anything shaped like a token.
pub fn redact_query(query: &str, prefix: &str) -> String {
    let pairs = || form_urlencoded::parse(query.as_bytes());
    // A log reader decodes what it reads, and a token may come percent-encoded (`kg%5F…`),
    // which the raw text does not show as one: the decoded pairs decide, and a query with a
    // secret in any of them is written again from its decoded, redacted pairs.
    let holds_token = |s: &str| redact_tokens(s, prefix) != s;
    let holds_secret = pairs().any(|(k, v)| secret_param(&k) || holds_token(&k) || holds_token(&v));
    let query = if holds_secret {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs() {
            let v = if secret_param(&k) {
                "REDACTED".to_owned()
            } else {
                redact_tokens(&v, prefix)
            };
            out.append_pair(&redact_tokens(&k, prefix), &v);
        }
        out.finish()
    } else {
        query.to_owned()
    };
    redact_tokens(&query, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tok(s: &str) -> Credential<'_> {
        Credential::Token(Cow::Borrowed(s))
    }

    #[test]
    fn every_seed_scheme_in_any_case() {
        for h in [
            "apiToken abc",
            "APITOKEN abc",
            "Api-Token abc",
            "api-token abc",
            "Token abc",
            "token abc",
            "Bearer abc",
            "bearer   abc  ",
        ] {
            assert_eq!(extract_from_authorization(h.as_bytes()), tok("abc"), "{h}");
        }
    }

    #[test]
    fn garbage_is_unusable_not_a_panic() {
        for h in [
            "",
            "abc",
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer a b",
        ] {
            assert_eq!(
                extract_from_authorization(h.as_bytes()),
                Credential::Unusable,
                "{h}"
            );
        }
        assert_eq!(
            extract_from_authorization(&[0xff, 0xfe]),
            Credential::Unusable
        );
    }

    #[test]
    fn query_parameters() {
        for q in ["api-token=abc", "apiToken=abc&x=1", "x=1&api_token=abc"] {
            assert_eq!(
                extract_from_query(q),
                Credential::Token(Cow::Owned("abc".into()))
            );
        }
        assert_eq!(extract_from_query("x=1"), Credential::Missing);
        assert_eq!(extract_from_query("api-token="), Credential::Unusable);
        assert_eq!(
            extract_from_query("api-token=a%2Bb"),
            Credential::Token(Cow::Owned("a+b".into()))
        );
    }

    #[test]
    fn redaction_removes_every_token_parameter() {
        let r = redact_query(
            "a=1&api-token=SECRET1&apiToken=SECRET2&api_token=SECRET3&API-TOKEN=SECRET4&access_token=SECRET5",
            "kg",
        );
        assert!(!r.contains("SECRET"), "{r}");
        assert!(r.starts_with("a=1&"));
        assert_eq!(redact_query("a=1&b=2", "kg"), "a=1&b=2");
    }

    #[test]
    fn token_shapes_are_redacted_anywhere() {
        let t = "kg_1A2b3C4d5E6f7G8h_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
        let path = format!("/api/v1/tokens/{t}/rotate");
        assert_eq!(
            redact_tokens(&path, "kg"),
            "/api/v1/tokens/kg_1A2b3C4d5E6f7G8h_REDACTED/rotate"
        );
        assert_eq!(
            redact_query(&format!("x={t}"), "kg"),
            "x=kg_1A2b3C4d5E6f7G8h_REDACTED"
        );
        // Ids alone are not secrets and stay.
        assert_eq!(
            redact_tokens("/api/v1/tokens/kg_1A2b3C4d5E6f7G8h", "kg"),
            "/api/v1/tokens/kg_1A2b3C4d5E6f7G8h"
        );
        assert_eq!(redact_tokens("kg_kg_x", "kg"), "kg_kg_x");
    }

    #[test]
    fn two_tokens_written_together_are_both_redacted() {
        // Found by the credential_extraction fuzz target: the first secret's run of
        // alphanumerics swallowed the second token's prefix, and its secret stayed.
        let a = "kg_Ky7Pf34qY6Nb3wWD_25RQ4F5ZR3qa7yEeeby3ab";
        let b = "kg_Ky9Pf34qY6Nb3wWD_P3E2Zs8IQ9Y7aJZqhB6ba3mnJxT";
        assert_eq!(
            redact_tokens(&format!("x={a}{b}"), "kg"),
            "x=kg_Ky7Pf34qY6Nb3wWD_REDACTEDkg_Ky9Pf34qY6Nb3wWD_REDACTED"
        );
        assert_eq!(
            redact_tokens("kg_Ky7Pf34qY6Nb3wWD_secretkg_short", "kg"),
            "kg_Ky7Pf34qY6Nb3wWD_REDACTED_short"
        );
    }

    #[test]
    fn a_percent_encoded_token_in_any_parameter_is_redacted() {
        // Found by the credential_extraction fuzz target: `kg%5F…` is no token in the raw
        // query, so a parameter that is not a token parameter kept its secret in the log.
        let t = "kg_Ky9Pf34qY6Nb3wWD_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
        let encoded = t.replace('_', "%5F");
        for q in [format!("next={encoded}"), format!("a=1&{encoded}=x")] {
            let r = redact_query(&q, "kg");
            assert!(!r.contains("abcdefghij"), "{q} → {r}");
            assert!(r.contains("kg_Ky9Pf34qY6Nb3wWD_REDACTED"), "{q} → {r}");
        }
        assert_eq!(redact_query("next=%2Fa%2Fb", "kg"), "next=%2Fa%2Fb");
    }

    proptest! {
        #[test]
        fn header_parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = extract_from_authorization(&b);
        }

        #[test]
        fn header_round_trips(scheme in prop::sample::select(SCHEMES), t in "[!-~]{1,100}") {
            let h = format!("{scheme} {t}");
            prop_assert_eq!(extract_from_authorization(h.as_bytes()), Credential::Token(Cow::Borrowed(t.as_str())));
        }

        #[test]
        fn redacted_query_never_contains_the_token(t in "[A-Za-z0-9_]{16,69}", other in "[a-z]{1,5}=[a-z0-9]{0,5}") {
            let q = format!("{other}&api-token={t}");
            prop_assert!(!redact_query(&q, "kg").contains(&t));
        }

        #[test]
        fn redacted_text_never_contains_a_minted_secret(before in "[ -~]{0,20}", after in "[ -~&&[^A-Za-z0-9]][ -~]{0,20}") {
            let (_, tok) = crate::PlainToken::mint(&crate::TokenPrefix::default());
            let text = format!("{before}{}{after}", tok.expose());
            let secret = &tok.expose()[20..];
            prop_assert!(!redact_tokens(&text, "kg").contains(secret));
        }
    }
}
