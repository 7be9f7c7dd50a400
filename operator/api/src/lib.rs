//! rce's API: the `Execution` and `Runtime` custom resources and the Redis names shared by
//! the operator and the shim. Pure data; no cluster access here.

pub mod execution;
mod quirks;
pub mod redis_keys;
pub mod runtime;

pub use execution::*;
pub use runtime::*;

/// API group of every rce resource.
pub const GROUP: &str = "rce.dev";
/// Label put on every sandbox Pod (the NetworkPolicy selects it).
pub const SANDBOX_LABEL: &str = "rce.dev/sandbox";
/// Label carrying the owning Execution's name on its sandbox Pod.
pub const EXECUTION_LABEL: &str = "rce.dev/execution";
