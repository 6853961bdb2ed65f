//! Revisions and their checksums.
//!
//! A checksum is SHA-256 over a canonical text the contract defines (see
//! `revision.checksum` in `wit/migrations.wit`): the revision's id, its parent,
//! and the SQL of its upgrade and its downgrade as planned against the catalog
//! its own chain predicts. It changes exactly when what the revision does to a
//! database changes; renaming a Rust field or reordering a struct never does.

use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::ops::Op;
use crate::plan::plan_revision;
use crate::step::{Direction, Lock, Options, Phase};

/// One revision: an id, its parent, and its operations in order.
#[derive(Clone, Debug, Default)]
pub struct Revision {
    /// Unique in the chain; what the history records (Alembic's revision id).
    pub id: &'static str,
    /// The parent revision (Alembic's `down_revision`); none for the first.
    pub down: Option<&'static str>,
    /// One line for people.
    pub description: &'static str,
    pub ops: Vec<Op>,
    /// Checksums earlier wasmig versions recorded for this same revision
    /// (computed another way). A host that finds one of these in a database's
    /// history accepts it and records [`checksum`] instead, once.
    pub previous_checksums: &'static [&'static str],
}

impl Revision {
    /// The tables this revision creates.
    pub fn created_tables(&self) -> Vec<&'static str> {
        self.ops
            .iter()
            .filter_map(|op| match op {
                Op::CreateTable(t) => Some(t.name),
                _ => None,
            })
            .collect()
    }
}

/// The options every canonical plan is rendered with: offline, blocking
/// index builds, guards included, names unqualified.
const CANONICAL: Options = Options {
    resume: false,
    online: Some(false),
    allow_data_loss: false,
    schema: None,
};

/// The canonical text of each revision of `chain`, oldest first: the text the
/// checksum hashes (`wit/migrations.wit`, `revision.checksum`).
///
/// Each revision is planned up, then down, against the catalog the earlier
/// revisions predict from an empty database. A revision that cannot be planned
/// there hashes its refusal instead, so the checksum stays defined.
pub fn canonical_texts(chain: &[Revision]) -> Vec<String> {
    let mut model = Catalog::default();
    chain
        .iter()
        .map(|rev| {
            let mut text = format!(
                "wasmig-revision 1\nid {}\ndown-revision {}\n",
                rev.id,
                rev.down.unwrap_or("-")
            );
            let mut after = model.clone();
            let up = plan_revision(rev, Direction::Up, &mut after, CANONICAL);
            let down = match &up {
                Ok(_) => plan_revision(rev, Direction::Down, &mut after.clone(), CANONICAL),
                Err(e) => Err(e.clone()),
            };
            for (direction, planned) in [(Direction::Up, &up), (Direction::Down, &down)] {
                match planned {
                    Ok(steps) => {
                        for s in steps {
                            text.push_str(&format!(
                                "{} {} {}\n{}\n\n",
                                direction_word(direction),
                                phase_word(s.phase),
                                lock_word(s.lock),
                                s.sql
                            ));
                        }
                    }
                    Err(e) => text.push_str(&format!(
                        "{} refused\n{}\n\n",
                        direction_word(direction),
                        e.message
                    )),
                }
            }
            // The next revision starts from this one's upgrade.
            if up.is_ok() {
                model = after;
            }
            text
        })
        .collect()
}

/// The checksum of each revision of `chain`: lowercase hex SHA-256 of its
/// [canonical text](canonical_texts).
pub fn checksums(chain: &[Revision]) -> Vec<String> {
    canonical_texts(chain)
        .iter()
        .map(|t| {
            Sha256::digest(t.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .collect()
}

fn direction_word(d: Direction) -> &'static str {
    match d {
        Direction::Up => "up",
        Direction::Down => "down",
    }
}

fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Before => "before",
        Phase::Transaction => "transaction",
        Phase::After => "after",
    }
}

/// The WIT's `lock-level` names.
pub fn lock_word(l: Lock) -> &'static str {
    match l {
        Lock::None => "none",
        Lock::AccessShare => "access-share",
        Lock::RowShare => "row-share",
        Lock::RowExclusive => "row-exclusive",
        Lock::ShareUpdateExclusive => "share-update-exclusive",
        Lock::Share => "share",
        Lock::ShareRowExclusive => "share-row-exclusive",
        Lock::Exclusive => "exclusive",
        Lock::AccessExclusive => "access-exclusive",
    }
}
