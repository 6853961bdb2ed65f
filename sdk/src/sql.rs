//! Rendering names and values into SQL text, and reading names back out of
//! the expressions PostgreSQL prints.

/// PostgreSQL's keywords that are not `UNRESERVED_KEYWORD` (reserved,
/// column-name and type/function-name keywords: `pg_get_keywords()` where
/// `catcode <> 'U'`), as of PostgreSQL 18. `quote_ident`, `format_type`,
/// `pg_get_indexdef` and `pg_get_constraintdef` quote these, so the model must
/// too. Words that became keywords in 16+ (`json`, `system_user`, …) are
/// quoted by older servers' printers only when needed; quoting them in DDL is
/// harmless, and a column with such a name prints differently by version.
const KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "json",
    "json_array",
    "json_arrayagg",
    "json_exists",
    "json_object",
    "json_objectagg",
    "json_query",
    "json_scalar",
    "json_serialize",
    "json_table",
    "json_value",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "merge_action",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// Whether `word` is a keyword PostgreSQL quotes when it prints an identifier.
pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.binary_search(&word).is_ok()
}

/// Quotes an identifier when PostgreSQL needs it quoted, exactly as
/// `quote_ident` does: anything but lower-case letters, digits and `_` (not
/// starting with a digit), and every keyword that is not unreserved
/// (`order`, `user`, `select`, `time`, …).
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_keyword(name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Quotes a string as a SQL literal.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The longest identifier PostgreSQL keeps (`NAMEDATALEN - 1` bytes); longer
/// ones are silently truncated, so a generated name is cut the same way here.
pub const MAX_IDENT_BYTES: usize = 63;

/// `name` cut to [`MAX_IDENT_BYTES`] on a character boundary, as PostgreSQL
/// truncates identifiers.
pub fn truncate_ident(name: &str) -> String {
    if name.len() <= MAX_IDENT_BYTES {
        return name.to_string();
    }
    let mut end = MAX_IDENT_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// A name PostgreSQL would choose for an object of `name1` and `name2`
/// (`makeObjectName`): `name1_name2_label`, the longer of the two names cut
/// first so that the whole fits in [`MAX_IDENT_BYTES`] with the label intact.
pub fn object_name(name1: &str, name2: &str, label: &str) -> String {
    let overhead = label.len() + 1 + if name2.is_empty() { 0 } else { 1 };
    let avail = MAX_IDENT_BYTES.saturating_sub(overhead);
    let (mut n1, mut n2) = (name1.len(), name2.len());
    while n1 + n2 > avail {
        if n1 > n2 {
            n1 -= 1;
        } else {
            n2 -= 1;
        }
    }
    let clip = |s: &str, mut n: usize| {
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        s[..n].to_string()
    };
    let mut out = clip(name1, n1);
    if !name2.is_empty() {
        out.push('_');
        out.push_str(&clip(name2, n2));
    }
    out.push('_');
    out.push_str(label);
    out
}

/// One token of a printed SQL expression, as far as names are concerned.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    /// A bare word (identifier or keyword), as written.
    Word(&'a str),
    /// A double-quoted identifier: (text as written, the name it denotes).
    Quoted(&'a str, String),
    /// Anything else, passed through: literals, operators, punctuation, space.
    Other(&'a str),
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        if c == b'\'' || c == b'"' {
            // A literal or a quoted identifier; a doubled quote is an escaped one.
            i += 1;
            while i < bytes.len() {
                if bytes[i] == c {
                    if bytes.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            let raw = &text[start..i];
            if c == b'"' {
                let inner = raw.trim_start_matches('"');
                let inner = inner.strip_suffix('"').unwrap_or(inner);
                out.push(Token::Quoted(raw, inner.replace("\"\"", "\"")));
            } else {
                out.push(Token::Other(raw));
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || bytes[i] == b'$'
                    || bytes[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Token::Word(&text[start..i]));
        } else if c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            out.push(Token::Other(&text[start..i]));
        } else {
            // One byte at a time; multi-byte characters were taken as words above.
            i += 1;
            out.push(Token::Other(&text[start..i]));
        }
    }
    out
}

/// The column names an expression refers to, as a name each token denotes
/// (bare words fold to lower case), skipping literals, function names (a word
/// directly followed by `(`) and type names (a word right after `::`).
fn names_in(text: &str) -> Vec<(usize, String)> {
    let toks = tokens(text);
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let name = match t {
            Token::Word(w) => w.to_lowercase(),
            Token::Quoted(_, n) => n.clone(),
            Token::Other(_) => continue,
        };
        let next_is_paren = matches!(toks.get(i + 1), Some(Token::Other("(")));
        let after_cast = i >= 2
            && matches!(toks[i - 1], Token::Other(":"))
            && matches!(toks[i - 2], Token::Other(":"));
        if next_is_paren || after_cast {
            continue;
        }
        out.push((i, name));
    }
    out
}

/// The columns of `columns` that `expression` mentions, in order of first
/// appearance: what PostgreSQL records as a CHECK constraint's `conkey`.
pub fn columns_mentioned(expression: &str, columns: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, name) in names_in(expression) {
        if columns.contains(&name) && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// `text` with every reference to the identifier `from` replaced by `to`
/// (quoted as needed), leaving literals, function names and type names alone:
/// what PostgreSQL prints for an expression after `RENAME COLUMN`.
pub fn rename_ident(text: &str, from: &str, to: &str) -> String {
    let toks = tokens(text);
    let hits: Vec<usize> = names_in(text)
        .into_iter()
        .filter(|(_, n)| n == from)
        .map(|(i, _)| i)
        .collect();
    let mut out = String::with_capacity(text.len());
    for (i, t) in toks.iter().enumerate() {
        if hits.contains(&i) {
            out.push_str(&ident(to));
            continue;
        }
        out.push_str(match t {
            Token::Word(w) => w,
            Token::Quoted(raw, _) => raw,
            Token::Other(o) => o,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_sorted_for_binary_search() {
        let mut sorted = KEYWORDS.to_vec();
        sorted.sort();
        assert_eq!(sorted, KEYWORDS);
    }

    #[test]
    fn ident_quotes_like_quote_ident() {
        assert_eq!(ident("manufacturing_orders"), "manufacturing_orders");
        assert_eq!(ident("Order"), "\"Order\"");
        assert_eq!(ident("order"), "\"order\"");
        assert_eq!(ident("user"), "\"user\"");
        assert_eq!(ident("time"), "\"time\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident("1st"), "\"1st\"");
        // Unreserved keywords stay bare, as quote_ident leaves them.
        assert_eq!(ident("name"), "name");
        assert_eq!(ident("value"), "value");
        assert_eq!(ident("date"), "date");
    }

    #[test]
    fn truncates_long_names_like_postgres() {
        let long = "a".repeat(70);
        assert_eq!(truncate_ident(&long).len(), 63);
        let wide = "é".repeat(40); // 80 bytes, 2 each
        assert_eq!(truncate_ident(&wide).len(), 62);
    }

    #[test]
    fn object_names_keep_the_label() {
        assert_eq!(object_name("orders", "qty", "check"), "orders_qty_check");
        let n = object_name(&"t".repeat(60), "qty", "seq");
        assert_eq!(n.len(), 63);
        assert!(n.ends_with("_qty_seq"));
    }

    #[test]
    fn renames_references_but_not_literals_functions_or_types() {
        let def = "CHECK (((qty)::text <> 'qty'::text) AND (qty(qty) > 0) AND (\"Qty\" > 1))";
        assert_eq!(
            rename_ident(def, "qty", "order"),
            "CHECK (((\"order\")::text <> 'qty'::text) AND (qty(\"order\") > 0) AND (\"Qty\" > 1))"
        );
        assert_eq!(
            rename_ident("(\"Qty\" > 1)", "Qty", "amount"),
            "(amount > 1)"
        );
    }

    #[test]
    fn finds_columns_in_order_of_first_appearance() {
        let cols: Vec<String> = ["a", "b", "text"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            columns_mentioned("b > 0 AND a::text <> 'a' AND b < lower(a)", &cols),
            vec!["b", "a"]
        );
    }
}
