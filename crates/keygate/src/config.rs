//! `keygate serve`'s configuration as one typed struct. Every setting is a flag, an
//! environment variable `KEYGATE_<NAME>` and a key of an optional `keygate.toml`; a flag or
//! variable wins over the file, the file over the default. Secrets are never flags (a flag is
//! visible in `ps`): they come from the environment or from a `*_FILE` path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use keygate_core::network::{AllowList, Cidr};
use keygate_core::{ScopeCatalog, TokenPrefix};
use keygate_server::config::{
    AuthLimits, Compat, ConnectionLimits, LeakConfig, LoginLimits, ServerConfig, WebhookConfig,
};
use keygate_store::credits::CreditConfig;
use keygate_store::VerifierConfig;
use serde::Deserialize;

/// Every setting, declared once: clap reads it from the command line and the environment,
/// serde from `keygate.toml` (kebab-case keys). Every value is optional so that one layer can
/// be laid over the other; the defaults are those of the structs the settings end up in.
// No `Debug`: the database URL may hold a password, and a derived `Debug` would print it;
// the resolved `Config` shows it as `DatabaseUrl` does.
#[derive(Args, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "KEYGATE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Also serve Envoy's external authorization (ext_authz) over gRPC on this address, e.g.
    /// 127.0.0.1:9191 [default: not served].
    #[arg(long, env = "KEYGATE_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
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
    /// The file's `[scopes]` table, NAME = "DESCRIPTION"; a table reads better there than the
    /// flag's NAME=DESCRIPTION list.
    #[arg(skip)]
    pub scopes: std::collections::BTreeMap<String, String>,
    /// A scope of your API, NAME=DESCRIPTION; repeatable (in the variable, separated by ';').
    #[arg(
        long = "scope",
        env = "KEYGATE_SCOPE",
        value_delimiter = ';',
        value_name = "NAME=DESCRIPTION"
    )]
    #[serde(skip)]
    pub scope_flags: Vec<String>,
    /// Refuse tokens in query parameters (api-token, apiToken, api_token).
    #[arg(long, env = "KEYGATE_NO_QUERY_TOKEN")]
    pub no_query_token: bool,
    /// Compatible surfaces to serve, comma-separated: instana, dynatrace, interana, unkey [default: all].
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
    /// Take client addresses (allow-lists, audit, last use) from X-Forwarded-For / X-Real-IP
    /// when the connection comes from a trusted proxy; set this only behind proxies that append
    /// to those headers.
    #[arg(long, env = "KEYGATE_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// The proxies trusted with --trust-forwarded-for, comma-separated networks: the client is
    /// the right-most X-Forwarded-For address that is not one of them [default: 127.0.0.0/8,
    /// ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7].
    #[arg(long, env = "KEYGATE_TRUSTED_PROXIES", value_name = "CIDRS")]
    pub trusted_proxies: Option<String>,
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
    #[serde(with = "humantime_serde_opt")]
    pub last_use_resolution: Option<Duration>,
    /// How often each node writes its verification counts (the usage API's data), e.g. 10s: a
    /// node killed without a chance to stop loses at most this much of them [default: 10s].
    #[arg(long, env = "KEYGATE_USAGE_FLUSH_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub usage_flush_interval: Option<Duration>,
    /// Do not count verifications per token: the usage API and charts then show nothing new.
    #[arg(long, env = "KEYGATE_NO_USAGE_COUNTS")]
    pub no_usage_counts: bool,
    /// How long the change stream of keygate-client replicas keeps a change, e.g. 1h: a replica
    /// out of touch for longer takes a new snapshot [default: 1h].
    #[arg(long, env = "KEYGATE_REPLICATION_RETENTION", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub replication_retention: Option<Duration>,
    /// When to send `token.expiring` to webhooks, comma-separated times before a token's
    /// expiry, e.g. 30d,7d,1d; `none` sends no warning (`token.expired` is sent in any case)
    /// [default: 30d,7d,1d].
    #[arg(long, env = "KEYGATE_EXPIRY_WARNINGS", value_name = "LIST")]
    pub expiry_warnings: Option<String>,
    /// How often each node looks for expiry notices that are due, e.g. 1m [default: 60s].
    #[arg(long, env = "KEYGATE_EXPIRY_SCAN_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub expiry_scan_interval: Option<Duration>,
    /// How long a web login lasts, e.g. 12h or 30m [default: 12h].
    #[arg(long, env = "KEYGATE_SESSION_TTL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub session_ttl: Option<Duration>,
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
    #[serde(with = "humantime_serde_opt")]
    pub login_failure_delay: Option<Duration>,
    /// Failed logins allowed per client address, all accounts together, within the window;
    /// beyond it the address is refused until the window ends [default: 20].
    #[arg(long, env = "KEYGATE_LOGIN_MAX_FAILURES_PER_IP")]
    pub login_max_failures_per_ip: Option<u32>,
    /// The window in which failed logins per address are counted, and the longest wait
    /// between attempts, e.g. 15m [default: 15m].
    #[arg(long, env = "KEYGATE_LOGIN_FAILURE_WINDOW", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub login_failure_window: Option<Duration>,
    /// Failed token authentications (malformed, bad checksum or unknown tokens) allowed per
    /// client address within the window; beyond it, failures get 429 [default: 100].
    #[arg(long, env = "KEYGATE_AUTH_MAX_FAILURES_PER_IP")]
    pub auth_max_failures_per_ip: Option<u32>,
    /// The window in which failed token authentications are counted, e.g. 1m [default: 1m].
    #[arg(long, env = "KEYGATE_AUTH_FAILURE_WINDOW", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub auth_failure_window: Option<Duration>,
    /// How long a slow client may take to send a request's headers or its body, or to take
    /// the answer; an idle kept-alive connection is closed after it too [default: 30s].
    #[arg(long, env = "KEYGATE_CLIENT_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub client_timeout: Option<Duration>,
    /// Largest accepted request head (request line and headers) in bytes [default: 16384].
    #[arg(long, env = "KEYGATE_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Most tokens one owner (a user, or the tenant) may hold [default: 10000].
    #[arg(long, env = "KEYGATE_MAX_TOKENS_PER_OWNER")]
    pub max_tokens_per_owner: Option<u32>,
    /// The most credits a node takes from the database at once for one token: larger means
    /// fewer writes, and more credits held where other nodes cannot spend them [default: 1000].
    #[arg(long, env = "KEYGATE_CREDIT_LEASE")]
    pub credit_lease: Option<u64>,
    /// Credits a node holds for a token it has not used for this long go back to the database,
    /// e.g. 1s [default: 1s].
    #[arg(long, env = "KEYGATE_CREDIT_IDLE_RETURN", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub credit_idle_return: Option<Duration>,
    /// A Redis that counts rate limits for every node that names it, e.g. redis://127.0.0.1:6379
    /// [default: none: each node counts its own].
    #[arg(long, env = "KEYGATE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// How long one webhook delivery attempt may take, e.g. 10s [default: 10s].
    #[arg(long, env = "KEYGATE_WEBHOOK_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub webhook_timeout: Option<Duration>,
    /// The wait before a failed webhook delivery is tried again; it doubles with every further
    /// failure, with jitter, e.g. 5s [default: 5s].
    #[arg(long, env = "KEYGATE_WEBHOOK_RETRY_INITIAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub webhook_retry_initial: Option<Duration>,
    /// How long a webhook delivery is retried, and how long an endpoint may keep failing before
    /// it is disabled, e.g. 24h [default: 24h].
    #[arg(long, env = "KEYGATE_WEBHOOK_RETRY_FOR", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_opt")]
    pub webhook_retry_for: Option<Duration>,
    /// Let webhook endpoints name link-local and cloud metadata addresses (169.254.0.0/16,
    /// fe80::/10, fd00:ec2::254), which are refused otherwise.
    #[arg(long, env = "KEYGATE_WEBHOOK_ALLOW_LINK_LOCAL")]
    pub webhook_allow_link_local: bool,
    /// GitHub's secret-scanning public keys, the JSON GitHub publishes at
    /// https://api.github.com/meta/public_keys/secret_scanning: serves
    /// POST /api/v1/leaks/github, and reads the file again when it changes [default: not served].
    #[arg(long, env = "KEYGATE_GITHUB_SCANNING_KEYS", value_name = "FILE")]
    pub github_scanning_keys: Option<PathBuf>,
    /// A file holding the bearer token GitLab sends to the Token Revocation API: serves
    /// /api/v1/leaks/gitlab/… [default: not served].
    #[arg(
        long,
        env = "KEYGATE_GITLAB_REVOCATION_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub gitlab_revocation_token_file: Option<PathBuf>,
    /// Requests per minute one client address may send to the Token Revocation API
    /// [default: 60].
    #[arg(long, env = "KEYGATE_GITLAB_REVOCATION_RATE_LIMIT")]
    pub gitlab_revocation_rate_limit: Option<u32>,
    /// Log filter, e.g. info or keygate=debug [default: info].
    #[arg(long, env = "KEYGATE_LOG")]
    pub log: Option<String>,
    /// A TOML file with any of these settings [default: ./keygate.toml if it exists].
    #[arg(long, env = "KEYGATE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
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

