//! Scopes: strings such as `tokens:read` or `metrics:read`; a granted `metrics:*`
//! covers every `metrics:` scope and `*` covers every scope. `tokens:admin` implies
//! `tokens:write` and `tokens:read`, `tokens:write` implies `tokens:read`, and `users:write`
//! implies `users:read` (`webhooks:write` likewise `webhooks:read`), so an admin token can do what a narrower one can. Dynatrace's own
//! names for token management, `apiTokens.read` and `apiTokens.write`, are honoured as
//! `tokens:read` and `tokens:write`, so a token made with Dynatrace names manages tokens
//! everywhere.

use std::collections::BTreeMap;
use std::fmt;

pub const TOKENS_READ: &str = "tokens:read";
pub const TOKENS_WRITE: &str = "tokens:write";
pub const TOKENS_ADMIN: &str = "tokens:admin";
/// Read every verifiable token of the tenant (hashes, scopes, status) for a replica. Implied by
/// no other scope: a replica's holder learns what every token may do.
pub const TOKENS_REPLICATE: &str = "tokens:replicate";
pub const USERS_READ: &str = "users:read";
pub const USERS_WRITE: &str = "users:write";
pub const AUDIT_READ: &str = "audit:read";
pub const WEBHOOKS_READ: &str = "webhooks:read";
pub const WEBHOOKS_WRITE: &str = "webhooks:write";
pub const TENANTS_ADMIN: &str = "tenants:admin";
pub const DYNATRACE_TOKENS_READ: &str = "apiTokens.read";
pub const DYNATRACE_TOKENS_WRITE: &str = "apiTokens.write";

pub const BUILT_IN: &[(&str, &str)] = &[
    (TOKENS_READ, "Read your own tokens"),
    (TOKENS_WRITE, "Create, change and revoke your own tokens"),
    (TOKENS_ADMIN, "Read and manage every token of the tenant"),
    (
        TOKENS_REPLICATE,
        "Replicate the tenant's tokens (hashes, scopes, status) into an API that verifies them itself",
    ),
    (USERS_READ, "Read the users of the tenant"),
    (USERS_WRITE, "Create, change and delete users of the tenant"),
    (AUDIT_READ, "Read the audit log of the tenant"),
    (
        WEBHOOKS_READ,
        "Read the tenant's webhook endpoints and their delivery logs",
    ),
    (
        WEBHOOKS_WRITE,
        "Add, change, delete and redeliver the tenant's webhook endpoints",
    ),
    (
        TENANTS_ADMIN,
        "Create tenants (held by the bootstrap token only)",
    ),
];

pub const MAX_SCOPE_LEN: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope {0:?} is not a valid scope name (letters, digits, '_', '.', '-', ':'; up to 100 characters; '*' only as the last part)")]
    Invalid(String),
    #[error("unknown scope {0:?}")]
    Unknown(String),
}

/// A syntactically valid scope name, possibly a wildcard (`*` or `ns:*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

impl Scope {
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let invalid = || ScopeError::Invalid(truncate_for_message(s));
        if s == "*" {
            return Ok(Self(s.to_owned()));
        }
        if s.is_empty() || s.len() > MAX_SCOPE_LEN {
            return Err(invalid());
        }
        let body = s.strip_suffix(":*").unwrap_or(s);
        let ok = !body.is_empty()
            && body.as_bytes()[0].is_ascii_alphanumeric()
            && body
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b':'))
            && !body.ends_with(':')
            && !body.contains("::");
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_wildcard(&self) -> bool {
        self.0 == "*" || self.0.ends_with(":*")
    }

    /// Does holding `self` allow what `wanted` allows? Covers wildcards and the built-in
    /// implications; `wanted` may itself be a wildcard (needed for the no-escalation check).
    pub fn covers(&self, wanted: &str) -> bool {
        let g = self.0.as_str();
        if g == "*" || g == wanted {
            return true;
        }
        if let Some(ns) = g.strip_suffix('*') {
            // `metrics:*` covers `metrics:read` and `metrics:x:*`, not `metricsx:read`. A
            // Dynatrace name is covered as the native scope it stands for: `tokens:*` covers
            // `tokens:write`, which covers `apiTokens.write`, so without the alias covering
            // would not be transitive and a `tokens:*` token could not grant `apiTokens.write`.
            let in_namespace = |w: &str| w.len() > ns.len() && w.starts_with(ns);
            return in_namespace(wanted) || native_alias(wanted).is_some_and(in_namespace);
        }
        matches!(
            (g, wanted),
            (TOKENS_ADMIN, TOKENS_WRITE | TOKENS_READ)
                | (TOKENS_WRITE, TOKENS_READ)
                | (USERS_WRITE, USERS_READ)
                | (WEBHOOKS_WRITE, WEBHOOKS_READ)
                | (
                    DYNATRACE_TOKENS_WRITE,
                    TOKENS_WRITE | TOKENS_READ | DYNATRACE_TOKENS_READ
                )
                | (DYNATRACE_TOKENS_READ, TOKENS_READ)
                | (
                    TOKENS_ADMIN | TOKENS_WRITE,
                    DYNATRACE_TOKENS_WRITE | DYNATRACE_TOKENS_READ
                )
                | (TOKENS_READ, DYNATRACE_TOKENS_READ)
        )
    }
}

