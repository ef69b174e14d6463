//! `keygate serve`'s configuration as one typed struct. Every setting is a flag, an
//! environment variable `KEYGATE_<NAME>` and a key of an optional `keygate.toml`; a flag or
//! variable wins over the file, the file over the default. Secrets are never flags (a flag is
//! visible in `ps`): they come from the environment or from a `*_FILE` path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use keygate_core::{ScopeCatalog, TokenPrefix};
use serde::Deserialize;

// No `Debug`: the database URL may hold a password, and a derived `Debug` would print it;
// the resolved `Config` shows it as `DatabaseUrl` does.
#[derive(Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "KEYGATE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where the embedded SQLite database lives [default: ./keygate-data].
    #[arg(long, env = "KEYGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The database, e.g. sqlite:///var/lib/keygate/keygate.db or
    /// postgres://keygate@db.example:5432/keygate [default: SQLite in the data dir].
    #[arg(long, env = "KEYGATE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Prefix of minted tokens, [a-z][a-z0-9]{1,15} [default: kg].
    #[arg(long, env = "KEYGATE_TOKEN_PREFIX")]
    pub token_prefix: Option<String>,
    /// A scope of your API, NAME=DESCRIPTION; repeatable (in the variable, separated by ';').
    #[arg(
        long = "scope",
        env = "KEYGATE_SCOPE",
        value_delimiter = ';',
        value_name = "NAME=DESCRIPTION"
    )]
    pub scopes: Vec<String>,
    /// Refuse tokens in query parameters (api-token, apiToken, api_token).
    #[arg(long, env = "KEYGATE_NO_QUERY_TOKEN")]
    pub no_query_token: bool,
    /// Compatible surfaces to serve, comma-separated: instana, dynatrace, interana [default: all].
    #[arg(
        long,
        env = "KEYGATE_COMPAT",
        value_name = "LIST",
        conflicts_with = "no_compat"
    )]
    pub compat: Option<String>,
    /// Serve no compatible surface, only the native API.
    #[arg(long, env = "KEYGATE_NO_COMPAT")]
    pub no_compat: bool,
    /// Take client addresses (audit, last use) from X-Forwarded-For / X-Real-IP; set this only
    /// behind a proxy that overwrites those headers.
    #[arg(long, env = "KEYGATE_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Tokens held in memory for verification [default: 1000000].
    #[arg(long, env = "KEYGATE_CACHE_CAPACITY")]
    pub cache_capacity: Option<usize>,
    /// Unknown token hashes remembered, so floods of made-up tokens cost no query [default: 100000].
    #[arg(long, env = "KEYGATE_NEGATIVE_CACHE_CAPACITY")]
    pub negative_cache_capacity: Option<usize>,
    /// Threads that serve HTTP, each with its own event loop [default: the number of CPUs].
    #[arg(long, env = "KEYGATE_HTTP_WORKERS")]
    pub http_workers: Option<usize>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "KEYGATE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// How precisely a token's last use is recorded, e.g. 1m or 1s: later uses within this
    /// time of the recorded one are not written [default: 1m].
    #[arg(long, env = "KEYGATE_LAST_USE_RESOLUTION", value_parser = humantime::parse_duration)]
    pub last_use_resolution: Option<std::time::Duration>,
    /// How long a web login lasts, e.g. 12h or 30m [default: 12h].
    #[arg(long, env = "KEYGATE_SESSION_TTL", value_parser = humantime::parse_duration)]
    pub session_ttl: Option<std::time::Duration>,
    /// Always mark the session cookie Secure (for a deployment reached only over HTTPS).
    #[arg(long, env = "KEYGATE_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Failed logins for one account from one client address before that address must wait
    /// between its attempts at that account [default: 5].
    #[arg(long, env = "KEYGATE_LOGIN_MAX_FAILURES")]
    pub login_max_failures: Option<u32>,
    /// The wait after the first failure beyond --login-max-failures; it doubles with every
    /// further failure, up to --login-failure-window, e.g. 1s [default: 1s].
    #[arg(long, env = "KEYGATE_LOGIN_FAILURE_DELAY", value_parser = humantime::parse_duration)]
    pub login_failure_delay: Option<std::time::Duration>,
    /// Failed logins allowed per client address, all accounts together, within the window;
    /// beyond it the address is refused until the window ends [default: 20].
    #[arg(long, env = "KEYGATE_LOGIN_MAX_FAILURES_PER_IP")]
    pub login_max_failures_per_ip: Option<u32>,
    /// The window in which failed logins per address are counted, and the longest wait
    /// between attempts, e.g. 15m [default: 15m].
    #[arg(long, env = "KEYGATE_LOGIN_FAILURE_WINDOW", value_parser = humantime::parse_duration)]
    pub login_failure_window: Option<std::time::Duration>,
    /// Failed token authentications (malformed, bad checksum or unknown tokens) allowed per
    /// client address within the window; beyond it, failures get 429 [default: 100].
    #[arg(long, env = "KEYGATE_AUTH_MAX_FAILURES_PER_IP")]
    pub auth_max_failures_per_ip: Option<u32>,
    /// The window in which failed token authentications are counted, e.g. 1m [default: 1m].
    #[arg(long, env = "KEYGATE_AUTH_FAILURE_WINDOW", value_parser = humantime::parse_duration)]
    pub auth_failure_window: Option<std::time::Duration>,
    /// How long a slow client may take to send a request's headers or its body, or to take
    /// the answer; an idle kept-alive connection is closed after it too [default: 30s].
    #[arg(long, env = "KEYGATE_CLIENT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub client_timeout: Option<std::time::Duration>,
    /// Largest accepted request head (request line and headers) in bytes [default: 16384].
    #[arg(long, env = "KEYGATE_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Most tokens one owner (a user, or the tenant) may hold [default: 10000].
    #[arg(long, env = "KEYGATE_MAX_TOKENS_PER_OWNER")]
    pub max_tokens_per_owner: Option<u32>,
    /// Log filter, e.g. info or keygate=debug [default: info].
    #[arg(long, env = "KEYGATE_LOG")]
    pub log: Option<String>,
    /// A TOML file with any of these settings [default: ./keygate.toml if it exists].
    #[arg(long, env = "KEYGATE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `keygate.toml`: the same settings, kebab-case keys.
