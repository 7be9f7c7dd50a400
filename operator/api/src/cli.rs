//! Command-line values both rce processes (the operator and the shim) take.

/// How log lines are written (`--log-format`, `RCE_LOG_FORMAT`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}