/// The native scope a Dynatrace token-management name stands for.
fn native_alias(name: &str) -> Option<&'static str> {
    match name {
        DYNATRACE_TOKENS_READ => Some(TOKENS_READ),
        DYNATRACE_TOKENS_WRITE => Some(TOKENS_WRITE),
        _ => None,
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A scope name as an error message may quote it: bounded, and without the secret of a token
/// that a client sent where a scope belongs (the message goes back in a 422 that proxies log).
fn truncate_for_message(s: &str) -> String {
    let bounded: String = s.chars().take(MAX_SCOPE_LEN + 1).collect();
    crate::credentials::redact_token_shapes(&bounded)
}

/// Written as a JSON array of names.
impl serde::Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Scope::as_str))
    }
}

/// The scopes a token holds: sorted, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    pub fn new(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        Self(scopes)
    }

    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, ScopeError> {
        names
            .into_iter()
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn allows(&self, wanted: &str) -> bool {
        self.0.iter().any(|g| g.covers(wanted))
    }

    /// The wanted scopes this set does not cover, in the order given.
    pub fn missing<'a>(&self, wanted: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        wanted
            .into_iter()
            .filter(|w| !self.allows(w))
            .map(str::to_owned)
            .collect()
    }

    /// A verification's scope check: `None` when this set holds every scope of `wanted` and
    /// meets `query`; else the scopes a refusal names as missing, which are empty when the query
    /// cannot be met scope by scope (it has an `OR`). The server's verifier and a client's
    /// replica both answer with this.
    pub fn unmet(
        &self,
        wanted: &[&str],
        query: Option<&crate::permission::Query>,
    ) -> Option<Vec<String>> {
        let missing = self.missing(wanted.iter().copied());
        if !missing.is_empty() {
            return Some(missing);
        }
        let q = query?;
        (!q.is_met_by(&|name| self.allows(name))).then(|| {
            q.conjunction()
                .map(|names| self.missing(names))
                .unwrap_or_default()
        })
    }

    /// No escalation: every scope of `other` is covered by this set.
    pub fn covers_all(&self, other: &ScopeSet) -> bool {
        other.iter().all(|s| self.allows(s.as_str()))
    }
}

/// The group of the built-in scopes.
pub const GROUP_KEYGATE: &str = "keygate";
/// The group of the scopes a deployment adds with `--scope`.
pub const GROUP_DEPLOYMENT: &str = "deployment";

/// One scope of the catalogue. `group` says where it comes from (`keygate`, `deployment`, or
/// a compatible surface such as `instana`), so a page can show the long vendor lists apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub description: String,
    pub group: &'static str,
}

/// The scopes a deployment knows: the built-in ones plus `--scope NAME=DESCRIPTION`.
/// Requests naming other scopes are refused, so a typo never becomes a useless token.
#[derive(Debug, Clone)]
pub struct ScopeCatalog {
    scopes: BTreeMap<String, CatalogEntry>,
}

impl Default for ScopeCatalog {
    fn default() -> Self {
        let mut c = Self {
            scopes: BTreeMap::new(),
        };
        for (name, description) in BUILT_IN {
            c.add_to_group(GROUP_KEYGATE, name, description)
                .expect("built-in scope names are valid");
        }
        c
    }
}

