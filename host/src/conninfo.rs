//! Connection settings, as libpq takes them. One [`ConnInfo`] is parsed from
//! whatever the user gave (a `postgres://` / `postgresql://` URL, a
//! SQLAlchemy `postgresql+driver://` URL, a keyword/value string such as
//! `host=h user=app password='a b' dbname=db sslmode=require`, or nothing:
//! then the `PG*` environment variables), with libpq's rules: URL query
//! parameters override the parts before them, the environment fills what the
//! string leaves out, and `dbname` defaults to the user name.
//!
//! Everything else goes through it: sqlx options for each host
//! ([`ConnInfo::pg_options`]), the redacted form people see
//! ([`ConnInfo::redacted`]), the settings for `pg_dump` / `pg_restore` with
//! the password in the environment, never on the command line
//! ([`ConnInfo::tool_args`]), and the same server with another database
//! ([`ConnInfo::with_database`]). Every password parsed here is also
//! registered with [`secrets`], so output can be scrubbed of it wherever it
//! would otherwise appear.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// Why a connection string was refused. The message never contains the
/// string itself (it may hold a password), only the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnInfoError(String);

fn bad(msg: impl Into<String>) -> ConnInfoError {
    ConnInfoError(msg.into())
}

/// The libpq keywords wasmig honours (the rest of libpq's list is refused by name).
const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "fallback_application_name",
    "options",
    "connect_timeout",
    "client_encoding",
    "target_session_attrs",
    // Accepted and ignored: they tune the TCP connection, not what it reaches.
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "channel_binding",
    "gssencmode",
    "sslcompression",
    "sslsni",
];

/// libpq keywords wasmig cannot honour; naming them is an error rather than a silent change of meaning.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "service",
        "service files are not read: give host, port, user and dbname directly",
    ),
    (
        "sslpassword",
        "encrypted client keys are not supported: decrypt the key (openssl pkey -in key -out key.plain)",
    ),
    ("sslcrl", "certificate revocation lists are not checked"),
    ("sslcrldir", "certificate revocation lists are not checked"),
    ("requirepeer", "requirepeer is not supported"),
    ("krbsrvname", "Kerberos is not supported"),
    ("gsslib", "GSSAPI is not supported"),
    ("load_balance_hosts", "hosts are tried in the order given"),
    ("replication", "replication connections are not supported"),
    (
        "ssl_min_protocol_version",
        "TLS 1.2 or newer is always required",
    ),
    (
        "ssl_max_protocol_version",
        "TLS versions are not configurable",
    ),
    (
        "sslnegotiation",
        "only the standard SSL negotiation (sslnegotiation=postgres) is supported",
    ),
    ("require_auth", "require_auth is not supported"),
];

/// The `PG*` environment variables libpq reads, by keyword.
const ENV: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("passfile", "PGPASSFILE"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("application_name", "PGAPPNAME"),
    ("options", "PGOPTIONS"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("client_encoding", "PGCLIENTENCODING"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("gssencmode", "PGGSSENCMODE"),
];

/// Environment variables that make a connection (any of them set: "the environment names a server").
pub const CONNECTION_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGSERVICE",
];

/// libpq's `sslmode`, with its exact meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// Plain text first; TLS (unverified) only when the server refuses plain text.
    Allow,
    /// TLS (unverified) when the server offers it, else plain text. libpq's default.
    Prefer,
    /// TLS, without checking the certificate (unless a root certificate file exists: then as verify-ca).
    Require,
    /// TLS with a certificate signed by a trusted CA.
    VerifyCa,
    /// TLS with a trusted certificate that names the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, ConnInfoError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(bad(format!(
                    "invalid sslmode `{}`: use disable, allow, prefer, require, verify-ca or verify-full",
                    shorten(other)
                )));
            }
        })
    }

    /// The keyword value.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn sqlx(self) -> PgSslMode {
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow => PgSslMode::Allow,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server to try: a host name or address (or a Unix socket directory) and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name, IP address, or a socket directory (starts with `/`).
    pub host: String,
    /// `hostaddr`, when given: the address connected to (host then only names it).
    pub hostaddr: Option<String>,
    /// TCP port, or the socket file's number.
    pub port: u16,
}

