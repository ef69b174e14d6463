//! Where a request carries its token: the `Authorization` header with one of the
//! seeds' schemes (`apiToken`, `Api-Token`, `Token`, `Bearer`; case-insensitive as RFC 7235
//! says), or the `api-token` / `apiToken` / `api_token` query parameters.
//!
//! Every redaction of text lives here, one function per kind, each applied at one point:
//! - a logged path and query: [`redact_tokens`], [`redact_query`], by the request log;
//! - text a client gets back: [`redact_secrets`], by the layer around every error answer (and
//!   by verify for `missingScopes`, the one success answer that repeats input);
//! - a parser's complaint, which quotes input of any shape: [`redact_echoed_input`], by the
//!   extractors that parse bodies, queries and paths, before the error answer is built.
//!
//! A secret held in a value is not text to redact: it is a `secrecy::SecretString` (or a
//! [`PlainToken`](crate::PlainToken)), whose `Debug` never shows it.

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

/// `text` with the secret of anything shaped like a native token of *any* prefix replaced:
/// `_<16 base62>_` followed by a run of 40 or more base62 characters (the secret and checksum
/// are 49). For messages built where the deployment's prefix is not known, such as a scope
/// parser's complaint about a token sent as a scope name.
pub fn redact_token_shapes(text: &str) -> String {
    let b = text.as_bytes();
    let id_len = crate::token::PUBLIC_ID_LEN;
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + id_len + 2 < b.len() {
        let id_end = i + 1 + id_len;
        let shaped = b[i] == b'_'
            && b[i + 1..id_end].iter().all(u8::is_ascii_alphanumeric)
            && b[id_end] == b'_';
        if shaped {
            let run = b[id_end + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric())
                .count();
            if run >= 40 {
                out.push_str(&text[copied..=id_end]);
                out.push_str("REDACTED");
                i = id_end + 1 + run;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// Text that is shown to a client (an error message, a list of missing scopes) made safe to
/// show: the secret of anything shaped like this deployment's tokens is replaced as in logs
/// ([`redact_tokens`]), and so is that of a whole token of any other prefix
/// ([`redact_token_shapes`]). A client that sent its token where a scope, a sort key or a date
/// belongs must not get it back in an answer that proxies and browsers may keep.
pub fn redact_secrets(text: &str, prefix: &str) -> String {
    redact_token_shapes(&redact_tokens(text, prefix))
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

/// An error message from a parser (serde's `unknown field `…``, `invalid type: string "…"`)
/// with every quoted piece of input that could be a secret replaced. The shortest token
/// keygate accepts is [`FOREIGN_MIN_LEN`](crate::token::FOREIGN_MIN_LEN) characters, so a
/// quoted value that long or longer is not echoed: a client that sends its token as a field
/// name, or in the wrong field, must not get it back in a 422 that a proxy may log. Shorter
/// values (a misspelled field name, a bad scope) stay, so the message still says what is wrong.
pub fn redact_echoed_input(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest.as_bytes()[open];
        let body = &rest[open + 1..];
        // Strings are quoted with escapes (`\"`); names between backticks are not.
        let close = if quote == b'"' {
            let mut escaped = false;
            body.char_indices()
                .find(|&(_, c)| {
                    let end = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map(|(i, _)| i)
        } else {
            body.find('`')
        };
        let Some(close) = close else {
            // An unterminated quote: whatever follows came from the input.
            out.push_str(&rest[..=open]);
            out.push_str(&quoted_or_redacted(body));
            return out;
        };
        out.push_str(&rest[..=open]);
        out.push_str(&quoted_or_redacted(&body[..close]));
        out.push(quote as char);
        rest = &body[close + 1..];
    }
    out.push_str(rest);
    out
}

fn quoted_or_redacted(value: &str) -> std::borrow::Cow<'_, str> {
    if value.chars().count() < crate::token::FOREIGN_MIN_LEN {
        value.into()
    } else {
        "REDACTED".into()
    }
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
    fn token_shapes_of_any_prefix_are_redacted() {
        let secret = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLM";
        for prefix in ["kg", "acme", "dt0c01"] {
            let t = format!("{prefix}_1A2b3C4d5E6f7G8h_{secret}");
            let text = format!("unknown scope \"{t}\" (see /api/v1/scopes)");
            assert_eq!(
                redact_token_shapes(&text),
                format!(
                    "unknown scope \"{prefix}_1A2b3C4d5E6f7G8h_REDACTED\" (see /api/v1/scopes)"
                )
            );
        }
        // Scope names, ids and short runs stay.
        for text in [
            "instana:canConfigureServiceLevelCorrectionWindows",
            "kg_1A2b3C4d5E6f7G8h",
            "a_1A2b3C4d5E6f7G8h_short",
            "",
            "_",
        ] {
            assert_eq!(redact_token_shapes(text), text);
        }
    }

    #[test]
    fn shown_text_loses_the_secrets_of_this_and_any_other_prefix() {
        let secret = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLM";
        let text = format!(
            "cannot sort by \"kg_1A2b3C4d5E6f7G8h_{secret}\", nor by \
             acme_1A2b3C4d5E6f7G8h_{secret}, nor by kg_1A2b3C4d5E6f7G8h_{}",
            &secret[..30]
        );
        assert_eq!(
            redact_secrets(&text, "kg"),
            "cannot sort by \"kg_1A2b3C4d5E6f7G8h_REDACTED\", nor by \
             acme_1A2b3C4d5E6f7G8h_REDACTED, nor by kg_1A2b3C4d5E6f7G8h_REDACTED"
        );
        for text in [
            "tokens:read",
            "kg_1A2b3C4d5E6f7G8h",
            "No token with this id",
        ] {
            assert_eq!(redact_secrets(text, "kg"), text);
        }
    }

    #[test]
    fn long_echoed_input_is_redacted_from_parser_messages() {
        let t = "kg_1A2b3C4d5E6f7G8h_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
        let m = format!("unknown field `{t}`, expected `token` or `scopes` at line 1 column 72");
        assert_eq!(
            redact_echoed_input(&m),
            "unknown field `REDACTED`, expected `token` or `scopes` at line 1 column 72"
        );
        let m = format!("invalid type: string \"{t}\", expected a sequence");
        assert_eq!(
            redact_echoed_input(&m),
            "invalid type: string \"REDACTED\", expected a sequence"
        );
        // An escaped quote does not end the string early.
        let m = "invalid value: string \"ab\\\"cdefghijklmnopqrstu\", expected x";
        assert_eq!(
            redact_echoed_input(m),
            "invalid value: string \"REDACTED\", expected x"
        );
        // Short input is what makes a message useful: it stays.
        let m = "unknown field `nmae`, expected one of `name`, `scopes`";
        assert_eq!(redact_echoed_input(m), m);
        assert_eq!(
            redact_echoed_input("unterminated `my-secret-value-0123456"),
            "unterminated `REDACTED"
        );
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
        fn echoed_input_never_contains_a_long_value(
            before in "[ -~]{0,20}", v in "[!-~]{16,80}", after in "[ -~]{0,20}", q in prop::sample::select(vec!['`', '"'])
        ) {
            let escaped = if q == '"' { v.replace('\\', "\\\\").replace('"', "\\\"") } else { v.replace('`', "") };
            prop_assume!(escaped.chars().count() >= 16);
            let m = format!("{}{q}{escaped}{q}{after}", before.replace(['`', '"'], ""));
            prop_assert!(!redact_echoed_input(&m).contains(&escaped), "{}", m);
        }

        #[test]
        fn token_shapes_never_keep_a_minted_secret(prefix in "[a-z][a-z0-9]{1,15}", before in "[ -~]{0,20}", after in "[ -~&&[^A-Za-z0-9]][ -~]{0,20}") {
            let prefix = crate::TokenPrefix::parse(&prefix).unwrap();
            let (id, tok) = crate::PlainToken::mint(&prefix);
            let secret = &tok.expose()[id.as_str().len() + 1..];
            let text = format!("{before}{}{after}", tok.expose());
            prop_assert!(!redact_token_shapes(&text).contains(secret));
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