impl ScopeCatalog {
    /// Adds a deployment scope. Wildcards are not catalogue entries: they are derived.
    pub fn add(&mut self, name: &str, description: &str) -> Result<(), ScopeError> {
        self.add_to_group(GROUP_DEPLOYMENT, name, description)
    }

    pub fn add_to_group(
        &mut self,
        group: &'static str,
        name: &str,
        description: &str,
    ) -> Result<(), ScopeError> {
        let scope = Scope::parse(name)?;
        if scope.is_wildcard() {
            return Err(ScopeError::Invalid(name.to_owned()));
        }
        let entry = CatalogEntry {
            description: description.to_owned(),
            group,
        };
        self.scopes.insert(name.to_owned(), entry);
        Ok(())
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &CatalogEntry)> {
        self.scopes.iter().map(|(n, e)| (n.as_str(), e))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.scopes.keys().map(String::as_str)
    }

    /// Is `scope` grantable here: a known name, `*`, or a wildcard covering at least one
    /// known name?
    pub fn knows(&self, scope: &Scope) -> bool {
        if !scope.is_wildcard() {
            return self.scopes.contains_key(scope.as_str());
        }
        self.scopes.keys().any(|k| scope.covers(k))
    }

    /// The scopes of `token` that `holder` does not cover by what they can grant here: a
    /// wildcard counts as the catalogue's scopes it covers, so holding every `metrics:` scope
    /// of the catalogue covers `metrics:*`. This is the measure for taking power away
    /// (disabling, revoking): it is never stricter than [`ScopeSet::covers_all`], which giving
    /// power needs because a wildcard also allows scopes the catalogue does not list yet.
    pub fn missing_grants(&self, holder: &ScopeSet, token: &ScopeSet) -> Vec<String> {
        token
            .iter()
            .filter(|s| {
                !holder.allows(s.as_str())
                    && (!s.is_wildcard() || self.names().any(|n| s.covers(n) && !holder.allows(n)))
            })
            .map(|s| s.as_str().to_owned())
            .collect()
    }

