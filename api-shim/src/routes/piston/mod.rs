//! A Piston v2 compatible surface: `POST /api/v2/execute` (synchronous) and
//! `GET /api/v2/runtimes`, as upstream (engineer-man/piston `api/src/api/v2.js`,
//! `api/src/job.js`) behaves.
//!
//! Names: each Runtime's `spec.piston` (upstream's language, SemVer version, aliases and
//! `runtime`); a request's `language` may be upstream's name or alias (`c++`, `sqlite3`) or
//! rce's own. Validation: upstream's checks, order and messages, all 400 (an unknown runtime
//! is `{"message": "<language>-<version> runtime is unknown"}`). Leniencies upstream does not
//! have: a `text/plain` body, a missing `version` (any).
//!
//! Mapping: `run_timeout` (ms) → wall-time limit, `run_cpu_time` (ms) → CPU limit,
//! `run_memory_limit` (bytes; negative = upstream's -1, the default) → memory limit (MiB,
//! rounded up); the `compile_*` ones are checked against the Runtime's compile limits,
//! which they cannot lower. `stdin` gets a final newline when it has none (upstream does).
//! The entry point is the first utf8 file.
//!
//! Result ([`result`]): `run` and, for a compiled language, `compile`, each with upstream's
//! fields; on a compile error `run` is the compile stage; `output` keeps the arrival order
//! of stdout and stderr; the outputs are the exact bytes ([`crate::outputs`]).
//!
//! Interactive execution: `GET /api/v2/connect`, a WebSocket ([`connect`]).
//!
//! Files: [`names`] (the runtime list and lookup), [`parse`] (a raw request validated into
//! a `Submission`), [`result`] (the result document), [`handlers`]. The routes are served
//! under `/api/v2` and again under `/api/v2/piston`.

pub mod connect;
pub mod handlers;
pub mod names;
pub mod parse;
pub mod result;
