//! The Docker provider: a container from the `postgres` image via `testcontainers`.

use std::path::Path;
use std::time::{Duration, Instant};

use testcontainers::core::Mount;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ImageExt};
use testcontainers_modules::postgres::Postgres;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use crate::watchdog::Watchdog;
use crate::{DEFAULT_IMAGE, DEFAULT_TAG, FAST_SETTINGS, IMAGE_ENV, TAG_ENV};

/// How long the daemon gets to answer a ping before Docker counts as unavailable.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// User, password and database of the container (the official image's contract).
const USER: &str = "postgres";
const PASSWORD: &str = "postgres";
const DATABASE: &str = "postgres";
/// The data directory inside the container (the official image's, up to PostgreSQL 17).
const PGDATA: &str = "/var/lib/postgresql/data";

/// A running container; removed on drop.
pub(crate) struct DockerServer {
    pub(crate) base_url: Url,
    id: String,
    container: Option<ContainerAsync<Postgres>>,
    watchdog: Option<Watchdog>,
}

impl DockerServer {
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) async fn start() -> Result<DockerServer, String> {
        let host = docker_host();
        ping(&host).await?;

        let image = env_or(IMAGE_ENV, DEFAULT_IMAGE);
        let tag = env_or(TAG_ENV, DEFAULT_TAG);
        let reference = format!("{image}:{tag}");
        let present = image_present(&host, &reference).await;
        if present == Some(false) {
            tracing::warn!(
                "image {reference} is not present locally: testcontainers will try to pull it \
                 (without a registry, build a stand-in with ci/postgres-image.sh)"
            );
        }

        let mut cmd = Vec::new();
        for (name, value) in FAST_SETTINGS {
            cmd.push("-c".to_string());
            cmd.push(format!("{name}={value}"));
        }
        let started = Instant::now();
        let container = Postgres::default()
            .with_user(USER)
            .with_password(PASSWORD)
            .with_db_name(DATABASE)
            .with_name(image.as_str())
            .with_tag(tag.as_str())
            .with_cmd(cmd)
            // Honoured by the official image and the stand-in: skips initdb's fsyncs (~2 s).
            .with_env_var("POSTGRES_INITDB_ARGS", "--no-sync")
            // Data on tmpfs: CREATE DATABASE .. TEMPLATE takes ~15 ms instead of ~110 ms.
            .with_env_var("PGDATA", PGDATA)
            .with_mount(Mount::tmpfs_mount(PGDATA))
            .with_label("org.wasmig.throwaway.pid", std::process::id().to_string())
            .with_startup_timeout(Duration::from_secs(120))
            .start()
            .await
            .map_err(|e| {
                let e = e.to_string();
                if present == Some(false) || e.contains("pull") || e.contains("No such image") {
                    format!(
                        "image {reference} is not present locally and could not be pulled ({e}): \
                         build a local stand-in with ci/postgres-image.sh (or `docker pull \
                         {reference}` where a registry is reachable)"
                    )
                } else {
                    format!("cannot start a container from {reference}: {e}")
                }
            })?;
        let id = container.id().to_string();
        let short = id.chars().take(12).collect::<String>();
        let watchdog = spawn_watchdog(&id);
        let ready_in = started.elapsed();

        let endpoint = async {
            let h = container.get_host().await?;
            let p = container.get_host_port_ipv4(5432).await?;
            Ok::<_, testcontainers::TestcontainersError>((h, p))
        };
        let (host_name, port) = endpoint.await.map_err(|e| {
            format!("container {short} from {reference} has no reachable port 5432: {e}")
        })?;
        let base_url = Url::parse(&format!(
            "postgres://{USER}:{PASSWORD}@{host_name}:{port}/{DATABASE}"
        ))
        .map_err(|e| format!("bad URL for container {short}: {e}"))?;
        tracing::info!(
            container = %short,
            image = %reference,
            elapsed_ms = ready_in.as_millis() as u64,
            "container started and ready"
        );
        Ok(DockerServer {
            base_url,
            id,
            container: Some(container),
            watchdog,
        })
    }
}