/// The settings that are the binary's own: how the process starts, before any server or
/// store exists.
#[derive(Debug)]
pub struct ProcessConfig {
    pub listen: SocketAddr,
    /// Where Envoy's ext_authz is served over gRPC; `None`: it is not.
    pub grpc_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    /// No database was named: SQLite in the data directory, which keygate creates.
    pub default_database: bool,
    pub http_workers: usize,
    pub log: String,
    /// Where rate limits are counted across nodes; `None`: in each node.
    pub redis: Option<DatabaseUrl>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        let data_dir = PathBuf::from("keygate-data");
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc_listen: None,
            database: DatabaseUrl(keygate_store::sqlite_url_in_dir(&data_dir)),
            data_dir,
            default_database: true,
            http_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            log: "info".into(),
            redis: None,
        }
    }
}

/// The resolved configuration, one part per crate that reads it.
#[derive(Debug)]
pub struct Config {
    pub process: ProcessConfig,
    pub server: ServerConfig,
    pub verifier: VerifierConfig,
}

/// A comma-separated list of networks, each named when it is not one.
fn parse_cidrs(list: &str) -> anyhow::Result<Vec<Cidr>> {
    list.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| c.parse::<Cidr>().map_err(anyhow::Error::from))
        .collect()
}

impl ServeArgs {
    /// Lays the command line and environment over the config file, and both over the defaults.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None if Path::new("keygate.toml").exists() => read_file(Path::new("keygate.toml"))?,
            None => ServeArgs::default(),
        };
        self.laid_over(file)
    }

    fn laid_over(self, file: ServeArgs) -> anyhow::Result<Config> {
        let args = self;
        // A flag or variable (clap) wins over the file.
        macro_rules! given {
            ($field:ident) => {
                args.$field.or(file.$field)
            };
        }
        macro_rules! switched_on {
            ($field:ident) => {
                args.$field || file.$field
            };
        }
        let process = process_config(
            given!(listen),
            given!(grpc_listen),
            given!(data_dir),
            given!(database_url),
            given!(http_workers),
            given!(log),
            given!(redis_url),
        )?;
        let prefix = match given!(token_prefix) {
            Some(text) => {
                TokenPrefix::parse(&text).with_context(|| format!("--token-prefix {text:?}"))?
            }
            None => TokenPrefix::default(),
        };
        let compat = if switched_on!(no_compat) {
            Compat::none()
        } else {
            match given!(compat) {
                Some(list) => {
                    Compat::parse(&list).map_err(|e| anyhow::anyhow!("--compat {list:?}: {e}"))?
                }
                None => Compat::all(),
            }
        };
        let catalog = scope_catalog(compat, &file.scopes, &args.scope_flags)?;
        let d = ServerConfig::default();
        let server = ServerConfig {
            prefix: prefix.clone(),
            catalog,
            allow_query_token: !switched_on!(no_query_token),
            max_body_bytes: given!(max_body_bytes).unwrap_or(d.max_body_bytes),
            trust_forwarded_for: switched_on!(trust_forwarded_for),
            trusted_proxies: match given!(trusted_proxies) {
                Some(list) => AllowList::new(
                    &parse_cidrs(&list).with_context(|| format!("--trusted-proxies {list:?}"))?,
                ),
                None => d.trusted_proxies.clone(),
            },
            compat,
            session_ttl: given!(session_ttl).unwrap_or(d.session_ttl),
            secure_cookies: switched_on!(secure_cookies),
            login_limits: LoginLimits {
                free_failures: given!(login_max_failures).unwrap_or(d.login_limits.free_failures),
                first_delay: given!(login_failure_delay).unwrap_or(d.login_limits.first_delay),
                per_ip: given!(login_max_failures_per_ip).unwrap_or(d.login_limits.per_ip),
                window: given!(login_failure_window).unwrap_or(d.login_limits.window),
            },
            auth_limits: AuthLimits {
                per_ip: given!(auth_max_failures_per_ip).unwrap_or(d.auth_limits.per_ip),
                window: given!(auth_failure_window).unwrap_or(d.auth_limits.window),
            },
            connection_limits: ConnectionLimits {
                client_timeout: given!(client_timeout)
                    .unwrap_or(d.connection_limits.client_timeout),
                max_header_bytes: given!(max_header_bytes)
                    .unwrap_or(d.connection_limits.max_header_bytes),
            },
            max_tokens_per_owner: given!(max_tokens_per_owner).unwrap_or(d.max_tokens_per_owner),
            replication_retention: given!(replication_retention).unwrap_or(d.replication_retention),
            expiry_warnings: match given!(expiry_warnings) {
                Some(list) => parse_expiry_warnings(&list)
                    .with_context(|| format!("--expiry-warnings {list:?}"))?,
                None => d.expiry_warnings.clone(),
            },
            expiry_scan_interval: given!(expiry_scan_interval).unwrap_or(d.expiry_scan_interval),
            webhooks: WebhookConfig {
                timeout: given!(webhook_timeout).unwrap_or(d.webhooks.timeout),
                retry_initial: given!(webhook_retry_initial).unwrap_or(d.webhooks.retry_initial),
                retry_for: given!(webhook_retry_for).unwrap_or(d.webhooks.retry_for),
                allow_link_local: switched_on!(webhook_allow_link_local),
            },
            leaks: LeakConfig {
                github_keys: given!(github_scanning_keys),
                gitlab_token: given!(gitlab_revocation_token_file)
                    .map(|path| read_gitlab_token(&path))
                    .transpose()?,
                gitlab_rate_limit: given!(gitlab_revocation_rate_limit)
                    .unwrap_or(d.leaks.gitlab_rate_limit),
            },
        };
        let d = VerifierConfig::default();
        let verifier = VerifierConfig {
            prefix,
            cache_capacity: given!(cache_capacity).unwrap_or(d.cache_capacity),
            negative_cache_capacity: given!(negative_cache_capacity)
                .unwrap_or(d.negative_cache_capacity),
            last_use_resolution: given!(last_use_resolution).unwrap_or(d.last_use_resolution),
            usage_flush_interval: given!(usage_flush_interval).unwrap_or(d.usage_flush_interval),
            count_usage: !switched_on!(no_usage_counts),
            credits: CreditConfig {
                lease_max: given!(credit_lease).unwrap_or(d.credits.lease_max),
                idle_return: given!(credit_idle_return).unwrap_or(d.credits.idle_return),
            },
            ..d
        };
        let config = Config {
            process,
            server,
            verifier,
        };
        check(&config)?;
        Ok(config)
    }
}