#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    token_prefix: Option<String>,
    /// NAME = "DESCRIPTION"
    #[serde(default)]
    scopes: std::collections::BTreeMap<String, String>,
    no_query_token: Option<bool>,
    trust_forwarded_for: Option<bool>,
    compat: Option<String>,
    no_compat: Option<bool>,
    cache_capacity: Option<usize>,
    negative_cache_capacity: Option<usize>,
    http_workers: Option<usize>,
    max_body_bytes: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    last_use_resolution: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    session_ttl: Option<std::time::Duration>,
    secure_cookies: Option<bool>,
    login_max_failures: Option<u32>,
    #[serde(default, with = "humantime_serde_opt")]
    login_failure_delay: Option<std::time::Duration>,
    login_max_failures_per_ip: Option<u32>,
    #[serde(default, with = "humantime_serde_opt")]
    login_failure_window: Option<std::time::Duration>,
    auth_max_failures_per_ip: Option<u32>,
    #[serde(default, with = "humantime_serde_opt")]
    auth_failure_window: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    client_timeout: Option<std::time::Duration>,
    max_header_bytes: Option<usize>,
    max_tokens_per_owner: Option<u32>,
    log: Option<String>,
}

/// Durations in the file are written as on the command line (`"12h"`, `"15m"`).
mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A database URL. `Debug` and `Display` hide the credentials it may hold.
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => write!(f, "{scheme}://…@{host}"),
                None => write!(f, "{scheme}://{rest}"),
            },
            None => f.write_str("<database>"),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// The resolved configuration.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    /// No database was named: SQLite in the data directory, which keygate creates.
    pub default_database: bool,
    pub prefix: TokenPrefix,
    pub catalog: ScopeCatalog,
    pub allow_query_token: bool,
    pub trust_forwarded_for: bool,
    pub compat: keygate_server::config::Compat,
    pub cache_capacity: usize,
    pub negative_cache_capacity: usize,
    pub max_body_bytes: usize,
    pub http_workers: usize,
    pub last_use_resolution: std::time::Duration,
    pub session_ttl: std::time::Duration,
    pub secure_cookies: bool,
    pub login_limits: keygate_server::config::LoginLimits,
    pub auth_limits: keygate_server::config::AuthLimits,
    pub client_timeout: std::time::Duration,
    pub max_header_bytes: usize,
    pub max_tokens_per_owner: u32,
    pub log: String,
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None if Path::new("keygate.toml").exists() => read_file(Path::new("keygate.toml"))?,
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("keygate-data"));
        let named = self.database_url.or(file.database_url);
        let default_database = named.is_none();
        let database = match named {
            Some(url) => parse_database_url(&url)?,
            None => DatabaseUrl(keygate_store::sqlite_url_in_dir(&data_dir)),
        };
        let prefix_text = self
            .token_prefix
            .or(file.token_prefix)
            .unwrap_or_else(|| "kg".into());
        let prefix = TokenPrefix::parse(&prefix_text)
            .with_context(|| format!("--token-prefix {prefix_text:?}"))?;
        let compat = if self.no_compat || file.no_compat.unwrap_or(false) {
            keygate_server::config::Compat::none()
        } else {
            match self.compat.or(file.compat) {
                Some(list) => keygate_server::config::Compat::parse(&list)
                    .map_err(|e| anyhow::anyhow!("--compat {list:?}: {e}"))?,
                None => keygate_server::config::Compat::all(),
            }
        };
        let mut catalog = ScopeCatalog::default();
        keygate_server::compat::register_scopes(compat, &mut catalog);
        for (name, description) in &file.scopes {
            catalog
                .add(name, description)
                .with_context(|| format!("scope {name:?} in the config file"))?;
        }
        for s in &self.scopes {
            let Some((name, description)) = s.split_once('=') else {
                bail!("--scope {s:?}: expected NAME=DESCRIPTION, e.g. metrics:read=Read metrics");
            };
            catalog
                .add(name.trim(), description.trim())
                .with_context(|| format!("--scope {s:?}"))?;
        }
        let max_body_bytes = self
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(1 << 20);
        if max_body_bytes < 1024 {
            bail!("--max-body-bytes must be at least 1024");
        }
        let http_workers = match self.http_workers.or(file.http_workers) {
            Some(0) => bail!("--http-workers must be at least 1"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let last_use_resolution = self
            .last_use_resolution
            .or(file.last_use_resolution)
            .unwrap_or(std::time::Duration::from_secs(60));
        if last_use_resolution < std::time::Duration::from_secs(1) {
            bail!("--last-use-resolution must be at least one second");
        }
        let session_ttl = self
            .session_ttl
            .or(file.session_ttl)
            .unwrap_or(std::time::Duration::from_secs(12 * 3600));
        if session_ttl < std::time::Duration::from_secs(60) {
            bail!("--session-ttl must be at least one minute");
        }
        let defaults = keygate_server::config::LoginLimits::default();
        let login_limits = keygate_server::config::LoginLimits {
            free_failures: self
                .login_max_failures
                .or(file.login_max_failures)
                .unwrap_or(defaults.free_failures),
            first_delay: self
                .login_failure_delay
                .or(file.login_failure_delay)
                .unwrap_or(defaults.first_delay),
            per_ip: self
                .login_max_failures_per_ip
                .or(file.login_max_failures_per_ip)
                .unwrap_or(defaults.per_ip),
            window: self
                .login_failure_window
                .or(file.login_failure_window)
                .unwrap_or(defaults.window),
        };
        if login_limits.free_failures == 0 || login_limits.per_ip == 0 {
            bail!("--login-max-failures and --login-max-failures-per-ip must be at least 1");
        }
        if login_limits.first_delay.is_zero() || login_limits.first_delay > login_limits.window {
            bail!(
                "--login-failure-delay must be more than zero and at most --login-failure-window"
            );
        }
        let auth_defaults = keygate_server::config::AuthLimits::default();
        let auth_limits = keygate_server::config::AuthLimits {
            per_ip: self
                .auth_max_failures_per_ip
                .or(file.auth_max_failures_per_ip)
                .unwrap_or(auth_defaults.per_ip),
            window: self
                .auth_failure_window
                .or(file.auth_failure_window)
                .unwrap_or(auth_defaults.window),
        };
        if auth_limits.per_ip == 0 {
            bail!("--auth-max-failures-per-ip must be at least 1");
        }
        if auth_limits.window < std::time::Duration::from_secs(1) {
            bail!("--auth-failure-window must be at least one second");
        }
        let connection_defaults = keygate_server::config::ConnectionLimits::default();
        let client_timeout = self
            .client_timeout
            .or(file.client_timeout)
            .unwrap_or(connection_defaults.client_timeout);
        if client_timeout < std::time::Duration::from_secs(1) {
            bail!("--client-timeout must be at least one second");
        }
        let max_header_bytes = self
            .max_header_bytes
            .or(file.max_header_bytes)
            .unwrap_or(connection_defaults.max_header_bytes);
        // hyper's smallest read buffer; a head must fit in it.
        if max_header_bytes < 8192 {
            bail!("--max-header-bytes must be at least 8192");
        }
        let max_tokens_per_owner = self
            .max_tokens_per_owner
            .or(file.max_tokens_per_owner)
            .unwrap_or(keygate_server::config::DEFAULT_MAX_TOKENS_PER_OWNER);
        if max_tokens_per_owner == 0 {
            bail!("--max-tokens-per-owner must be at least 1");
        }
        Ok(Config {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid address")),
            data_dir,
            database,
            default_database,
            prefix,
            catalog,
            allow_query_token: !(self.no_query_token || file.no_query_token.unwrap_or(false)),
            trust_forwarded_for: self.trust_forwarded_for
                || file.trust_forwarded_for.unwrap_or(false),
            compat,
            cache_capacity: self
                .cache_capacity
                .or(file.cache_capacity)
                .unwrap_or(1_000_000),
            negative_cache_capacity: self
                .negative_cache_capacity
                .or(file.negative_cache_capacity)
                .unwrap_or(100_000),
            max_body_bytes,
            http_workers,
            last_use_resolution,
            session_ttl,
            secure_cookies: self.secure_cookies || file.secure_cookies.unwrap_or(false),
            login_limits,
            auth_limits,
            client_timeout,
            max_header_bytes,
            max_tokens_per_owner,
            log: self.log.or(file.log).unwrap_or_else(|| "info".into()),
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

fn parse_database_url(url: &str) -> anyhow::Result<DatabaseUrl> {
    match keygate_store::Backend::of_url(url) {
        Some(_) => Ok(DatabaseUrl(url.to_owned())),
        // Never echo the URL itself: it may hold a password.
        None => {
            let scheme = url.split_once(':').map_or("", |(s, _)| s);
            bail!(
                "--database-url must start with sqlite:// or postgres:// (scheme {scheme:?} is not supported)"
            )
        }
    }
}

/// A secret from `KEYGATE_<NAME>` or from the file named by `KEYGATE_<NAME>_FILE`.
pub fn secret_from_env(name: &str) -> anyhow::Result<Option<String>> {
    if let Ok(v) = std::env::var(name) {
        if !v.is_empty() {
            return Ok(Some(v));
        }
    }
    let file_var = format!("{name}_FILE");
    match std::env::var_os(&file_var) {
        Some(path) => {
            let v = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {file_var} ({})", Path::new(&path).display()))?;
            Ok(Some(v.trim_end_matches(['\r', '\n']).to_owned()))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod debug_redaction_tests {
    use super::*;

    const URL: &str = "postgres://keygate:hunter2-db-password@db.internal/keygate";

    #[test]
    fn debug_of_the_settings_hides_the_database_password() {
        let url = DatabaseUrl(URL.into());
        for dbg in [format!("{url:?}"), url.to_string()] {
            assert!(!dbg.contains("hunter2"), "{dbg}");
            assert!(dbg.contains("db.internal"), "{dbg}");
        }
    }
}
