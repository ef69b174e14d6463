//! The server's settings as plain data: what the operator chose, read once at start and never
//! changed. A leaf of the crate: it imports nothing of the server, so every layer may read it.

use std::time::Duration;

use keygate_core::network::{AllowList, Cidr};
use keygate_core::{ScopeCatalog, TokenPrefix};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub prefix: TokenPrefix,
    pub catalog: ScopeCatalog,
    /// Accept tokens in the `api-token` / `apiToken` / `api_token` query parameters.
    pub allow_query_token: bool,
    pub max_body_bytes: usize,
    /// Take the client address from `X-Forwarded-For` / `X-Real-IP` when the connection comes
    /// from one of `trusted_proxies` (only behind proxies that set them).
    pub trust_forwarded_for: bool,
    /// The proxies whose `X-Forwarded-For` entries are believed: the client is the right-most
    /// address of the chain that is not one of them.
    pub trusted_proxies: AllowList,
    /// The compatible surfaces served.
    pub compat: Compat,
    /// How long a web login lasts.
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` on every response, for a deployment reached only over
    /// TLS. Without it, the cookie is `Secure` when a trusted proxy says the request came over
    /// HTTPS (`X-Forwarded-Proto: https` with `trust_forwarded_for`).
    pub secure_cookies: bool,
    pub login_limits: LoginLimits,
    pub auth_limits: AuthLimits,
    /// The connection workers enforce these; the body reader bounds its wait by the same
    /// `client_timeout`, so both read it from here.
    pub connection_limits: ConnectionLimits,
    /// Most tokens one owner may hold.
    pub max_tokens_per_owner: u32,
    /// How long the replicas' change stream keeps a change: a replica away for longer takes a
    /// new snapshot.
    pub replication_retention: Duration,
    /// How long before a token's expiry `token.expiring` is sent, widest first; empty: only
    /// `token.expired` is.
    pub expiry_warnings: Vec<Duration>,
    /// How often the expiry scan looks for notices that are due.
    pub expiry_scan_interval: Duration,
    pub webhooks: WebhookConfig,
    pub leaks: LeakConfig,
}

/// `--expiry-warnings`' default: a month, a week and a day before.
pub const DEFAULT_EXPIRY_WARNINGS: [Duration; 3] = [
    Duration::from_secs(30 * 86_400),
    Duration::from_secs(7 * 86_400),
    Duration::from_secs(86_400),
];

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            prefix: TokenPrefix::default(),
            catalog: ScopeCatalog::default(),
            allow_query_token: true,
            max_body_bytes: 1 << 20,
            trust_forwarded_for: false,
            trusted_proxies: AllowList::new(&default_trusted_proxies()),
            compat: Compat::default(),
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            login_limits: Default::default(),
            auth_limits: Default::default(),
            connection_limits: Default::default(),
            max_tokens_per_owner: 10_000,
            replication_retention: Duration::from_secs(3600),
            expiry_warnings: DEFAULT_EXPIRY_WARNINGS.to_vec(),
            expiry_scan_interval: Duration::from_secs(60),
            webhooks: WebhookConfig::default(),
            leaks: LeakConfig::default(),
        }
    }
}

/// How webhooks are delivered.
#[derive(Debug, Clone, Copy)]
pub struct WebhookConfig {
    /// How long one attempt may take, connection and answer together.
    pub timeout: Duration,
    /// The wait before the first retry; it doubles with each further one (with jitter).
    pub retry_initial: Duration,
    /// How long a delivery is retried, and how long an endpoint may fail before it is disabled.
    pub retry_for: Duration,
    /// Let endpoints name link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10,
    /// fd00:ec2::254), which are refused by default.
    pub allow_link_local: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(5),
            retry_for: Duration::from_secs(24 * 3600),
            allow_link_local: false,
        }
    }
}

/// Where secret scanners report leaked tokens (`/api/v1/leaks/…`); each intake is served only
/// when configured.
#[derive(Debug, Clone)]
pub struct LeakConfig {
    /// GitHub's secret-scanning public keys (the JSON GitHub publishes), read again when the
    /// file changes; `None`: `POST /api/v1/leaks/github` answers 404.
    pub github_keys: Option<std::path::PathBuf>,
    /// The bearer token GitLab sends to the Token Revocation API; `None`: its routes answer 404.
    pub gitlab_token: Option<secrecy::SecretString>,
    /// Requests per minute one client address may send to the Token Revocation API.
    pub gitlab_rate_limit: u32,
}

impl Default for LeakConfig {
    fn default() -> Self {
        Self {
            github_keys: None,
            gitlab_token: None,
            gitlab_rate_limit: 60,
        }
    }
}

/// Loopback and the private ranges: where a proxy in front of keygate usually is.
pub const DEFAULT_TRUSTED_PROXIES: &str =
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

pub fn default_trusted_proxies() -> Vec<Cidr> {
    DEFAULT_TRUSTED_PROXIES
        .split(',')
        .map(|c| c.parse().expect("the default trusted proxies are networks"))
        .collect()
}

/// Which surfaces are served (`--compat instana,dynatrace,interana,unkey`; all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compat {
    pub instana: bool,
    pub dynatrace: bool,
    pub interana: bool,
    pub unkey: bool,
}

impl Default for Compat {
    fn default() -> Self {
        Self::all()
    }
}

impl Compat {
    pub const NAMES: [&'static str; 4] = ["instana", "dynatrace", "interana", "unkey"];

    pub fn all() -> Self {
        Self {
            instana: true,
            dynatrace: true,
            interana: true,
            unkey: true,
        }
    }

    pub fn none() -> Self {
        Self {
            instana: false,
            dynatrace: false,
            interana: false,
            unkey: false,
        }
    }

    /// `instana,dynatrace` → those two; an empty list → none.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut c = Self::none();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "instana" => c.instana = true,
                "dynatrace" => c.dynatrace = true,
                "interana" => c.interana = true,
                "unkey" => c.unkey = true,
                other => {
                    return Err(format!(
                        "unknown compatible surface {other:?} (known: {})",
                        Self::NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(c)
    }
}

/// How failed logins are slowed down. No limit is kept per account alone: strangers failing at
/// an account from their addresses must never keep its owner, at an address of their own, out.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures of one account from one address before that address waits between attempts.
    pub free_failures: u32,
    /// The wait after the first failure beyond those; it doubles with each further failure.
    pub first_delay: Duration,
    /// Failures from one address, all accounts together, within `window`; beyond them the
    /// address is refused until the window ends.
    pub per_ip: u32,
    /// The window of `per_ip`, and the longest wait.
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            free_failures: 5,
            first_delay: Duration::from_secs(1),
            per_ip: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// How many failed token authentications one client address may make in a window before it is
/// refused (`limits::token_failures`).
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    pub per_ip: u32,
    pub window: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            per_ip: 100,
            window: Duration::from_secs(60),
        }
    }
}

/// What a client may cost a connection: slow clients must not hold connections forever.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The longest wait for a request's head, counted from the first byte awaited: also what an
    /// idle kept-alive connection is given before it is closed. And the longest a write of an
    /// answer may stall on a client that does not read.
    pub client_timeout: Duration,
    /// Largest request head (request line and headers); hyper answers 431 beyond it.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            client_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
        }
    }
}
