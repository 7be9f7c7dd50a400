//! rce's domain core: every rule the operator, the shim and the runner share, defined once.
//!
//! Pure: no cluster client, no HTTP. Always here (the runner builds with
//! `default-features = false`):
//! - [`limits`]: the six limits, their defaults and ceilings, resolution against a Runtime and
//!   the operator's caps, and the units of the Judge0 and Piston APIs;
//! - [`signal`]: signal numbers and names, one table;
//! - [`files`]: source files and the rules for their names;
//! - [`protocol`] and [`mac`]: what the operator hands the runner and the sealed result it
//!   gets back;
//! - [`names`]: Kubernetes name rules;
//! - [`options`]: the compiler options a submission may give;
//! - [`callback`]: which result-callback destinations are admitted (no SSRF).
//!
//! With the `crd` feature (the default): the `Execution` and `Runtime` custom resources,
//! verdicts and phases, Runtime lookup ([`runtime::lookup`]) and the Redis names and status
//! document shared by the operator (writer) and the shim (reader). With `clap`: the
//! operator ceilings as flags ([`limits::LimitCaps`]), taken by the operator and the shim;
//! with `shutdown`: the shutdown signal of both.

pub mod callback;
pub mod check;
#[cfg(feature = "clap")]
pub mod cli;
pub mod files;
pub mod limits;
pub mod mac;
pub mod names;
pub mod options;
pub mod protocol;
#[cfg(feature = "crd")]
pub mod queue;
mod quirks;
pub mod serve;
#[cfg(feature = "shutdown")]
pub mod shutdown;
pub mod signal;

#[cfg(feature = "crd")]
pub mod execution;
#[cfg(feature = "crd")]
pub mod judge0;
#[cfg(feature = "crd")]
pub mod redis_keys;
#[cfg(feature = "crd")]
pub mod runtime;
#[cfg(feature = "crd")]
pub mod warmpool;

pub use check::{output_matches, Checker, CheckerMode, TEST_EXCERPT_BYTES};
#[cfg(feature = "crd")]
pub use execution::*;
pub use files::{FileEncoding, SourceFile};
#[cfg(feature = "clap")]
pub use limits::LimitCaps;
pub use limits::{LimitError, LimitField, Limits, ResolvedLimits};
#[cfg(feature = "crd")]
pub use runtime::*;
pub use signal::Signal;
#[cfg(feature = "crd")]
pub use warmpool::{WarmPool, WarmPoolSpec, WarmPoolStatus};

/// API group of every rce resource.
pub const GROUP: &str = "rce.dev";
/// The operator's finalizer on every Execution (it removes the Execution's Redis key when it
/// is deleted). The shim creates Executions with it already set, which spares the operator a
/// round trip before its first real reconcile.
pub const FINALIZER: &str = "rce.dev/redis-cleanup";
/// Label put on every sandbox Pod (the NetworkPolicy selects it).
pub const SANDBOX_LABEL: &str = "rce.dev/sandbox";
/// Label carrying the owning Execution's name on its sandbox Pod.
pub const EXECUTION_LABEL: &str = "rce.dev/execution";
