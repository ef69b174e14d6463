//! The one way a secret is written into an answer: a new token, a generated password, the
//! session's CSRF token. Secrets are `SecretString`s, which `Debug` prints redacted and serde
//! cannot serialise by accident; a field that must be shown says so with
//! `#[serde(serialize_with = "crate::reveal::secret")]` (or `optional_secret`), so a search for
//! `reveal::` lists every place a secret leaves keygate.

use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;

pub fn secret<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

pub fn optional_secret<S: Serializer>(
    secret: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_some(secret.expose_secret()),
        None => s.serialize_none(),
    }
}
