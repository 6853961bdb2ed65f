//! A detached `sh` process that cleans up after this process once it has exited.
//!
//! The server behind [`crate::shared`] lives in a static and is never dropped, and a test
//! process can be killed; the watchdog polls our pid every second and runs its cleanup
//! script as soon as we are gone. It runs in its own process group (a Ctrl-C on the terminal
//! does not kill it before it has cleaned up) with its stdio on /dev/null (it does not hold
//! the test runner's pipes open). Dropping a [`Watchdog`] kills it: the owner cleans up itself.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// A running watchdog; killed on drop.
pub(crate) struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Spawns `sh -c 'while kill -0 <our pid>; do sleep 1; done; <cleanup>'`. In `cleanup`,
    /// `$1`, `$2`, .. are `args` (no quoting needed for them).
    pub(crate) fn spawn(what: &str, cleanup: &str, args: &[&str]) -> Option<Watchdog> {
        let script = format!(
            "pid=$1; shift; while kill -0 \"$pid\" 2>/dev/null; do sleep 1; done; {cleanup}"
        );
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("wasmig-throwaway-watchdog")
            .arg(std::process::id().to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        match spawned {
            Ok(child) => {
                tracing::debug!(pid = child.id(), "watchdog for {what} started");
                Some(Watchdog { child })
            }
            Err(e) => {
                tracing::warn!(
                    "cannot start the watchdog for {what} ({e}): it will outlive this process \
                     unless dropped"
                );
                None
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
