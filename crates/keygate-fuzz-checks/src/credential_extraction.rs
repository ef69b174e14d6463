//! Where a request carries its token and how logs lose it: the Authorization
//! header parser, the query parameter parser, and the redaction of paths and query strings.
//! The input is read as a header value, as a raw query string and as free log text.

use keygate_core::credentials::{
    extract_from_authorization, extract_from_query, redact_query, redact_tokens, QUERY_PARAMS,
    SCHEMES,
};
use keygate_core::token::{parse, ParsedToken, TokenPrefix};
use keygate_core::Credential;

pub fn check(data: &[u8]) {
    check_header(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_query(text);
    check_log_text(text);
}

/// Every way of writing `scheme` that RFC 7235's case-insensitivity allows us to test cheaply.
fn spellings(scheme: &str) -> [String; 3] {
    [
        scheme.to_owned(),
        scheme.to_ascii_uppercase(),
        scheme
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
    ]
}

fn check_header(data: &[u8]) {
    let found = extract_from_authorization(data);
    let text = std::str::from_utf8(data).ok();
    // The same header described scheme first: `<known scheme><space or tab><one word>`.
    let expected = text.and_then(|t| {
        let v = t.trim();
        SCHEMES.iter().find_map(|scheme| {
            let head = v.get(..scheme.len())?;
            let rest = v.get(scheme.len()..)?;
            let word = rest.trim();
            let separated = rest.starts_with([' ', '\t']);
            (head.eq_ignore_ascii_case(scheme)
                && separated
                && !word.is_empty()
                && !word.contains(char::is_whitespace))
            .then_some(word)
        })
    });
    match (&found, expected) {
        (Credential::Token(t), Some(word)) => assert_eq!(t.as_ref(), word),
        (Credential::Unusable, None) => {}
        (Credential::Missing, _) => panic!("a header is never a missing credential"),
        (found, expected) => panic!("{text:?}: parsed {found:?}, expected {expected:?}"),
    }
    let Credential::Token(token) = found else {
        return;
    };
    for scheme in SCHEMES {
        for spelling in spellings(scheme) {
            let header = format!("{spelling} {token}");
            assert_eq!(
                extract_from_authorization(header.as_bytes()),
                Credential::Token(token.clone()),
                "{header:?}"
            );
        }
    }
    assert_secret_gone(&token, &format!("authorization header: {token}"));
}

/// A native token in `line` loses its secret through `redact_tokens` and keeps its id.
fn assert_secret_gone(token: &str, line: &str) {
    let prefix = TokenPrefix::default();
    if let Ok(ParsedToken::Native { id }) = parse(token, &prefix) {
        let redacted = redact_tokens(line, prefix.as_str());
        assert!(!redacted.contains(token), "{redacted:?} kept the token");
        assert!(
            redacted.contains(&format!("{id}_REDACTED")),
            "{redacted:?} lost the id"
        );
    }
}

fn check_query(query: &str) {
    let first =
        form_urlencoded::parse(query.as_bytes()).find(|(k, _)| QUERY_PARAMS.contains(&k.as_ref()));
    match (extract_from_query(query), first) {
        (Credential::Missing, None) => {}
        (Credential::Unusable, Some((_, v))) => assert!(v.is_empty()),
        (Credential::Token(t), Some((_, v))) => assert!(!t.is_empty() && t == v),
        (found, first) => panic!("{query:?}: parsed {found:?}, first token parameter {first:?}"),
    }

    let prefix = TokenPrefix::default();
    let redacted = redact_query(query, prefix.as_str());
    // What a log reader decodes from the redacted query holds no token parameter value and
    // nothing token-shaped with its secret.
    for (k, v) in form_urlencoded::parse(redacted.as_bytes()) {
        if QUERY_PARAMS.contains(&k.as_ref()) {
            assert_eq!(v, "REDACTED", "{query:?} → {redacted:?}");
        }
        for part in [&k, &v] {
            assert_eq!(
                redact_tokens(part, prefix.as_str()),
                part.as_ref(),
                "{query:?} → {redacted:?} still decodes to a token"
            );
        }
    }
    assert_eq!(
        redact_tokens(&redacted, prefix.as_str()),
        redacted,
        "{query:?}: redaction is not idempotent"
    );
    // The parameter a request authenticates with is gone from the log in every form.
    if let Credential::Token(_) = extract_from_query(query) {
        assert_eq!(
            extract_from_query(&redacted),
            Credential::Token("REDACTED".into())
        );
    }
}

fn check_log_text(text: &str) {
    let prefix = TokenPrefix::default();
    let redacted = redact_tokens(text, prefix.as_str());
    assert_eq!(
        redact_tokens(&redacted, prefix.as_str()),
        redacted,
        "{text:?}: redaction is not idempotent"
    );
    if !text.contains("kg_") {
        assert_eq!(redacted, text, "text without a token changed");
    }
    // Every native token in the text, wherever it starts, loses its secret.
    for (start, _) in text.match_indices("kg_") {
        let end = (start + prefix.token_len()).min(text.len());
        if let Some(candidate) = text.get(start..end) {
            assert_secret_gone(candidate, text);
        }
    }
}
