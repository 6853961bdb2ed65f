//! Indexes: what an [`IndexDef`] renders and predicts. Creating and dropping
//! are planned by the planner (online on tables with rows: `CONCURRENTLY`
//! after the revision's transaction, dropped `CONCURRENTLY` before it).

use crate::catalog::{Index, btree_index_definition};
use crate::sql::ident;
use crate::step::Ctx;

use super::{IndexDef, Printed};

/// Whether printed SQL is one function call, `f(…)`, which `pg_get_indexdef`
/// prints bare in a definition (anything else goes in parentheses).
fn function_like(sql: &str) -> bool {
    let Some(open) = sql.find('(') else {
        return false;
    };
    let head = &sql[..open];
    if head.is_empty()
        || !head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '"')
        || !sql.ends_with(')')
    {
        return false;
    }
    // The parenthesis opened after the name must be the one that closes last.
    let mut depth = 0;
    for (i, c) in sql.char_indices().skip(open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i == sql.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// The key as it stands in a whole `pg_get_indexdef` definition.
fn printed_key(e: &Printed) -> String {
    match e.printed {
        Some(p) => p.into(),
        None if function_like(e.sql) => e.sql.into(),
        None => format!("({})", e.sql),
    }
}

/// The key as the catalog's per-key text holds it: the definition's key
/// without its outer parentheses. (PostgreSQL's pretty per-key form can drop
/// redundant parentheses inside too, e.g. around a cast; verify compares the
/// whole definition, which is exact.)
fn key_text(e: &Printed) -> String {
    let p = printed_key(e);
    match p.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        Some(inner) if !function_like(&p) && balanced(inner) => inner.into(),
        _ => p,
    }
}

fn balanced(s: &str) -> bool {
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

impl IndexDef {
    /// Whether this is a plain btree index over columns (the shape of the
    /// reference chain's indexes, rendered exactly as before the richer forms).
    pub fn is_plain(&self) -> bool {
        self.expressions.is_empty() && self.method.is_none() && self.predicate.is_none()
    }

    /// The index's catalog entry: its key texts and whole definition as the
    /// server prints them.
    pub fn catalog(&self) -> Index {
        let names: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();
        let mut columns: Vec<String> = names.iter().map(|c| ident(c)).collect();
        columns.extend(self.expressions.iter().map(key_text));
        let definition = if self.is_plain() {
            btree_index_definition(self.name, self.table, &names, self.unique)
        } else {
            let mut keys: Vec<String> = names.iter().map(|c| ident(c)).collect();
            keys.extend(self.expressions.iter().map(printed_key));
            let predicate = self
                .predicate
                .map(|p| {
                    format!(
                        " WHERE {}",
                        p.printed
                            .map(String::from)
                            .unwrap_or_else(|| format!("({})", p.sql))
                    )
                })
                .unwrap_or_default();
            format!(
                "CREATE {}INDEX {} ON {} USING {} ({}){predicate}",
                if self.unique { "UNIQUE " } else { "" },
                ident(self.name),
                ident(self.table),
                self.method.unwrap_or("btree"),
                keys.join(", ")
            )
        };
        Index {
            name: self.name.into(),
            table: self.table.into(),
            columns,
            unique: self.unique,
            valid: true,
            definition: Some(definition),
        }
    }

    /// `CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON table [USING m] (keys) [WHERE p]`.
    pub fn create_sql(&self, ctx: &Ctx, concurrently: bool) -> String {
        let mut keys: Vec<String> = self.columns.iter().map(|c| ident(c)).collect();
        keys.extend(self.expressions.iter().map(|e| format!("({})", e.sql)));
        format!(
            "CREATE {}INDEX {}{} ON {}{} ({}){}",
            if self.unique { "UNIQUE " } else { "" },
            if concurrently { "CONCURRENTLY " } else { "" },
            ident(self.name),
            ctx.rel(self.table),
            self.method
                .map(|m| format!(" USING {m}"))
                .unwrap_or_default(),
            keys.join(", "),
            self.predicate
                .map(|p| format!(" WHERE {}", p.sql))
                .unwrap_or_default()
        )
    }

    /// What the summary says about the keys.
    pub fn keys_summary(&self) -> String {
        let mut keys: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();
        keys.extend(self.expressions.iter().map(|e| e.sql.to_string()));
        keys.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_calls_print_bare_other_expressions_in_parentheses() {
        assert!(function_like("lower(email)"));
        assert!(function_like("lower((email)::text)"));
        assert!(!function_like("(a + b)"));
        assert!(!function_like("lower(a) || upper(b)"));
        assert_eq!(key_text(&Printed::new("lower(email)")), "lower(email)");
        assert_eq!(key_text(&Printed::new("a + b")), "a + b");
        assert_eq!(printed_key(&Printed::new("a + b")), "(a + b)");
    }
}
