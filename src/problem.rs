//! A located diagnostic: what is wrong, in which file, on which line. Every loader
//! (config, manifests, policy) reports all of its problems at once as a list of these;
//! it does not decide what to do about them.

use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a problem is: an error stops the gateway from starting, a warning does not,
/// and a note only explains (what a rule allows, for `check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Note,
    Warning,
    Error,
}

/// One thing wrong with one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn error(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    pub fn warning(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, line, message)
        }
    }

    pub fn note(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Note,
            ..Self::error(file, line, message)
        }
    }

    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line: message`, without the severity (for log lines that carry their own).
    pub fn located(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}: {}", self.file.display(), self.message),
            None => format!("{}: {}", self.file.display(), self.message),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match self.line {
            Some(line) => write!(
                f,
                "{level}: {}:{line}: {}",
                self.file.display(),
                self.message
            ),
            None => write!(f, "{level}: {}: {}", self.file.display(), self.message),
        }
    }
}

/// The 1-based line number of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .iter()
        .take(end)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The 1-based line of a TOML parse error, when the parser knows it.
pub fn toml_error_line(text: &str, error: &toml::de::Error) -> Option<usize> {
    error.span().map(|span| line_of(text, span.start))
}

/// The message of a TOML parse error without the parser's multi-line source excerpt.
pub fn toml_error_message(error: &toml::de::Error) -> String {
    error.message().trim().to_string()
}

/// Render a list of problems, one per line, errors first.
pub fn render(problems: &[Problem]) -> String {
    let mut sorted: Vec<&Problem> = problems.iter().collect();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.severity));
    sorted
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_counts_newlines_before_the_offset() {
        let text = "a\nbb\nccc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 5), 3);
        assert_eq!(line_of(text, 999), 3);
    }

    #[test]
    fn problem_display_names_file_and_line() {
        let p = Problem::error(Path::new("x.toml"), Some(3), "bad `tier`");
        assert_eq!(p.to_string(), "error: x.toml:3: bad `tier`");
    }
}