impl Drop for DockerServer {
    fn drop(&mut self) {
        if let Some(container) = self.container.take() {
            tracing::debug!(container = %self.id, "removing container");
            if tokio::runtime::Handle::try_current().is_ok() {
                // testcontainers removes it, with the runtime's help.
                drop(container);
            } else {
                let _ = std::thread::spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(async move { drop(container) }),
                        // The watchdog cannot help either (it is killed below): use the CLI.
                        Err(_) => {
                            let _ = std::process::Command::new("docker")
                                .args(["rm", "-f", "-v", container.id()])
                                .output();
                            std::mem::forget(container);
                        }
                    }
                })
                .join();
            }
        }
        drop(self.watchdog.take());
    }
}

fn spawn_watchdog(id: &str) -> Option<Watchdog> {
    if find_on_path("docker").is_none() {
        tracing::warn!(
            "the docker CLI is not on PATH: container {id} will outlive this process unless \
             its Server is dropped"
        );
        return None;
    }
    Watchdog::spawn(
        &format!("container {}", &id[..12.min(id.len())]),
        "docker rm -f -v \"$1\" >/dev/null 2>&1",
        &[id],
    )
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

pub(crate) fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| is_executable(p))
    })
}

pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Docker daemon address, resolved like testcontainers does: `DOCKER_HOST`, else the
/// first existing socket of the usual places, else `unix:///var/run/docker.sock`.
fn docker_host() -> String {
    if let Some(h) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return h;
    }
    let mut candidates = vec!["/var/run/docker.sock".to_string()];
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        candidates.push(format!(
            "{}/.docker/run/docker.sock",
            Path::new(&dir).display()
        ));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let home = Path::new(&home).display().to_string();
        candidates.push(format!("{home}/.docker/run/docker.sock"));
        candidates.push(format!("{home}/.docker/desktop/docker.sock"));
    }
    candidates
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(|p| format!("unix://{p}"))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// Checks quickly that the daemon answers `GET /_ping`.
async fn ping(host: &str) -> Result<(), String> {
    let hint = "start the Docker daemon (`ci/install-docker.sh` installs and starts dockerd), \
                or point DOCKER_HOST at a running one";
    match get(host, "/_ping").await {
        Ok(Some((200, _))) => Ok(()),
        Ok(Some((status, body))) => Err(format!(
            "the Docker daemon at {host} answered /_ping with HTTP {status} ({}): {hint}",
            body.trim()
        )),
        Ok(None) => Ok(()), // Not checkable here (TLS, ssh, npipe): testcontainers will tell.
        Err(e) => Err(format!(
            "the Docker daemon is not reachable at {host} ({e}): {hint}"
        )),
    }
}

/// `Some(true)` when the image is present, `Some(false)` when not, `None` when unknown.
async fn image_present(host: &str, reference: &str) -> Option<bool> {
    match get(host, &format!("/images/{reference}/json")).await {
        Ok(Some((200, _))) => Some(true),
        Ok(Some((404, _))) => Some(false),
        _ => None,
    }
}

/// A bare HTTP/1.0 GET on the Docker API: `Ok(None)` when the address is not a plain unix or
/// tcp socket.
async fn get(host: &str, path: &str) -> Result<Option<(u16, String)>, String> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    let exchange = async {
        let response = if let Some(socket) = host.strip_prefix("unix://") {
            let mut s = tokio::net::UnixStream::connect(socket).await?;
            s.write_all(request.as_bytes()).await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            buf
        } else if let Some(addr) = host.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            if std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| v == "1") {
                return Ok(None); // Reachable; TLS is testcontainers' business.
            }
            s.write_all(request.as_bytes()).await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            buf
        } else {
            return Ok(None);
        };
        Ok::<_, std::io::Error>(Some(response))
    };
    let response = tokio::time::timeout(PING_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {}s", PING_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let Some(response) = response else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| "not an HTTP answer".to_string())?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok(Some((status, body)))
}
