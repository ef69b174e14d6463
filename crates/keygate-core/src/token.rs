//! The token format:
//! `<prefix>_<16 base62 public id>_<43 base62 secret><6 base62 CRC32>`.
//!
//! The id (`<prefix>_<public id>`) is a prefix of the token, safe to show and log. The secret is
//! 43 base62 characters (62^43 > 2^256). The CRC32 lets keygate refuse a made-up or mistyped
//! token before any lookup. At rest only the SHA-256 of the whole token is kept: the secret is
//! 256 random bits, so a slow password hash would add cost and no protection.

use std::fmt;

use compact_str::CompactString;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::base62;

pub const PUBLIC_ID_LEN: usize = 16;
pub const SECRET_LEN: usize = 43;
pub const CHECKSUM_LEN: usize = 6;
/// Tokens minted elsewhere (imported, or chosen by an Instana client) are any string of
/// visible ASCII within these bounds.
pub const FOREIGN_MIN_LEN: usize = 16;
pub const FOREIGN_MAX_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token prefix must match [a-z][a-z0-9]{{1,15}}")]
    BadPrefix,
    #[error("token is malformed")]
    Malformed,
    #[error("token checksum does not match")]
    BadChecksum,
}

/// A deployment's token prefix (`kg` by default), validated once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrefix(String);

impl TokenPrefix {
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let b = s.as_bytes();
        let ok = (2..=16).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b[1..]
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(TokenError::BadPrefix)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Length of a native token with this prefix.
    pub fn token_len(&self) -> usize {
        self.0.len() + 1 + PUBLIC_ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN
    }
}

impl Default for TokenPrefix {
    fn default() -> Self {
        Self("kg".to_owned())
    }
}

/// A token's public id, `<prefix>_<public id>`: safe to show, log and put in URLs. Held inline
/// (no allocation) up to 24 bytes, which covers the default prefix: a million cached tokens
/// hold a million of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TokenId(CompactString);

impl TokenId {
    /// A fresh id, for tokens minted elsewhere that carry no id of their own.
    pub fn generate(prefix: &TokenPrefix) -> Self {
        let mut s = String::with_capacity(prefix.0.len() + 1 + PUBLIC_ID_LEN);
        s.push_str(&prefix.0);
        s.push('_');
        base62::random(PUBLIC_ID_LEN, &mut s);
        Self(s.into())
    }