fn process_config(
    listen: Option<SocketAddr>,
    grpc_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    http_workers: Option<usize>,
    log: Option<String>,
    redis_url: Option<String>,
) -> anyhow::Result<ProcessConfig> {
    let d = ProcessConfig::default();
    let data_dir = data_dir.unwrap_or(d.data_dir);
    let (database, default_database) = match database_url {
        Some(url) => (parse_database_url(&url)?, false),
        None => (
            DatabaseUrl(keygate_store::sqlite_url_in_dir(&data_dir)),
            true,
        ),
    };
    Ok(ProcessConfig {
        listen: listen.unwrap_or(d.listen),
        grpc_listen,
        data_dir,
        database,
        default_database,
        http_workers: http_workers.unwrap_or(d.http_workers),
        log: log.unwrap_or(d.log),
        redis: redis_url.map(parse_redis_url).transpose()?,
    })
}

fn parse_redis_url(url: String) -> anyhow::Result<DatabaseUrl> {
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(DatabaseUrl(url))
    } else {
        anyhow::bail!("--redis-url must start with redis:// or rediss://")
    }
}

/// `30d,7d,1d` as durations, widest first and each once; `none` or nothing: no warnings.
fn parse_expiry_warnings(list: &str) -> anyhow::Result<Vec<Duration>> {
    if list.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut warnings = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let d = humantime::parse_duration(item)
            .with_context(|| format!("{item:?} is not a duration such as 7d or 12h"))?;
        // The scan stores thresholds in whole seconds, and 0 is its mark for `token.expired`.
        if d.as_secs() == 0 || d.subsec_nanos() != 0 {
            bail!("{item:?}: a warning must be a whole number of seconds, at least 1s");
        }
        warnings.push(d);
    }
    warnings.sort_unstable_by(|a, b| b.cmp(a));
    warnings.dedup();
    Ok(warnings)
}

