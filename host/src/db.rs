//! Connecting to PostgreSQL, reading the catalog, and turning driver errors
//! into messages that say what to do. Connection settings come from
//! [`crate::conninfo`]; every message shows them redacted, and every error is
//! scrubbed of the passwords seen.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnection;

use crate::conninfo::{ConnInfo, Endpoint, SslMode, secrets};

use crate::component::{Catalog, Plugin};
use crate::error::MigrateError;
// Re-exported: most callers format driver errors next to their other database calls.
pub use crate::error::describe;

/// Opens one connection to the server a connection string names (URL, keyword/value
/// string, or empty for the `PG*` environment), with a timeout and a clear error.
pub async fn connect(conninfo: &str, timeout: Duration) -> Result<PgConnection, MigrateError> {
    let info = ConnInfo::parse(conninfo).map_err(|e| MigrateError::BadUrl {
        reason: e.to_string(),
    })?;
    connect_info(&info, timeout).await
}

/// Opens one connection with parsed settings: each host in turn (libpq's host list), with
/// `sslmode` as libpq means it. `allow` tries plain text and then TLS when the server
/// refuses plain text; `prefer` tries TLS when the server offers it and falls back to
/// plain text when the TLS attempt fails; `require` and stronger never fall back.
/// `timeout` bounds each attempt (`connect_timeout` in the settings wins when given).
pub async fn connect_info(
    info: &ConnInfo,
    timeout: Duration,
) -> Result<PgConnection, MigrateError> {
    connect_logged(info, timeout, true).await
}

/// [`connect_info`], with sqlx's statement logging on or off (off for pollers).
pub(crate) async fn connect_logged(
    info: &ConnInfo,
    timeout: Duration,
    log_statements: bool,
) -> Result<PgConnection, MigrateError> {
    let info = info.with_default_application_name("wasmig");
    for note in info.notes() {
        tracing::debug!("connection string: {note}");
    }
    let shown = info.target();
    let bad = |e: crate::conninfo::ConnInfoError| MigrateError::BadUrl {
        reason: e.to_string(),
    };
    let mode = info.effective_sslmode().map_err(bad)?;
    let timeout = if info.get("connect_timeout").is_some() {
        info.connect_timeout()
    } else {
        timeout
    };
    let endpoints = info.endpoints().map_err(bad)?;
    let mut failures = Vec::new();
    for endpoint in &endpoints {
        let attempts = match mode {
            SslMode::Allow => vec![SslMode::Disable, SslMode::Require],
            SslMode::Prefer => vec![SslMode::Prefer, SslMode::Disable],
            m => vec![m],
        };
        let mut last = None;
        for (i, &attempt) in attempts.iter().enumerate() {
            // sqlx 0.8 checks the host name in verify-ca too (transact-rs/sqlx#3793): the chain is
            // checked here against exactly the CAs libpq would trust, and sqlx then encrypts
            // without checking again.
            let attempt = if attempt == SslMode::VerifyCa && !endpoint.is_socket() {
                if let Err(e) = verify_ca(&info, endpoint, timeout).await {
                    last = Some((e, attempt));
                    break;
                }
                SslMode::Require
            } else {
                attempt
            };
            let options = info.pg_options(endpoint, attempt).map_err(bad)?;
            let options = if log_statements {
                options
                    .log_statements(tracing::log::LevelFilter::Debug)
                    // Index builds are slow on purpose; that is not worth a warning.
                    .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(1))
            } else {
                options.disable_statement_logging()
            };
            tracing::debug!(
                "connecting to {endpoint} as {} (sslmode {attempt})",
                info.user()
            );
            let outcome = match tokio::time::timeout(timeout, options.connect()).await {
                Err(_) => Err(Failure::Timeout),
                Ok(Err(e)) => Err(Failure::Driver(e)),
                Ok(Ok(conn)) => Ok(conn),
            };
            match outcome {
                Ok(mut conn) => {
                    // Before anything else: an unsupported server is refused with the supported range.
                    crate::server::check_version(&mut conn).await?;
                    return Ok(conn);
                }
                Err(f) => {
                    let retry = i + 1 < attempts.len() && f.worth_another_sslmode(attempt);
                    if retry {
                        tracing::debug!(
                            "{endpoint} (sslmode {attempt}): {}; trying sslmode {}",
                            f.explain(&info, endpoint, attempt),
                            attempts[i + 1]
                        );
                    }
                    last = Some((f, attempt));
                    if !retry {
                        break;
                    }
                }
            }
        }
        if let Some((f, attempt)) = last {
            let why = f.explain(&info, endpoint, attempt);
            if endpoints.len() > 1 {
                tracing::debug!("{endpoint}: {why}");
            }
            failures.push((endpoint.to_string(), why, f.code()));
        }
    }
    let reason = match failures.as_slice() {
        [(_, why, _)] => why.clone(),
        many => many
            .iter()
            .map(|(e, why, _)| format!("{e}: {why}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Err(MigrateError::Connect {
        url: shown,
        reason: secrets::scrub(&reason),
    })
}

