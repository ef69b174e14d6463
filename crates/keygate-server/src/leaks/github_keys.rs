//! GitHub's secret-scanning public keys and the check of a report's signature: ECDSA P-256
//! over SHA-256 of the raw body, base64 of the DER signature in `Github-Public-Key-Signature`,
//! the key named by `Github-Public-Key-Identifier`.
//!
//! The keys come from the file the operator keeps (GitHub's own JSON, fetched from
//! `https://api.github.com/meta/public_keys/secret_scanning`). keygate never fetches it
//! itself: a server that calls out to the internet on a request is harder to run behind a
//! firewall, and a cron job does it as well. The file is read again when its modification time
//! or size changes, a `stat` per report; a file that no longer reads leaves the last good keys
//! in use, so a half-written file never locks GitHub out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

/// A set of keys by identifier.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not GitHub's key JSON ({{\"public_keys\": [{{\"key_identifier\", \"key\"}}]}}): {0}")]
    Json(String),
    #[error("key {id:?} is not a PEM P-256 public key: {problem}")]
    Key { id: String, problem: String },
    #[error("the file lists no keys")]
    Empty,
}

#[derive(Deserialize)]
struct File {
    public_keys: Vec<FileKey>,
}

#[derive(Deserialize)]
struct FileKey {
    key_identifier: String,
    key: String,
}

impl KeySet {
    /// Parses GitHub's JSON: every listed key is accepted (not only `is_current`), since a
    /// report signed just before a rotation names the previous key.
    pub fn parse(json: &str) -> Result<Self, KeyError> {
        let file: File = serde_json::from_str(json).map_err(|e| KeyError::Json(e.to_string()))?;
        let mut keys = HashMap::with_capacity(file.public_keys.len());
        for k in file.public_keys {
            let key =
                VerifyingKey::from_public_key_pem(k.key.trim()).map_err(|e| KeyError::Key {
                    id: k.key_identifier.chars().take(80).collect(),
                    problem: e.to_string(),
                })?;
            keys.insert(k.key_identifier, key);
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { keys })
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Checks `signature_b64` over `body` with the key `key_id`. On success, the signature in
    /// one canonical form (r‖s, s in the lower half of the group order): both encodings of an
    /// ECDSA signature verify, and a replay must not pass for new by flipping s.
    pub fn verify(
        &self,
        key_id: &str,
        signature_b64: &str,
        body: &[u8],
    ) -> Result<[u8; 64], SignatureError> {
        let key = self.keys.get(key_id).ok_or(SignatureError::UnknownKey)?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature_b64.trim())
            .map_err(|_| SignatureError::Malformed)?;
        let signature = Signature::from_der(&der).map_err(|_| SignatureError::Malformed)?;
        key.verify(body, &signature)
            .map_err(|_| SignatureError::Mismatch)?;
        let canonical = signature.normalize_s().unwrap_or(signature);
        Ok(canonical.to_bytes().into())
    }
}

/// Why a report's signature is refused; the message is what the reporter is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Github-Public-Key-Identifier names no key of this deployment's key file")]
    UnknownKey,
    #[error("Github-Public-Key-Signature is not base64 of a DER ECDSA signature")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// The operator's key file, as last read.
pub struct GithubKeys {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    /// Modification time and size of the file when last read (whether or not it parsed).
    stamp: Option<(SystemTime, u64)>,
    keys: Arc<KeySet>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl GithubKeys {
    /// Reads the file now. The operator's configuration has already read it once at start (and
    /// refused to start without keys), so a failure here is a file that changed since: it is
    /// logged, and reports are refused until the file holds keys again.
    pub fn new(path: PathBuf) -> Self {
        let stamp = stamp(&path);
        let keys = KeySet::load(&path).unwrap_or_else(|e| {
            tracing::error!(error = %e, "GitHub's secret-scanning key file cannot be used");
            KeySet::default()
        });
        Self {
            path,
            loaded: Mutex::new(Loaded {
                stamp,
                keys: Arc::new(keys),
            }),
        }
    }

    /// The keys, read again first if the file changed since.
    pub fn current(&self) -> Arc<KeySet> {
        let now = stamp(&self.path);
        let mut loaded = self.loaded.lock().expect("github keys lock");
        if now != loaded.stamp {
            loaded.stamp = now;
            match KeySet::load(&self.path) {
                Ok(keys) => {
                    tracing::info!(path = %self.path.display(), keys = keys.keys.len(),
                                   "read GitHub's secret-scanning keys again");
                    loaded.keys = Arc::new(keys);
                }
                Err(e) => tracing::warn!(error = %e,
                    "GitHub's secret-scanning key file changed and cannot be used; \
                     keeping the keys read before"),
            }
        }
        loaded.keys.clone()
    }
}
