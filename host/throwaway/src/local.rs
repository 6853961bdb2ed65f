//! The local provider: a cluster made with the PostgreSQL binaries of this machine.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use url::Url;

use crate::FAST_SETTINGS;
use crate::docker::{find_on_path, is_executable};
use crate::watchdog::Watchdog;

/// Environment variable naming the directory of `initdb` and `pg_ctl` (optional).
pub(crate) const BINDIR_ENV: &str = "WASMIG_PG_BINDIR";
/// Environment variable naming the user the cluster runs as when we are root (optional).
pub(crate) const USER_ENV: &str = "WASMIG_PG_LOCAL_USER";
const INSTALL_HINT: &str = "install the PostgreSQL server (Debian: apt-get install postgresql-15), \
                            or set WASMIG_PG_BINDIR to the directory of initdb and pg_ctl";
const SUPERUSER: &str = "postgres";
const MAX_CONNECTIONS: u32 = 200;

/// A running cluster in a temporary directory; stopped and removed on drop.
pub(crate) struct LocalCluster {
    pub(crate) base_url: Url,
    dir: Option<tempfile::TempDir>,
    data: PathBuf,
    bindir: PathBuf,
    run_as: RunAs,
    postmaster_pid: u32,
    watchdog: Option<Watchdog>,
}

/// Who runs initdb, pg_ctl and the server: PostgreSQL refuses to run as root.
#[derive(Clone)]
enum RunAs {
    Me,
    User {
        name: String,
        uid: u32,
        gid: u32,
        via: Via,
    },
}

#[derive(Clone)]
enum Via {
    Runuser(PathBuf),
    Setpriv(PathBuf),
}

