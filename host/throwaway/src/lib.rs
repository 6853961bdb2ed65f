//! Throwaway PostgreSQL servers for the `wasmig roundtrip` command and the integration tests.
//!
//! A [`Server`] comes from one of three providers, tried in this order by [`Server::start`]:
//!
//! 1. [`ProviderKind::Url`]: an existing server named by `DATABASE_URL`; databases are created
//!    and dropped on it, the server itself is left alone.
//! 2. [`ProviderKind::Docker`]: a container from the `postgres` image (`WASMIG_PG_IMAGE`,
//!    default `postgres`; `WASMIG_PG_TAG`, default `15`) started with `testcontainers`.
//! 3. [`ProviderKind::Local`]: a cluster made with the local PostgreSQL binaries (`initdb`,
//!    `pg_ctl`, found in `WASMIG_PG_BINDIR`, else on `PATH` or under
//!    `/usr/lib/postgresql/*/bin`) in a temporary directory. [`Server::start_local`] takes
//!    the directory explicitly: how the tests run a server of another major.
//!
//! `WASMIG_PG_PROVIDER=url|docker|local` forces exactly one provider.
//!
//! A container or cluster is stopped and removed when its [`Server`] is dropped, and a small
//! detached watchdog process removes it when the process that started it exits, so nothing
//! outlives a test binary even though the server behind [`shared`] is never dropped.
//!
//! Passwords never appear in logs or errors: URLs are printed through [`redact_url`].

#![warn(missing_docs)]

mod docker;
mod local;
mod watchdog;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Executor};
use url::Url;

/// Environment variable that forces one provider: `url`, `docker` or `local`.
pub const PROVIDER_ENV: &str = "WASMIG_PG_PROVIDER";
/// Environment variable naming an existing server for the [`ProviderKind::Url`] provider.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
/// Environment variable with the Docker image name (default [`DEFAULT_IMAGE`]).
pub const IMAGE_ENV: &str = "WASMIG_PG_IMAGE";
/// Environment variable with the Docker image tag (default [`DEFAULT_TAG`]).
pub const TAG_ENV: &str = "WASMIG_PG_TAG";
/// Default Docker image name.
pub const DEFAULT_IMAGE: &str = "postgres";
/// Default Docker image tag.
pub const DEFAULT_TAG: &str = "15";

/// Settings that make PostgreSQL fast for throwaway use (no durability), passed to every
/// server the Docker and local providers start.
pub const FAST_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    // Tests run in parallel, each with a few connections, plus concurrent-runner tests.
    ("max_connections", "200"),
];

/// Where a [`Server`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// An existing server named by `DATABASE_URL`.
    Url,
    /// A container started with `testcontainers` from the `postgres` image.
    Docker,
    /// A cluster made with the local PostgreSQL binaries in a temporary directory.
    Local,
}

impl ProviderKind {
    /// All providers, in the order [`Server::start`] tries them.
    pub const ALL: [ProviderKind; 3] =
        [ProviderKind::Url, ProviderKind::Docker, ProviderKind::Local];

    /// The provider forced by `WASMIG_PG_PROVIDER`, if that variable is set and not empty.
    pub fn from_env() -> Result<Option<ProviderKind>, Error> {
        match std::env::var(PROVIDER_ENV) {
            Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some),
            _ => Ok(None),
        }
    }

    /// The lower-case name used by `WASMIG_PG_PROVIDER` and [`fmt::Display`].
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Url => "url",
            ProviderKind::Docker => "docker",
            ProviderKind::Local => "local",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "url" => Ok(ProviderKind::Url),
            "docker" => Ok(ProviderKind::Docker),
            "local" => Ok(ProviderKind::Local),
            _ => Err(Error::UnknownProvider(s.to_string())),
        }
    }
}

