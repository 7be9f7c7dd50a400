//! The warm runner's framing: how the operator talks to a runner that waits, idle, in a warm
//! sandbox Pod (`rce-runner --serve`), over the container's attached stdin and stdout.
//!
//! Why a framing of its own: the operator reaches the runner only through the Kubernetes API
//! (`pods/attach`), never through a network path into the Pod. Against the 1.20 API server
//! the stream is `v4.channel.k8s.io`, which cannot half-close stdin, so end-of-input, signals
//! and the start of a run are messages, not stream events.
//!
//! Both directions are lines of JSON, one message a line, UTF-8, `\n`-terminated:
//! - operator → runner: [`Input`] (`{"t":"run",...}`, `{"t":"stdin",...}`, ...);
//! - runner → operator: [`Output`] frames (`{"t":"started",...}`, `{"t":"data",...}`,
//!   `{"t":"ready",...}`), and for each run exactly one sealed result line
//!   ([`crate::protocol::seal`], starting with [`crate::protocol::RESULT_PREFIX`]), the same
//!   line a cold sandbox prints, its run id the Execution's `<uid>/<attempt>`.
//!
//! Everything the runner writes also lands in the container log (the kubelet logs a
//! container's stdout whether or not anyone is attached). That is how an operator that lost
//! its stream (a restart, a dropped connection) still finds the run's result: in the log,
//! by run id, under the Pod's key.
//!
//! The program never sees either stream: the runner parks its own stdin and stdout on
//! private descriptors before any stage starts (as in a cold sandbox), and the program's
//! stdin is a pipe the runner feeds from the request's `stdin`, or, for an interactive run,
//! from [`Input::Stdin`] messages.
//!
//! A serving runner's life: it prints [`Output::Ready`] (served 0) when it starts and again
//! after every run it could prove left nothing behind (see the runner's `clean` module);
//! between runs it reads [`Input::Run`] and ignores nothing silently: an unreadable line, or
//! a message out of place, is answered with [`Output::Refused`]. When it cannot prove a clean
//! slate it prints [`Output::Spoiled`] and exits; the Pod is then discarded.
//!
//! A run id runs at most once per runner: the runner keeps the run ids it started for its
//! whole life (at most [`MAX_STARTED_RUNS`] of them; past that it refuses every run) and
//! answers a [`Input::Run`] whose run id it already started, whether that run still runs or
//! ended long ago, with `{"t":"refused","reason":...,"runId":<id>,"already":true}`, never
//! with a second start. Several attach sessions share the runner's stdin and stdout (two
//! operator replicas may both act on one Execution for a moment), so the refusal goes to every
//! session: a run's refusal names its run id (`runId`), and `already` tells the sender that
//! its run is under way (or done) and that its result is the one to wait for (on the stream,
//! or in the log). Both fields are new and optional: a parser that does not know them reads
//! the line as the plain refusal it was, and a refusal without them reads as before.

use serde::{Deserialize, Serialize};

use crate::mac;
use crate::protocol::RunRequest;

/// The runner's argument that selects the serving mode.
pub const SERVE_ARG: &str = "--serve";

/// Most bytes of one [`Input`] line the runner reads (a request holds up to 8 MiB of files and
/// stdin, as base64 and JSON-escaped).
pub const MAX_INPUT_LINE: usize = 32 * 1024 * 1024;

/// Most run ids a serving runner remembers having started (a Pod serves at most `maxRuns`,
/// at most 1000, runs); past it, every run is refused.
pub const MAX_STARTED_RUNS: usize = 4096;

/// Longest run id a serving runner takes (the operator's are `<uid>/<attempt>`).
pub const MAX_RUN_ID: usize = 256;

/// Most bytes of program output one [`Output::Data`] frame carries (before base64).
pub const MAX_DATA_CHUNK: usize = 16 * 1024;

/// Operator → runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum Input {
    /// Run this request. Only when idle (after a [`Output::Ready`]).
    Run { request: Box<RunRequest> },
    /// Bytes for the program's stdin (base64); only for a request with `interactive` set,
    /// while its run stage runs. Before the run stage starts they are kept for it.
    Stdin { data: String },
    /// End of the program's stdin: the runner closes the pipe.
    Eof,
    /// Send a signal (a name from [`crate::signal`], e.g. "SIGINT") to every process of the
    /// running stage. Ignored when no stage runs.
    Signal { signal: String },
    /// Ask an idle runner to say so again: it answers [`Output::Ready`] with the same nonce.
    Ping { nonce: String },
}