impl Endpoint {
    /// Whether this is a Unix-domain socket directory.
    pub fn is_socket(&self) -> bool {
        self.hostaddr.is_none() && self.host.starts_with('/')
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_socket() {
            write!(
                f,
                "socket {}/.s.PGSQL.{}",
                self.host.trim_end_matches('/'),
                self.port
            )
        } else if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parsed connection settings: libpq keywords and their values.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnInfo {
    params: BTreeMap<String, String>,
    notes: Vec<String>,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password, even in a debug dump.
        f.debug_tuple("ConnInfo").field(&self.redacted()).finish()
    }
}

impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl ConnInfo {
    /// Parses `s` (URL, keyword/value string, or empty for the environment only),
    /// then fills the keywords it leaves out from the `PG*` environment variables.
    pub fn parse(s: &str) -> Result<ConnInfo, ConnInfoError> {
        Self::parse_with_env(s, |k| std::env::var(k).ok())
    }

    /// [`ConnInfo::parse`] with the environment given as a lookup function (tests).
    pub fn parse_with_env(
        s: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnInfo, ConnInfoError> {
        // Register every password-looking part before anything can fail, so an error
        // message that somehow quotes it is still scrubbed.
        secrets::register_raw(s);
        let trimmed = s.trim();
        let mut info = if trimmed.is_empty() {
            ConnInfo {
                params: BTreeMap::new(),
                notes: vec!["no connection string: using the PG* environment variables".into()],
            }
        } else if let Some(rest) = uri_rest(trimmed)? {
            parse_uri(rest)?
        } else if trimmed.contains('=') {
            parse_keywords(trimmed)?
        } else if looks_like_a_url(trimmed) {
            return Err(bad(format!(
                "the connection string starts with `{}` but is not a postgres:// URL: write postgresql://USER:PASSWORD@HOST:PORT/DB (two slashes), or keyword=value pairs",
                scheme_of(trimmed)
            )));
        } else if trimmed
            .chars()
            .all(|c| c.is_alphanumeric() || "_-.$".contains(c))
        {
            // psql takes a lone word as the database name.
            let mut p = BTreeMap::new();
            p.insert("dbname".to_string(), trimmed.to_string());
            ConnInfo {
                params: p,
                notes: vec![],
            }
        } else {
            // Not shown: a mistyped URL may hold a password anywhere.
            return Err(bad(
                "the connection string is neither a postgresql:// URL nor keyword=value pairs: write postgresql://USER:PASSWORD@HOST:PORT/DB or host=... dbname=...",
            ));
        };
        for (keyword, var) in ENV {
            if !info.params.contains_key(*keyword)
                && let Some(v) = env(var)
                && !v.is_empty()
            {
                info.params.insert(keyword.to_string(), v);
            }
        }
        if let Some(p) = info.params.get("password") {
            secrets::register(p);
        }
        info.validate()?;
        Ok(info)
    }

    /// Checks values libpq would refuse, so a bad string fails before any connection attempt.
    fn validate(&self) -> Result<(), ConnInfoError> {
        for k in self.params.keys() {
            if !KEYWORDS.contains(&k.as_str()) {
                if let Some((_, why)) = UNSUPPORTED.iter().find(|(u, _)| u == k) {
                    return Err(bad(format!(
                        "connection option `{k}` is not supported: {why}"
                    )));
                }
                return Err(bad(format!(
                    "invalid connection option `{}`: see the libpq keywords (host, port, dbname, user, password, sslmode, sslrootcert, sslcert, sslkey, ...)",
                    shorten(k)
                )));
            }
        }
        self.sslmode()?;
        self.endpoints()?;
        if let Some(t) = self.params.get("connect_timeout")
            && t.trim().parse::<i64>().is_err()
        {
            return Err(bad(format!(
                "invalid connect_timeout `{}`: a number of seconds",
                shorten(t)
            )));
        }
        if let Some(t) = self.params.get("target_session_attrs")
            && t != "any"
        {
            return Err(bad(format!(
                "target_session_attrs={} is not supported: wasmig connects to the first host that answers (target_session_attrs=any); name the primary alone",
                shorten(t)
            )));
        }
        if let Some(e) = self.params.get("client_encoding")
            && !e.eq_ignore_ascii_case("utf8")
            && !e.eq_ignore_ascii_case("utf-8")
            && !e.eq_ignore_ascii_case("unicode")
            && e != "auto"
        {
            return Err(bad(format!(
                "client_encoding={} is not supported: wasmig speaks UTF8",
                shorten(e)
            )));
        }
        if self.params.get("sslrootcert").map(String::as_str) == Some("system")
            && self.sslmode()? != SslMode::VerifyFull
        {
            // libpq 16: the system's roots only make sense with the host name checked.
            if self.params.contains_key("sslmode") {
                return Err(bad(format!(
                    "sslrootcert=system needs sslmode=verify-full (weaker modes would trust any public certificate), not sslmode={}",
                    self.sslmode()?
                )));
            }
        }
        if self.params.contains_key("sslcert") != self.params.contains_key("sslkey") {
            let (given, missing) = if self.params.contains_key("sslcert") {
                ("sslcert", "sslkey")
            } else {
                ("sslkey", "sslcert")
            };
            return Err(bad(format!(
                "{given} is given without {missing}: a client certificate needs both"
            )));
        }
        Ok(())
    }

    /// Notes on how the string was read (driver suffix taken off, ...), for `-v`.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The value of a libpq keyword, as given (the password too: never print it).
    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.params.get(keyword).map(String::as_str)
    }

    /// The user name: given, from `PGUSER`, else the operating system user (libpq's default).
    pub fn user(&self) -> String {
        self.get("user").map(String::from).unwrap_or_else(|| {
            PgConnectOptions::new_without_pgpass()
                .get_username()
                .to_string()
        })
    }

    /// The database name: given, else the user name (libpq's default).
    pub fn database(&self) -> String {
        self.get("dbname")
            .map(String::from)
            .unwrap_or_else(|| self.user())
    }

    /// Whether a password was given (in the string or `PGPASSWORD`).
    pub fn has_password(&self) -> bool {
        self.params.contains_key("password")
    }

    /// The `sslmode`: given, else libpq's default `prefer`. With `sslrootcert=system` and no
    /// mode given it is `verify-full`, as in libpq 16.
    pub fn sslmode(&self) -> Result<SslMode, ConnInfoError> {
        match self.params.get("sslmode") {
            Some(m) => SslMode::parse(m),
            None if self.get("sslrootcert") == Some("system") => Ok(SslMode::VerifyFull),
            None => Ok(SslMode::Prefer),
        }
    }

    /// The connect timeout (`connect_timeout` seconds; libpq treats 0 or none as no limit,
    /// wasmig uses 10 s then, and at least 2 s as libpq does).
    pub fn connect_timeout(&self) -> std::time::Duration {
        let secs = self
            .get("connect_timeout")
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0);
        std::time::Duration::from_secs(if secs <= 0 { 10 } else { secs.max(2) as u64 })
    }