impl RunAs {
    fn detect() -> Result<RunAs, String> {
        if command_stdout("id", &["-u"]).as_deref() != Some("0") {
            return Ok(RunAs::Me);
        }
        let name = match std::env::var(USER_ENV).ok().filter(|u| !u.is_empty()) {
            Some(u) => u,
            None if command_stdout("id", &["-u", "postgres"]).is_some() => "postgres".to_string(),
            None => "nobody".to_string(),
        };
        let id = |flag: &str| {
            command_stdout("id", &[flag, &name])
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| {
                    format!("running as root and user {name:?} does not exist: set {USER_ENV}")
                })
        };
        let (uid, gid) = (id("-u")?, id("-g")?);
        let via = if let Some(p) = find_tool("runuser") {
            Via::Runuser(p)
        } else if let Some(p) = find_tool("setpriv") {
            Via::Setpriv(p)
        } else {
            return Err(
                "running as root (PostgreSQL refuses to) and neither runuser nor setpriv \
                        is available to switch to an unprivileged user: install util-linux"
                    .to_string(),
            );
        };
        Ok(RunAs::User {
            name,
            uid,
            gid,
            via,
        })
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            RunAs::Me => Command::new(program),
            RunAs::User {
                name,
                via: Via::Runuser(runuser),
                ..
            } => {
                let mut c = Command::new(runuser);
                c.args(["-u", name, "--"]).arg(program);
                c
            }
            RunAs::User {
                uid,
                gid,
                via: Via::Setpriv(setpriv),
                ..
            } => {
                let mut c = Command::new(setpriv);
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--"])
                    .arg(program);
                c
            }
        }
    }

    fn chown(&self, path: &Path) -> Result<(), String> {
        if let RunAs::User { uid, gid, .. } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

impl LocalCluster {
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Starts a cluster from `bindir`, or from the directory [`find_bindir`] picks.
    pub(crate) async fn start(bindir: Option<PathBuf>) -> Result<LocalCluster, String> {
        let started = Instant::now();
        let bindir = match bindir {
            Some(d) if is_executable(&d.join("initdb")) && is_executable(&d.join("pg_ctl")) => d,
            Some(d) => {
                return Err(format!(
                    "{} has no initdb and pg_ctl: {INSTALL_HINT}",
                    d.display()
                ));
            }
            None => find_bindir()?,
        };
        let run_as = RunAs::detect()?;
        // The unprivileged user must reach the directory: root's TMPDIR may be private.
        let parent = match run_as {
            RunAs::Me => std::env::temp_dir(),
            RunAs::User { .. } => PathBuf::from("/tmp"),
        };
        let dir = tempfile::Builder::new()
            .prefix("wasmig-pg-")
            .tempdir_in(&parent)
            .map_err(|e| {
                format!(
                    "cannot create a temporary directory in {}: {e}",
                    parent.display()
                )
            })?;
        run_as.chown(dir.path())?;
        let data = dir.path().join("data");
        let password = random_password();

        // initdb
        let pwfile = dir.path().join("pwfile");
        write_private(&pwfile, &format!("{password}\n"))?;
        run_as.chown(&pwfile)?;
        let mut initdb = run_as.command(&bindir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .arg(format!("--username={SUPERUSER}"))
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "--auth=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .arg("--no-sync");
        run(initdb, dir.path(), "initdb").await?;
        let _ = std::fs::remove_file(&pwfile);
        let mut conf = String::from("\n# wasmig-throwaway\n");
        let _ = writeln!(conf, "listen_addresses = '127.0.0.1'");
        let _ = writeln!(conf, "unix_socket_directories = '{}'", dir.path().display());
        let _ = writeln!(conf, "max_connections = {MAX_CONNECTIONS}");
        for (name, value) in FAST_SETTINGS {
            let _ = writeln!(conf, "{name} = {value}");
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .map_err(|e| format!("cannot write postgresql.conf: {e}"))?;
        let initdb_done = started.elapsed();

        // pg_ctl start, on a free port (another process may take it meanwhile: retry).
        let log = dir.path().join("postgres.log");
        let mut attempt = 0;
        let port = loop {
            attempt += 1;
            let port = free_port()?;
            let mut pg_ctl = run_as.command(&bindir.join("pg_ctl"));
            pg_ctl
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {port}"))
                .arg("start");
            match run(pg_ctl, dir.path(), "pg_ctl start").await {
                Ok(()) => break port,
                Err(e) => {
                    let log_tail = tail(&log, 15);
                    let port_taken = log_tail.contains("could not bind")
                        || log_tail.contains("Address already in use");
                    if port_taken && attempt < 5 {
                        tracing::debug!(port, "port taken, retrying");
                        let _ = std::fs::remove_file(&log);
                        continue;
                    }
                    return Err(format!("{e}\nserver log ({}):\n{log_tail}", log.display()));
                }
            }
        };
        let postmaster_pid = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
            .ok_or_else(|| format!("cannot read {}", data.join("postmaster.pid").display()))?;
        let watchdog = Watchdog::spawn(
            &format!("local cluster {}", dir.path().display()),
            "kill -QUIT \"$1\" 2>/dev/null; i=0; \
             while kill -0 \"$1\" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; \
             kill -KILL \"$1\" 2>/dev/null; rm -rf \"$2\"",
            &[
                &postmaster_pid.to_string(),
                &dir.path().display().to_string(),
            ],
        );
        let base_url = Url::parse(&format!(
            "postgres://{SUPERUSER}:{password}@127.0.0.1:{port}/postgres"
        ))
        .map_err(|e| format!("bad URL for the local cluster: {e}"))?;
        let user = match &run_as {
            RunAs::Me => "the current user".to_string(),
            RunAs::User { name, .. } => format!("user {name}"),
        };
        tracing::info!(
            bindir = %bindir.display(),
            dir = %dir.path().display(),
            port,
            initdb_ms = initdb_done.as_millis() as u64,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "local cluster started as {user}"
        );
        Ok(LocalCluster {
            base_url,
            dir: Some(dir),
            data,
            bindir,
            run_as,
            postmaster_pid,
            watchdog,
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        tracing::debug!(dir = %self.data.display(), "stopping local cluster");
        let mut pg_ctl = self.run_as.command(&self.bindir.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "10", "stop"])
            .stdin(Stdio::null());
        if let Some(dir) = &self.dir {
            pg_ctl.current_dir(dir.path());
        }
        let stopped = pg_ctl.output().is_ok_and(|o| o.status.success());
        if !stopped {
            let pid = self.postmaster_pid.to_string();
            let _ = Command::new("kill").args(["-QUIT", &pid]).output();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            tracing::warn!("cannot remove the local cluster's directory: {e}");
        }
        drop(self.watchdog.take());
    }
}

/// The directory of `initdb` and `pg_ctl`: `WASMIG_PG_BINDIR`, then `PATH`, then the newest
/// `/usr/lib/postgresql/<version>/bin`, then `/usr/local/pgsql/bin`.
fn find_bindir() -> Result<PathBuf, String> {
    let complete = |d: &Path| is_executable(&d.join("initdb")) && is_executable(&d.join("pg_ctl"));
    if let Some(d) = std::env::var_os(BINDIR_ENV).filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        return if complete(&d) {
            Ok(d)
        } else {
            Err(format!(
                "{BINDIR_ENV}={} has no initdb and pg_ctl: {INSTALL_HINT}",
                d.display()
            ))
        };
    }
    if let Some(d) = find_on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
        && complete(&d)
    {
        return Ok(d);
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let version = name
                .split('.')
                .map(|p| p.parse::<u32>().ok())
                .collect::<Option<Vec<_>>>()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, d)| complete(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Ok(d);
    }
    let d = PathBuf::from("/usr/local/pgsql/bin");
    if complete(&d) {
        return Ok(d);
    }
    Err(format!(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, in {BINDIR_ENV} or under \
         /usr/lib/postgresql/*/bin: {INSTALL_HINT}"
    ))
}

fn find_tool(name: &str) -> Option<PathBuf> {
    find_on_path(name).or_else(|| {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| is_executable(p))
    })
}

async fn run(mut command: Command, cwd: &Path, what: &str) -> Result<(), String> {
    // cwd: the unprivileged user may not be allowed into ours (e.g. /root).
    command.current_dir(cwd).stdin(Stdio::null());
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let last: Vec<&str> = text.lines().rev().take(15).collect();
    let last: Vec<&str> = last.into_iter().rev().collect();
    Err(format!(
        "{what} failed ({}):\n{}",
        output.status,
        last.join("\n")
    ))
}

fn command_stdout(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn write_private(path: &Path, content: &str) -> Result<(), String> {
    std::fs::File::create(path)
        .and_then(|mut f| {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(content.as_bytes())
        })
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free TCP port on 127.0.0.1: {e}"))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// 32 hex digits from the std library's randomly keyed hasher (good enough for a throwaway
/// cluster on 127.0.0.1; keeps the dependency list short).
fn random_password() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u8 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.write_u32(std::process::id());
        let _ = write!(out, "{:016x}", h.finish());
    }
    out
}
