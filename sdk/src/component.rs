//! The component boundary: converts between the WIT types and the model.
//! [`crate::export!`] instantiates [`Plugin`] with the author's chain.

use std::marker::PhantomData;
use std::sync::OnceLock;

/// The WIT bindings; the export macro is public so [`crate::export!`] can
/// invoke it in the plugin crate, where the component's type section lands.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "migration-plugin",
        pub_export_macro: true,
        default_bindings_module: "wasmig_sdk::component::bindings",
    });
}

use bindings::exports::wasmig::migration::migrations as w;

use crate::finding::{Finding, Severity};
use crate::revision::{Revision, checksums};
use crate::{catalog as m, introspect, plan, verify};

/// Where a plugin's chain comes from; implemented by [`crate::export!`].
pub trait Chain: 'static {
    /// The revisions, oldest first.
    fn revisions() -> Vec<Revision>;
}

/// The component: the contract's functions over chain `C`.
pub struct Plugin<C>(PhantomData<C>);

/// The chain and its checksums, built once per instance (hosts keep instances warm).
struct Loaded {
    revisions: Vec<Revision>,
    checksums: Vec<String>,
}

fn loaded<C: Chain>() -> &'static Loaded {
    // One component exports one chain, so one slot serves every `C`.
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| {
        let revisions = C::revisions();
        let checksums = checksums(&revisions);
        Loaded {
            revisions,
            checksums,
        }
    })
}

impl<C: Chain> w::Guest for Plugin<C> {
    fn revisions() -> Vec<w::Revision> {
        let loaded = loaded::<C>();
        loaded
            .revisions
            .iter()
            .zip(&loaded.checksums)
            .map(|(r, sum)| w::Revision {
                id: r.id.into(),
                down_revision: r.down.map(String::from),
                description: r.description.into(),
                checksum: sum.clone(),
                previous_checksums: r.previous_checksums.iter().map(|s| s.to_string()).collect(),
            })
            .collect()
    }

    fn introspection_sql() -> String {
        introspect::sql_for(&loaded::<C>().revisions)
    }

    fn decode_catalog(json: String) -> Result<w::Catalog, w::PlanError> {
        m::Catalog::from_json(&json)
            .map(to_wit)
            .map_err(|message| w::PlanError {
                kind: w::ErrorKind::InvalidCatalog,
                message,
            })
    }

    fn plan(
        current: Option<String>,
        target: Option<String>,
        live: w::Catalog,
        options: w::PlanOptions,
    ) -> Result<w::MigrationPlan, w::PlanError> {
        let options = plan::Options {
            resume: options.resume,
            online: options.online,
            allow_data_loss: options.allow_data_loss,
            schema: options.schema,
        };
        let p = plan::plan(
            &loaded::<C>().revisions,
            current.as_deref(),
            target.as_deref(),
            &from_wit(live),
            options,
        )
        .map_err(|e| w::PlanError {
            kind: match e.kind {
                plan::PlanErrorKind::UnknownRevision => w::ErrorKind::UnknownRevision,
                plan::PlanErrorKind::InvalidCatalog => w::ErrorKind::InvalidCatalog,
                plan::PlanErrorKind::Drift => w::ErrorKind::Drift,
                plan::PlanErrorKind::DataInUse => w::ErrorKind::DataInUse,
            },
            message: e.message,
        })?;
        Ok(w::MigrationPlan {
            steps: p.steps.into_iter().map(step).collect(),
            expected: to_wit(p.expected),
        })
    }

    fn verify(at: Option<String>, actual: w::Catalog) -> Vec<w::Finding> {
        verify::verify(&loaded::<C>().revisions, at.as_deref(), &from_wit(actual))
            .into_iter()
            .map(finding)
            .collect()
    }

    fn validate(sql: String, transactional: bool) -> Vec<w::Finding> {
        crate::lint_sql(&sql, transactional, &[])
            .into_iter()
            .map(finding)
            .collect()
    }
}

fn finding(f: Finding) -> w::Finding {
    w::Finding {
        severity: match f.severity {
            Severity::Info => w::Severity::Info,
            Severity::Warning => w::Severity::Warning,
            Severity::Error => w::Severity::Error,
        },
        rule: f.rule,
        message: f.message,
        location: f.location,
    }
}

