//! `prefer-timestamptz`: `timestamp` (without time zone) stores wall-clock time with
//! no offset, so the same instant reads differently across session time zones.

use alloc::format;
use alloc::vec::Vec;

use sqlparser::ast::{DataType, TimezoneInfo};

use super::{element_type, typed_columns};
use crate::context::{Context, Violation, ident_pos};
use crate::{RuleId, Severity};

pub(crate) fn prefer_timestamptz(ctx: &Context, out: &mut Vec<Violation>) {
    for c in typed_columns(ctx) {
        let DataType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) =
            element_type(c.data_type)
        else {
            continue;
        };
        out.push(
            Violation::new(
                RuleId::PreferTimestamptz,
                Severity::Warning,
                c.stmt.at_or(ident_pos(c.column)),
                format!(
                    "{}.{} is {}: it keeps no time zone, so values written and read under different \
                     session TimeZone settings are silently shifted.",
                    c.table, c.column, c.data_type
                ),
            )
            .help("Use timestamptz (TIMESTAMP WITH TIME ZONE): it stores an instant and costs the same 8 bytes."),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::RuleId;
    use crate::test_utils::{lint_errors, lint_ok};

    #[test]
    fn err() {
        assert_eq!(
            lint_errors(
                "ALTER TABLE manufacturing_orders ADD COLUMN last_updated_at TIMESTAMP;",
                RuleId::PreferTimestamptz
            ),
            "warning[prefer-timestamptz] 1:45: manufacturing_orders.last_updated_at is TIMESTAMP: it keeps no \
             time zone, so values written and read under different session TimeZone settings are silently \
             shifted.\n  help: Use timestamptz (TIMESTAMP WITH TIME ZONE): it stores an instant and costs \
             the same 8 bytes."
        );
        lint_errors(
            "CREATE TABLE n (a timestamp(3) without time zone)",
            RuleId::PreferTimestamptz,
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "CREATE TABLE n (a TIMESTAMP WITH TIME ZONE, b timestamptz, c date)",
            RuleId::PreferTimestamptz,
        );
    }
}