/// Which output stream a [`Output::Data`] frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Runner → operator (besides the sealed result line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum Output {
    /// The request of `run_id` was read and its run begins.
    #[serde(rename_all = "camelCase")]
    Started { run_id: String },
    /// A stage begins: "compile" or "run" (for `runs` > 1 each run of the run stage).
    #[serde(rename_all = "camelCase")]
    Stage { run_id: String, stage: String },
    /// Program output as it was read (base64), at most the stage's `outputBytes` per stream
    /// in all, in chunks of at most [`MAX_DATA_CHUNK`]. The result line stays the record; these
    /// frames are for live streaming.
    #[serde(rename_all = "camelCase")]
    Data { run_id: String, stream: Stream, data: String },
    /// Idle, with nothing of an earlier run left: ready for [`Input::Run`]. `served` is how
    /// many runs this runner has finished; `nonce` echoes the [`Input::Ping`] it answers
    /// (empty otherwise); `mac` is [`ready_mac`] under the Pod's result key.
    #[serde(rename_all = "camelCase")]
    Ready { served: u32, nonce: String, mac: String },
    /// The runner could not prove a clean slate (or met a fatal error) and exits.
    #[serde(rename_all = "camelCase")]
    Spoiled { served: u32, reason: String },
    /// A line the runner could not take (unreadable, too long, or out of place); the runner
    /// carries on as it was. `run_id`: the run id of the refused [`Input::Run`] (absent for
    /// any other line, and from runners older than the field). `already`: that run id was
    /// started before by this runner (its frames and result are, or will be, on the stream
    /// and in the log): the run is not started again, and the refusal is no verdict on it.
    /// Both fields are omitted when unset, so the line reads the same as before them.
    #[serde(rename_all = "camelCase")]
    Refused {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        already: bool,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Output {
    /// A refusal of a line that is not (or not readably) a run.
    pub fn refused(reason: impl Into<String>) -> Output {
        Output::Refused { reason: reason.into(), run_id: None, already: false }
    }

    /// A refusal of [`Input::Run`] `run_id`; `already`: it was started before.
    pub fn refused_run(reason: impl Into<String>, run_id: &str, already: bool) -> Output {
        Output::Refused { reason: reason.into(), run_id: Some(run_id.to_string()), already }
    }
}

/// The MAC of a [`Output::Ready`] frame: HMAC-SHA256 under the Pod's result key over
/// `rce-ready/<served>/<nonce>`, in hex.
pub fn ready_mac(key: &[u8], served: u32, nonce: &str) -> String {
    mac::hex(&mac::hmac_sha256(key, format!("rce-ready/{served}/{nonce}").as_bytes()))
}

/// Does `frame`'s MAC verify under `key`?
pub fn ready_verifies(key: &[u8], served: u32, nonce: &str, tag: &str) -> bool {
    mac::unhex(tag).is_some_and(|t| mac::verify(key, format!("rce-ready/{served}/{nonce}").as_bytes(), &t))
}

impl Input {
    /// The message as one line, with its `\n`.
    pub fn line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

impl Output {
    /// The frame as one line, with its `\n`.
    pub fn line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// A frame line (not a result line), or `None`.
    pub fn parse(line: &[u8]) -> Option<Output> {
        if line.starts_with(crate::protocol::RESULT_PREFIX.as_bytes()) {
            return None;
        }
        serde_json::from_slice(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_tagged_lines() {
        let i = Input::Stdin { data: "aGk=".into() };
        assert_eq!(i.line(), "{\"t\":\"stdin\",\"data\":\"aGk=\"}\n");
        assert_eq!(Input::Eof.line(), "{\"t\":\"eof\"}\n");
        let o = Output::Data { run_id: "u/1".into(), stream: Stream::Stderr, data: "eA==".into() };
        assert_eq!(o.line(), "{\"t\":\"data\",\"runId\":\"u/1\",\"stream\":\"stderr\",\"data\":\"eA==\"}\n");
        assert_eq!(Output::parse(o.line().trim_end().as_bytes()), Some(o));
        assert_eq!(Output::parse(b"{\"rceResult\":{}}"), None);
    }

    #[test]
    fn a_refusal_names_its_run_only_when_it_has_one() {
        // As older runners printed it, and as every refusal of a line that is not a run is.
        let plain = Output::refused("nope");
        assert_eq!(plain.line(), "{\"t\":\"refused\",\"reason\":\"nope\"}\n");
        assert_eq!(Output::parse(b"{\"t\":\"refused\",\"reason\":\"nope\"}"), Some(plain));
        let again = Output::refused_run("started before", "u/1", true);
        assert_eq!(
            again.line(),
            "{\"t\":\"refused\",\"reason\":\"started before\",\"runId\":\"u/1\",\"already\":true}\n"
        );
        assert_eq!(Output::parse(again.line().trim_end().as_bytes()), Some(again.clone()));
        let busy = Output::refused_run("a run is in progress", "u/2", false);
        assert_eq!(
            busy.line(),
            "{\"t\":\"refused\",\"reason\":\"a run is in progress\",\"runId\":\"u/2\"}\n"
        );
        // An older operator's frame type (a struct of `reason` alone) still reads the new line.
        #[derive(serde::Deserialize)]
        #[serde(tag = "t", rename_all = "camelCase")]
        enum Old {
            Refused { reason: String },
        }
        let Old::Refused { reason } = serde_json::from_str::<Old>(again.line().trim_end()).unwrap();
        assert_eq!(reason, "started before");
    }

    #[test]
    fn ready_is_sealed() {
        let key = b"thirty-two bytes of key material";
        let tag = ready_mac(key, 3, "n1");
        assert!(ready_verifies(key, 3, "n1", &tag));
        assert!(!ready_verifies(key, 4, "n1", &tag));
        assert!(!ready_verifies(key, 3, "n2", &tag));
        assert!(!ready_verifies(b"another key of thirty-two bytes!", 3, "n1", &tag));
    }
}
