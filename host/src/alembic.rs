//! Living with an application's Alembic history.
//!
//! An application that deploys with `alembic upgrade head` (FastApiv1.6 does)
//! keeps its `alembic_version` row holding a revision id its own scripts contain: Alembic
//! fails on any other id, and re-runs its whole history when the row is gone.
//! wasmig therefore follows two rules (see [`crate::history`]):
//!
//! - it never inserts or deletes the `alembic_version` row, only changes it;
//! - it writes a revision id only when it knows Alembic has a script for it:
//!   on the way up, revision R replaces V only when the Alembic versions
//!   directory (`--alembic-versions DIR`, [`Scripts::load`]) holds a script
//!   with `revision = R` and `down_revision = V`; on the way down, a row that
//!   holds R (Alembic knows R: it either ran R's script or wasmig wrote R by
//!   the first rule) goes back to the id recorded before R was applied, else
//!   to R's `down_revision` in DIR, and the downgrade is refused up front when
//!   neither is known. In every other case the row is left as it is.
//!
//! [`revision_script`] renders the script `wasmig alembic-revision` writes:
//! its `upgrade()` and `downgrade()` run the plugin's plan on Alembic's own
//! connection through the Python package in `python/` (`wasmig.alembic`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::component::Revision;
use crate::error::MigrateError;

/// The revisions an Alembic versions directory holds: revision id ->
/// `down_revision` (none for a first revision, or a merge point's tuple,
/// which wasmig never writes over).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scripts {
    revisions: BTreeMap<String, Option<String>>,
}

impl Scripts {
    /// Reads every `*.py` file in `dir` (not recursing: Alembic's default
    /// layout) and picks out its module-level `revision` and `down_revision`
    /// assignments, with or without a type annotation.
    ///
    /// Errors: [`MigrateError::Io`] when `dir` cannot be read.
    pub fn load(dir: &Path) -> Result<Scripts, MigrateError> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            MigrateError::Io(format!(
                "cannot read the Alembic versions directory {}: {e}; pass the directory that holds the application's revision scripts (e.g. migrations/versions)",
                dir.display()
            ))
        })?;
        let mut revisions = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("py") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let Some((revision, down)) = parse_script(&text) {
                revisions.insert(revision, down);
            }
        }
        Ok(Scripts { revisions })
    }

    /// Whether a script with `revision` exists, and its `down_revision`.
    pub fn down_revision_of(&self, revision: &str) -> Option<Option<&str>> {
        self.revisions.get(revision).map(|d| d.as_deref())
    }

    /// How many scripts were found.
    pub fn len(&self) -> usize {
        self.revisions.len()
    }

    /// Whether no script was found.
    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
    }
}

/// The `revision` and `down_revision` of one Alembic script, if it has a
/// string `revision`. A `down_revision` that is `None` or a tuple (a merge)
/// reads as none.
fn parse_script(text: &str) -> Option<(String, Option<String>)> {
    let mut revision = None;
    let mut down = None;
    for line in text.lines() {
        // Module level only: Alembic reads the module's globals.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((lhs, rhs)) = line.split_once('=') else {
            continue;
        };
        let name = lhs.split(':').next().unwrap_or("").trim();
        let value = string_literal(rhs.trim());
        match name {
            "revision" => revision = value,
            "down_revision" => down = Some(value),
            _ => {}
        }
    }
    revision.map(|r| (r, down.flatten()))
}

fn string_literal(s: &str) -> Option<String> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &s[1..];
    rest.find(quote).map(|end| rest[..end].to_string())
}

/// What `wasmig alembic-revision` needs to render a script.
#[derive(Clone, Debug)]
pub struct ScriptSpec<'a> {
    /// The wasmig revision the script applies (also its Alembic revision id).
    pub revision: &'a Revision,
    /// The application's current Alembic head: the script's `down_revision`.
    pub down_revision: &'a str,
    /// The component file, relative to the script's directory (or absolute).
    pub plugin_file: &'a str,
    /// The `Create Date` line, already formatted.
    pub created: &'a str,
}

/// Alembic keeps revision ids in `alembic_version.version_num VARCHAR(32)`.
pub const MAX_REVISION_ID: usize = 32;

