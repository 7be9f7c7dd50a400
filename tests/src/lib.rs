//! Shared helpers for the cluster tests in `tests/tests/`.
