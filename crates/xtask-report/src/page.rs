//! The shell every page shares: one HTML file with its style, script and data inline, a
//! Content-Security-Policy that forbids every load, and the data as an escaped JSON block.

use serde::Serialize;

/// The policy of every page: nothing may be loaded, not even from the page's own directory;
/// inline script and style only (the page is one file).
pub(crate) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

/// The id of the JSON data block the scripts read.
pub(crate) const DATA_ID: &str = "xtask-data";

/// The style every page starts with (colours, panels, buttons).
const COMMON_CSS: &str = include_str!("assets/common.css");
/// The helpers every page's script starts with (formatting, elements, the data block).
const COMMON_JS: &str = include_str!("assets/common.js");

/// One page: its `<title>`, static body markup, its own style and script, and its data.
pub(crate) struct Page<'a, T: Serialize> {
    pub title: &'a str,
    pub body: &'a str,
    pub css: &'a str,
    pub js: &'a str,
    pub data: &'a T,
}

/// The whole page as one string.
pub(crate) fn render<T: Serialize>(page: &Page<'_, T>) -> String {
    let data = embed_json(page.data);
    let mut html = String::with_capacity(data.len() + page.js.len() + page.css.len() + 8192);
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">\n"
    ));
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    html.push_str("<meta name=\"generator\" content=\"cargo xtask\">\n");
    html.push_str(&format!("<title>{}</title>\n", escape_html(page.title)));
    html.push_str("<style>\n");
    html.push_str(COMMON_CSS);
    html.push_str(page.css);
    html.push_str("</style>\n</head>\n<body>\n");
    html.push_str(page.body);
    html.push_str(&format!(
        "<script type=\"application/json\" id=\"{DATA_ID}\">{data}</script>\n<script>\n"
    ));
    html.push_str(COMMON_JS);
    html.push_str(page.js);
    html.push_str("</script>\n</body>\n</html>\n");
    html
}

/// `value` as compact JSON that is safe inside a `<script>` element: `<`, `>` and `&` (which
/// JSON only has inside strings) become `\u003c`, `\u003e`, `\u0026`, so no text in the data
/// can close the element or open a comment.
pub(crate) fn embed_json<T: Serialize>(value: &T) -> String {
    // Serialising plain data types cannot fail (no maps with non-string keys, no IO).
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".to_string());
    let mut safe = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => safe.push_str("\\u003c"),
            '>' => safe.push_str("\\u003e"),
            '&' => safe.push_str("\\u0026"),
            c => safe.push(c),
        }
    }
    safe
}

/// `text` with the characters HTML gives meaning to escaped.
pub(crate) fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_cannot_close_its_script_element_and_still_parses() {
        let value = serde_json::json!({ "log": "</script><!-- & -->" });
        let embedded = embed_json(&value);
        assert!(!embedded.contains('<') && !embedded.contains('>') && !embedded.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&embedded).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn the_title_is_escaped_and_the_page_forbids_loads() {
        let page = render(&Page {
            title: "a <b> & \"c\"",
            body: "<main></main>\n",
            css: "",
            js: "",
            data: &serde_json::json!([]),
        });
        assert!(page.contains("<title>a &lt;b&gt; &amp; &quot;c&quot;</title>"));
        assert!(page.contains("default-src 'none'"));
        assert!(page.contains(&format!("id=\"{DATA_ID}\">[]</script>")));
    }
}
