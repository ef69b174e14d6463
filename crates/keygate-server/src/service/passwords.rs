//! People's credentials: argon2id password hashes, generated passwords, and the rules for
//! passwords.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use keygate_core::base62;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{ApiError, ApiResult};

pub const MIN_PASSWORD_CHARS: usize = 12;
/// argon2 hashes whatever it is given; a bound keeps one request from costing seconds.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password for the operator to hand on: 24 base62 characters, about 143 bits.
pub fn generate_password() -> String {
    let mut p = String::new();
    base62::random(24, &mut p);
    p
}

pub fn validate_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::Unprocessable(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::Unprocessable(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// The PHC string of an argon2id hash (argon2's defaults: 19 MiB, 2 passes), computed off the
/// async threads because it takes tens of milliseconds by design.
pub async fn hash_password(password: SecretString) -> ApiResult<SecretString> {
    tokio::task::spawn_blocking(move || hash_password_blocking(password.expose_secret()))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing task: {e}")))?
        .map(Into::into)
        .map_err(ApiError::Internal)
}

pub fn hash_password_blocking(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing a password failed: {e}"))
}

/// Checks a password against a stored hash; `None` (no such user) is checked against a hash
/// of nothing at the same cost, so the answer takes as long for a name that does not exist.
/// argon2's `verify_password` compares the computed and stored outputs in constant time.
pub async fn password_matches(
    stored: Option<SecretString>,
    password: SecretString,
) -> ApiResult<bool> {
    tokio::task::spawn_blocking(move || {
        let phc = stored
            .as_ref()
            .map(|s| s.expose_secret())
            .unwrap_or_else(|| dummy_hash());
        let ok = PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.expose_secret().as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && stored.is_some()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password check task: {e}")))
}

fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        hash_password_blocking(&generate_password()).expect("hashing a random password")
    })
}