    /// The servers to try, in order (libpq's comma-separated `host`, `hostaddr` and `port` lists).
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, ConnInfoError> {
        let split = |k: &str| {
            self.get(k).map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .collect::<Vec<_>>()
            })
        };
        let hosts = split("host");
        let addrs = split("hostaddr");
        let ports = split("port").unwrap_or_default();
        let n = hosts
            .as_ref()
            .map_or(0, Vec::len)
            .max(addrs.as_ref().map_or(0, Vec::len))
            .max(1);
        if let (Some(h), Some(a)) = (&hosts, &addrs)
            && h.len() != a.len()
        {
            return Err(bad(format!(
                "{} host names but {} hostaddr values: give one hostaddr per host",
                h.len(),
                a.len()
            )));
        }
        if ports.len() > 1 && ports.len() != n {
            return Err(bad(format!(
                "{} ports for {n} host(s): give one port, or one per host",
                ports.len()
            )));
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let port = match ports
                .get(if ports.len() == 1 { 0 } else { i })
                .map(String::as_str)
            {
                None | Some("") => 5432,
                Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    bad(format!(
                        "invalid port `{}`: a number from 1 to 65535",
                        shorten(p)
                    ))
                })?,
            };
            let hostaddr = addrs
                .as_ref()
                .and_then(|a| a.get(i))
                .filter(|a| !a.is_empty())
                .cloned();
            if let Some(a) = &hostaddr
                && a.parse::<std::net::IpAddr>().is_err()
            {
                return Err(bad(format!(
                    "invalid hostaddr `{}`: a numeric IP address (use host for names)",
                    shorten(a)
                )));
            }
            let host = match hosts
                .as_ref()
                .and_then(|h| h.get(i))
                .filter(|h| !h.is_empty())
            {
                Some(h) => h.clone(),
                None => match &hostaddr {
                    Some(a) => a.clone(),
                    None => default_host(port),
                },
            };
            out.push(Endpoint {
                host,
                hostaddr,
                port,
            });
        }
        Ok(out)
    }

    /// The same settings naming another database (whatever form the original took:
    /// a URL's path or its `?dbname=`, a keyword, or `PGDATABASE`).
    pub fn with_database(&self, database: &str) -> ConnInfo {
        let mut c = self.clone();
        c.params.insert("dbname".into(), database.to_string());
        c
    }

    /// The settings with `application_name` set unless the user gave one.
    pub fn with_default_application_name(&self, name: &str) -> ConnInfo {
        let mut c = self.clone();
        if !c.params.contains_key("application_name") {
            c.params.insert(
                "application_name".into(),
                c.params
                    .get("fallback_application_name")
                    .cloned()
                    .unwrap_or_else(|| name.to_string()),
            );
        }
        c
    }

    /// The settings without the password, as `keyword=value` pairs (`password=***` when one
    /// was given): what people see in messages and logs.
    pub fn redacted(&self) -> String {
        self.params
            .iter()
            .filter(|(k, _)| k.as_str() != "fallback_application_name")
            .map(|(k, v)| {
                if k == "password" {
                    "password=***".to_string()
                } else {
                    format!("{k}={}", quote_value(v))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A short description of where this connects: `user@host:port/db`.
    pub fn target(&self) -> String {
        let hosts = self
            .endpoints()
            .map(|e| {
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        format!("{}@{hosts}/{}", self.user(), self.database())
    }

    /// sqlx options for one endpoint, with `sslmode` given (the caller decides the
    /// fallbacks of `allow` and `prefer`). Root and client certificates follow libpq:
    /// `sslrootcert` (else `~/.postgresql/root.crt` when present; `system` = the bundled
    /// web PKI roots), `sslcert` / `sslkey` (else `~/.postgresql/postgresql.{crt,key}`).
    pub fn pg_options(
        &self,
        endpoint: &Endpoint,
        mode: SslMode,
    ) -> Result<PgConnectOptions, ConnInfoError> {
        let mut o = PgConnectOptions::new_without_pgpass()
            .port(endpoint.port)
            .username(&self.user())
            .database(&self.database())
            .ssl_mode(if endpoint.is_socket() {
                PgSslMode::Disable
            } else {
                mode.sqlx()
            });
        o = if endpoint.is_socket() {
            o.socket(&endpoint.host).host("localhost")
        } else {
            o.host(endpoint.hostaddr.as_deref().unwrap_or(&endpoint.host))
        };
        if endpoint.hostaddr.is_some()
            && endpoint.hostaddr.as_deref() != Some(endpoint.host.as_str())
            && mode == SslMode::VerifyFull
        {
            return Err(bad(
                "sslmode=verify-full with both host and hostaddr is not supported: give the host name alone (it is checked against the certificate)",
            ));
        }
        let password = match self.get("password") {
            Some(p) => Some(p.to_string()),
            None => self.passfile_password(endpoint),
        };
        if let Some(p) = &password {
            secrets::register(p);
            o = o.password(p);
        }
        if let Some(a) = self.get("application_name") {
            o = o.application_name(a);
        }
        if let Some(opts) = self.get("options") {
            o = o.options(parse_options(opts)?);
        }
        if !endpoint.is_socket() && mode >= SslMode::Require {
            match self.get("sslrootcert") {
                // sqlx always includes the bundled web PKI roots; nothing to add.
                Some("system") => {}
                Some(path) => o = o.ssl_root_cert(readable(path, "sslrootcert")?),
                None => match home_file("root.crt") {
                    Some(p) => o = o.ssl_root_cert(p),
                    None if mode >= SslMode::VerifyCa => {
                        return Err(bad(format!(
                            "sslmode={mode} needs the CA certificate that signed the server's: set sslrootcert=/path/to/ca.pem (or sslrootcert=system for public CAs), or put it in ~/.postgresql/root.crt"
                        )));
                    }
                    None => {}
                },
            }
            let cert = self
                .get("sslcert")
                .map(PathBuf::from)
                .or_else(|| home_file("postgresql.crt"));
            let key = self
                .get("sslkey")
                .map(PathBuf::from)
                .or_else(|| home_file("postgresql.key"));
            if let (Some(c), Some(k)) = (cert, key) {
                o = o
                    .ssl_client_cert(readable(&c.to_string_lossy(), "sslcert")?)
                    .ssl_client_key(readable(&k.to_string_lossy(), "sslkey")?);
            }
        } else if !endpoint.is_socket() && matches!(mode, SslMode::Prefer | SslMode::Allow) {
            // An opportunistic TLS connection still presents the client certificate, as libpq does.
            if let (Some(c), Some(k)) = (self.get("sslcert"), self.get("sslkey")) {
                o = o
                    .ssl_client_cert(readable(c, "sslcert")?)
                    .ssl_client_key(readable(k, "sslkey")?);
            }
        }
        Ok(o)
    }

    /// The effective mode for TCP endpoints: libpq's `require` acts as `verify-ca` when a
    /// root certificate is named or `~/.postgresql/root.crt` exists.
    pub fn effective_sslmode(&self) -> Result<SslMode, ConnInfoError> {
        let mode = self.sslmode()?;
        if mode == SslMode::Require
            && (self.get("sslrootcert").is_some_and(|r| r != "system")
                || home_file("root.crt").is_some())
        {
            return Ok(SslMode::VerifyCa);
        }
        Ok(mode)
    }

    /// Arguments and environment for `pg_dump` / `pg_restore` / `psql`: `--dbname=` with every
    /// setting but the password (a keyword/value string), and the password (if any) as
    /// `PGPASSWORD`. Every other `PG*` variable is removed so none can change what the
    /// string says.
    pub fn tool_args(&self) -> (String, Vec<(String, Option<String>)>) {
        let conninfo = self
            .params
            .iter()
            .filter(|(k, _)| k.as_str() != "password")
            .map(|(k, v)| format!("{k}={}", quote_value(v)))
            .collect::<Vec<_>>()
            .join(" ");
        let mut env: Vec<(String, Option<String>)> =
            ENV.iter().map(|(_, var)| (var.to_string(), None)).collect();
        env.push(("PGSERVICE".into(), None));
        env.push(("PGSERVICEFILE".into(), None));
        if let Some(p) = self.get("password") {
            env.retain(|(k, _)| k != "PGPASSWORD");
            env.push(("PGPASSWORD".into(), Some(p.to_string())));
        }
        (conninfo, env)
    }

    fn passfile_password(&self, endpoint: &Endpoint) -> Option<String> {
        let file = match self.get("passfile") {
            Some(f) => PathBuf::from(f),
            None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))?,
        };
        let text = std::fs::read_to_string(file).ok()?;
        let host = if endpoint.is_socket() {
            "localhost".to_string()
        } else {
            endpoint.host.clone()
        };
        let want = [
            host,
            endpoint.port.to_string(),
            self.database(),
            self.user(),
        ];
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .find_map(|line| {
                let fields = split_pgpass(line);
                if fields.len() < 5 {
                    return None;
                }
                let matches = want.iter().zip(&fields).all(|(w, f)| f == "*" || f == w);
                matches.then(|| fields[4..].join(":"))
            })
    }
}

/// `.pgpass` fields: `:` separates, `\` escapes.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("one field").push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// `options` (`-c name=value ...`) is passed to sqlx as is; it re-quotes spaces itself.
fn parse_options(opts: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let mut out = Vec::new();
    let mut words = opts.split_whitespace().peekable();
    while let Some(w) = words.next() {
        let setting = if w == "-c" {
            words
                .next()
                .ok_or_else(|| bad("options: `-c` without a setting"))?
                .to_string()
        } else if let Some(s) = w.strip_prefix("-c") {
            s.to_string()
        } else if let Some(s) = w.strip_prefix("--") {
            s.to_string()
        } else {
            return Err(bad(format!(
                "options: only `-c name=value` settings are supported, not `{}`",
                shorten(w)
            )));
        };
        let (k, v) = setting
            .split_once('=')
            .ok_or_else(|| bad(format!("options: `{}` has no `=`", shorten(&setting))))?;
        out.push((k.replace('-', "_"), v.to_string()));
    }
    Ok(out)
}

fn readable(path: &str, keyword: &str) -> Result<PathBuf, ConnInfoError> {
    let p = Path::new(path);
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(p.to_path_buf()),
        Ok(_) => Err(bad(format!("{keyword}={} is not a file", p.display()))),
        Err(e) => Err(bad(format!("cannot read {keyword}={}: {e}", p.display()))),
    }
}

fn home_file(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("HOME")?)
        .join(".postgresql")
        .join(name);
    p.is_file().then_some(p)
}

/// libpq's default host: the first socket directory that has the server's socket, else localhost.
fn default_host(port: u16) -> String {
    for dir in ["/run/postgresql", "/var/run/postgresql", "/tmp"] {
        if Path::new(dir).join(format!(".s.PGSQL.{port}")).exists() {
            return dir.to_string();
        }
    }
    "localhost".to_string()
}

/// A value as a keyword/value string needs it: bare when safe, else single-quoted.
fn quote_value(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A piece of user input short enough to show (never used for passwords).
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

fn looks_like_a_url(s: &str) -> bool {
    let scheme = scheme_of(s);
    !scheme.is_empty() && s[scheme.len()..].starts_with(':')
}

/// The leading `[a-zA-Z][a-zA-Z0-9+.-]*` of s (the would-be URL scheme).
fn scheme_of(s: &str) -> &str {
    let end = s
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_alphabetic() || (i > 0 && (c.is_ascii_digit() || "+.-".contains(c))))
        })
        .map_or(s.len(), |(i, _)| i);
    &s[..end]
}

