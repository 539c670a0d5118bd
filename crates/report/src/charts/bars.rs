//! Horizontal bars: parameter importance.

use crate::svg::{Anchor, Svg};

/// One bar per `(label, value in [0, 1])`, longest first as given; `None` without bars.
pub fn bars(class: &str, title: &str, items: &[(String, f64)]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let (w, left, row) = (520.0, 170.0, 22.0);
    let height = 40.0 + row * items.len() as f64;
    let mut svg = Svg::new(w, height);
    svg.title((w / 2.0, 18.0), title, w - 10.0);
    let max = items.iter().map(|(_, v)| *v).filter(|v| v.is_finite()).fold(0.0f64, f64::max).max(1e-12);
    for (i, (label, value)) in items.iter().enumerate() {
        let y = 32.0 + row * i as f64;
        let len = if value.is_finite() { (w - left - 60.0) * (value / max).clamp(0.0, 1.0) } else { 0.0 };
        svg.text((left - 6.0, y + 13.0), label, Anchor::End, 11.0, None);
        svg.rect((left, y + 2.0), (len, row - 6.0), "#0072B2", "none");
        svg.text((left + len + 4.0, y + 13.0), &crate::format::readable(*value), Anchor::Start, 10.0, None);
    }
    Some(svg.finish_inline(class))
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_bar_per_item() {
        let doc = super::bars("b", "imp", &[("lr".into(), 0.6), ("wd".into(), 0.1)]).unwrap();
        crate::svg::assert_well_formed(&doc);
        assert_eq!(doc.matches("<rect").count(), 2);
        assert!(super::bars("b", "imp", &[]).is_none());
    }
}
