//! Rendering names and values into SQL text.

/// Quotes an identifier when PostgreSQL needs it quoted.
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Quotes a string as a SQL literal.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