/// What follows `postgres[ql][+driver]://`, or None when s is not such a URL.
fn uri_rest(s: &str) -> Result<Option<(&str, Option<String>)>, ConnInfoError> {
    let scheme = scheme_of(s);
    if !s[scheme.len()..].starts_with("://") {
        return Ok(None);
    }
    let lower = scheme.to_ascii_lowercase();
    let (base, driver) = match lower.split_once('+') {
        Some((b, d)) => (b.to_string(), Some(d.to_string())),
        None => (lower.clone(), None),
    };
    if base != "postgres" && base != "postgresql" {
        return Err(bad(format!(
            "a `{scheme}://` URL is not a PostgreSQL connection string: use postgresql://USER:PASSWORD@HOST:PORT/DB or keyword=value pairs"
        )));
    }
    Ok(Some((&s[scheme.len() + 3..], driver)))
}

fn parse_uri((rest, driver): (&str, Option<String>)) -> Result<ConnInfo, ConnInfoError> {
    let mut params = BTreeMap::new();
    let mut notes = Vec::new();
    if let Some(d) = &driver {
        notes.push(format!("took the SQLAlchemy driver suffix `+{d}` off the URL scheme (wasmig connects with its own driver)"));
    }
    // libpq: user info ends at the first '@' before any '/' or '?'.
    let (authority_and_path, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let authority_end = authority_and_path
        .find('/')
        .unwrap_or(authority_and_path.len());
    let (authority, path) = authority_and_path.split_at(authority_end);
    let hostlist = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.insert("user".to_string(), decode(user, "user name")?);
            }
            if let Some(p) = password {
                secrets::register(p);
                let p = decode(p, "password")?;
                secrets::register(&p);
                if !p.is_empty() {
                    params.insert("password".to_string(), p);
                }
            }
            &authority[at + 1..]
        }
        None => authority,
    };
    if !hostlist.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for part in hostlist.split(',') {
            let (host, port) = if let Some(v6) = part.strip_prefix('[') {
                let close = v6
                    .find(']')
                    .ok_or_else(|| bad("an IPv6 address in the URL lacks its closing `]`"))?;
                let after = &v6[close + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => p,
                    None if after.is_empty() => "",
                    None => {
                        return Err(bad(
                            "unexpected text after an IPv6 address in the URL: expected `:PORT`",
                        ));
                    }
                };
                (v6[..close].to_string(), port)
            } else {
                match part.rsplit_once(':') {
                    Some((h, p)) => (decode(h, "host")?, p),
                    None => (decode(part, "host")?, ""),
                }
            };
            if !port.is_empty() && port.parse::<u16>().is_err() {
                return Err(bad(format!(
                    "invalid port `{}` in the URL: a number from 1 to 65535",
                    shorten(port)
                )));
            }
            hosts.push(host);
            ports.push(port.to_string());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            params.insert("host".into(), hosts.join(","));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            params.insert("port".into(), ports.join(","));
        }
    }
    let db = path.trim_start_matches('/');
    if !db.is_empty() {
        params.insert("dbname".into(), decode(db, "database name")?);
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                bad(format!(
                    "URL parameter `{}` has no `=value`",
                    shorten(pair.split(':').next().unwrap_or(""))
                ))
            })?;
            let k = decode(k, "parameter name")?;
            if k == "password" {
                secrets::register(v);
            }
            let v = decode(v, &format!("value of `{k}`"))?;
            match k.as_str() {
                // JDBC's and asyncpg's spelling of sslmode.
                "ssl" if v == "true" || v == "1" => {
                    params.insert("sslmode".into(), "require".into());
                }
                "ssl" if driver.is_some() => {
                    notes.push(format!("read the driver's ssl={v} as sslmode={v}"));
                    params.insert("sslmode".into(), v);
                }
                "ssl" => {
                    return Err(bad(format!(
                        "URL parameter ssl={}: only ssl=true is understood; use sslmode=",
                        shorten(&v)
                    )));
                }
                _ => {
                    if k == "password" {
                        secrets::register(&v);
                    }
                    params.insert(k, v);
                }
            }
        }
    }
    Ok(ConnInfo { params, notes })
}

