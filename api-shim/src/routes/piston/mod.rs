//! A Piston v2 compatible surface: `POST /api/v2/execute` (synchronous) and
//! `GET /api/v2/runtimes`.
//!
//! Mapping: `run_timeout` (ms) → wall-time limit, `run_cpu_time` (ms) → CPU limit,
//! `run_memory_limit` (bytes, -1 = default) → memory limit (MiB, rounded up);
//! `compile_timeout` and `compile_memory_limit` are accepted and left to the Runtime's compile
//! limits. `run.status` follows Piston: `RE` non-zero exit, `SG` killed by a signal (memory
//! overruns included), `TO` time limit, `OL` output limit, `XX` internal error. As in
//! Piston, a failed compile answers with `compile` and no `run`.
//!
//! Files: [`parse`] (a raw request validated into a `Submission`), [`result`] (the result
//! document), [`handlers`]. The routes are served under `/api/v2` and again under
//! `/api/v2/piston`.

pub mod handlers;
pub mod parse;
pub mod result;
