//! Who is calling: a verified token or a logged-in person, with what it may see and how it is
//! named in the audit log.

use std::sync::Arc;

use keygate_core::{ScopeSet, TokenId};
use keygate_store::cache::CachedToken;

use crate::auth::session::SessionUser;

/// Who is calling: a verified, active token, or a person logged in to the web page.
pub enum Principal {
    Token(Arc<CachedToken>),
    Session(Arc<SessionUser>),
}

pub struct Caller {
    pub principal: Principal,
    pub ip: Option<String>,
}

impl Caller {
    /// What the caller may do: a token's scopes, or the scopes of a logged-in user's role.
    pub fn scopes(&self) -> &ScopeSet {
        match &self.principal {
            Principal::Token(t) => &t.scopes,
            Principal::Session(s) => &s.scopes,
        }
    }

    /// May this caller act on every token of its tenant?
    pub fn is_admin(&self) -> bool {
        self.scopes().allows(keygate_core::scope::TOKENS_ADMIN)
    }

    pub fn tenant_id(&self) -> &str {
        match &self.principal {
            Principal::Token(t) => &t.tenant_id,
            Principal::Session(s) => &s.user.tenant_id,
        }
    }

    /// Whose tokens are the caller's own: the token's owner, or the logged-in user.
    pub fn owner_id(&self) -> &str {
        match &self.principal {
            Principal::Token(t) => &t.owner_id,
            Principal::Session(s) => &s.user.id,
        }
    }

    /// The calling token, when the caller is one.
    pub fn token(&self) -> Option<&CachedToken> {
        match &self.principal {
            Principal::Token(t) => Some(t),
            Principal::Session(_) => None,
        }
    }

    pub fn is_token(&self, id: &TokenId) -> bool {
        self.token().is_some_and(|t| t.id == *id)
    }

    /// Visibility: the tokens of the caller's own owner, or with `tokens:admin` every token of
    /// its tenant; nothing of another tenant.
    pub fn may_see(&self, t: &keygate_store::TokenRecord) -> bool {
        t.tenant_id == self.tenant_id() && (self.is_admin() || t.owner_id == self.owner_id())
    }

    /// How this caller is named in audit entries: the token id, or the user id.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::Token(t) => t.id.to_string(),
            Principal::Session(s) => s.user.id.clone(),
        }
    }
}