fn decode(s: &str, what: &str) -> Result<String, ConnInfoError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => out.push(b),
                None => {
                    return Err(bad(format!(
                        "invalid percent-encoding in the URL's {what}: `%` must be followed by two hex digits (write %25 for a literal %)"
                    )));
                }
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        bad(format!(
            "the URL's {what} is not UTF-8 once percent-decoded"
        ))
    })
}

/// libpq's keyword/value syntax: `key = value`, values bare (backslash escapes) or in single
/// quotes (`\'` and `\\` inside).
fn parse_keywords(s: &str) -> Result<ConnInfo, ConnInfoError> {
    let mut params = BTreeMap::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        skip_ws(&mut i);
        if i >= chars.len() || chars[i] != '=' {
            return Err(bad(format!(
                "missing `=` after `{}` in the connection string: write keyword=value pairs",
                shorten(&key)
            )));
        }
        i += 1;
        skip_ws(&mut i);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        if key == "password" {
                            secrets::register(&value);
                        }
                        return Err(bad(format!(
                            "unterminated quoted value for `{}` in the connection string: close it with `'`",
                            shorten(&key)
                        )));
                    }
                    Some('\\') => {
                        if let Some(c) = chars.get(i + 1) {
                            value.push(*c);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        if key == "password" {
            secrets::register(&value);
        }
        if key.is_empty() {
            return Err(bad(
                "a `=` without a keyword before it in the connection string",
            ));
        }
        params.insert(key, value);
    }
    Ok(ConnInfo {
        params,
        notes: vec![],
    })
}

