//! The three forms parts 4–5 of the seed meet in the wild, as SQL that turns an
//! `erp_base` database (plain VARCHAR, as the real application has it) into the
//! other two. Used by the tests and by `wasmig roundtrip --forms`.

use std::fmt;
use std::str::FromStr;

/// How `inventory_alerts.alert_type` and `inventory_transactions.reference_type` are typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
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

    /// SQL that converts an `erp_base` database into this form.
    pub fn setup_sql(self) -> &'static str {
        match self {
            Form::Plain => "",
            Form::Enum => {
                "CREATE TYPE alert_type AS ENUM ('low_stock', 'out_of_stock', 'reorder');
ALTER TABLE inventory_alerts ALTER COLUMN alert_type TYPE alert_type USING alert_type::alert_type;
CREATE TYPE transaction_type AS ENUM ('job', 'purchase', 'manual', 'transfer');
ALTER TABLE inventory_transactions ALTER COLUMN reference_type TYPE transaction_type USING reference_type::transaction_type;"
            }
            Form::Check => {
                "ALTER TABLE inventory_alerts ADD CONSTRAINT inventory_alerts_alert_type_check
    CHECK (alert_type IN ('low_stock', 'out_of_stock', 'reorder'));
ALTER TABLE inventory_transactions ADD CONSTRAINT inventory_transactions_reference_type_check
    CHECK (reference_type IN ('job', 'purchase', 'manual', 'transfer'));"
            }
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

impl FromStr for Form {
    type Err = String;
    fn from_str(s: &str) -> Result<Form, String> {
        match s {
            "plain" => Ok(Form::Plain),
            "enum" => Ok(Form::Enum),
            "check" => Ok(Form::Check),
            _ => Err(format!("unknown form `{s}`: use plain, enum or check")),
        }
    }
}
