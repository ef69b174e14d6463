//! What a person may do, by role. A logged-in user acts with the scopes of their role, taken
//! from the deployment's catalogue at the time of the request, so a role change takes effect
//! at once. `tenants:admin` belongs to no role: only the bootstrap token holds it.

use std::fmt;
use std::str::FromStr;

use crate::scope::{
    ScopeCatalog, ScopeSet, AUDIT_READ, TENANTS_ADMIN, TOKENS_ADMIN, TOKENS_REPLICATE, USERS_READ,
    USERS_WRITE, WEBHOOKS_READ, WEBHOOKS_WRITE,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages every token and user of the tenant and reads its audit log.
    Admin,
    /// Manages their own tokens, with any of the deployment's API scopes.
    Member,
}

/// Scopes a member does not hold: the ones that reach other people's tokens or accounts. A
/// webhook endpoint hears of every token of the tenant, so the webhooks scopes are among them.
const ADMIN_ONLY: &[&str] = &[
    TOKENS_ADMIN,
    TOKENS_REPLICATE,
    USERS_READ,
    USERS_WRITE,
    AUDIT_READ,
    WEBHOOKS_READ,
    WEBHOOKS_WRITE,
];

impl Role {
    pub const ALL: [Role; 2] = [Role::Admin, Role::Member];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// The scopes this role holds in a deployment with this catalogue.
    pub fn scopes(self, catalog: &ScopeCatalog) -> ScopeSet {
        let names = catalog
            .names()
            .filter(|n| *n != TENANTS_ADMIN && (self == Role::Admin || !ADMIN_ONLY.contains(n)));
        ScopeSet::parse(names).expect("catalogue names are valid scopes")
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role must be \"admin\" or \"member\", not {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(UnknownRole(s.chars().take(50).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> ScopeCatalog {
        let mut c = ScopeCatalog::default();
        c.add("metrics:read", "Read metrics").unwrap();
        c
    }

    #[test]
    fn admin_holds_everything_but_tenant_creation() {
        let s = Role::Admin.scopes(&catalog());
        for wanted in [TOKENS_ADMIN, USERS_WRITE, AUDIT_READ, "metrics:read"] {
            assert!(s.allows(wanted), "{wanted}");
        }
        assert!(!s.allows(TENANTS_ADMIN));
    }

    #[test]
    fn member_holds_api_scopes_and_own_token_management_only() {
        let s = Role::Member.scopes(&catalog());
        assert!(s.allows("metrics:read"));
        assert!(s.allows(crate::scope::TOKENS_WRITE));
        for refused in [
            TOKENS_ADMIN,
            TOKENS_REPLICATE,
            USERS_READ,
            USERS_WRITE,
            AUDIT_READ,
            TENANTS_ADMIN,
        ] {
            assert!(!s.allows(refused), "{refused}");
        }
    }

    #[test]
    fn an_admin_covers_a_member_but_not_the_reverse() {
        let c = catalog();
        assert!(Role::Admin.scopes(&c).covers_all(&Role::Member.scopes(&c)));
        assert!(!Role::Member.scopes(&c).covers_all(&Role::Admin.scopes(&c)));
    }

    #[test]
    fn roles_parse_exactly() {
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert_eq!("member".parse::<Role>(), Ok(Role::Member));
        assert!("Admin".parse::<Role>().is_err());
    }
}
