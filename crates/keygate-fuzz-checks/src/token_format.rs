//! The token format: `keygate_core::token::parse` (shape and checksum), prefixes
//! and base62. Each property is checked against a second, differently written description
//! of the format, so a fault in one is not hidden by the same fault in the other.

use keygate_core::base62;
use keygate_core::credentials::redact_tokens;
use keygate_core::token::{
    parse, ParsedToken, TokenError, TokenPrefix, CHECKSUM_LEN, FOREIGN_MAX_LEN, FOREIGN_MIN_LEN,
    PUBLIC_ID_LEN, SECRET_LEN,
};

pub fn check(data: &[u8]) {
    check_base62(data);
    check_rendered(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for prefix in prefixes(text) {
        check_parse(text, &prefix);
        check_with_fresh_checksum(text, &prefix);
    }
}

/// The default prefix, and the input's own first `_`-separated part when it is a valid
/// prefix, so that tokens of any deployment are reached, not only `kg_` ones.
fn prefixes(text: &str) -> Vec<TokenPrefix> {
    let mut out = vec![TokenPrefix::default()];
    if let Some((head, _)) = text.split_once('_') {
        if let Ok(p) = TokenPrefix::parse(head) {
            let b = head.as_bytes();
            assert!((2..=16).contains(&b.len()), "prefix {head:?} accepted");
            assert!(b[0].is_ascii_lowercase(), "prefix {head:?} accepted");
            assert!(
                b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "prefix {head:?} accepted"
            );
            if p != out[0] {
                out.push(p);
            }
        }
    }
    out
}

/// `<prefix>_<16 base62>_<49 base62>`, described by splitting on `_` rather than by offsets.
fn native_shape(text: &str, prefix: &TokenPrefix) -> bool {
    let Some(rest) = text
        .strip_prefix(prefix.as_str())
        .and_then(|r| r.strip_prefix('_'))
    else {
        return false;
    };
    let Some((public, secret)) = rest.split_once('_') else {
        return false;
    };
    let base62 = |s: &str| s.bytes().all(|c| c.is_ascii_alphanumeric());
    public.len() == PUBLIC_ID_LEN
        && secret.len() == SECRET_LEN + CHECKSUM_LEN
        && base62(public)
        && base62(secret)
}

fn checksum_of(body: &str) -> String {
    let mut out = String::new();
    base62::encode_fixed(
        crc32fast::hash(body.as_bytes()) as u64,
        CHECKSUM_LEN,
        &mut out,
    );
    out
}

fn check_parse(text: &str, prefix: &TokenPrefix) {
    let head = format!("{}_", prefix.as_str());
    match parse(text, prefix) {
        Ok(ParsedToken::Native { id }) => {
            assert!(native_shape(text, prefix), "{text:?} parsed as native");
            assert_eq!(id.len(), head.len() + PUBLIC_ID_LEN);
            assert!(text.starts_with(id) && text.as_bytes()[id.len()] == b'_');
            // Re-rendered from its parts, a parsed token is the same string.
            let (body, _) = text.split_at(text.len() - CHECKSUM_LEN);
            assert_eq!(format!("{body}{}", checksum_of(body)), text);
            // A token found in a log line keeps its id and loses its secret.
            let line = format!("token={text} end");
            assert_eq!(
                redact_tokens(&line, prefix.as_str()),
                format!("token={id}_REDACTED end")
            );
        }
        Ok(ParsedToken::Foreign) => {
            assert!(
                !text.starts_with(&head),
                "{text:?} under our prefix is foreign"
            );
            assert!((FOREIGN_MIN_LEN..=FOREIGN_MAX_LEN).contains(&text.len()));
            assert!(text.bytes().all(|c| c.is_ascii_graphic()));
        }
        Err(TokenError::BadChecksum) => {
            assert!(
                native_shape(text, prefix),
                "{text:?}: a checksum without a shape"
            );
            let (body, checksum) = text.split_at(text.len() - CHECKSUM_LEN);
            assert_ne!(
                checksum,
                checksum_of(body),
                "{text:?}: a good checksum refused"
            );
        }
        Err(TokenError::Malformed) => {
            if text.starts_with(&head) {
                assert!(
                    !native_shape(text, prefix),
                    "{text:?}: native shape malformed"
                );
            } else {
                let plausible = (FOREIGN_MIN_LEN..=FOREIGN_MAX_LEN).contains(&text.len())
                    && text.bytes().all(|c| c.is_ascii_graphic());
                assert!(!plausible, "{text:?}: a plausible foreign token refused");
            }
        }
        Err(TokenError::BadPrefix) => panic!("parse never judges the prefix"),
    }
}

/// The fuzzer cannot guess a CRC32, so the input's own checksum is replaced (or one is
/// appended): whatever has the native shape must then parse to the id it starts with.
fn check_with_fresh_checksum(text: &str, prefix: &TokenPrefix) {
    let mut candidates = vec![format!("{text}{}", checksum_of(text))];
    if let Some(body) = text.get(..text.len().saturating_sub(CHECKSUM_LEN)) {
        candidates.push(format!("{body}{}", checksum_of(body)));
    }
    for candidate in candidates {
        let parsed = parse(&candidate, prefix);
        if native_shape(&candidate, prefix) {
            let id = &candidate[..prefix.as_str().len() + 1 + PUBLIC_ID_LEN];
            assert_eq!(parsed, Ok(ParsedToken::Native { id }), "{candidate:?}");
        } else {
            assert!(
                !matches!(parsed, Ok(ParsedToken::Native { .. })),
                "{candidate:?}: native without the shape"
            );
        }
    }
}

/// Renders a token from the input's bytes the way minting does (without the randomness) and
/// parses it back.
fn check_rendered(data: &[u8]) {
    let digit = |b: &u8| base62::ALPHABET[*b as usize % 62] as char;
    let public: String = data.iter().take(PUBLIC_ID_LEN).map(digit).collect();
    let secret: String = data
        .iter()
        .skip(PUBLIC_ID_LEN)
        .take(SECRET_LEN)
        .map(digit)
        .collect();
    if public.len() < PUBLIC_ID_LEN || secret.len() < SECRET_LEN {
        return;
    }
    let prefix = TokenPrefix::default();
    let id = format!("{}_{public}", prefix.as_str());
    let body = format!("{id}_{secret}");
    let token = format!("{body}{}", checksum_of(&body));
    assert_eq!(parse(&token, &prefix), Ok(ParsedToken::Native { id: &id }));
}

fn check_base62(data: &[u8]) {
    // Fixed-width encoding is one-to-one: decoding digits and encoding the value at the same
    // width gives the digits back (up to 11 digits, the widest that `encode_fixed` writes).
    if let Some(value) = base62::decode(data) {
        assert!(data.iter().all(u8::is_ascii_alphanumeric));
        let width = data.len().min(11);
        let mut again = String::new();
        base62::encode_fixed(value, width, &mut again);
        let (leading, tail) = data.split_at(data.len() - width);
        assert!(leading.iter().all(|&c| c == b'0'), "{data:?} fit in a u64");
        assert_eq!(again.as_bytes(), tail);
    } else {
        let digits = data.iter().all(u8::is_ascii_alphanumeric);
        let significant = data.iter().skip_while(|&&c| c == b'0').count();
        assert!(!digits || significant >= 11, "{data:?} refused");
    }
    for chunk in data.chunks_exact(8) {
        let value = u64::from_le_bytes(chunk.try_into().expect("chunks of eight"));
        let mut s = String::new();
        base62::encode_fixed(value, 11, &mut s);
        assert_eq!(base62::decode(s.as_bytes()), Some(value));
        let crc = value as u32 as u64;
        s.clear();
        base62::encode_fixed(crc, CHECKSUM_LEN, &mut s);
        assert_eq!(base62::decode(s.as_bytes()), Some(crc));
    }
}