/// Renders the Alembic revision script for `spec`. The script pins the
/// revision's checksum, so a different plugin file is refused at run time
/// rather than applying a changed migration under the same id.
///
/// Errors: [`MigrateError::Plan`] when an id cannot be an Alembic revision id
/// (longer than [`MAX_REVISION_ID`], or not a plain identifier-like string).
pub fn revision_script(spec: &ScriptSpec) -> Result<String, MigrateError> {
    for (what, id) in [
        ("revision", spec.revision.id.as_str()),
        ("--down-revision", spec.down_revision),
    ] {
        if id.is_empty()
            || id.len() > MAX_REVISION_ID
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(MigrateError::Plan {
                kind: crate::component::ErrorKind::UnknownRevision,
                message: format!(
                    "{what} `{id}` cannot be an Alembic revision id: use 1 to {MAX_REVISION_ID} letters, digits, `_` or `-` (what `alembic heads` prints)"
                ),
            });
        }
    }
    if spec.plugin_file.contains(['\'', '\\', '\n']) {
        return Err(MigrateError::Io(format!(
            "plugin path `{}` has a quote, backslash or newline: pick a plainer path",
            spec.plugin_file
        )));
    }
    let r = spec.revision;
    let description = r.description.replace('"', "'").replace('\n', " ");
    Ok(format!(
        r#""""{description} (wasmig)

Revision ID: {id}
Revises: {down}
Create Date: {created}

Generated by `wasmig alembic-revision`. upgrade() and downgrade() run the
wasmig plugin's plan for revision {id} on Alembic's own connection: the
sandboxed component is loaded with wasmtime, the live catalog is read with the
plugin's introspection query, transactional steps run in Alembic's transaction
and the others in autocommit_block(), then the schema is verified. Needs the
Python package from the wasmig repository: pip install 'wasmig[alembic]'.
"""
from alembic import op

import wasmig.alembic

# revision identifiers, used by Alembic.
revision = '{id}'
down_revision = '{down}'
branch_labels = None
depends_on = None

# The migration component (`wasmig plugin --out PATH`), relative to this file;
# the WASMIG_PLUGIN environment variable overrides it.
WASMIG_PLUGIN = '{plugin}'
# The wasmig revision and its checksum when this script was generated: a
# plugin whose revision differs is refused instead of run.
WASMIG_REVISION = '{id}'
WASMIG_CHECKSUM = '{checksum}'


def upgrade():
    wasmig.alembic.upgrade(op, __file__, WASMIG_PLUGIN, WASMIG_REVISION, WASMIG_CHECKSUM)


def downgrade():
    wasmig.alembic.downgrade(op, __file__, WASMIG_PLUGIN, WASMIG_REVISION, WASMIG_CHECKSUM)
"#,
        id = r.id,
        down = spec.down_revision,
        created = spec.created,
        plugin = spec.plugin_file,
        checksum = r.checksum,
    ))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_plain_and_annotated_assignments() {
        let old = "revision = 'e63da1a343bc'\ndown_revision = None\n";
        assert_eq!(parse_script(old), Some(("e63da1a343bc".into(), None)));
        let new = "from typing import Union\nrevision: str = \"abc\"\ndown_revision: Union[str, None] = \"e63da1a343bc\"\n\ndef upgrade():\n    revision = 'x'\n";
        assert_eq!(
            parse_script(new),
            Some(("abc".into(), Some("e63da1a343bc".into())))
        );
        let merge = "revision = 'm'\ndown_revision = ('a', 'b')\n";
        assert_eq!(parse_script(merge), Some(("m".into(), None)));
        assert_eq!(parse_script("x = 1\n"), None);
    }

    #[test]
    fn refuses_ids_alembic_cannot_store() {
        let rev = Revision {
            id: "add_widget_owner".into(),
            down_revision: None,
            description: "d".into(),
            checksum: "c".into(),
            previous_checksums: vec![],
        };
        let spec = |down| ScriptSpec {
            revision: &rev,
            down_revision: down,
            plugin_file: "p.wasm",
            created: "now",
        };
        assert!(
            revision_script(&spec("e63da1a343bc"))
                .unwrap()
                .contains("down_revision = 'e63da1a343bc'")
        );
        let err = revision_script(&spec("x'; import os"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be an Alembic revision id"), "{err}");
        assert!(revision_script(&spec(&"a".repeat(33))).is_err());
    }
}
