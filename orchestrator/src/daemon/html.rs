//! Escaping text for the dashboard's HTML and SVG (both pages and pictures use it).

/// `s` safe inside an HTML or SVG element or a quoted attribute.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
