//! The first start: tenant `default`, user `admin`, and one bootstrap token
//! holding `*`. Secrets given by the operator are used as they are and never printed; secrets
//! generated here are returned once, for the caller to print.

use anyhow::{bail, Context};
use keygate_core::token::{self, ParsedToken};
use keygate_core::{PlainToken, ScopeSet, TokenId, TokenPrefix};
use keygate_store::{Bootstrap, Store, TokenRecord, UserRecord, DEFAULT_TENANT};
use secrecy::{ExposeSecret, SecretString};

pub use crate::service::passwords::MIN_PASSWORD_CHARS;

/// What the operator supplied (from `KEYGATE_BOOTSTRAP_TOKEN` / `KEYGATE_ADMIN_PASSWORD`).
#[derive(Debug, Default)]
pub struct Given {
    pub token: Option<PlainToken>,
    pub admin_password: Option<SecretString>,
}

/// Secrets generated on this start, to be shown once. Empty fields were given by the operator.
pub struct Generated {
    pub admin_password: Option<String>,
    pub token: Option<PlainToken>,
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    crate::service::passwords::hash_password_blocking(password).map_err(|e| anyhow::anyhow!(e))
}

/// Validates what the operator gave before anything is written, so a bad value fails the
/// start rather than leaving a half-made deployment.
fn prepare(
    prefix: &TokenPrefix,
    given: &Given,
) -> anyhow::Result<(TokenId, PlainToken, bool, String, bool)> {
    let (id, plain, token_generated) = match &given.token {
        Some(t) => {
            let id = match token::parse(t.expose(), prefix) {
                Ok(ParsedToken::Native { id }) => TokenId::from_stored(id.to_owned()),
                Ok(ParsedToken::Foreign) => TokenId::generate(prefix),
                Err(e) => bail!(
                    "KEYGATE_BOOTSTRAP_TOKEN is not usable ({e}); use `keygate gen-token` to make \
                     one, or any 16-256 visible ASCII characters that do not start with `{}_`",
                    prefix.as_str()
                ),
            };
            (id, t.clone(), false)
        }
        None => {
            let (id, plain) = PlainToken::mint(prefix);
            (id, plain, true)
        }
    };
    let (password, password_generated) = match &given.admin_password {
        Some(p) if p.expose_secret().chars().count() < MIN_PASSWORD_CHARS => {
            bail!("KEYGATE_ADMIN_PASSWORD must be at least {MIN_PASSWORD_CHARS} characters")
        }
        Some(p) => (p.expose_secret().to_owned(), false),
        None => (crate::service::passwords::generate_password(), true),
    };
    Ok((id, plain, token_generated, password, password_generated))
}

/// Creates the first tenant, admin and token if the database has none. Returns `None` when
/// the database was already initialised (by an earlier start or another node).
pub async fn run(
    store: &dyn Store,
    prefix: &TokenPrefix,
    given: Given,
) -> anyhow::Result<Option<Generated>> {
    let (id, plain, token_generated, password, password_generated) = prepare(prefix, &given)?;
    let now = keygate_store::now();
    let user_id = crate::service::users::new_user_id();
    let admin = UserRecord {
        id: user_id.clone(),
        tenant_id: DEFAULT_TENANT.into(),
        username: "admin".into(),
        password_hash: hash_password(&password)?.into(),
        role: "admin".into(),
        created_at: now,
    };
    let token = TokenRecord {
        description: Some("Created at first start; holds every scope".into()),
        created_by: Some("system".into()),
        ..TokenRecord::minted(
            id,
            DEFAULT_TENANT.into(),
            plain.hash(),
            "bootstrap".into(),
            user_id,
            ScopeSet::parse(["*"]).expect("* is a scope"),
            now,
        )
    };
    let created = store
        .bootstrap(&Bootstrap {
            tenant_id: DEFAULT_TENANT.into(),
            admin,
            token,
        })
        .await
        .context("writing the first tenant, admin and token")?;
    Ok(created.then(|| Generated {
        admin_password: password_generated.then_some(password),
        token: token_generated.then_some(plain),
    }))
}
