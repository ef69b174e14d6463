//! The names of the audit log's actions. Writers name an action only through [`AuditAction`],
//! and the published API description lists [`AuditAction::ALL`], so the two cannot drift apart.

/// Declares the enum, its wire names and the list of all of them from one table, so a new
/// action cannot be written without also being listed.
macro_rules! audit_actions {
    ($($variant:ident => $name:literal,)+) => {
        /// One kind of change recorded in the audit log.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($variant,)+
        }

        impl AuditAction {
            /// Every action keygate writes, in the order of the table.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)+];

            /// The name stored in the log and shown by the API, e.g. `token.create`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name,)+
                }
            }
        }
    };
}

audit_actions! {
    TokenCreate => "token.create",
    TokenUpdate => "token.update",
    TokenDelete => "token.delete",
    TokenDisable => "token.disable",
    TokenEnable => "token.enable",
    TokenRotate => "token.rotate",
    TokenRevokeSelf => "token.revoke_self",
    TokenCredits => "token.credits",
    TokenIpRefused => "token.ip_refused",
    TokenReused => "token.reused",
    TokenLeaked => "token.leaked",
    UserCreate => "user.create",
    UserUpdate => "user.update",
    UserDelete => "user.delete",
    TenantCreate => "tenant.create",
    TenantPolicyUpdate => "tenant.policy_update",
    SessionLogin => "session.login",
    SessionLoginFailed => "session.login_failed",
    SessionLogout => "session.logout",
    SystemBootstrap => "system.bootstrap",
    WebhookCreate => "webhook.create",
    WebhookUpdate => "webhook.update",
    WebhookDelete => "webhook.delete",
    WebhookRedeliver => "webhook.redeliver",
    WebhookDisabled => "webhook.disabled",
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<AuditAction> for String {
    fn from(a: AuditAction) -> Self {
        a.as_str().to_owned()
    }
}
