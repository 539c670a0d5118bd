//! A small hand-written SVG writer: just the elements the plots need. The one SVG toolkit of
//! the project: the report files' plots (`render`) and the dashboard's charts
//! ([`crate::charts`]) are both drawn with its `Svg`.
//!
//! Every string that reaches the document goes through [`escape`], and every coordinate through
//! `coord`, so the output is well-formed XML whatever the labels and data hold.

mod chart;
mod ticks;

pub(crate) use chart::{render, Panel, Point, Series, Style};

/// Colour-blind-safe colours (Okabe–Ito), in the order series get them.
pub const PALETTE: [&str; 7] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];

/// Escapes text for XML (and so HTML) character data and attribute values: the one escape of
/// SVG and HTML text written by hand.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newline are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate with two decimals; a non-finite value (which a caller should have filtered out)
/// becomes 0 rather than an invalid attribute.
pub(crate) fn coord(x: f64) -> String {
    if !x.is_finite() {
        return "0".to_string();
    }
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// ` class="…"`, or nothing for no class.
fn class_attr(class: &str) -> String {
    if class.is_empty() {
        String::new()
    } else {
        format!(" class=\"{}\"", escape(class))
    }
}

/// Horizontal text alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// Stroke of a line or polyline.
#[derive(Clone, Copy)]
pub(crate) struct Stroke<'a> {
    pub color: &'a str,
    pub width: f64,
    pub dashed: bool,
}

/// An SVG document under construction.
pub(crate) struct Svg {
    width: f64,
    height: f64,
    body: String,
}

impl Svg {
    pub(crate) fn new(width: f64, height: f64) -> Svg {
        Svg { width, height, body: String::new() }
    }

    fn stroke_attrs(s: Stroke) -> String {
        let dash = if s.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        format!("stroke=\"{}\" stroke-width=\"{}\"{dash}", escape(s.color), coord(s.width))
    }

