//! The rce operator.
