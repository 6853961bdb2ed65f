//! The one query a host runs to read a catalog. It returns one row with one
//! JSON text column in the shape of [`crate::catalog::Catalog`], so a host in
//! any language needs no mapping code: it passes the text to `decode-catalog`.

use crate::ops::Op;
use crate::revision::Revision;
use crate::sql::literal;

/// The introspection query: read-only, PostgreSQL 12+, one schema, named by
/// the bound parameter `$1` (text, the name as stored; NULL =
/// `current_schema()`). A schema that does not exist reads as an empty catalog,
/// so a host checks that it exists first.
///
/// Whatever the session's `search_path`, names in that schema come out
/// unqualified (PostgreSQL prints `tenant.status` for a type, a sequence in a
/// default or a referenced table when the schema is not on the path): the
/// catalog reads the same in every schema, and compares with the model.
pub const SQL: &str = r#"-- language=SQL
WITH ns AS (SELECT oid, quote_ident(nspname) || '.' AS prefix FROM pg_namespace
            WHERE nspname = COALESCE($1::text, current_schema()))
SELECT json_build_object(
  'tables', COALESCE((
    SELECT json_agg(json_build_object(
      'name', c.relname,
      'has_rows', pg_relation_size(c.oid) > 0,
      'columns', COALESCE((
        SELECT json_agg(json_build_object(
          'name', a.attname,
          'data_type', CASE WHEN starts_with(format_type(a.atttypid, a.atttypmod), ns.prefix)
                       THEN substr(format_type(a.atttypid, a.atttypmod), length(ns.prefix) + 1)
                       ELSE format_type(a.atttypid, a.atttypmod) END,
          'not_null', a.attnotnull,
          'default', replace(replace(pg_get_expr(d.adbin, d.adrelid),
                       '''' || ns.prefix, ''''), '::' || ns.prefix, '::')) ORDER BY a.attnum)
        FROM pg_attribute a
        CROSS JOIN ns
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::json)
    ) ORDER BY c.relname)
    FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p')), '[]'::json),
  'indexes', COALESCE((
    SELECT json_agg(json_build_object(
      'name', i.relname,
      'table', t.relname,
      'columns', (SELECT json_agg(pg_get_indexdef(x.indexrelid, k, true) ORDER BY k)
                  FROM generate_series(1, x.indnkeyatts) AS k),
      'unique', x.indisunique,
      'valid', x.indisvalid,
      -- The server's own text for all of it; the schema is dropped so a catalog
      -- read in one schema compares with the model (and with another schema).
      'definition', regexp_replace(pg_get_indexdef(x.indexrelid),
                      ' ON (ONLY )?' || regexp_replace((SELECT prefix FROM ns), '([^[:alnum:]_])', '\\\1', 'g'),
                      ' ON \1')) ORDER BY i.relname)
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class t ON t.oid = x.indrelid
    WHERE t.relnamespace = (SELECT oid FROM ns)), '[]'::json),
  'constraints', COALESCE((
    SELECT json_agg(json_build_object(
      'name', con.conname,
      'table', t.relname,
      'kind', CASE con.contype WHEN 'p' THEN 'primary_key' WHEN 'u' THEN 'unique'
                               WHEN 'f' THEN 'foreign_key' ELSE 'check' END,
      'columns', COALESCE((SELECT json_agg(a.attname ORDER BY k.ord)
                  FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum), '[]'::json),
      'ref_table', r.relname,
      'ref_columns', COALESCE((SELECT json_agg(a.attname ORDER BY k.ord)
                  FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum), '[]'::json),
      'on_delete', CASE WHEN con.contype = 'f' THEN CASE con.confdeltype
                     WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
                     WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END END,
      'definition', replace(replace(pg_get_constraintdef(con.oid),
                      ' REFERENCES ' || (SELECT prefix FROM ns), ' REFERENCES '),
                      '::' || (SELECT prefix FROM ns), '::'),
      'validated', con.convalidated) ORDER BY t.relname, con.conname)
    FROM pg_constraint con
    JOIN pg_class t ON t.oid = con.conrelid
    LEFT JOIN pg_class r ON r.oid = con.confrelid
    WHERE t.relnamespace = (SELECT oid FROM ns) AND con.contype IN ('p', 'u', 'f', 'c')), '[]'::json),
  'enums', COALESCE((
    SELECT json_agg(json_build_object(
      'name', ty.typname,
      'labels', (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = ty.oid))
      ORDER BY ty.typname)
    FROM pg_type ty WHERE ty.typtype = 'e' AND ty.typnamespace = (SELECT oid FROM ns)), '[]'::json)
)::text AS catalog"#;

/// Where [`key_range_sql`] goes into [`SQL`]: right after each table's `has_rows`.
const HAS_ROWS: &str = "'has_rows', pg_relation_size(c.oid) > 0,";

/// The introspection query for `chain`: [`SQL`] as it is, plus, when the chain
/// backfills, the key range of each table it backfills (the batches are
/// planned from it). Only those tables are read, with `min`/`max` over the
/// primary key's index, so the query stays as cheap as before elsewhere.
pub fn sql_for(chain: &[Revision]) -> String {
    let mut tables: Vec<&str> = chain
        .iter()
        .flat_map(|r| &r.ops)
        .filter_map(|op| match op {
            Op::Backfill(b) => Some(b.table),
            _ => None,
        })
        .collect();
    tables.sort();
    tables.dedup();
    if tables.is_empty() {
        return SQL.into();
    }
    SQL.replacen(
        HAS_ROWS,
        &format!("{HAS_ROWS}\n      'key_range', {},", key_range_sql(&tables)),
        1,
    )
}

/// The JSON `{"low": …, "high": …}` of table `c`'s single integer primary key,
/// or NULL (another table, no such key, no rows, no SELECT privilege). The
/// statement is built from the catalog and run through `query_to_xml`, the one
/// way a single static query can read a table chosen at run time.
fn key_range_sql(tables: &[&str]) -> String {
    let names: Vec<String> = tables.iter().map(|t| literal(t)).collect();
    format!(
        "(SELECT CASE WHEN r.low IS NOT NULL THEN json_build_object('low', r.low, 'high', r.high) END
        FROM pg_constraint k
        JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1],
        LATERAL (SELECT (xpath('/row/low/text()', x))[1]::text::bigint AS low,
                        (xpath('/row/high/text()', x))[1]::text::bigint AS high
                 FROM query_to_xml(format('SELECT min(%1$I)::bigint AS low, max(%1$I)::bigint AS high FROM %2$s',
                                          a.attname, c.oid::regclass), false, true, '') AS x) AS r
        WHERE c.relname IN ({}) AND has_table_privilege(c.oid, 'SELECT')
          AND k.conrelid = c.oid AND k.contype = 'p' AND cardinality(k.conkey) = 1
          AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype))",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_without_backfills_reads_the_catalog_as_before() {
        assert_eq!(sql_for(&[]), SQL);
        assert!(SQL.contains(HAS_ROWS));
    }
}