/// The built-in scopes of the surfaces served, then the file's, then the flags'.
fn scope_catalog(
    compat: Compat,
    from_file: &std::collections::BTreeMap<String, String>,
    from_flags: &[String],
) -> anyhow::Result<ScopeCatalog> {
    let mut catalog = ScopeCatalog::default();
    keygate_server::compat::register_scopes(compat, &mut catalog);
    for (name, description) in from_file {
        catalog
            .add(name, description)
            .with_context(|| format!("scope {name:?} in the config file"))?;
    }
    for s in from_flags {
        let Some((name, description)) = s.split_once('=') else {
            bail!("--scope {s:?}: expected NAME=DESCRIPTION, e.g. metrics:read=Read metrics");
        };
        catalog
            .add(name.trim(), description.trim())
            .with_context(|| format!("--scope {s:?}"))?;
    }
    Ok(catalog)
}

/// Refuses values that would break the service rather than merely tune it.
/// The bearer token GitLab is given, from its file (surrounding whitespace, such as the final
/// newline of `echo`, is not part of it). A short one would be guessable: at least 16 characters.
fn read_gitlab_token(path: &Path) -> anyhow::Result<secrecy::SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--gitlab-revocation-token-file {}", path.display()))?;
    let token = text.trim();
    if token.chars().count() < 16 {
        bail!(
            "--gitlab-revocation-token-file {}: the token must be at least 16 characters",
            path.display()
        );
    }
    Ok(token.to_owned().into())
}