/// Passwords seen in this process, so that any text can be scrubbed of them before it is
/// shown: error messages, log lines, JSON output, panic messages.
pub mod secrets {
    use std::sync::{Mutex, OnceLock};

    fn store() -> &'static Mutex<Vec<String>> {
        static S: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
        S.get_or_init(|| Mutex::new(Vec::new()))
    }

    /// Remembers a secret (and its percent-encoded form). Very short ones (under 3
    /// characters) are not scrubbed: they would mangle every message and hide nothing.
    pub fn register(secret: &str) {
        if secret.chars().count() < 3 {
            return;
        }
        let mut s = store().lock().unwrap_or_else(|e| e.into_inner());
        for form in [secret.to_string(), encode(secret)] {
            if !s.contains(&form) {
                s.push(form);
            }
        }
        // Longest first, so a secret that contains another is replaced whole.
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }

    /// Registers the password-looking parts of a raw connection string, whatever shape it
    /// has: the text between the scheme's `:` and the last `@` of a URL-like string, and
    /// any `password=` value.
    pub fn register_raw(raw: &str) {
        if let Some(at) = raw.rfind('@') {
            let head = &raw[..at];
            let head = head
                .split_once("//")
                .map_or_else(|| head.split_once(':').map_or(head, |(_, r)| r), |(_, r)| r);
            let head = head.trim_start_matches('/');
            if let Some((_, pw)) = head.split_once(':') {
                register(pw);
            }
        }
        for (i, _) in raw.match_indices("password") {
            let rest = raw[i + "password".len()..].trim_start();
            if let Some(rest) = rest.strip_prefix('=') {
                let rest = rest.trim_start();
                let value: String = if let Some(q) = rest.strip_prefix('\'') {
                    q.split('\'')
                        .next()
                        .unwrap_or("")
                        .trim_end_matches('\\')
                        .to_string()
                } else {
                    rest.split(|c: char| c.is_whitespace() || c == '&')
                        .next()
                        .unwrap_or("")
                        .to_string()
                };
                register(&value);
            }
        }
    }

    /// `text` with every registered secret replaced by `***`.
    pub fn scrub(text: &str) -> String {
        let s = store().lock().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for secret in s.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ConnInfo {
        ConnInfo::parse_with_env(s, |_| None).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn parse_env(s: &str, env: &[(&str, &str)]) -> ConnInfo {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConnInfo::parse_with_env(s, move |k| {
            env.iter().find(|(e, _)| e == k).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    fn err(s: &str) -> String {
        ConnInfo::parse_with_env(s, |_| None)
            .expect_err(s)
            .to_string()
    }

    #[test]
    fn a_plain_url() {
        let c = parse(
            "postgres://app:s3cret@db.example.com:6543/erp?sslmode=require&application_name=deploy",
        );
        assert_eq!(c.get("user"), Some("app"));
        assert_eq!(c.get("password"), Some("s3cret"));
        assert_eq!(c.database(), "erp");
        assert_eq!(
            c.endpoints().unwrap(),
            vec![Endpoint {
                host: "db.example.com".into(),
                hostaddr: None,
                port: 6543
            }]
        );
        assert_eq!(c.sslmode().unwrap(), SslMode::Require);
        assert_eq!(c.get("application_name"), Some("deploy"));
        assert!(!c.redacted().contains("s3cret"));
        assert!(c.redacted().contains("password=***"));
    }

    #[test]
    fn an_empty_host_with_a_socket_directory() {
        let c = parse("postgresql://user@/db?host=/run/postgresql&port=5432");
        let e = c.endpoints().unwrap();
        assert_eq!(e.len(), 1);
        assert!(e[0].is_socket());
        assert_eq!(e[0].host, "/run/postgresql");
        assert_eq!(e[0].port, 5432);
        assert_eq!(c.user(), "user");
        assert_eq!(c.database(), "db");
        // A percent-encoded socket directory in the host part, as some providers write it.
        let c = parse("postgresql://%2Fvar%2Frun%2Fpostgresql:5433/db");
        assert_eq!(c.endpoints().unwrap()[0].host, "/var/run/postgresql");
        assert_eq!(c.endpoints().unwrap()[0].port, 5433);
    }

    #[test]
    fn a_bare_scheme_takes_everything_from_the_environment() {
        let c = parse_env(
            "postgresql://",
            &[
                ("PGHOST", "pg.internal"),
                ("PGPORT", "5433"),
                ("PGUSER", "ops"),
                ("PGPASSWORD", "envpw"),
                ("PGDATABASE", "erp"),
                ("PGSSLMODE", "verify-full"),
                ("PGAPPNAME", "x"),
            ],
        );
        assert_eq!(
            c.endpoints().unwrap()[0],
            Endpoint {
                host: "pg.internal".into(),
                hostaddr: None,
                port: 5433
            }
        );
        assert_eq!((c.user(), c.database()), ("ops".into(), "erp".into()));
        assert_eq!(c.get("password"), Some("envpw"));
        assert_eq!(c.sslmode().unwrap(), SslMode::VerifyFull);
        // Nothing at all: the same.
        let c = parse_env("", &[("PGHOST", "h"), ("PGDATABASE", "d")]);
        assert_eq!(
            (c.endpoints().unwrap()[0].host.as_str(), c.database()),
            ("h", "d".to_string())
        );
        // The string wins over the environment; the environment fills the rest.
        let c = parse_env("host=a", &[("PGHOST", "b"), ("PGPORT", "7000")]);
        assert_eq!(
            c.endpoints().unwrap()[0],
            Endpoint {
                host: "a".into(),
                hostaddr: None,
                port: 7000
            }
        );
    }

    #[test]
    fn ipv6_and_several_hosts() {
        let c = parse("postgresql://[::1]:5433/db");
        assert_eq!(
            c.endpoints().unwrap()[0],
            Endpoint {
                host: "::1".into(),
                hostaddr: None,
                port: 5433
            }
        );
        assert_eq!(c.endpoints().unwrap()[0].to_string(), "[::1]:5433");
        let c = parse("postgresql://[2001:db8::5]/db");
        assert_eq!(c.endpoints().unwrap()[0].port, 5432);
        let c = parse("postgresql://h1:5433,h2,[::1]:7/db");
        let e = c.endpoints().unwrap();
        assert_eq!(
            e.iter()
                .map(|e| (e.host.as_str(), e.port))
                .collect::<Vec<_>>(),
            vec![("h1", 5433), ("h2", 5432), ("::1", 7)]
        );
        let c = parse("host=h1,h2 port=1,2");
        assert_eq!(c.endpoints().unwrap()[1].port, 2);
        assert!(err("host=h1,h2,h3 port=1,2").contains("3 host(s)"));
    }

    #[test]
    fn percent_encoding() {
        let c =
            parse("postgresql://us%40er:p%40ss%2Fw%3Ard@h/my%20db?options=-c%20search_path%3Dx");
        assert_eq!(c.get("user"), Some("us@er"));
        assert_eq!(c.get("password"), Some("p@ss/w:rd"));
        assert_eq!(c.database(), "my db");
        assert_eq!(c.get("options"), Some("-c search_path=x"));
        assert!(err("postgresql://u:p%zz@h/db").contains("percent-encoding"));
        assert!(!err("postgresql://u:p%zzSENTINEL@h/db").contains("SENTINEL"));
    }

    #[test]
    fn keyword_value_quoting() {
        let c =
            parse(r"host=h user=app password='a b\'c\\d' dbname = db  sslmode=require port=5433");
        assert_eq!(c.get("password"), Some(r"a b'c\d"));
        assert_eq!(c.database(), "db");
        assert_eq!(c.endpoints().unwrap()[0].port, 5433);
        let c = parse(r"password=a\ b dbname=''");
        assert_eq!(c.get("password"), Some("a b"));
        assert_eq!(c.get("dbname"), Some(""));
        assert!(err("host=h password='unterminated").contains("unterminated"));
        assert!(err("host=h user").contains("missing `=` after `user`"));
        assert!(err("host=h bogus=1").contains("invalid connection option `bogus`"));
        assert!(err("service=prod").contains("service files"));
        // Round trip through the redacted and tool forms.
        let (tool, env) = parse(r"host=h password='a b' dbname='my db'").tool_args();
        assert_eq!(tool, "dbname='my db' host=h");
        assert!(env.contains(&("PGPASSWORD".into(), Some("a b".into()))));
        assert_eq!(parse(&tool).database(), "my db");
    }

    #[test]
    fn driver_suffixes_are_taken_off() {
        for scheme in [
            "postgresql+asyncpg",
            "postgresql+psycopg",
            "postgresql+psycopg2",
            "postgres+asyncpg",
        ] {
            let c = parse(&format!("{scheme}://u:pw@h:5432/db"));
            assert_eq!(c.database(), "db", "{scheme}");
            assert!(
                c.notes()[0].contains("driver suffix"),
                "{scheme}: {:?}",
                c.notes()
            );
        }
        let c = parse("postgresql+asyncpg://u@h/db?ssl=require");
        assert_eq!(c.sslmode().unwrap(), SslMode::Require);
        assert_eq!(
            parse("postgresql://u@h/db?ssl=true").sslmode().unwrap(),
            SslMode::Require
        );
        assert!(err("mysql://u@h/db").contains("not a PostgreSQL connection string"));
    }

    #[test]
    fn query_parameters_override_the_url() {
        let c = parse("postgres://u:pw@h:5432/postgres?dbname=userdb&port=6000&user=other");
        assert_eq!(c.database(), "userdb");
        assert_eq!(c.user(), "other");
        assert_eq!(c.endpoints().unwrap()[0].port, 6000);
        // with_database replaces whichever form named it.
        assert_eq!(c.with_database("scratch").database(), "scratch");
        assert_eq!(
            parse("host=h dbname=userdb").with_database("s").database(),
            "s"
        );
        assert_eq!(
            parse_env("postgresql://h", &[("PGDATABASE", "userdb")])
                .with_database("s")
                .database(),
            "s"
        );
    }

    #[test]
    fn malformed_strings_never_echo_the_password() {
        for s in [
            "postgresql:/app:SENTINELPW@h/db",
            "postgres:app:SENTINELPW@h/db",
            "http://app:SENTINELPW@h/db",
            "host=h password=SENTINELPW bogus",
            "host=h password='SENTINELPW",
            "postgresql://app:SENTINELPW@h:notaport/db",
            "postgresql://app:SENTINELPW@h/db?sslmode=sometimes",
            "postgresql://app:SENTINELPW@h/db?nonsense",
            "postgresql://app:SENTINELPW@[::1/db",
        ] {
            let e = err(s);
            assert!(!e.contains("SENTINELPW"), "{s}: {e}");
            assert_eq!(
                secrets::scrub(s).matches("SENTINELPW").count(),
                0,
                "{s} is not scrubbed"
            );
        }
        assert!(err("postgresql:/app:x@h/db").contains("postgresql://"));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(err("postgresql://h/db?sslmode=sometimes").contains("invalid sslmode `sometimes`"));
        assert!(err("postgresql://h:99999/db").contains("invalid port"));
        assert!(err("host=h sslcert=/x").contains("sslcert is given without sslkey"));
        assert!(err("host=h sslmode=require sslrootcert=system").contains("verify-full"));
        assert_eq!(
            parse("host=h sslrootcert=system").sslmode().unwrap(),
            SslMode::VerifyFull
        );
        assert!(err("host=h target_session_attrs=read-write").contains("target_session_attrs"));
        assert!(err("host=h hostaddr=name.example").contains("hostaddr"));
        let c = parse("host=h sslmode=verify-ca sslrootcert=/nonexistent/ca.pem");
        let e = c
            .pg_options(&c.endpoints().unwrap()[0], SslMode::VerifyCa)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot read sslrootcert=/nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn a_lone_word_is_a_database_name() {
        let c = parse("erp");
        assert_eq!(c.database(), "erp");
        // Anything else that is neither form is refused without being quoted.
        for s in [
            "postgres//app:SENTINELPW@h/db",
            "SENTINEL@PW/x",
            "app@SENTINELPW/db",
        ] {
            let e = err(s);
            assert!(
                e.contains("neither a postgresql:// URL nor keyword=value pairs")
                    && !e.contains("SENTINEL"),
                "{s}: {e}"
            );
        }
        // A scheme-like start is named (only the scheme), and that is all.
        let e = err("app:SENTINELPW@h/db");
        assert!(
            e.contains("starts with `app`") && !e.contains("SENTINEL"),
            "{e}"
        );
    }

    #[test]
    fn pgpass_lines() {
        assert_eq!(
            split_pgpass(r"h:5432:*:u:pa\:ss:w"),
            vec!["h", "5432", "*", "u", "pa:ss:w"]
        );
    }
}