fn step(s: plan::Step) -> w::Step {
    use plan::Lock as L;
    w::Step {
        transactional: s.transactional(),
        revision: s.revision,
        direction: match s.direction {
            plan::Direction::Up => w::Direction::Up,
            plan::Direction::Down => w::Direction::Down,
        },
        sql: s.sql,
        lock: match s.lock {
            L::None => w::LockLevel::None,
            L::AccessShare => w::LockLevel::AccessShare,
            L::RowShare => w::LockLevel::RowShare,
            L::RowExclusive => w::LockLevel::RowExclusive,
            L::ShareUpdateExclusive => w::LockLevel::ShareUpdateExclusive,
            L::Share => w::LockLevel::Share,
            L::ShareRowExclusive => w::LockLevel::ShareRowExclusive,
            L::Exclusive => w::LockLevel::Exclusive,
            L::AccessExclusive => w::LockLevel::AccessExclusive,
        },
        objects: s.objects,
        summary: s.summary,
        lint: s.lint.into_iter().map(finding).collect(),
    }
}

fn kind_to_wit(k: m::ConstraintKind) -> w::ConstraintKind {
    match k {
        m::ConstraintKind::PrimaryKey => w::ConstraintKind::PrimaryKey,
        m::ConstraintKind::Unique => w::ConstraintKind::Unique,
        m::ConstraintKind::ForeignKey => w::ConstraintKind::ForeignKey,
        m::ConstraintKind::Check => w::ConstraintKind::Check,
    }
}

fn kind_from_wit(k: w::ConstraintKind) -> m::ConstraintKind {
    match k {
        w::ConstraintKind::PrimaryKey => m::ConstraintKind::PrimaryKey,
        w::ConstraintKind::Unique => m::ConstraintKind::Unique,
        w::ConstraintKind::ForeignKey => m::ConstraintKind::ForeignKey,
        w::ConstraintKind::Check => m::ConstraintKind::Check,
    }
}

/// Field-for-field copies between two record types with the same field names.
macro_rules! copy {
    ($from:expr => $to:path { $($field:ident),* }) => {{
        let f = $from;
        $to { $($field: f.$field),* }
    }};
}

fn to_wit(c: m::Catalog) -> w::Catalog {
    w::Catalog {
        tables: c
            .tables
            .into_iter()
            .map(|t| w::Table {
                name: t.name,
                has_rows: t.has_rows,
                key_range: t.key_range.map(|r| w::KeyRange {
                    low: r.low,
                    high: r.high,
                }),
                columns: t
                    .columns
                    .into_iter()
                    .map(|c| copy!(c => w::Column { name, data_type, not_null, default }))
                    .collect(),
            })
            .collect(),
        indexes: c
            .indexes
            .into_iter()
            .map(|i| copy!(i => w::Index { name, table, columns, unique, valid, definition }))
            .collect(),
        constraints: c
            .constraints
            .into_iter()
            .map(|k| w::Constraint {
                kind: kind_to_wit(k.kind),
                name: k.name,
                table: k.table,
                columns: k.columns,
                ref_table: k.ref_table,
                ref_columns: k.ref_columns,
                on_delete: k.on_delete,
                definition: k.definition,
                validated: k.validated,
            })
            .collect(),
        enums: c
            .enums
            .into_iter()
            .map(|e| copy!(e => w::EnumType { name, labels }))
            .collect(),
    }
}

fn from_wit(c: w::Catalog) -> m::Catalog {
    m::Catalog {
        tables: c
            .tables
            .into_iter()
            .map(|t| m::Table {
                name: t.name,
                has_rows: t.has_rows,
                key_range: t.key_range.map(|r| m::KeyRange {
                    low: r.low,
                    high: r.high,
                }),
                columns: t
                    .columns
                    .into_iter()
                    .map(|c| copy!(c => m::Column { name, data_type, not_null, default }))
                    .collect(),
            })
            .collect(),
        indexes: c
            .indexes
            .into_iter()
            .map(|i| copy!(i => m::Index { name, table, columns, unique, valid, definition }))
            .collect(),
        constraints: c
            .constraints
            .into_iter()
            .map(|k| m::Constraint {
                kind: kind_from_wit(k.kind),
                name: k.name,
                table: k.table,
                columns: k.columns,
                ref_table: k.ref_table,
                ref_columns: k.ref_columns,
                on_delete: k.on_delete,
                definition: k.definition,
                validated: k.validated,
            })
            .collect(),
        enums: c
            .enums
            .into_iter()
            .map(|e| copy!(e => m::EnumType { name, labels }))
            .collect(),
    }
    .normalized()
}
