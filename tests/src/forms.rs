//! The three forms parts 4–5 of the seed meet in the wild, for the reference
//! plugin's tests: SQL (`tests/fixtures/forms/`) that turns an `erp_base`
//! database (plain VARCHAR, as the real application has it) into the other
//! two. `ci/roundtrip` passes the same files to `wasmig roundtrip --setup`.

use std::fmt;

/// How `inventory_alerts.alert_type` and `inventory_transactions.reference_type` are typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Plain VARCHAR, no constraint: the real FastApiv1.6 schema.
    Plain,
    /// Native enum types `alert_type` and `transaction_type` (the seed's first form).
    Enum,
    /// VARCHAR with `CHECK (... IN (...))` constraints (the seed's alternative).
    Check,
}

impl Form {
    /// All three forms.
    pub const ALL: [Form; 3] = [Form::Plain, Form::Enum, Form::Check];

    /// SQL that converts an `erp_base` database into this form (empty for plain).
    pub fn setup_sql(self) -> &'static str {
        match self {
            Form::Plain => "",
            Form::Enum => include_str!("../fixtures/forms/enum.sql"),
            Form::Check => include_str!("../fixtures/forms/check.sql"),
        }
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Form::Plain => "plain",
            Form::Enum => "enum",
            Form::Check => "check",
        })
    }
}
