//! `prefer-text`: `varchar(n)` stores and performs exactly like `text`; the limit is
//! a schema object of its own that is costly to tighten later.

use alloc::format;
use alloc::vec::Vec;

use sqlparser::ast::{CharacterLength, DataType};

use super::{element_type, typed_columns};
use crate::context::{Context, Violation, ident_pos};
use crate::{RuleId, Severity};

pub(crate) fn prefer_text(ctx: &Context, out: &mut Vec<Violation>) {
    for c in typed_columns(ctx) {
        let (DataType::Varchar(Some(length))
        | DataType::CharacterVarying(Some(length))
        | DataType::CharVarying(Some(length))) = element_type(c.data_type)
        else {
            continue;
        };
        let limit = match length {
            CharacterLength::IntegerLength { length, .. } => format!("{length}"),
            CharacterLength::Max => continue,
        };
        let (table, column) = (c.table, c.column);
        out.push(
            Violation::new(
                RuleId::PreferText,
                Severity::Info,
                c.stmt.at_or(ident_pos(column)),
                format!(
                    "{table}.{column} is {}: varchar(n) is no faster than text, and while widening n is a \
                     catalog-only change, lowering it rewrites {table} under an ACCESS EXCLUSIVE lock.",
                    c.data_type
                ),
            )
            .help(format!(
                "Use text, with CHECK (char_length({column}) <= {limit}) if the limit is a real rule: a CHECK \
                 can be replaced with NOT VALID + VALIDATE CONSTRAINT without blocking writes."
            )),
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
                "ALTER TABLE manufacturing_orders\nADD COLUMN assigned_operator VARCHAR(255);",
                RuleId::PreferText
            ),
            "info[prefer-text] 2:12: manufacturing_orders.assigned_operator is VARCHAR(255): varchar(n) is no \
             faster than text, and while widening n is a catalog-only change, lowering it rewrites \
             manufacturing_orders under an ACCESS EXCLUSIVE lock.\n  help: Use text, with CHECK \
             (char_length(assigned_operator) <= 255) if the limit is a real rule: a CHECK can be replaced \
             with NOT VALID + VALIDATE CONSTRAINT without blocking writes."
        );
        lint_errors(
            "CREATE TABLE n (tags character varying(20)[])",
            RuleId::PreferText,
        );
    }

    #[test]
    fn ok() {
        lint_ok(
            "CREATE TABLE n (a text, b varchar, c text CHECK (char_length(c) <= 50))",
            RuleId::PreferText,
        );
    }
}
