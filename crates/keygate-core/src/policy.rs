//! A tenant's token policy: how long its tokens may live, whether they must expire, and what
//! keygate does when a rotated-out token comes back (`onReuse`) or a token is reported leaked
//! (`onLeak`). The rules are pure, so every surface that makes or changes a token asks the same
//! [`TenantPolicy::check_lifetime`], and a refusal names the rule it broke.

use std::fmt;

/// Ten years, the longest `maxLifetimeSeconds` (and the longest any token may live anyway).
pub const MAX_POLICY_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value of the field `
            #[doc = $field]
            /// `; a refusal names the field and the values it takes.
            pub fn parse(text: &str) -> Result<Self, PolicyError> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text).ok_or_else(|| {
                    PolicyError::new(
                        $field,
                        format!(
                            "must be one of {}, not {:?}",
                            Self::ALL.iter().map(|v| format!("{:?}", v.as_str()))
                                .collect::<Vec<_>>().join(", "),
                            text.chars().take(40).collect::<String>()
                        ),
                    )
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// What a rotated-out token presented after its grace period sets off, beside the refusal,
    /// the `token.reused` event and the audit entry.
    OnReuse, "onReuse" {
        Notify => "notify",
        /// Also revoke the tokens that replaced it (GitLab's behaviour): whoever holds the
        /// old one may well hold the new one.
        Revoke => "revoke",
    }
}

wire_enum! {
    /// What a report of a leaked token does to it.
    OnLeak, "onLeak" {
        Revoke => "revoke",
        Disable => "disable",
        Notify => "notify",
    }
}

/// A tenant's policy; [`Default`] is what a tenant without one has: no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantPolicy {
    /// The longest a token may live, from its creation to its expiry.
    pub max_lifetime_seconds: Option<u64>,
    /// Every token must have an expiry.
    pub require_expiry: bool,
    pub on_reuse: OnReuse,
    pub on_leak: OnLeak,
}

impl Default for TenantPolicy {
    fn default() -> Self {
        Self {
            max_lifetime_seconds: None,
            require_expiry: false,
            on_reuse: OnReuse::Notify,
            on_leak: OnLeak::Revoke,
        }
    }
}

/// A field of a policy (or a token against one) refused: `field` is the policy's own name for
/// the rule, and the message starts with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub field: &'static str,
    pub message: String,
}

impl PolicyError {
    fn new(field: &'static str, problem: String) -> Self {
        Self {
            field,
            message: format!("{field}: {problem}"),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyError {}

/// `maxLifetimeSeconds` as a client sends it: 1 s to ten years.
pub fn check_max_lifetime(seconds: i64) -> Result<u64, PolicyError> {
    match u64::try_from(seconds) {
        Ok(s @ 1..=MAX_POLICY_LIFETIME_SECONDS) => Ok(s),
        _ => Err(PolicyError::new(
            "maxLifetimeSeconds",
            format!(
                "must be between 1 and {MAX_POLICY_LIFETIME_SECONDS} (ten years), not {seconds}"
            ),
        )),
    }
}

impl TenantPolicy {
    /// Does a token that lives `lifetime_ms` milliseconds from its creation (`None`: never
    /// expires) keep this policy? A lifetime is compared in whole milliseconds, as stored.
    pub fn check_lifetime(&self, lifetime_ms: Option<i64>) -> Result<(), PolicyError> {
        match (lifetime_ms, self.max_lifetime_seconds) {
            (None, Some(max)) => Err(PolicyError::new(
                "maxLifetimeSeconds",
                format!(
                    "the tenant allows tokens to live at most {max} s; this one would never \
                     expire (give it an expiry)"
                ),
            )),
            (None, None) if self.require_expiry => Err(PolicyError::new(
                "requireExpiry",
                "the tenant requires every token to have an expiry; this one has none".into(),
            )),
            (Some(ms), Some(max)) if ms > (max as i64).saturating_mul(1000) => {
                Err(PolicyError::new(
                    "maxLifetimeSeconds",
                    format!(
                        "the tenant allows tokens to live at most {max} s; this one would live \
                         {} s from its creation",
                        ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) > 0)
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(max: Option<u64>, require_expiry: bool) -> TenantPolicy {
        TenantPolicy {
            max_lifetime_seconds: max,
            require_expiry,
            ..TenantPolicy::default()
        }
    }

    #[test]
    fn the_default_allows_every_lifetime() {
        let p = TenantPolicy::default();
        assert_eq!(p.check_lifetime(None), Ok(()));
        assert_eq!(p.check_lifetime(Some(i64::MAX)), Ok(()));
    }

    #[test]
    fn a_maximum_lifetime_bounds_the_lifetime_and_refuses_no_expiry() {
        let p = with(Some(60), false);
        assert_eq!(p.check_lifetime(Some(60_000)), Ok(()));
        let e = p.check_lifetime(Some(60_001)).unwrap_err();
        assert_eq!(e.field, "maxLifetimeSeconds");
        assert!(
            e.message.contains("at most 60 s; this one would live 61 s"),
            "{e}"
        );
        let e = p.check_lifetime(None).unwrap_err();
        assert_eq!(e.field, "maxLifetimeSeconds");
        assert!(e.message.contains("never expire"), "{e}");
    }

    #[test]
    fn required_expiry_refuses_only_a_token_without_one() {
        let p = with(None, true);
        assert_eq!(p.check_lifetime(Some(i64::MAX)), Ok(()));
        let e = p.check_lifetime(None).unwrap_err();
        assert_eq!(e.field, "requireExpiry");
        assert!(e.message.starts_with("requireExpiry: "), "{e}");
    }

    #[test]
    fn maximum_lifetimes_are_bounded_to_ten_years() {
        assert_eq!(check_max_lifetime(1), Ok(1));
        assert_eq!(
            check_max_lifetime(MAX_POLICY_LIFETIME_SECONDS as i64),
            Ok(MAX_POLICY_LIFETIME_SECONDS)
        );
        for bad in [0, -1, MAX_POLICY_LIFETIME_SECONDS as i64 + 1] {
            let e = check_max_lifetime(bad).unwrap_err();
            assert!(e.message.starts_with("maxLifetimeSeconds: "), "{e}");
        }
    }

    #[test]
    fn the_actions_parse_exactly_and_a_refusal_names_the_field_and_the_values() {
        assert_eq!(OnReuse::parse("revoke"), Ok(OnReuse::Revoke));
        assert_eq!(OnLeak::parse("disable"), Ok(OnLeak::Disable));
        let e = OnReuse::parse("Revoke").unwrap_err();
        assert_eq!(
            e.message,
            "onReuse: must be one of \"notify\", \"revoke\", not \"Revoke\""
        );
        assert_eq!(OnLeak::parse("x").unwrap_err().field, "onLeak");
    }
}
