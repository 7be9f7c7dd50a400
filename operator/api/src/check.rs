//! How a program's output is compared with an expected output (the runner and the
//! operator share it).

use serde::{Deserialize, Serialize};

/// How output is compared with an expected output.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Checker {
    #[serde(default)]
    pub mode: CheckerMode,
    /// `float` only: the tolerance, a decimal number as text (e.g. "1e-6", the default);
    /// numbers match when they differ by at most epsilon, absolutely or relative to the
    /// expected one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<String>,
}

/// The comparison of [`Checker`].
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum CheckerMode {
    /// Byte for byte.
    Exact,
    /// Trailing white space of each line and trailing empty lines do not count (Judge0).
    #[default]
    TrimTrailingWhitespace,
    /// White-space separated tokens: equal, or both numbers within `epsilon`.
    Float,
}

/// The default tolerance of [`CheckerMode::Float`].
pub const DEFAULT_EPSILON: f64 = 1e-6;

impl Checker {
    /// The tolerance of a `float` checker; an error names a bad `epsilon`.
    pub fn epsilon(&self) -> Result<f64, String> {
        match self.epsilon.as_deref() {
            None => Ok(DEFAULT_EPSILON),
            Some(t) => match t.trim().parse::<f64>() {
                Ok(e) if e.is_finite() && e >= 0.0 => Ok(e),
                _ => Err(format!("checker.epsilon {t:?} is not a non-negative decimal number")),
            },
        }
    }

    /// Does `actual` pass as `expected`?
    pub fn matches(&self, actual: &str, expected: &str) -> bool {
        match self.mode {
            CheckerMode::Exact => actual == expected,
            CheckerMode::TrimTrailingWhitespace => output_matches(actual, expected),
            CheckerMode::Float => {
                let eps = self.epsilon().unwrap_or(DEFAULT_EPSILON);
                let (mut a, mut e) = (actual.split_whitespace(), expected.split_whitespace());
                loop {
                    match (a.next(), e.next()) {
                        (None, None) => return true,
                        (Some(x), Some(y)) if x == y => {}
                        (Some(x), Some(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
                            (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => {
                                let d = (x - y).abs();
                                if d > eps && d > eps * y.abs() {
                                    return false;
                                }
                            }
                            _ => return false,
                        },
                        _ => return false,
                    }
                }
            }
        }
    }
}

/// Most bytes of each output of a test case kept (in the runner's result and the status).
pub const TEST_EXCERPT_BYTES: usize = 2048;

/// Compare program output with the expected output the way Judge0 does: trailing white
/// space of each line and trailing empty lines do not count.
pub fn output_matches(actual: &str, expected: &str) -> bool {
    fn norm(s: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = s.lines().map(str::trim_end).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }
    norm(actual) == norm(expected)
}
