//! Rules for names that come from outside: column names from the API or from plugins, plugin
//! names. They end up as warehouse identifiers and file names, so they are checked once, here.

/// Longest column name accepted (Snowflake and DuckDB both allow far more).
pub const MAX_COLUMN_NAME: usize = 63;

/// A column name: lower-case ASCII letter, then lower-case letters, digits or `_`, at most 63.
///
/// Strict on purpose: such a name is the same identifier quoted or unquoted in every warehouse
/// and can never close a quote or start a comment.
pub fn is_valid_column_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= MAX_COLUMN_NAME
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// A plugin name: lower-case ASCII letter, then lower-case letters, digits or `-`, at most 63.
pub fn is_valid_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

/// A CoinGecko currency code such as `usd`, `eur` or `btc`: 1 to 10 lower-case letters or digits.
pub fn is_valid_currency(code: &str) -> bool {
    (1..=10).contains(&code.len())
        && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Free text a plugin declares (versions, descriptions): bounded and without control characters.
pub fn is_valid_label(text: &str, max: usize) -> bool {
    text.len() <= max && !text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names() {
        for ok in ["id", "market_cap", "price_change_percentage_1h_in_currency", "x9"] {
            assert!(is_valid_column_name(ok), "{ok}");
        }
        for bad in ["", "Id", "9x", "_x", "a-b", "a b", "a\"b", "a;drop", "é", &"a".repeat(64)] {
            assert!(!is_valid_column_name(bad), "{bad}");
        }
    }

    #[test]
    fn plugin_names() {
        assert!(is_valid_plugin_name("market-share"));
        assert!(!is_valid_plugin_name("Market Share"));
        assert!(!is_valid_plugin_name("../evil"));
    }
}