    /// Wraps an id without checking its shape: one read back from storage, or the id part of
    /// a token that `token::parse` has already accepted (the operator's bootstrap token). Ids
    /// from a request are looked up as plain strings instead: an unknown id is simply not
    /// found.
    pub fn from_stored(s: String) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0.into_string()
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` has the shape of a token id under any prefix, `<prefix>_<16 base62>`. An id a
/// client chooses (Instana's `internalId`) must not have it, so that no chosen id can be read as
/// a keygate id, one minted under an earlier `--prefix` included.
pub fn has_id_shape(s: &str) -> bool {
    let Some((prefix, public)) = s.split_once('_') else {
        return false;
    };
    TokenPrefix::parse(prefix).is_ok()
        && public.len() == PUBLIC_ID_LEN
        && public.bytes().all(base62::is_base62)
}

/// A token in plaintext. It exists only between minting and the one response that shows it,
/// or between a request's header and its hash. `Debug` never prints it, and `==` takes the
/// same time wherever the two differ.
#[derive(Clone, Debug)]
pub struct PlainToken(SecretString);

impl PlainToken {
    /// Mints a new native token: random public id and secret from the OS-seeded CSPRNG.
    pub fn mint(prefix: &TokenPrefix) -> (TokenId, PlainToken) {
        let mut s = String::with_capacity(prefix.token_len());
        s.push_str(&prefix.0);
        s.push('_');
        base62::random(PUBLIC_ID_LEN, &mut s);
        let id = TokenId(s.as_str().into());
        s.push('_');
        base62::random(SECRET_LEN, &mut s);
        let crc = crc32fast::hash(s.as_bytes());
        base62::encode_fixed(crc as u64, CHECKSUM_LEN, &mut s);
        (id, PlainToken(s.into()))
    }

    /// Wraps a token string received from a client, unchecked (see [`parse`]).
    pub fn from_client(s: impl Into<String>) -> Self {
        Self(s.into().into())
    }

    /// The plaintext, for the single response that returns it and for hashing.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.expose())
    }
}

/// keygate itself finds tokens by hash, never by comparing plaintexts; but a comparison that
/// stopped at the first differing byte would tell whoever can time it how much of a guess was
/// right, so none is offered.
impl PartialEq for PlainToken {
    fn eq(&self, other: &Self) -> bool {
        self.expose()
            .as_bytes()
            .ct_eq(other.expose().as_bytes())
            .into()
    }
}

impl Eq for PlainToken {}

/// SHA-256 of a whole token: the only form in which keygate stores a token.
///
/// Its `==`, `Hash` and `Ord` are the ordinary, early-exit ones, and the cache, the negative
/// cache and the database index look tokens up by it. That is no timing oracle: the attacker
/// chooses the token, not its hash, and learning how many leading bytes of a SHA-256 matched
/// a stored one says nothing about any token without a preimage.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(Self)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a secret, but eight hex digits are enough to correlate in a debug log.
        write!(f, "TokenHash(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// What the format says about a presented token, before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParsedToken<'a> {
    /// A token of this deployment's format with a correct checksum; `id` is its public id.
    Native { id: &'a str },
    /// Not of this deployment's format, but a plausible token minted elsewhere: look it up.
    Foreign,
}

/// Checks a presented token's shape and checksum. A token that starts with this deployment's
/// `<prefix>_` must be a whole, correctly checksummed native token: anything else under our
/// prefix is refused without a lookup.
pub fn parse<'a>(token: &'a str, prefix: &TokenPrefix) -> Result<ParsedToken<'a>, TokenError> {
    let p = prefix.as_str();
    let b = token.as_bytes();
    let native_head = b.len() > p.len() && b.starts_with(p.as_bytes()) && b[p.len()] == b'_';
    if !native_head {
        let visible = b.iter().all(|c| (0x21..=0x7e).contains(c));
        return if visible && (FOREIGN_MIN_LEN..=FOREIGN_MAX_LEN).contains(&b.len()) {
            Ok(ParsedToken::Foreign)
        } else {
            Err(TokenError::Malformed)
        };
    }
    if b.len() != prefix.token_len() {
        return Err(TokenError::Malformed);
    }
    let pub_start = p.len() + 1;
    let sep = pub_start + PUBLIC_ID_LEN;
    let crc_start = b.len() - CHECKSUM_LEN;
    let shape_ok = b[sep] == b'_'
        && b[pub_start..sep].iter().all(|&c| base62::is_base62(c))
        && b[sep + 1..].iter().all(|&c| base62::is_base62(c));
    if !shape_ok {
        return Err(TokenError::Malformed);
    }
    // Decoding the six digits instead of encoding the expected ones: no allocation on the
    // hot path, and the same answer, as fixed-width base62 is one-to-one. An ordinary compare:
    // the checksum is computed from what the client sent, so its timing tells the client only
    // what it could compute itself.
    if base62::decode(&b[crc_start..]) != Some(crc32fast::hash(&b[..crc_start]) as u64) {
        return Err(TokenError::BadChecksum);
    }
    Ok(ParsedToken::Native { id: &token[..sep] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kg() -> TokenPrefix {
        TokenPrefix::default()
    }

    #[test]
    fn minted_token_has_the_documented_shape() {
        let (id, tok) = PlainToken::mint(&kg());
        let s = tok.expose();
        assert_eq!(s.len(), 69);
        assert!(s.starts_with(&format!("{id}_")));
        assert_eq!(id.as_str().len(), 2 + 1 + 16);
        assert_eq!(parse(s, &kg()), Ok(ParsedToken::Native { id: id.as_str() }));
    }

    #[test]
    fn one_changed_character_fails_the_checksum() {
        let (_, tok) = PlainToken::mint(&kg());
        let mut bytes = tok.expose().as_bytes().to_vec();
        let i = 30;
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        let s = String::from_utf8(bytes).unwrap();
        assert_eq!(parse(&s, &kg()), Err(TokenError::BadChecksum));
    }

    #[test]
    fn our_prefix_with_a_wrong_shape_is_malformed() {
        assert_eq!(parse("kg_short", &kg()), Err(TokenError::Malformed));
        let (_, tok) = PlainToken::mint(&kg());
        let s = tok.expose().replacen('_', ".", 2).replacen('.', "_", 1);
        assert_eq!(parse(&s, &kg()), Err(TokenError::Malformed));
    }

    #[test]
    fn foreign_tokens_are_bounded_visible_ascii() {
        assert_eq!(
            parse("8as7bf9a8s7498svaps8dfabsf", &kg()),
            Ok(ParsedToken::Foreign)
        );
        assert_eq!(parse("short", &kg()), Err(TokenError::Malformed));
        assert_eq!(
            parse("has a space in it, sixteen+", &kg()),
            Err(TokenError::Malformed)
        );
        assert_eq!(parse(&"x".repeat(257), &kg()), Err(TokenError::Malformed));
        assert_eq!(parse(&"x".repeat(256), &kg()), Ok(ParsedToken::Foreign));
    }

    #[test]
    fn ids_of_any_prefix_have_the_id_shape_and_little_else_does() {
        let (id, tok) = PlainToken::mint(&kg());
        assert!(has_id_shape(id.as_str()));
        assert!(has_id_shape(
            TokenId::generate(&TokenPrefix::parse("dt0c01").unwrap()).as_str()
        ));
        for not in [
            tok.expose(),
            "ext-1",
            "kg_",
            "kg_0123456789abcde",
            "kg_0123456789abcdef0",
            "KG_0123456789abcdef",
            "k_0123456789abcdef",
            "kg_0123456789abcde-",
            "kg_0123456789abcdef_",
            "",
        ] {
            assert!(!has_id_shape(not), "{not:?}");
        }
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(TokenPrefix::parse("kg").is_ok());
        assert!(TokenPrefix::parse("dt0c01").is_ok());
        assert!(TokenPrefix::parse("k").is_err());
        assert!(TokenPrefix::parse("Kg").is_err());
        assert!(TokenPrefix::parse("1kg").is_err());
        assert!(TokenPrefix::parse("abcdefghijklmnopq").is_err());
        assert!(TokenPrefix::parse("k_g").is_err());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let (_, tok) = PlainToken::mint(&kg());
        let dbg = format!("{tok:?} {:?}", Some(&tok));
        assert!(!dbg.contains(&tok.expose()[20..]), "{dbg}");
        assert!(dbg.contains("REDACTED"), "{dbg}");
    }

    #[test]
    fn plaintexts_compare_by_value() {
        let (_, a) = PlainToken::mint(&kg());
        let (_, b) = PlainToken::mint(&kg());
        assert_eq!(a, PlainToken::from_client(a.expose()));
        assert_ne!(a, b);
        assert_ne!(a, PlainToken::from_client(&a.expose()[..20]));
    }

    #[test]
    fn hash_is_sha256_of_the_whole_token() {
        // sha256("abc") from FIPS 180-2.
        let h = TokenHash::of("abc");
        assert_eq!(h.0[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    proptest! {
        #[test]
        fn mint_then_parse_round_trips(prefix in "[a-z][a-z0-9]{1,15}") {
            let prefix = TokenPrefix::parse(&prefix).unwrap();
            let (id, tok) = PlainToken::mint(&prefix);
            prop_assert_eq!(tok.expose().len(), prefix.token_len());
            prop_assert_eq!(parse(tok.expose(), &prefix), Ok(ParsedToken::Native { id: id.as_str() }));
        }

        #[test]
        fn every_minted_token_carries_its_id_and_checksum_under_any_prefix(prefix in "[a-z][a-z0-9]{1,15}", other in "[a-z][a-z0-9]{1,15}") {
            let prefix = TokenPrefix::parse(&prefix).unwrap();
            let (id, tok) = PlainToken::mint(&prefix);
            let s = tok.expose();
            let (body, checksum) = s.split_at(s.len() - CHECKSUM_LEN);
            let mut expected = String::new();
            base62::encode_fixed(crc32fast::hash(body.as_bytes()) as u64, CHECKSUM_LEN, &mut expected);
            prop_assert_eq!(checksum, expected.as_str());
            let rest = s.strip_prefix(id.as_str()).and_then(|r| r.strip_prefix('_'));
            prop_assert_eq!(rest.map(str::len), Some(SECRET_LEN + CHECKSUM_LEN));
            prop_assert_eq!(parse(s, &prefix), Ok(ParsedToken::Native { id: id.as_str() }));
            let redacted = crate::credentials::redact_tokens(s, prefix.as_str());
            prop_assert_eq!(redacted, format!("{id}_REDACTED"));
            // No prefix is a prefix of another followed by `_`, so another deployment sees a
            // plausible foreign token, never a native one with some other id.
            let other = TokenPrefix::parse(&other).unwrap();
            prop_assume!(other != prefix);
            prop_assert_eq!(parse(s, &other), Ok(ParsedToken::Foreign));
        }

        #[test]
        fn any_single_substitution_is_caught(pos in 3usize..69, c in "[0-9A-Za-z]") {
            let (_, tok) = PlainToken::mint(&kg());
            let mut b = tok.expose().as_bytes().to_vec();
            let c = c.as_bytes()[0];
            prop_assume!(b[pos] != c && b[pos] != b'_');
            b[pos] = c;
            let s = String::from_utf8(b).unwrap();
            // CRC32 detects every single-byte substitution.
            prop_assert!(parse(&s, &kg()).is_err());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s, &kg());
        }
    }
}
