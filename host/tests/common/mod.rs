//! A real PostgreSQL cluster for the connection tests, started from the local
//! binaries (`initdb`, `pg_ctl` on PATH or `WASMIG_PG_BINDIR`) in a temporary
//! directory, with TLS: a CA, a server certificate for `localhost` and
//! 127.0.0.1, and a client certificate, all made here with rcgen. As root it
//! runs as the `postgres` user (PostgreSQL refuses root), as
//! `host/throwaway` does.
//!
//! pg_hba.conf: Unix socket trust; over TCP only SSL (`hostssl`), except for
//! the superuser `plain`, who may also connect in plain text; `certuser` logs
//! in by client certificate only. The server listens on 127.0.0.1 (in the
//! certificate) and 127.0.0.2 (not in it).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// The superuser's password: a sentinel the sweep looks for in every output.
pub const PASSWORD: &str = "Sntl@9f/Kq7zX#p";

/// A running cluster; stopped and removed on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    /// PEM of the CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// PEM of a CA that signed nothing here (for "not trusted").
    pub other_ca: PathBuf,
    /// Client certificate and key for `certuser`, signed by `ca`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate and key signed by `other_ca`: the server's TLS handshake refuses it.
    pub bad_client_cert: PathBuf,
    pub bad_client_key: PathBuf,
    bindir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `WASMIG_PG_BINDIR`, else `initdb` on PATH, else the newest `/usr/lib/postgresql/*/bin` (Debian).
fn bindir() -> PathBuf {
    if let Some(d) = std::env::var_os("WASMIG_PG_BINDIR") {
        return PathBuf::from(d);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("sh");
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !p.is_empty() {
        return PathBuf::from(p).parent().unwrap().to_path_buf();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d): &(u32, PathBuf)| d.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().map(|(_, d)| d).expect(
        "these tests start their own PostgreSQL with TLS from the local server binaries: install them \
         (Debian: apt-get install postgresql-15) or set WASMIG_PG_BINDIR to the directory of initdb and pg_ctl",
    )
}

fn as_server(program: &Path) -> Command {
    if root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn chown(path: &Path) {
    if root() {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

fn check(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair, CertificateParams) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = p.clone().self_signed(&key).unwrap();
    (cert, key, p)
}

impl Cluster {
    /// Starts a cluster; `ssl` = whether the server offers TLS at all.
    pub fn start(ssl: bool) -> Cluster {
        let tmp = tempfile::Builder::new()
            .prefix("wasmig-conn-")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let data = dir.join("data");
        let bindir = bindir();

        // Certificates.
        let (ca_cert, ca_key, ca_params) = ca("wasmig test CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let mut sp = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        sp.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        sp.distinguished_name.push(DnType::CommonName, "localhost");
        let server_key = KeyPair::generate().unwrap();
        let server_cert = sp.signed_by(&server_key, &issuer).unwrap();
        let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.distinguished_name.push(DnType::CommonName, "certuser");
        let client_key = KeyPair::generate().unwrap();
        let client_cert = cp.signed_by(&client_key, &issuer).unwrap();
        let (other_ca, other_key, other_params) = ca("someone else's CA");
        let other_issuer = Issuer::new(other_params, other_key);
        let bad_key = KeyPair::generate().unwrap();
        let bad_cert = cp.signed_by(&bad_key, &other_issuer).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        };
        let ca = write("ca.crt", &ca_cert.pem());
        let other_ca = write("other-ca.crt", &other_ca.pem());
        write("server.crt", &server_cert.pem());
        write("server.key", &server_key.serialize_pem());
        let client_cert = write("client.crt", &client_cert.pem());
        let client_key = write("client.key", &client_key.serialize_pem());
        let bad_client_cert = write("bad-client.crt", &bad_cert.pem());
        let bad_client_key = write("bad-client.key", &bad_key.serialize_pem());
        let pwfile = write("pwfile", &format!("{PASSWORD}\n"));
        chown(&dir);
        // The client files stay readable by this process (root or the test user).
        let _ = Command::new("chown")
            .arg(format!("{}", std::process::id()))
            .arg(&client_key)
            .status();
        if root() {
            let _ = Command::new("chown")
                .args(["root:root"])
                .arg(&client_key)
                .arg(&client_cert)
                .status();
        }

        let mut initdb = as_server(&bindir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .arg("--username=postgres")
            .arg(format!("--pwfile={}", pwfile.display()));
        initdb.args([
            "--auth=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        check(initdb.current_dir(&dir).output().unwrap(), "initdb");
        let _ = std::fs::remove_file(&pwfile);

        let port = free_port();
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1,127.0.0.2'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nlog_connections = on\nmax_connections = 50\n",
            dir.display()
        );
        if ssl {
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\nssl_ca_file = '{0}/ca.crt'\n",
                dir.display()
            ));
        }
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pg_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).unwrap();
        let hba = if ssl {
            "local all all trust\n\
             hostssl all certuser 127.0.0.0/8 cert\n\
             host all plain 127.0.0.0/8 scram-sha-256\n\
             hostssl all all 127.0.0.0/8 scram-sha-256\n"
        } else {
            "local all all trust\nhost all all 127.0.0.0/8 scram-sha-256\n"
        };
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        chown(&dir);
        let mut pg_ctl = as_server(&bindir.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        check(pg_ctl.current_dir(&dir).output().unwrap(), "pg_ctl start");
        let c = Cluster {
            dir,
            port,
            ca,
            other_ca,
            client_cert,
            client_key,
            bad_client_cert,
            bad_client_key,
            bindir,
            _tmp: tmp,
        };
        c.psql("postgres", &format!("CREATE ROLE certuser LOGIN CREATEDB; CREATE ROLE plain LOGIN SUPERUSER PASSWORD '{PASSWORD}'"));
        c
    }

    /// Runs SQL as the superuser through the Unix socket (trust); panics on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .env_remove("PGPASSWORD")
            .output()
            .expect("psql");
        check(out.clone(), &format!("psql {sql}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A keyword/value string for `host` as the superuser `postgres` (SSL only), plus `extra`.
    pub fn kv(&self, host: &str, extra: &str) -> String {
        self.kv_as("postgres", host, extra)
    }

    /// The same as `user` (`plain` may connect without SSL).
    pub fn kv_as(&self, user: &str, host: &str, extra: &str) -> String {
        format!(
            "host={host} port={} user={user} password={PASSWORD} dbname=postgres {extra}",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut pg_ctl = as_server(&self.bindir.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .current_dir(&self.dir);
        let _ = pg_ctl.output();
    }
}

/// The `wasmig` binary under test (`WASMIG_TEST_BIN` runs the tests against another build).
pub fn bin() -> PathBuf {
    std::env::var_os("WASMIG_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wasmig")))
}

/// Runs wasmig with `DATABASE_URL` = `conninfo` and no other PG* settings.
pub fn wasmig(conninfo: &str, args: &[&str]) -> Output {
    wasmig_env(Some(conninfo), &[], args)
}

/// Runs wasmig with an optional `DATABASE_URL` and extra environment.
pub fn wasmig_env(conninfo: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for v in [
        "DATABASE_URL",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "WASMIG_LOG",
    ] {
        cmd.env_remove(v);
    }
    if let Some(c) = conninfo {
        cmd.env("DATABASE_URL", c);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run wasmig")
}

/// stdout and stderr together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
