//! How a replica follows keygate and what it does when it cannot.

use std::time::Duration;

/// What a replica answers when it has not heard from keygate for longer than
/// [`Options::max_staleness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStale {
    /// Answer [`Code::Unavailable`](crate::Code::Unavailable): a revoked token is never accepted
    /// from an outdated replica, at the price of refusing every token while keygate is away.
    #[default]
    FailClosed,
    /// Ask keygate's `POST /api/v1/verify` instead; if that fails too, `Unavailable`.
    AskKeygate,
}

/// A replica's settings. `Options::default()` suits most deployments; change fields with
/// struct update syntax or the `with_*` methods.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the replica answers after its last contact with keygate (default 30 s).
    pub max_staleness: Duration,
    /// What it answers after that (default: fail closed).
    pub on_stale: OnStale,
    /// How long keygate holds a request for changes when there are none (default 10 s, at most
    /// 30 s and below `max_staleness`, so that a quiet stream still counts as contact). Sent in
    /// whole seconds, rounded down: below one second, keygate answers at once and the follower
    /// polls without pause.
    pub wait: Duration,
    /// Tokens per snapshot page (default 5000, at most 10000).
    pub page_size: u32,
    /// Changes per answer of the change stream (default 1000, at most 10000).
    pub changes_limit: u32,
    /// How long a request to keygate may take, on top of `wait` for the long-poll
    /// (default 10 s).
    pub http_timeout: Duration,
    /// The first wait before reconnecting after an error (default 100 ms); it doubles with each
    /// failure, with random jitter, up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest wait between reconnection attempts (default 5 s).
    pub max_backoff: Duration,
    /// A client of your own (proxies, root certificates); by default the crate builds one.
    /// Its own timeout, if set, must exceed `wait`.
    pub client: Option<reqwest::Client>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_staleness: Duration::from_secs(30),
            on_stale: OnStale::FailClosed,
            wait: Duration::from_secs(10),
            page_size: 5000,
            changes_limit: 1000,
            http_timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            client: None,
        }
    }
}

impl Options {
    /// Sets [`Options::max_staleness`].
    pub fn with_max_staleness(mut self, d: Duration) -> Self {
        self.max_staleness = d;
        self
    }

    /// Sets [`Options::on_stale`].
    pub fn with_on_stale(mut self, on_stale: OnStale) -> Self {
        self.on_stale = on_stale;
        self
    }

    /// Sets [`Options::wait`].
    pub fn with_wait(mut self, d: Duration) -> Self {
        self.wait = d;
        self
    }

    /// Sets [`Options::client`].
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The first inconsistency found, in words.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        if self.wait > Duration::from_secs(30) {
            return Err("wait must be at most 30 seconds (keygate's limit)");
        }
        if self.wait >= self.max_staleness {
            return Err("wait must be shorter than max_staleness, or a quiet stream makes the replica stale");
        }
        if !(1..=10_000).contains(&self.page_size) || !(1..=10_000).contains(&self.changes_limit) {
            return Err("page_size and changes_limit must be within 1..=10000");
        }
        if self.min_backoff.is_zero() || self.min_backoff > self.max_backoff {
            return Err("min_backoff must be above zero and at most max_backoff");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_consistent_and_a_long_wait_is_not() {
        assert_eq!(Options::default().check(), Ok(()));
        let too_long = Options::default()
            .with_max_staleness(Duration::from_secs(5))
            .with_wait(Duration::from_secs(5));
        assert!(too_long.check().is_err());
        let zero_backoff = Options {
            min_backoff: Duration::ZERO,
            ..Options::default()
        };
        assert!(zero_backoff.check().is_err());
    }
}