/// One failed connection attempt.
enum Failure {
    Timeout,
    Driver(sqlx::Error),
}

/// libpq's verify-ca: a TLS handshake with `endpoint` whose certificate chain must lead to a CA
/// of `sslrootcert` (or `~/.postgresql/root.crt`; the bundled public roots for `system`), the
/// host name not checked. The client certificate, if any, is presented as in the real
/// connection.
async fn verify_ca(info: &ConnInfo, endpoint: &Endpoint, timeout: Duration) -> Result<(), Failure> {
    let tls = |e: rustls::Error| Failure::Driver(sqlx::Error::Tls(Box::new(e)));
    let other = |msg: String| Failure::Driver(sqlx::Error::Tls(msg.into()));
    let root = match info.get("sslrootcert") {
        Some(r) => Some(r.to_string()),
        None => std::env::var_os("HOME")
            .map(|h| std::path::Path::new(&h).join(".postgresql/root.crt"))
            .filter(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned()),
    };
    let roots = match root.as_deref() {
        Some("system") => {
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
        }
        Some(path) => {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            let mut store = rustls::RootCertStore::empty();
            let pem = std::fs::read(path)
                .map_err(|e| other(format!("cannot read sslrootcert={path}: {e}")))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    other(format!(
                        "sslrootcert={path} is not a PEM certificate file: {e}"
                    ))
                })?;
                store.add(cert).map_err(tls)?;
            }
            if store.is_empty() {
                return Err(other(format!("sslrootcert={path} holds no certificate")));
            }
            store
        }
        None => {
            return Err(other(
                "sslmode=verify-ca needs the CA certificate that signed the server's: set sslrootcert=/path/to/ca.pem".into(),
            ));
        }
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| other(e.to_string()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(ChainOnly(verifier)));
    let config = match (info.get("sslcert"), info.get("sslkey")) {
        (Some(c), Some(k)) => {
            use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
            let chain = CertificateDer::pem_file_iter(c)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| other(format!("cannot read sslcert={c}: {e}")))?;
            let key = PrivateKeyDer::from_pem_file(k)
                .map_err(|e| other(format!("cannot read sslkey={k}: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(tls)?
        }
        _ => builder.with_no_client_auth(),
    };
    let name =
        rustls::pki_types::ServerName::try_from(endpoint.host.clone()).unwrap_or_else(|_| {
            rustls::pki_types::ServerName::try_from("localhost").expect("a valid name")
        });
    let addr = (
        endpoint
            .hostaddr
            .clone()
            .unwrap_or_else(|| endpoint.host.clone()),
        endpoint.port,
    );
    let handshake = tokio::task::spawn_blocking(move || -> Result<(), Failure> {
        use std::io::{Read, Write};
        use std::net::ToSocketAddrs;
        let io = |e: std::io::Error| Failure::Driver(sqlx::Error::Io(e));
        let mut last = None;
        let mut sock = None;
        for a in addr.to_socket_addrs().map_err(io)? {
            match std::net::TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let mut sock = sock.ok_or_else(|| {
            io(last
                .unwrap_or_else(|| std::io::Error::other("the host name resolves to no address")))
        })?;
        sock.set_read_timeout(Some(timeout)).map_err(io)?;
        sock.set_write_timeout(Some(timeout)).map_err(io)?;
        // SSLRequest: length 8, code 80877103.
        sock.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
            .map_err(io)?;
        let mut answer = [0u8; 1];
        sock.read_exact(&mut answer).map_err(io)?;
        if answer[0] != b'S' {
            return Err(Failure::Driver(sqlx::Error::Tls(
                "server does not support TLS".into(),
            )));
        }
        let mut conn =
            rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(tls)?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                let inner = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .cloned();
                return Err(match inner {
                    Some(t) => tls(t),
                    None => io(e),
                });
            }
        }
        conn.send_close_notify();
        let _ = conn.complete_io(&mut sock);
        Ok(())
    });
    match tokio::time::timeout(timeout + Duration::from_secs(1), handshake).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) => Err(other(format!("the TLS check stopped: {e}"))),
        Ok(Ok(r)) => r,
    }
}

