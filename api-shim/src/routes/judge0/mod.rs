//! A Judge0 CE 1.13.1 compatible surface: `/submissions` (with `base64_encoded`, `wait`,
//! `fields`), `/submissions/batch`, `/languages`, `/statuses`, `/about`, `/version`,
//! `/config_info`.
//!
//! Mapping of rce's verdicts onto Judge0's status ids (Judge0 reads them from isolate):
//! Pending → 1 In Queue, Processing → 2, Accepted → 3, WrongAnswer → 4,
//! TimeLimitExceeded → 5, CompilationError → 6, RuntimeError by signal: SIGSEGV → 7,
//! SIGXFSZ → 8, SIGFPE → 9, SIGABRT → 10, any other signal → 12, a non-zero exit without a
//! signal → 11 (NZEC). Judge0 has no memory or output verdicts: isolate reports a memory
//! overrun as a kill by signal, so MemoryLimitExceeded → 12 "Runtime Error (Other)"; output is
//! capped by the file-size limit, so OutputLimitExceeded → 8 (SIGXFSZ). `message` carries
//! rce's precise reason in both cases. InternalError and Cancelled (phase Failed) → 13.
//!
//! Limits: `cpu_time_limit` and `wall_time_limit` in seconds → ms; `memory_limit` in KB →
//! MiB (rounded up); `max_processes_and_or_threads` → processes; `max_file_size` in KB →
//! KiB. `cpu_extra_time`, `stack_limit` and `number_of_runs` are validated and otherwise
//! ignored; `redirect_stderr_to_stdout`, `compiler_options`, `callback_url` and
//! `additional_files` are accepted and ignored; `enable_network: true` is refused.
//!
//! Files: [`status`] (the status table and an Execution's status in it), [`fields`] (the
//! field table and rendering), [`parse`] (a raw submission validated into a `Submission`),
//! [`args`] (shell-style argument splitting), [`handlers`].

pub mod args;
pub mod fields;
pub mod handlers;
pub mod parse;
pub mod status;
