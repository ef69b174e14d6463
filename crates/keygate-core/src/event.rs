//! The names of the events keygate tells webhook endpoints about. Emitters name an event only
//! through [`EventType`], and a subscription is checked against [`EventType::ALL`], so the
//! names a user may subscribe to and the names keygate sends cannot drift apart.

macro_rules! event_types {
    ($($variant:ident => $name:literal,)+) => {
        /// One kind of event a webhook endpoint can subscribe to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($variant,)+
        }

        impl EventType {
            /// Every event keygate sends, in the order of the table.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            /// The name on the wire, e.g. `token.created`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }
        }
    };
}

event_types! {
    TokenCreated => "token.created",
    TokenUpdated => "token.updated",
    TokenRotated => "token.rotated",
    TokenRevoked => "token.revoked",
    TokenDisabled => "token.disabled",
    TokenEnabled => "token.enabled",
    TokenExpiring => "token.expiring",
    TokenExpired => "token.expired",
    TokenLeaked => "token.leaked",
    TokenReused => "token.reused",
    TokenUsageExceeded => "token.usage_exceeded",
}

/// What a subscription lists to receive every event.
pub const ALL_EVENTS: &str = "*";

impl EventType {
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|e| e.as_str() == name)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_unknown_ones_do_not() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(*e));
        }
        assert_eq!(EventType::parse("token.create"), None);
        assert_eq!(EventType::parse(ALL_EVENTS), None);
    }
}