/// A verifier that checks the chain and the signatures but not the host name (libpq's verify-ca).
#[derive(Debug)]
struct ChainOnly(std::sync::Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError as C, Error as E};
        // webpki checks the chain before the name: a name error means the chain is trusted.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. })) => {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl Failure {
    fn code(&self) -> Option<String> {
        match self {
            Failure::Driver(e) => sqlstate(e),
            Failure::Timeout => None,
        }
    }

    /// libpq's fallbacks: `allow` retries with TLS when the plain attempt was refused by
    /// pg_hba.conf (hostssl only); `prefer` retries in plain text when the TLS attempt failed
    /// (handshake, or pg_hba.conf refusing SSL connections: hostnossl).
    fn worth_another_sslmode(&self, attempt: SslMode) -> bool {
        match (self, attempt) {
            (Failure::Driver(e), SslMode::Disable) => is_hba_reject(e),
            (Failure::Driver(e), SslMode::Prefer) if is_tls(e) => true,
            (Failure::Driver(e), SslMode::Prefer) => is_hba_reject(e),
            _ => false,
        }
    }

    fn explain(&self, info: &ConnInfo, endpoint: &Endpoint, attempt: SslMode) -> String {
        match self {
            Failure::Timeout => format!(
                "no answer from {endpoint} in time: check the host and port, and that the server accepts connections"
            ),
            Failure::Driver(e) => secrets::scrub(&explain_connect(e, info, endpoint, attempt)),
        }
    }
}

/// A TLS failure: sqlx reports some as `Tls`, a failed handshake as an I/O error wrapping rustls' error.
fn is_tls(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io.get_ref().is_some_and(|i| i.is::<rustls::Error>()),
        _ => false,
    }
}

/// 28000 from pg_hba.conf ("no pg_hba.conf entry for host ..."): the server refused this
/// kind of connection before any password was checked.
fn is_hba_reject(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("28000") && db.message().contains("pg_hba.conf"))
}