/// Errors of this crate. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `WASMIG_PG_PROVIDER` (or a parsed string) names no provider.
    #[error(
        "unknown PostgreSQL provider {0:?}: expected url, docker or local (env {PROVIDER_ENV})"
    )]
    UnknownProvider(String),

    /// The provider asked for with [`Server::start_with`] could not give a server.
    #[error("{kind} provider unavailable: {reason}")]
    Unavailable {
        /// The provider.
        kind: ProviderKind,
        /// Why, and what to do about it.
        reason: String,
    },

    /// The provider forced by `WASMIG_PG_PROVIDER` could not give a server.
    #[error("{kind} provider forced by {PROVIDER_ENV}={kind} but unavailable: {reason}")]
    Forced {
        /// The provider.
        kind: ProviderKind,
        /// Why, and what to do about it.
        reason: String,
    },

    /// No provider could give a server.
    #[error(
        "no PostgreSQL server available for throwaway databases; tried, in order:\n  \
         - url: {DATABASE_URL_ENV} is not set: set it to an existing server \
         (postgres://user:password@host:5432/postgres; the user needs CREATEDB)\n  \
         - docker: {docker}\n  \
         - local: {local}\n\
         Force one provider with {PROVIDER_ENV}=url|docker|local."
    )]
    NoProvider {
        /// Why Docker failed, and how to get it.
        docker: String,
        /// Why the local binaries failed, and how to get them.
        local: String,
    },

    /// A statement or connection on a started server failed.
    #[error("{context}: {source}")]
    Database {
        /// What was being done (no password in it).
        context: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

/// A throwaway PostgreSQL server: an existing one (`DATABASE_URL`), a container or a local
/// cluster. Dropping it stops and removes the container or cluster (an existing server is left
/// running; only the databases the caller drops are removed from it).
pub struct Server {
    kind: ProviderKind,
    /// `postgres://user:password@host:port/<admin database>[?params]`
    base: Url,
    admin_database: String,
    backend: Backend,
    started_in: Duration,
}

enum Backend {
    Url,
    Docker(Box<docker::DockerServer>),
    Local(Box<local::LocalCluster>),
}

/// Counter for unique database names within this process.
static NEXT_DATABASE: AtomicU64 = AtomicU64::new(0);

impl Server {
    /// Starts a server from the first provider that works: `DATABASE_URL`, then Docker, then
    /// the local binaries; or exactly the provider named by `WASMIG_PG_PROVIDER`.
    ///
    /// When `DATABASE_URL` is set it is used (and its failure is an error: it is never
    /// silently skipped). Docker and local failures fall through to the next provider and are
    /// all reported in [`Error::NoProvider`] when none works.
    pub async fn start() -> Result<Server, Error> {
        if let Some(kind) = ProviderKind::from_env()? {
            tracing::debug!(%kind, "PostgreSQL provider forced by {PROVIDER_ENV}");
            return Self::start_inner(kind)
                .await
                .map_err(|reason| Error::Forced { kind, reason });
        }
        if std::env::var_os(DATABASE_URL_ENV).is_some_and(|v| !v.is_empty()) {
            return Self::start_with(ProviderKind::Url).await;
        }
        let docker = match Self::start_inner(ProviderKind::Docker).await {
            Ok(server) => return Ok(server),
            Err(reason) => {
                tracing::info!("docker provider unavailable, trying local binaries: {reason}");
                reason
            }
        };
        match Self::start_inner(ProviderKind::Local).await {
            Ok(server) => Ok(server),
            Err(local) => Err(Error::NoProvider { docker, local }),
        }
    }

    /// Starts a server from exactly this provider (ignores `WASMIG_PG_PROVIDER`).
    pub async fn start_with(kind: ProviderKind) -> Result<Server, Error> {
        Self::start_inner(kind)
            .await
            .map_err(|reason| Error::Unavailable { kind, reason })
    }

    /// Starts a local cluster from the `initdb`, `pg_ctl` and `postgres` in `bindir` (any
    /// major, e.g. one of the per-major directories `ci/pg-versions.sh` installs), ignoring
    /// `WASMIG_PG_PROVIDER` and `WASMIG_PG_BINDIR`.
    pub async fn start_local(bindir: &std::path::Path) -> Result<Server, Error> {
        Self::start_inner_with(ProviderKind::Local, Some(bindir.to_path_buf()))
            .await
            .map_err(|reason| Error::Unavailable {
                kind: ProviderKind::Local,
                reason,
            })
    }

    async fn start_inner(kind: ProviderKind) -> Result<Server, String> {
        Self::start_inner_with(kind, None).await
    }

    async fn start_inner_with(
        kind: ProviderKind,
        bindir: Option<std::path::PathBuf>,
    ) -> Result<Server, String> {
        let started = Instant::now();
        let (base, backend) = match kind {
            ProviderKind::Url => (url_from_env()?, Backend::Url),
            ProviderKind::Docker => {
                let d = docker::DockerServer::start().await?;
                (d.base_url.clone(), Backend::Docker(Box::new(d)))
            }
            ProviderKind::Local => {
                let l = local::LocalCluster::start(bindir).await?;
                (l.base_url.clone(), Backend::Local(Box::new(l)))
            }
        };
        let admin_database = base.path().trim_start_matches('/').to_string();
        let admin_database = if admin_database.is_empty() {
            base.username().to_string()
        } else {
            percent_decode(&admin_database)
        };
        let mut server = Server {
            kind,
            base,
            admin_database,
            backend,
            started_in: Duration::ZERO,
        };
        // Containers and clusters may need a moment after "ready"; an existing server must
        // answer at once.
        let patience = match kind {
            ProviderKind::Url => Duration::ZERO,
            _ => Duration::from_secs(15),
        };
        server.wait_until_answering(patience).await.map_err(|e| {
            format!(
                "server at {} does not answer: {e}",
                redact_url(server.base.as_str())
            )
        })?;
        server.started_in = started.elapsed();
        tracing::info!(
            provider = %kind,
            url = %redact_url(server.base.as_str()),
            elapsed_ms = server.started_in.as_millis() as u64,
            "throwaway PostgreSQL ready"
        );
        Ok(server)
    }

    async fn wait_until_answering(&self, patience: Duration) -> Result<(), sqlx::Error> {
        let deadline = Instant::now() + patience;
        loop {
            let attempt = async {
                let mut conn = self.connect_admin().await?;
                conn.execute("select 1").await?;
                conn.close().await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("server not answering yet: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The provider this server came from.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// How long starting the server took (until it answered `select 1`).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The database used for administration (`CREATE DATABASE`, `DROP DATABASE`): the one
    /// named in `DATABASE_URL`, or `postgres`.
    pub fn admin_database(&self) -> &str {
        &self.admin_database
    }

    /// A connection URL for `database` on this server:
    /// `postgres://user:password@host:port/<database>` (plus any query parameters of
    /// `DATABASE_URL`). It contains the password: print it only through [`redact_url`].
    pub fn url(&self, database: &str) -> String {
        let mut url = self.base.clone();
        url.set_path(&format!("/{database}"));
        url.to_string()
    }

    /// Connection options for `database` on this server, with statement logging off.
    pub fn connect_options(&self, database: &str) -> Result<PgConnectOptions, Error> {
        let url = self.url(database);
        let opts = PgConnectOptions::from_str(&url).map_err(|source| Error::Database {
            context: format!("invalid connection URL {}", redact_url(&url)),
            source,
        })?;
        Ok(opts.disable_statement_logging())
    }

    async fn connect_admin(&self) -> Result<PgConnection, sqlx::Error> {
        let url = self.url(&self.admin_database);
        PgConnectOptions::from_str(&url)?
            .disable_statement_logging()
            .connect()
            .await
    }

    async fn admin(&self, what: &str) -> Result<PgConnection, Error> {
        self.connect_admin()
            .await
            .map_err(|source| Error::Database {
                context: format!(
                    "{what}: cannot connect to {}",
                    redact_url(&self.url(&self.admin_database))
                ),
                source,
            })
    }

    /// Creates a fresh database with a unique name (`wasmig_t_<pid>_<counter>`), as a copy of
    /// `template` when given (`CREATE DATABASE .. TEMPLATE ..`; no session may be connected to
    /// the template meanwhile), and returns its name.
    pub async fn create_database(&self, template: Option<&str>) -> Result<String, Error> {
        let started = Instant::now();
        let mut conn = self.admin("CREATE DATABASE").await?;
        let mut attempts = 0;
        let name = loop {
            let name = format!(
                "wasmig_t_{}_{}",
                std::process::id(),
                NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
            );
            let mut sql = format!("CREATE DATABASE {}", quote_ident(&name));
            if let Some(t) = template {
                sql.push_str(&format!(" TEMPLATE {}", quote_ident(t)));
            }
            match conn.execute(sql.as_str()).await {
                Ok(_) => break name,
                // A leftover from an earlier process with the same pid (existing server).
                Err(e) if sql_state(&e).as_deref() == Some("42P04") && attempts < 100 => {
                    attempts += 1
                }
                Err(source) => {
                    let hint = match sql_state(&source).as_deref() {
                        Some("55006") => {
                            " (close every connection to the template before copying it)"
                        }
                        _ => "",
                    };
                    let _ = conn.close().await;
                    return Err(Error::Database {
                        context: format!("{sql}{hint}"),
                        source,
                    });
                }
            }
        };
        let _ = conn.close().await;
        tracing::debug!(
            database = %name,
            template = template.unwrap_or("-"),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "created database"
        );
        Ok(name)
    }

    /// Drops a database, disconnecting its sessions (`DROP DATABASE IF EXISTS .. WITH (FORCE)`).
    pub async fn drop_database(&self, name: &str) -> Result<(), Error> {
        let mut conn = self.admin("DROP DATABASE").await?;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
        let result = conn.execute(sql.as_str()).await;
        let _ = conn.close().await;
        result.map_err(|source| Error::Database {
            context: sql,
            source,
        })?;
        tracing::debug!(database = %name, "dropped database");
        Ok(())
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Server");
        d.field("kind", &self.kind)
            .field("url", &redact_url(self.base.as_str()));
        match &self.backend {
            Backend::Url => {}
            Backend::Docker(c) => {
                d.field("container", &c.id());
            }
            Backend::Local(l) => {
                d.field("data_dir", &l.data_dir());
            }
        }
        d.finish()
    }
}

fn url_from_env() -> Result<Url, String> {
    let raw = std::env::var(DATABASE_URL_ENV).map_err(|_| {
        format!(
            "{DATABASE_URL_ENV} is not set: set it to an existing server \
             (postgres://user:password@host:5432/postgres; the user needs CREATEDB)"
        )
    })?;
    let url =
        Url::parse(&raw).map_err(|e| format!("{DATABASE_URL_ENV} is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "{DATABASE_URL_ENV} must be a postgres:// URL, not {}",
            redact_url(&raw)
        ));
    }
    Ok(url)
}

/// Replaces the password of a URL by `***`, for logs and error messages. A string that is not
/// a URL is returned as is.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => url.to_string(),
    }
}

/// Quotes an SQL identifier: `a"b` becomes `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_state(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// The server shared by everything in this process (a test binary): started on first call,
/// from any thread or tokio runtime, on a dedicated thread with its own runtime, and never
/// dropped (the watchdog removes it when the process exits).
///
/// # Panics
///
/// When no provider works, with the [`Error`]'s message (on every call).
pub fn shared() -> &'static Server {
    static SHARED: OnceLock<Result<Server, String>> = OnceLock::new();
    let result = SHARED.get_or_init(|| {
        std::thread::Builder::new()
            .name("wasmig-throwaway".into())
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("wasmig-throwaway-rt")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
                let result = runtime.block_on(Server::start()).map_err(|e| e.to_string());
                // The server's Docker client lives on this runtime: keep it for the process.
                std::mem::forget(runtime);
                result
            })
            .map_err(|e| format!("cannot spawn a thread: {e}"))
            .and_then(|t| {
                t.join()
                    .map_err(|_| "the thread starting the server panicked".to_string())
            })
            .and_then(|r| r)
    });
    match result {
        Ok(server) => server,
        Err(message) => panic!("wasmig-throwaway: no shared PostgreSQL server: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact_url("postgres://u:s3cret@h:5/db?sslmode=disable"),
            "postgres://u:***@h:5/db?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn provider_names_round_trip() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.to_string().parse::<ProviderKind>().unwrap(), kind);
        }
        assert_eq!(
            "Docker".parse::<ProviderKind>().unwrap(),
            ProviderKind::Docker
        );
        let err = "podman".parse::<ProviderKind>().unwrap_err();
        assert!(err.to_string().contains("url, docker or local"), "{err}");
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn decodes_database_names() {
        assert_eq!(percent_decode("my%20db"), "my db");
        assert_eq!(percent_decode("postgres"), "postgres");
    }

    #[test]
    fn no_provider_message_names_all_three() {
        let e = Error::NoProvider {
            docker: "D".into(),
            local: "L".into(),
        }
        .to_string();
        for needle in [
            "url:",
            "DATABASE_URL",
            "docker: D",
            "local: L",
            "WASMIG_PG_PROVIDER",
        ] {
            assert!(e.contains(needle), "{needle} missing in {e}");
        }
    }
}
