//! Expiry notices: which one a token is due (`token.expiring` for a threshold, or
//! `token.expired`), and when to look at it next. Pure arithmetic on Unix milliseconds, so the
//! rules are tested without a database; `sql::expiry` applies them to the due rows.
//!
//! A token's `expiry_notice_stage` remembers the last notice sent, as the threshold's seconds
//! before expiry (0: `token.expired`). Only a notice for a tighter threshold than that one is
//! sent, and only the tightest threshold already crossed: a token created two days before its
//! expiry under `30d,7d,1d` is warned once for 7d, then once for 1d, then told it expired.

use crate::model::{NewEvent, TokenRecord};

/// The stage of `token.expired`.
pub const EXPIRED_STAGE: i64 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The token expires within `threshold_secs`.
    Expiring {
        threshold_secs: u64,
    },
    Expired,
}

/// A notice due now, for the server to turn into its event.
#[derive(Debug, Clone)]
pub struct DueNotice {
    pub token: TokenRecord,
    pub notice: Notice,
}

/// Builds the event of a due notice; it is written in the transaction that records the notice
/// as sent.
pub type BuildNotice<'a> = dyn Fn(&DueNotice) -> NewEvent + Send + Sync + 'a;

/// What one look at a token decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub notice: Option<Notice>,
    /// The stage to store: the notice's, or the one before.
    pub stage: Option<i64>,
    /// When the next notice is due; `None` when none remains.
    pub next_at: Option<i64>,
}

/// The notice due at `now` for a token expiring at `expires_at` whose last notice was `sent`,
/// under the warning thresholds (seconds before expiry, any order, none zero).
pub fn plan(expires_at: i64, now: i64, sent: Option<i64>, thresholds: &[u64]) -> Plan {
    if now >= expires_at {
        let notice = (sent != Some(EXPIRED_STAGE)).then_some(Notice::Expired);
        return Plan {
            notice,
            stage: Some(EXPIRED_STAGE),
            next_at: None,
        };
    }
    let remaining = expires_at - now;
    let ms = |t: u64| i64::try_from(t).unwrap_or(i64::MAX).saturating_mul(1000);
    let tighter_than_sent = |t: u64| sent.is_none_or(|s| ms(t) < s.saturating_mul(1000));
    let crossed = thresholds
        .iter()
        .copied()
        .filter(|&t| ms(t) >= remaining)
        .min();
    let (notice, stage) = match crossed {
        Some(t) if tighter_than_sent(t) => (
            Some(Notice::Expiring { threshold_secs: t }),
            Some(ms(t) / 1000),
        ),
        _ => (None, sent),
    };
    let still_to_come = |t: u64| stage.is_none_or(|s| ms(t) < s.saturating_mul(1000));
    let next = thresholds
        .iter()
        .copied()
        .filter(|&t| still_to_come(t) && ms(t) < remaining)
        .max();
    Plan {
        notice,
        stage,
        next_at: Some(next.map_or(expires_at, |t| expires_at - ms(t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const DAY_MS: i64 = 86_400_000;
    const WARNINGS: [u64; 3] = [30 * DAY, 7 * DAY, DAY];

    fn expiring(days: u64) -> Option<Notice> {
        Some(Notice::Expiring {
            threshold_secs: days * DAY,
        })
    }

    #[test]
    fn a_token_created_two_days_before_expiry_is_warned_for_7d_then_1d_then_expired() {
        let exp = 100 * DAY_MS;
        let first = plan(exp, exp - 2 * DAY_MS, None, &WARNINGS);
        assert_eq!(first.notice, expiring(7));
        assert_eq!(first.next_at, Some(exp - DAY_MS));
        let again = plan(exp, exp - 2 * DAY_MS + 5, first.stage, &WARNINGS);
        assert_eq!(again.notice, None, "a notice is sent once");
        assert_eq!(again.next_at, Some(exp - DAY_MS));
        let second = plan(exp, exp - DAY_MS, first.stage, &WARNINGS);
        assert_eq!(second.notice, expiring(1));
        assert_eq!(second.next_at, Some(exp));
        let expired = plan(exp, exp, second.stage, &WARNINGS);
        assert_eq!(expired.notice, Some(Notice::Expired));
        assert_eq!(expired.next_at, None);
        let after = plan(exp, exp + DAY_MS, expired.stage, &WARNINGS);
        assert_eq!(after.notice, None, "token.expired is sent once");
    }

    #[test]
    fn a_far_expiry_waits_for_its_widest_threshold() {
        let exp = 100 * DAY_MS;
        let p = plan(exp, 0, None, &WARNINGS);
        assert_eq!(p.notice, None);
        assert_eq!(p.stage, None);
        assert_eq!(p.next_at, Some(exp - 30 * DAY_MS));
    }

    #[test]
    fn without_thresholds_only_the_expiry_is_told() {
        let p = plan(DAY_MS, 0, None, &[]);
        assert_eq!((p.notice, p.next_at), (None, Some(DAY_MS)));
        assert_eq!(
            plan(DAY_MS, DAY_MS, None, &[]).notice,
            Some(Notice::Expired)
        );
    }

    #[test]
    fn a_token_past_its_expiry_at_the_first_look_is_only_told_it_expired() {
        let p = plan(DAY_MS, 3 * DAY_MS, None, &WARNINGS);
        assert_eq!(p.notice, Some(Notice::Expired));
        assert_eq!(p.stage, Some(EXPIRED_STAGE));
    }
}
