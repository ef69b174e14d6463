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

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "KEYGATE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where the embedded SQLite database lives [default: ./keygate-data].
    #[arg(long, env = "KEYGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The database, e.g. sqlite:///var/lib/keygate/keygate.db [default: SQLite in the data dir].
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
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "KEYGATE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Log filter, e.g. info or keygate=debug [default: info].
    #[arg(long, env = "KEYGATE_LOG")]
    pub log: Option<String>,
    /// A TOML file with any of these settings [default: ./keygate.toml if it exists].
    #[arg(long, env = "KEYGATE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `keygate.toml`: the same settings, kebab-case keys.
#[derive(Deserialize, Default, Debug)]
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
    max_body_bytes: Option<usize>,
    log: Option<String>,
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
    pub compat: keygate_server::compat::Compat,
    pub cache_capacity: usize,
    pub negative_cache_capacity: usize,
    pub max_body_bytes: usize,
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
            keygate_server::compat::Compat::none()
        } else {
            match self.compat.or(file.compat) {
                Some(list) => keygate_server::compat::Compat::parse(&list)
                    .map_err(|e| anyhow::anyhow!("--compat {list:?}: {e}"))?,
                None => keygate_server::compat::Compat::all(),
            }
        };
        let mut catalog = ScopeCatalog::default();
        compat.register_scopes(&mut catalog);
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
