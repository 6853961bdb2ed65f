//! The schema a run migrates. Tables can live in any schema, so it is
//! explicit: `--schema NAME` (the name as stored, `Tenant B` rather than
//! `"Tenant B"`), else the first schema of the session's effective search
//! path (`current_schemas(false)`: schemas that exist and the role may use)
//! other than wasmig's own history schema and the system schemas. A role
//! named `wasmig`, whose `"$user", public` path finds the history schema
//! first, therefore migrates `public`, as every other role does.
//!
//! Every plan is qualified with the schema ([`crate::component::PlanOptions`]
//! `schema`), the catalog is read from it, the history keeps one line of
//! revisions per schema ([`crate::history`]), and `--backup` checks it.

use sqlx::postgres::PgConnection;

use crate::db::describe;
use crate::error::MigrateError;

/// wasmig's own schema: the history tables, never an application table.
pub const HISTORY_SCHEMA: &str = "wasmig";

/// The default target schema as one SQL expression (NULL when the search
/// path names no usable schema): the first of `current_schemas(false)` that
/// is neither wasmig's history schema nor a system schema. Shared with
/// [`crate::history`], which assigns history rows written before schemas were
/// explicit to the schema the same rule picks.
pub const DEFAULT_SQL: &str = "(SELECT s FROM unnest(current_schemas(false)) WITH ORDINALITY AS p(s, i) \
     WHERE s <> 'wasmig' AND s NOT LIKE 'pg\\_%' AND s <> 'information_schema' ORDER BY i LIMIT 1)";

/// Resolves the schema to migrate: `requested` when given (it must exist and
/// be an application schema), else the search path's first (see the module).
///
/// Errors: [`MigrateError::Schema`] (exit 4, nothing changed) for a schema
/// that does not exist, for wasmig's own or a system schema, and for a search
/// path none of whose schemas exists (the message quotes it and says how to
/// name one); [`MigrateError::Db`] when the lookup itself fails.
pub async fn resolve(
    conn: &mut PgConnection,
    requested: Option<&str>,
) -> Result<String, MigrateError> {
    let db = |e: sqlx::Error| MigrateError::Db(format!("resolving the schema: {}", describe(&e)));
    if let Some(name) = requested {
        let (exists, quoted, database): (bool, String, String) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), quote_ident($1), current_database()::text",
        )
        .bind(name)
        .fetch_one(conn)
        .await
        .map_err(db)?;
        if name == HISTORY_SCHEMA {
            return Err(MigrateError::Schema(format!(
                "schema {quoted} is wasmig's own history schema and holds no application tables: \
                 name the application's schema with --schema (e.g. --schema public). Nothing was changed"
            )));
        }
        if name.starts_with("pg_") || name == "information_schema" {
            return Err(MigrateError::Schema(format!(
                "schema {quoted} is a PostgreSQL system schema: name the application's schema with --schema. \
                 Nothing was changed"
            )));
        }
        if !exists {
            return Err(MigrateError::Schema(format!(
                "schema {quoted} does not exist in database {database}: create it first (CREATE SCHEMA {quoted};), \
                 or check the name (--schema takes it as stored, without quotes: --schema 'Tenant B'). \
                 Nothing was changed"
            )));
        }
        return Ok(name.to_string());
    }
    let (found, path, own): (Option<String>, String, bool) = sqlx::query_as(&format!(
        "SELECT {DEFAULT_SQL}, current_setting('search_path'), \
                'wasmig' = ANY (current_schemas(false))"
    ))
    .fetch_one(conn)
    .await
    .map_err(db)?;
    match found {
        Some(schema) => {
            tracing::debug!(
                "schema {schema}: the first schema of search_path ({path}) that exists"
            );
            Ok(schema)
        }
        None => Err(MigrateError::Schema(format!(
            "no schema to migrate: search_path is `{path}`{} and names no other schema that exists and this role \
             may use. Name it with --schema NAME (e.g. --schema public), create the schema, or fix the search_path \
             (ALTER ROLE … SET search_path = …). Nothing was changed",
            if own {
                ", which finds only wasmig's own history schema,"
            } else {
                ""
            }
        ))),
    }
}