fn check(config: &Config) -> anyhow::Result<()> {
    if let Some(path) = &config.server.leaks.github_keys {
        keygate_server::leaks::KeySet::load(path)
            .with_context(|| format!("--github-scanning-keys {}", path.display()))?;
    }
    if config.server.leaks.gitlab_rate_limit == 0 {
        bail!("--gitlab-revocation-rate-limit must be at least 1");
    }
    let Config {
        process,
        server,
        verifier,
    } = config;
    if server.max_body_bytes < 1024 {
        bail!("--max-body-bytes must be at least 1024");
    }
    if process.http_workers == 0 {
        bail!("--http-workers must be at least 1");
    }
    if verifier.last_use_resolution < Duration::from_secs(1) {
        bail!("--last-use-resolution must be at least one second");
    }
    if verifier.usage_flush_interval < Duration::from_millis(10) {
        bail!("--usage-flush-interval must be at least 10ms");
    }
    if verifier.credits.lease_max == 0 {
        bail!("--credit-lease must be at least 1");
    }
    if verifier.credits.idle_return < Duration::from_millis(10) {
        bail!("--credit-idle-return must be at least 10ms");
    }
    if server.session_ttl < Duration::from_secs(60) {
        bail!("--session-ttl must be at least one minute");
    }
    // A replica must be able to read the stream twice before its cursor is pruned.
    if server.replication_retention < Duration::from_secs(1) {
        bail!("--replication-retention must be at least one second");
    }
    let login = &server.login_limits;
    if login.free_failures == 0 || login.per_ip == 0 {
        bail!("--login-max-failures and --login-max-failures-per-ip must be at least 1");
    }
    if login.first_delay.is_zero() || login.first_delay > login.window {
        bail!("--login-failure-delay must be more than zero and at most --login-failure-window");
    }
    if server.auth_limits.per_ip == 0 {
        bail!("--auth-max-failures-per-ip must be at least 1");
    }
    if server.auth_limits.window < Duration::from_secs(1) {
        bail!("--auth-failure-window must be at least one second");
    }
    if server.connection_limits.client_timeout < Duration::from_secs(1) {
        bail!("--client-timeout must be at least one second");
    }
    // hyper's smallest read buffer; a head must fit in it.
    if server.connection_limits.max_header_bytes < 8192 {
        bail!("--max-header-bytes must be at least 8192");
    }
    if server.expiry_scan_interval < Duration::from_millis(100) {
        bail!("--expiry-scan-interval must be at least 100ms");
    }
    if server.max_tokens_per_owner == 0 {
        bail!("--max-tokens-per-owner must be at least 1");
    }
    let hooks = &server.webhooks;
    if hooks.timeout < Duration::from_millis(100) {
        bail!("--webhook-timeout must be at least 100ms");
    }
    if hooks.retry_initial < Duration::from_millis(10) || hooks.retry_initial > hooks.retry_for {
        bail!("--webhook-retry-initial must be at least 10ms and at most --webhook-retry-for");
    }
    Ok(())
}

