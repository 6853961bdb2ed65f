//! What the CLI writes when nobody is watching: log lines on a pipe or in a
//! file carry no ANSI colour codes, and `NO_COLOR` turns them off on a terminal.

use std::process::Command;

use wasmig_tests::*;

const ESC: char = '\u{1b}';

#[tokio::test]
async fn log_lines_on_a_pipe_have_no_colour_codes() {
    let url = fresh_db().await;
    // Not the shared helper: it sets NO_COLOR, and this must hold without it.
    let out = Command::new(wasmig_bin())
        .args(["-v", "up", "--to", &chain()[0]])
        .env("DATABASE_URL", &url)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("applying"),
        "expected log lines on stderr: {err}"
    );
    assert!(!err.contains(ESC), "colour codes on a pipe: {err:?}");
}

/// `script` gives the command a real terminal; skipped nowhere: util-linux
/// is part of every Debian system.
#[tokio::test]
async fn a_terminal_gets_colour_unless_no_color_is_set() {
    let base = chain()[0].clone();
    let (a, b) = (fresh_db().await, fresh_db().await);
    let run = |url: &str, no_color: bool| {
        let cmd = format!("{} -v up --to {base} 1>/dev/null", wasmig_bin().display());
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env("DATABASE_URL", url)
            .env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = c
            .output()
            .expect("script(1) from util-linux runs the command on a pseudo-terminal");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = run(&a, false);
    assert!(
        coloured.contains(ESC),
        "no colour on a terminal: {coloured:?}"
    );
    let plain = run(&b, true);
    assert!(
        !plain.is_empty() && !plain.contains(ESC),
        "NO_COLOR=1 still coloured: {plain:?}"
    );
}
