//! Errors of spec loading: every problem carries the file, line and column it was found at.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a sweep spec, located in its file.
///
/// `Display` gives the `path:line:col: message` form editors and terminals turn into links.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct SpecError {
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters (not bytes) so it matches what editors show.
    pub column: usize,
    pub message: String,
}

/// Every problem found in one spec, in source order. Never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, SpecError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first problem in source order.
    pub fn first(&self) -> Option<&SpecError> {
        self.0.first()
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

impl<'a> IntoIterator for &'a SpecErrors {
    type Item = &'a SpecError;
    type IntoIter = std::slice::Iter<'a, SpecError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Why a spec file could not be turned into a [`crate::SweepSpec`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read the sweep spec: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(SpecErrors),
}

impl LoadError {
    /// The located problems, when the file could be read.
    pub fn spec_errors(&self) -> Option<&SpecErrors> {
        match self {
            LoadError::Invalid(e) => Some(e),
            LoadError::Read { .. } => None,
        }
    }
}

impl From<SpecErrors> for LoadError {
    fn from(e: SpecErrors) -> Self {
        LoadError::Invalid(e)
    }
}

/// 1-based line and column (in characters) of a byte offset; offsets past the end or inside a
/// multi-byte character are clamped so a bad span can never panic.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Problems collected while walking a spec, as byte spans; turned into [`SpecError`]s at the end
/// so the walk itself never needs the path or the line arithmetic.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    problems: Vec<(Range<usize>, String)>,
}

impl Diagnostics {
    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push((span, message.into()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    pub(crate) fn into_errors(self, path: &Path, source: &str) -> SpecErrors {
        let mut errors: Vec<SpecError> = self
            .problems
            .into_iter()
            .map(|(span, message)| {
                let (line, column) = line_column(source, span.start);
                SpecError { path: path.to_path_buf(), line, column, message }
            })
            .collect();
        // Stable sort: problems found at one position keep the order they were found in.
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        SpecErrors(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let src = "a = 1\nλμ = \"x\"\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 4), (1, 5));
        assert_eq!(line_column(src, 6), (2, 1));
        // `=` after two 2-byte characters and a space: byte 11, character column 4.
        assert_eq!(line_column(src, 11), (2, 4));
        assert_eq!(line_column(src, 7), (2, 1), "inside a character clamps back");
        assert_eq!(line_column(src, 10_000), (3, 1), "past the end clamps to the end");
    }

    #[test]
    fn display_is_path_line_column_message() {
        let e = SpecError { path: "s/x.toml".into(), line: 3, column: 7, message: "bad".into() };
        assert_eq!(e.to_string(), "s/x.toml:3:7: bad");
        let all = SpecErrors(vec![e.clone(), SpecError { line: 4, ..e }]);
        assert_eq!(all.to_string(), "s/x.toml:3:7: bad\ns/x.toml:4:7: bad");
    }
}