    pub(crate) fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), s: Stroke) {
        self.body.push_str(&format!(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" {}/>\n",
            coord(x1),
            coord(y1),
            coord(x2),
            coord(y2),
            Self::stroke_attrs(s)
        ));
    }

    /// [`Svg::line`] with a CSS class (for tests that read a plot back).
    pub(crate) fn classed_line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), s: Stroke, class: &str) {
        self.body.push_str(&format!(
            "<line{} x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" {}/>\n",
            class_attr(class),
            coord(x1),
            coord(y1),
            coord(x2),
            coord(y2),
            Self::stroke_attrs(s)
        ));
    }

    /// A polyline of two or more points (one point draws nothing in a report plot).
    pub(crate) fn polyline(&mut self, points: &[(f64, f64)], s: Stroke) {
        if points.len() >= 2 {
            self.styled_polyline(points, s, 1.0, "");
        }
    }

    /// A polyline with a CSS class (for a page's styles and tests) and an opacity; drawn for
    /// any non-empty `points`.
    pub(crate) fn styled_polyline(&mut self, points: &[(f64, f64)], s: Stroke, opacity: f64, class: &str) {
        self.polyline_with_title(points, s, opacity, class, None);
    }

    /// [`Svg::styled_polyline`] with a tooltip (an SVG `<title>`, escaped) when `title` is given.
    pub(crate) fn polyline_with_title(
        &mut self,
        points: &[(f64, f64)],
        s: Stroke,
        opacity: f64,
        class: &str,
        title: Option<&str>,
    ) {
        if points.is_empty() {
            return;
        }
        let pts: Vec<String> = points.iter().map(|(x, y)| format!("{},{}", coord(*x), coord(*y))).collect();
        let opacity = if opacity < 1.0 { format!(" stroke-opacity=\"{}\"", coord(opacity)) } else { String::new() };
        let end = match title {
            Some(t) => format!("><title>{}</title></polyline>", escape(t)),
            None => "/>".to_string(),
        };
        self.body.push_str(&format!(
            "<polyline{} points=\"{}\" fill=\"none\" {} stroke-linejoin=\"round\"{opacity}{end}\n",
            class_attr(class),
            pts.join(" "),
            Self::stroke_attrs(s)
        ));
    }

    pub(crate) fn circle(&mut self, center: (f64, f64), r: f64, fill: &str) {
        self.classed_circle(center, r, fill, "");
    }

    /// [`Svg::circle`] with a CSS class.
    pub(crate) fn classed_circle(&mut self, (cx, cy): (f64, f64), r: f64, fill: &str, class: &str) {
        self.body.push_str(&format!(
            "<circle{} cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\"/>\n",
            class_attr(class),
            coord(cx),
            coord(cy),
            coord(r),
            escape(fill)
        ));
    }

    /// An × of half-width `r` centred on a point.
    pub(crate) fn cross(&mut self, (x, y): (f64, f64), r: f64, color: &str, class: &str) {
        self.body.push_str(&format!(
            "<path{} d=\"M{} {}L{} {}M{} {}L{} {}\" stroke=\"{}\" stroke-width=\"2\"/>\n",
            class_attr(class),
            coord(x - r),
            coord(y - r),
            coord(x + r),
            coord(y + r),
            coord(x - r),
            coord(y + r),
            coord(x + r),
            coord(y - r),
            escape(color)
        ));
    }

    /// A hollow circle: white fill, coloured outline.
    pub(crate) fn ring(&mut self, (cx, cy): (f64, f64), r: f64, stroke: &str) {
        self.body.push_str(&format!(
            "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"white\" stroke=\"{}\" stroke-width=\"1.5\"/>\n",
            coord(cx),
            coord(cy),
            coord(r),
            escape(stroke)
        ));
    }

    pub(crate) fn rect(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), fill: &str, stroke: &str) {
        self.body.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"{}\"/>\n",
            coord(x),
            coord(y),
            coord(w.max(0.0)),
            coord(h.max(0.0)),
            escape(fill),
            escape(stroke)
        ));
    }

    /// [`Svg::rect`] filled, without outline, with a CSS class.
    pub(crate) fn classed_rect(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), fill: &str, class: &str) {
        self.body.push_str(&format!(
            "<rect{} x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
            class_attr(class),
            coord(x),
            coord(y),
            coord(w.max(0.0)),
            coord(h.max(0.0)),
            escape(fill)
        ));
    }

    /// A chart's title centred at (x, y) in 13 px type, smaller when it would be wider than
    /// `width` (estimating 0.6 em a character, generous for sans-serif): a title wider than its
    /// picture is cut off at both ends.
    pub(crate) fn title(&mut self, (x, y): (f64, f64), text: &str, width: f64) {
        let chars = text.chars().count().max(1) as f64;
        let size = (width / (0.6 * chars)).clamp(8.0, 13.0);
        self.text((x, y), text, Anchor::Middle, size, None);
    }

    /// Text at (x, y) (the baseline), optionally rotated by `rotate` degrees about that point.
    pub(crate) fn text(&mut self, (x, y): (f64, f64), text: &str, anchor: Anchor, size: f64, rotate: Option<f64>) {
        let transform = rotate
            .map(|deg| format!(" transform=\"rotate({} {} {})\"", coord(deg), coord(x), coord(y)))
            .unwrap_or_default();
        self.body.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"{}\" font-size=\"{}\"{transform}>{}</text>\n",
            coord(x),
            coord(y),
            anchor.as_str(),
            coord(size),
            escape(text)
        ));
    }

    /// Starts a group shifted by (dx, dy); close it with [`Svg::end_group`].
    pub(crate) fn begin_group(&mut self, dx: f64, dy: f64) {
        self.body.push_str(&format!("<g transform=\"translate({} {})\">\n", coord(dx), coord(dy)));
    }

    pub(crate) fn end_group(&mut self) {
        self.body.push_str("</g>\n");
    }

    /// The finished element for inlining in an HTML page: no XML prolog and no background,
    /// `class` naming it for the page's styles and tests.
    pub(crate) fn finish_inline(self, class: &str) -> String {
        let (w, h) = (coord(self.width), coord(self.height));
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"{}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" \
             height=\"{h}\" font-family=\"sans-serif\">\n{}</svg>",
            escape(class),
            self.body
        )
    }

    /// The finished document, with a white background.
    pub(crate) fn finish(self) -> String {
        let (w, h) = (coord(self.width), coord(self.height));
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"Helvetica, Arial, sans-serif\">\n\
             <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n{}</svg>\n",
            self.body
        )
    }
}

