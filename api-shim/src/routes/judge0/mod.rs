//! A Judge0 CE 1.13.1 compatible surface: `/submissions` (create, `wait=true`,
//! `base64_encoded`, `fields`, the paginated list, show, delete), `/submissions/batch`,
//! `/languages` (`/all`, `/{id}`), `/statuses`, `/system_info`, `/config_info`, `/statistics`,
//! `/workers`, `/isolate`, `/about`, `/version`, `/license`, `/authenticate`, `/authorize`.
//!
//! The rendering of a submission (statuses from rce's verdicts as isolate would report them,
//! exit codes, messages, null semantics, base64, times) is the domain core's
//! ([`rce_api::judge0`]), shared with the operator's result callbacks.
//!
//! Attributes → the Execution: `cpu_time_limit`, `wall_time_limit` (s → ms), `memory_limit`
//! (KB → MiB, rounded up), `stack_limit` (KB → `limits.stackKiB`, default 64000),
//! `max_processes_and_or_threads`, `max_file_size` (KB → `limits.fileSizeKiB` and
//! `limits.outputBytes` = KB × 1024: upstream's output cap is the file-size limit; default
//! 1024), `number_of_runs` → `runs` (1..=20), `redirect_stderr_to_stdout`,
//! `compiler_options` (split on white space, each checked against the Runtime's allow-list),
//! `command_line_arguments` (split like a shell), `callback_url` → `callback {url, format:
//! judge0}` (checked against `--callback-allow`), `additional_files` (a base64 zip, extracted
//! here into `files` beside the source, see [`zipfiles`]), language 89 (the zip's `compile`
//! and `run` scripts, Runtime `multi`). Refused with upstream's words: `enable_network: true`,
//! `enable_per_process_and_thread_time_limit: true` and `…_memory_limit: true` (rce limits
//! the whole program, as upstream does with its defaults), `cpu_extra_time` above 0 (rce
//! stops a program at its CPU limit: no extra time). A `cpu_time_limit`, `stack_limit` or
//! `max_file_size` of 0 is isolate's "no limit": the Runtime's maximum under the ceilings,
//! which the submission then shows. Refused by rce (the contract has text stdin only):
//! a `stdin` or `expected_output` that is not UTF-8 ("is not valid UTF-8 text").
//!
//! Annotations on the Execution: the Judge0 language id asked for, `created_at` with
//! milliseconds, `compiler_options` and `additional_files` as given (to answer them back;
//! a zip over 96 KiB is answered as null).
//!
//! Authorization (`X-Auth-User`, header or parameter) is an rce API key or token of the
//! caller's own tenant; with auth off there is no authorization token, so the list, delete
//! and `/authorize` answer 403 as upstream does when `AUTHZ_TOKEN` is unset.
//!
//! Files: [`status`] (the status table), [`fields`] (the field table and rendering, over the
//! core's), [`parse`] (a raw submission validated into a [`parse::Judge0Submission`]),
//! [`zipfiles`] (safe extraction of `additional_files`), [`args`] (shell-style argument
//! splitting), [`handlers`].

pub mod args;
pub mod fields;
pub mod handlers;
pub mod parse;
pub mod status;
pub mod zipfiles;

use axum::{middleware, response::Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::require_tenant,
    error::{render, Flavor},
    state::AppState,
};

/// Every Judge0 route with its documentation: those above `route_layer(auth)` need
/// credentials (when auth is on), the rest are public.
pub fn routes(state: &AppState) -> OpenApiRouter<AppState> {
    use handlers as j;
    let auth = middleware::from_fn_with_state(state.clone(), require_tenant);
    OpenApiRouter::default()
        .routes(routes!(j::create, j::index))
        .routes(routes!(j::batch_create, j::batch_get))
        .routes(routes!(j::get_one, j::delete_one))
        .route_layer(auth)
        .routes(routes!(j::authenticate))
        .routes(routes!(j::authorize_route))
        .routes(routes!(j::languages))
        .routes(routes!(j::languages_all))
        .routes(routes!(j::language))
        .routes(routes!(j::statuses))
        .routes(routes!(j::about))
        .routes(routes!(j::version))
        .routes(routes!(j::license))
        .routes(routes!(j::isolate))
        .routes(routes!(j::config_info))
        .routes(routes!(j::system_info))
        .routes(routes!(j::statistics))
        .routes(routes!(j::workers))
        .layer(middleware::map_response(|r: Response| render(Flavor::Judge0, r)))
}