fn read_file(path: &Path) -> anyhow::Result<ServeArgs> {
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
mod layering_tests {
    use super::*;

    fn file(text: &str) -> ServeArgs {
        toml::from_str(text).expect("a valid config file")
    }

    #[test]
    fn a_flag_wins_over_the_file_and_the_file_over_the_default() {
        let args = ServeArgs {
            token_prefix: Some("beta".into()),
            ..ServeArgs::default()
        };
        let config = args
            .laid_over(file("token-prefix = \"acme\"\nsession-ttl = \"30m\"\n"))
            .unwrap();
        assert_eq!(config.server.prefix.as_str(), "beta");
        assert_eq!(config.verifier.prefix.as_str(), "beta");
        assert_eq!(config.server.session_ttl, Duration::from_secs(30 * 60));
        let defaults = ServerConfig::default();
        assert_eq!(config.server.max_body_bytes, defaults.max_body_bytes);
        assert_eq!(
            config.server.connection_limits.client_timeout,
            defaults.connection_limits.client_timeout
        );
        assert_eq!(config.process.log, "info");
        assert!(config.process.default_database);
    }

    #[test]
    fn a_switch_is_on_when_either_layer_turns_it_on() {
        let config = ServeArgs::default()
            .laid_over(file("no-query-token = true\nsecure-cookies = true\n"))
            .unwrap();
        assert!(!config.server.allow_query_token);
        assert!(config.server.secure_cookies);
        assert!(!config.server.trust_forwarded_for);
    }

    #[test]
    fn the_file_reaches_every_part() {
        let config = ServeArgs::default()
            .laid_over(file(
                "cache-capacity = 7\nclient-timeout = \"5s\"\nmax-header-bytes = 9000\n\
                 http-workers = 3\nlisten = \"127.0.0.1:9\"\ngrpc-listen = \"127.0.0.1:10\"\n[scopes]\n\"metrics:read\" = \"Read metrics\"\n",
            ))
            .unwrap();
        assert_eq!(config.verifier.cache_capacity, 7);
        assert_eq!(
            config.server.connection_limits.client_timeout,
            Duration::from_secs(5)
        );
        assert_eq!(config.server.connection_limits.max_header_bytes, 9000);
        assert_eq!(config.process.http_workers, 3);
        assert_eq!(config.process.listen.port(), 9);
        assert_eq!(config.process.grpc_listen.map(|a| a.port()), Some(10));
        assert!(config.server.catalog.names().any(|n| n == "metrics:read"));
    }
}

#[cfg(test)]
mod expiry_warning_tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn warnings_are_read_widest_first_and_once() {
        let secs = |list: &str| -> Vec<u64> {
            parse_expiry_warnings(list)
                .unwrap()
                .iter()
                .map(Duration::as_secs)
                .collect()
        };
        assert_eq!(secs("1d, 30d,7d,1d"), [30 * DAY, 7 * DAY, DAY]);
        assert_eq!(secs("2s,1s"), [2, 1]);
        assert!(secs("none").is_empty());
        assert!(secs("").is_empty());
    }

    #[test]
    fn a_bad_warning_is_named() {
        for (list, named) in [
            ("7d,soon", "\"soon\""),
            ("0s", "\"0s\""),
            ("1500ms", "\"1500ms\""),
        ] {
            let e = format!("{:#}", parse_expiry_warnings(list).unwrap_err());
            assert!(e.contains(named), "{e}");
        }
        let e = ServeArgs {
            expiry_warnings: Some("7d,x".into()),
            ..ServeArgs::default()
        }
        .laid_over(ServeArgs::default())
        .expect_err("refused");
        assert!(format!("{e:#}").contains("--expiry-warnings"), "{e:#}");
    }

    #[test]
    fn the_file_sets_the_warnings_and_the_scan() {
        let config = ServeArgs::default()
            .laid_over(
                toml::from_str("expiry-warnings = \"12h\"\nexpiry-scan-interval = \"5s\"\n")
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(
            config.server.expiry_warnings,
            [Duration::from_secs(12 * 3600)]
        );
        assert_eq!(config.server.expiry_scan_interval, Duration::from_secs(5));
        let defaults = ServeArgs::default()
            .laid_over(ServeArgs::default())
            .unwrap();
        assert_eq!(
            defaults.server.expiry_warnings,
            keygate_server::config::DEFAULT_EXPIRY_WARNINGS
        );
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