fn explain_connect(
    e: &sqlx::Error,
    info: &ConnInfo,
    endpoint: &Endpoint,
    attempt: SslMode,
) -> String {
    if let sqlx::Error::Database(db) = e {
        let msg = db.message();
        let hint = match db.code().as_deref() {
            Some("28000") if msg.contains("no encryption") => format!(
                ": the server requires SSL for this connection (pg_hba.conf allows only hostssl), and sslmode={attempt} sent none: \
                 use sslmode=require, or sslmode=verify-full with sslrootcert=/path/to/ca.pem"
            ),
            Some("28000") if msg.contains("SSL encryption") => {
                ": the server refuses SSL connections for this user and database (pg_hba.conf hostnossl): use sslmode=prefer or disable".into()
            }
            Some("28000") if msg.contains("pg_hba.conf") => {
                ": the server's pg_hba.conf has no line for this host, user and database: ask its administrator to add one".into()
            }
            Some("28P01") | Some("28000") => ": check the user and password".into(),
            Some("3D000") => ": create the database first, or fix its name in the connection string".into(),
            Some("53300") => ": the server has no free connection slots; try again later".into(),
            _ => String::new(),
        };
        return format!("{msg}{hint}");
    }
    if let sqlx::Error::Tls(tls) = e {
        return explain_tls(tls.as_ref(), info, endpoint, attempt);
    }
    if let sqlx::Error::Io(io) = e {
        // sqlx reports a failed TLS handshake as an I/O error wrapping rustls' error.
        if let Some(tls) = io.get_ref().filter(|i| i.is::<rustls::Error>()) {
            return explain_tls(tls, info, endpoint, attempt);
        }
        return format!("{io}: is PostgreSQL running there and reachable from here?");
    }
    e.to_string()
}

fn explain_tls(
    e: &(dyn std::error::Error + Send + Sync + 'static),
    info: &ConnInfo,
    endpoint: &Endpoint,
    attempt: SslMode,
) -> String {
    use rustls::{CertificateError, Error as TlsError};
    let raw = e.to_string();
    if raw.contains("server does not support TLS") {
        return format!(
            "the server does not support SSL (ssl = off in its postgresql.conf), and sslmode={attempt} requires it: \
             enable ssl on the server, or use sslmode=prefer or disable"
        );
    }
    let root = match info.get("sslrootcert") {
        Some(r) => format!("sslrootcert={r}"),
        None => "the public CAs".to_string(),
    };
    if let Some(TlsError::InvalidCertificate(c)) = e.downcast_ref::<TlsError>() {
        return match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the server's certificate is not trusted: it is not signed by a CA in {root}: set sslrootcert=/path/to/ca.pem to the CA \
                 that signed it (sslmode={attempt} checks it), or use sslmode=require to encrypt without checking"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "host name mismatch: the server's certificate does not name `{}` ({raw}): connect using a name the certificate lists, \
                 or use sslmode=verify-ca to check only the CA",
                    endpoint.host
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server's certificate has expired ({raw}): renew it on the server")
            }
            _ => format!("the server's certificate was refused: {raw}"),
        };
    }
    if let Some(TlsError::AlertReceived(alert)) = e.downcast_ref::<TlsError>() {
        return format!(
            "the server ended the TLS handshake ({alert:?}): it may require a client certificate (set sslcert and sslkey) or refuse the one given"
        );
    }
    if raw.contains("Invalid certificate")
        || raw.contains("no keys found")
        || raw.contains("must be given together")
    {
        return format!("cannot use the certificate or key files: {raw}");
    }
    format!("TLS failed: {raw}")
}

/// Reads the live catalog of `schema` (none = `current_schema()`): the
/// plugin's own query, decoded by the plugin.
pub async fn catalog(
    conn: &mut PgConnection,
    plugin: &Plugin,
    schema: Option<&str>,
) -> Result<Catalog, MigrateError> {
    let json = catalog_json(conn, plugin, schema).await?;
    Ok(plugin.decode_catalog(&json)??)
}

/// The catalog of `schema` (none = `current_schema()`) as the JSON text the
/// introspection query returns; the query takes the schema as `$1`.
pub async fn catalog_json(
    conn: &mut PgConnection,
    plugin: &Plugin,
    schema: Option<&str>,
) -> Result<String, MigrateError> {
    let sql = plugin.introspection_sql()?;
    sqlx::query_scalar::<_, String>(&sql)
        .bind(schema)
        .fetch_one(conn)
        .await
        .map_err(|e| MigrateError::Db(format!("reading the catalog: {e}")))
}

/// The SQLSTATE of a database error, if it is one.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.to_string()),
        _ => None,
    }
}
