//! A small SVG writer: every text goes through [`escape`].

use std::fmt::Write;

/// Escapes text for SVG/XML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate with two decimals.
fn c(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "0".into()
    }
}

pub(crate) struct Svg {
    out: String,
}

impl Svg {
    pub(crate) fn new(width: f64, height: f64, class: &str) -> Svg {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="{}" viewBox="0 0 {} {}" width="{}" height="{}" font-family="sans-serif">"#,
            escape(class),
            c(width),
            c(height),
            c(width),
            c(height)
        );
        Svg { out }
    }

    pub(crate) fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), color: &str, width: f64) {
        let _ = write!(
            self.out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="{}"/>"#,
            c(x1),
            c(y1),
            c(x2),
            c(y2),
            escape(color),
            c(width)
        );
    }

    pub(crate) fn polyline(
        &mut self,
        points: &[(f64, f64)],
        color: &str,
        width: f64,
        dashed: bool,
        opacity: f64,
        class: &str,
    ) {
        if points.is_empty() {
            return;
        }
        let pts: Vec<String> = points.iter().map(|(x, y)| format!("{},{}", c(*x), c(*y))).collect();
        let dash = if dashed { r#" stroke-dasharray="5,3""# } else { "" };
        let _ = write!(
            self.out,
            r#"<polyline class="{}" points="{}" fill="none" stroke="{}" stroke-width="{}" stroke-opacity="{}"{dash}/>"#,
            escape(class),
            pts.join(" "),
            escape(color),
            c(width),
            c(opacity)
        );
    }

    pub(crate) fn circle(&mut self, (x, y): (f64, f64), r: f64, fill: &str, class: &str) {
        let _ = write!(
            self.out,
            r#"<circle class="{}" cx="{}" cy="{}" r="{}" fill="{}"/>"#,
            escape(class),
            c(x),
            c(y),
            c(r),
            escape(fill)
        );
    }

    pub(crate) fn cross(&mut self, (x, y): (f64, f64), r: f64, color: &str, class: &str) {
        let _ = write!(
            self.out,
            r#"<path class="{}" d="M{} {}L{} {}M{} {}L{} {}" stroke="{}" stroke-width="2"/>"#,
            escape(class),
            c(x - r),
            c(y - r),
            c(x + r),
            c(y + r),
            c(x - r),
            c(y + r),
            c(x + r),
            c(y - r),
            escape(color)
        );
    }

    pub(crate) fn rect(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), fill: &str) {
        let _ = write!(
            self.out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>"#,
            c(x),
            c(y),
            c(w.max(0.0)),
            c(h.max(0.0)),
            escape(fill)
        );
    }

    /// Text; `anchor` is start, middle or end; `rotate` turns it about its anchor.
    pub(crate) fn text(&mut self, (x, y): (f64, f64), text: &str, anchor: &str, size: f64, rotate: Option<f64>) {
        let transform =
            rotate.map(|r| format!(r#" transform="rotate({} {} {})""#, c(r), c(x), c(y))).unwrap_or_default();
        let _ = write!(
            self.out,
            r#"<text x="{}" y="{}" text-anchor="{}" font-size="{}"{transform}>{}</text>"#,
            c(x),
            c(y),
            anchor,
            c(size),
            escape(text)
        );
    }

    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        let mut s = Svg::new(10.0, 10.0, "x\"y");
        s.text((1.0, 1.0), "<script>alert(1)</script>", "start", 10.0, None);
        let doc = s.finish();
        assert!(!doc.contains("<script>") && doc.contains("&lt;script&gt;"), "{doc}");
        assert!(doc.contains(r#"class="x&quot;y""#));
    }
}