/// Checks that `doc` is well-formed XML: every tag closed in order, attributes and entities
/// valid. Used by the tests of every plot.
#[cfg(test)]
pub(crate) fn assert_well_formed(doc: &str) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(doc);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut roots = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if stack.is_empty() {
                    roots += 1;
                }
                for a in e.attributes() {
                    let a = a.unwrap_or_else(|err| panic!("bad attribute: {err}\n{doc}"));
                    a.unescape_value().unwrap_or_else(|err| panic!("bad attribute value: {err}\n{doc}"));
                }
                stack.push(e.name().as_ref().to_vec());
            }
            Ok(Event::End(e)) => {
                let open = stack.pop().unwrap_or_else(|| panic!("stray end tag\n{doc}"));
                assert_eq!(open, e.name().as_ref(), "mismatched end tag\n{doc}");
            }
            Ok(Event::Empty(e)) => {
                assert!(!stack.is_empty(), "element outside the root\n{doc}");
                for a in e.attributes() {
                    let a = a.unwrap_or_else(|err| panic!("bad attribute: {err}\n{doc}"));
                    a.unescape_value().unwrap_or_else(|err| panic!("bad attribute value: {err}\n{doc}"));
                }
            }
            Ok(Event::Text(t)) => {
                t.unescape().unwrap_or_else(|err| panic!("bad text: {err}\n{doc}"));
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(err) => panic!("not well-formed at {}: {err}\n{doc}", reader.error_position()),
        }
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert_eq!(roots, 1, "exactly one root element");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_title_gets_smaller_type_to_fit_and_a_short_one_keeps_13_px() {
        let size = |title: &str, width: f64| {
            let mut svg = Svg::new(width, 50.0);
            svg.title((width / 2.0, 18.0), title, width - 10.0);
            let doc = svg.finish();
            let at = doc.find("font-size=\"").unwrap() + "font-size=\"".len();
            doc[at..].split('"').next().unwrap().parse::<f64>().unwrap()
        };
        assert_eq!(size("Accuracy", 520.0), 13.0);
        let long = "Validation accuracy per epoch, by configuration (recent trials; pruned dashed ×)";
        let s = size(long, 520.0);
        assert!(s < 13.0 && 0.6 * s * long.chars().count() as f64 <= 510.0, "{s}");
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        assert_eq!(escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(escape("bell\u{7}"), "bell ");
        let mut svg = Svg::new(100.0, 50.0);
        svg.text((1.0, 2.0), "dec (x=<1> & y=\"2\")\u{1}", Anchor::Middle, 12.0, Some(-90.0));
        svg.begin_group(3.0, 4.0);
        svg.line((0.0, 0.0), (1.0, f64::NAN), Stroke { color: "#000", width: 1.0, dashed: true });
        svg.polyline(&[(0.0, 0.0), (1.5, 2.25)], Stroke { color: "red\"", width: 2.0, dashed: false });
        svg.circle((1.0, 1.0), 2.0, "blue");
        svg.ring((1.0, 1.0), 2.0, "blue\"");
        svg.rect((0.0, 0.0), (-5.0, 3.0), "none", "black");
        svg.end_group();
        let doc = svg.finish();
        assert_well_formed(&doc);
        assert!(doc.contains("dec (x=&lt;1&gt; &amp; y=&quot;2&quot;) </text>"), "{doc}");
    }

    #[test]
    fn coordinates_are_short_and_finite() {
        assert_eq!(coord(1.0), "1");
        assert_eq!(coord(1.256), "1.26");
        assert_eq!(coord(-0.001), "0");
        assert_eq!(coord(f64::INFINITY), "0");
        assert_eq!(coord(120.5), "120.5");
    }

    #[test]
    #[should_panic]
    fn the_checker_rejects_bad_nesting() {
        assert_well_formed("<svg><g></svg></g>");
    }

    #[test]
    #[should_panic]
    fn the_checker_rejects_unclosed_elements() {
        assert_well_formed("<svg><g>");
    }

    #[test]
    #[should_panic]
    fn the_checker_rejects_raw_ampersands() {
        assert_well_formed("<svg><text>a & b</text></svg>");
    }
}