    /// Parses requested scope names and refuses unknown ones.
    pub fn validate<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<ScopeSet, ScopeError> {
        let set = ScopeSet::parse(names)?;
        if let Some(unknown) = set.iter().find(|s| !self.knows(s)) {
            return Err(ScopeError::Unknown(truncate_for_message(unknown.as_str())));
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(names: &[&str]) -> ScopeSet {
        ScopeSet::parse(names.iter().copied()).unwrap()
    }

    #[test]
    fn wildcards_cover_their_namespace_only() {
        let s = set(&["metrics:*"]);
        assert!(s.allows("metrics:read"));
        assert!(s.allows("metrics:write:all"));
        assert!(!s.allows("metricsx:read"));
        assert!(!s.allows("metrics"));
        assert!(set(&["*"]).allows("anything:at:all"));
    }

    #[test]
    fn a_wildcard_is_covered_for_taking_away_by_every_scope_it_grants() {
        let mut c = ScopeCatalog::default();
        c.add("metrics:read", "r").unwrap();
        c.add("metrics:write", "w").unwrap();
        let token = set(&["metrics:*", "tokens:read"]);
        let both = set(&["metrics:read", "metrics:write", "tokens:write"]);
        assert!(c.missing_grants(&both, &token).is_empty());
        assert!(!both.covers_all(&token), "giving power stays strict");
        let one = set(&["metrics:read", "tokens:write"]);
        assert_eq!(c.missing_grants(&one, &token), vec!["metrics:*"]);
        let everything = set(&c.names().collect::<Vec<_>>());
        assert!(c.missing_grants(&everything, &set(&["*"])).is_empty());
        let no_tenants = ScopeSet::parse(c.names().filter(|n| *n != TENANTS_ADMIN)).unwrap();
        assert_eq!(c.missing_grants(&no_tenants, &set(&["*"])), vec!["*"]);
    }

    #[test]
    fn admin_implies_write_and_read() {
        let s = set(&["tokens:admin"]);
        assert!(s.allows("tokens:write"));
        assert!(s.allows("tokens:read"));
        assert!(!set(&["tokens:read"]).allows("tokens:write"));
        assert_eq!(
            set(&["tokens:read"]).missing(["tokens:read", "audit:read"]),
            vec!["audit:read"]
        );
    }

    #[test]
    fn dynatrace_token_scopes_are_the_native_ones() {
        assert!(set(&["apiTokens.write"]).allows("tokens:write"));
        assert!(set(&["apiTokens.write"]).allows("tokens:read"));
        assert!(set(&["apiTokens.read"]).allows("tokens:read"));
        assert!(!set(&["apiTokens.read"]).allows("tokens:write"));
        assert!(set(&["tokens:write"]).allows("apiTokens.write"));
        assert!(!set(&["apiTokens.write"]).allows("tokens:admin"));
    }

    #[test]
    fn names_are_validated() {
        for ok in [
            "tokens:read",
            "metrics:*",
            "*",
            "apiTokens.read",
            "DataExport",
            "a-b_c",
        ] {
            assert!(Scope::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ":x",
            "x:",
            "a::b",
            "a b",
            "*:x",
            "x*",
            "é",
            &"a".repeat(101),
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn catalog_refuses_unknown_scopes() {
        let mut c = ScopeCatalog::default();
        c.add("metrics:read", "Read metrics").unwrap();
        assert!(c.validate(["metrics:read", "tokens:read"]).is_ok());
        assert!(c.validate(["metrics:*"]).is_ok());
        assert!(c.validate(["*"]).is_ok());
        assert_eq!(
            c.validate(["metrics:raed"]),
            Err(ScopeError::Unknown("metrics:raed".into()))
        );
        assert!(c.validate(["logs:*"]).is_err());
        assert!(c.add("metrics:*", "x").is_err());
    }

    fn scope_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            "[a-c]",
            "[a-c]:[a-c]",
            "[a-c]:\\*",
            "[a-c]:[a-c]:\\*",
        ]
    }

    #[test]
    fn a_namespace_wildcard_covers_the_dynatrace_names_of_its_scopes() {
        let s = set(&["tokens:*"]);
        assert!(s.allows("tokens:read"));
        assert!(s.allows("apiTokens.write"));
        assert!(s.allows("apiTokens.read"));
        assert!(!s.allows("users:read"));
        assert!(!set(&["users:*"]).allows("apiTokens.read"));
        assert!(s.covers_all(&set(&["apiTokens.write", "tokens:admin"])));
    }

    /// Names that covering treats apart: the built-ins with their implications, the Dynatrace
    /// aliases, deployment scopes (also inside a built-in namespace), namespace wildcards at
    /// two depths and `*`.
    const SPECIAL_NAMES: &[&str] = &[
        "*",
        TOKENS_READ,
        TOKENS_WRITE,
        TOKENS_ADMIN,
        "tokens:*",
        "tokens:x",
        "tokens:x:*",
        USERS_READ,
        USERS_WRITE,
        "users:*",
        WEBHOOKS_READ,
        WEBHOOKS_WRITE,
        AUDIT_READ,
        TENANTS_ADMIN,
        DYNATRACE_TOKENS_READ,
        DYNATRACE_TOKENS_WRITE,
        "metrics:read",
        "metrics:*",
    ];

    #[test]
    fn covers_is_transitive_over_every_special_name() {
        // All triples: a random draw finds a three-name chain such as `tokens:*` ⇒
        // `tokens:write` ⇒ `apiTokens.write` only rarely.
        for a in SPECIAL_NAMES {
            let sa = Scope::parse(a).unwrap();
            for b in SPECIAL_NAMES {
                let sb = Scope::parse(b).unwrap();
                for c in SPECIAL_NAMES {
                    if sa.covers(b) && sb.covers(c) {
                        assert!(sa.covers(c), "{a} covers {b} covers {c}, but not {c}");
                    }
                }
            }
        }
    }

    /// A special name (weighted, so chains of them are drawn often) or a generated one.
    fn any_scope_name() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(SPECIAL_NAMES).prop_map(str::to_owned),
            1 => "(tokens|users|metrics|[a-c])(:[a-c]){1,2}",
            1 => "(tokens|users|metrics|[a-c])(:[a-c])?:\\*",
        ]
    }

    fn any_scope_set() -> impl Strategy<Value = ScopeSet> {
        proptest::collection::vec(any_scope_name(), 0..5)
            .prop_map(|names| ScopeSet::parse(names.iter().map(String::as_str)).unwrap())
    }

    proptest! {
        #[test]
        fn covers_is_reflexive_and_star_covers_all(a in scope_name()) {
            let s = Scope::parse(&a).unwrap();
            prop_assert!(s.covers(&a));
            prop_assert!(Scope::parse("*").unwrap().covers(&a));
        }

        #[test]
        fn covers_is_transitive(a in scope_name(), b in scope_name(), c in scope_name()) {
            let (sa, sb) = (Scope::parse(&a).unwrap(), Scope::parse(&b).unwrap());
            if sa.covers(&b) && sb.covers(&c) {
                prop_assert!(sa.covers(&c), "{a} covers {b} covers {c}");
            }
        }

        #[test]
        fn subset_is_covered(names in proptest::collection::vec(scope_name(), 0..6), k in 0usize..6) {
            let all = ScopeSet::parse(names.iter().map(String::as_str)).unwrap();
            let sub = ScopeSet::parse(names.iter().take(k).map(String::as_str)).unwrap();
            prop_assert!(all.covers_all(&sub));
        }

        #[test]
        fn covers_is_transitive_over_every_kind_of_name(a in any_scope_name(), b in any_scope_name(), c in any_scope_name()) {
            let (sa, sb) = (Scope::parse(&a).unwrap(), Scope::parse(&b).unwrap());
            if sa.covers(&b) && sb.covers(&c) {
                prop_assert!(sa.covers(&c), "{a} covers {b} covers {c}");
            }
        }

        #[test]
        fn star_covers_every_valid_name(a in any_scope_name()) {
            prop_assert!(set(&["*"]).allows(&a));
        }

        #[test]
        fn a_namespace_wildcard_covers_its_namespace_only(ns in "[a-z]{1,8}", other in "[a-z]{1,8}", leaf in "[a-z]{1,8}") {
            let wildcard = set(&[&format!("{ns}:*")]);
            let (inside, nested) = (format!("{ns}:{leaf}"), format!("{ns}:{leaf}:*"));
            prop_assert!(wildcard.allows(&inside));
            prop_assert!(wildcard.allows(&nested));
            prop_assert!(!wildcard.allows(&ns), "the namespace itself is not one of its scopes");
            prop_assume!(other != ns);
            let (elsewhere, longer) = (format!("{other}:{leaf}"), format!("{ns}{other}:{leaf}"));
            prop_assert!(!wildcard.allows(&elsewhere));
            prop_assert!(!wildcard.allows(&longer));
        }

        #[test]
        fn a_subset_of_any_set_is_covered(names in proptest::collection::vec(any_scope_name(), 0..6), keep in proptest::collection::vec(any::<bool>(), 6)) {
            let all = ScopeSet::parse(names.iter().map(String::as_str)).unwrap();
            let sub = ScopeSet::parse(names.iter().zip(&keep).filter(|(_, k)| **k).map(|(n, _)| n.as_str())).unwrap();
            prop_assert!(all.covers_all(&sub));
        }

        #[test]
        fn covers_all_is_transitive(a in any_scope_set(), b in any_scope_set(), c in any_scope_set()) {
            if a.covers_all(&b) && b.covers_all(&c) {
                prop_assert!(a.covers_all(&c), "{a:?} covers {b:?} covers {c:?}");
            }
        }

        #[test]
        fn missing_is_exactly_the_uncovered_wanted_scopes(held in any_scope_set(), wanted in proptest::collection::vec(any_scope_name(), 0..6)) {
            let missing = held.missing(wanted.iter().map(String::as_str));
            let uncovered: Vec<&String> = wanted.iter().filter(|w| !held.iter().any(|g| g.covers(w))).collect();
            prop_assert_eq!(missing.iter().collect::<Vec<_>>(), uncovered, "in the order asked, duplicates kept");
            let wanted_set = ScopeSet::parse(wanted.iter().map(String::as_str)).unwrap();
            prop_assert_eq!(missing.is_empty(), held.covers_all(&wanted_set));
        }
    }
}
