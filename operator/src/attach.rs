//! Sessions with serving runners (`rce-runner --serve`) over `pods/attach` through the API
//! server: the only path from the operator into a warm sandbox (never a network path into
//! the Pod). The framing is [`rce_api::serve`]: JSON lines both ways, plus the sealed result
//! lines of the runs.
//!
//! A session stays open while its Pod is idle (the pool controller opens it and proves the
//! runner ready), so that a claim costs no connection set-up: opening one costs about 55 ms
//! on the local cluster (API server → kubelet → container runtime), a message on an open
//! one well under a millisecond. [`Sessions`] holds the open sessions by Pod uid; whoever
//! runs an Execution in a Pod takes its session out and puts it back when the Pod is
//! released.
//!
//! Everything the runner writes is also in the container's log, which is how a result is
//! found when a session was lost ([`find_result`], [`started_in`]).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    api::{Api, AttachParams, AttachedProcess},
    Client,
};
use rce_api::{
    protocol::{ResultLine, RunResult, RESULT_PREFIX},
    serve::{Input, Output, MAX_INPUT_LINE},
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::sandbox::CONTAINER;

/// Longest line read from a runner: a result line holds up to 4 MiB of each output as
/// base64, and the compile stage's too.
pub const MAX_LINE: usize = 48 * 1024 * 1024;

/// A line from the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Frame(Output),
    /// A (sealed) result line, as the runner printed it.
    Result(Vec<u8>),
    /// Anything else (never printed by a runner).
    Other(Vec<u8>),
}

/// One attach session with the runner of one Pod.
pub struct Session {
    pub pod: String,
    pub namespace: String,
    pub opened: Instant,
    process: AttachedProcess,
    writer: Pin<Box<dyn AsyncWrite + Send>>,
    reader: BufReader<Pin<Box<dyn AsyncRead + Send>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("pod", &self.pod).field("namespace", &self.namespace).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("attaching to Pod {pod}: {source}")]
    Attach { pod: String, source: kube::Error },
    #[error("the attach stream of Pod {0} has no stdin or stdout")]
    NoStreams(String),
    #[error("the attach stream of Pod {pod}: {source}")]
    Io { pod: String, source: std::io::Error },
    #[error("a line of more than {MAX_LINE} bytes from Pod {0}")]
    LineTooLong(String),
    #[error("no answer from the runner of Pod {0} in time")]
    Timeout(String),
}

impl Session {
    /// Attach to the runner container of `pod` (stdin and stdout; its stderr is unused).
    pub async fn open(client: Client, namespace: &str, pod: &str) -> Result<Session, SessionError> {
        let api = Api::<Pod>::namespaced(client, namespace);
        let ap = AttachParams {
            container: Some(CONTAINER.into()),
            stdin: true,
            stdout: true,
            stderr: false,
            tty: false,
            max_stdin_buf_size: None,
            max_stdout_buf_size: None,
            max_stderr_buf_size: None,
        };
        let mut process =
            api.attach(pod, &ap).await.map_err(|source| SessionError::Attach { pod: pod.into(), source })?;
        let (Some(w), Some(r)) = (process.stdin(), process.stdout()) else {
            process.abort();
            return Err(SessionError::NoStreams(pod.into()));
        };
        Ok(Session {
            pod: pod.into(),
            namespace: namespace.into(),
            opened: Instant::now(),
            process,
            writer: Box::pin(w),
            reader: BufReader::with_capacity(256 * 1024, Box::pin(r)),
        })
    }

    /// Send one message.
    pub async fn send(&mut self, input: &Input) -> Result<(), SessionError> {
        let line = input.line();
        debug_assert!(line.len() <= MAX_INPUT_LINE);
        let io = |source| SessionError::Io { pod: self.pod.clone(), source };
        self.writer.write_all(line.as_bytes()).await.map_err(io)?;
        self.writer.flush().await.map_err(|source| SessionError::Io { pod: self.pod.clone(), source })
    }

    /// The next line, `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<Line>, SessionError> {
        let mut buf = Vec::new();
        loop {
            let chunk = self
                .reader
                .fill_buf()
                .await
                .map_err(|source| SessionError::Io { pod: self.pod.clone(), source })?;
            if chunk.is_empty() {
                // End of stream: a partial last line is not a line.
                return Ok(None);
            }
            let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if buf.len() + take > MAX_LINE {
                return Err(SessionError::LineTooLong(self.pod.clone()));
            }
            buf.extend_from_slice(&chunk[..take]);
            self.reader.consume(take);
            if done {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Ok(Some(classify(buf)));
            }
        }
    }

    /// [`Session::next`] with a deadline.
    pub async fn next_until(&mut self, deadline: Instant) -> Result<Option<Line>, SessionError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.next()).await {
            Ok(r) => r,
            Err(_) => Err(SessionError::Timeout(self.pod.clone())),
        }
    }

    /// Ask the runner whether it is idle and wait (up to `within`) for its `Ready`, skipping
    /// anything older. The `served` count and MAC of the answer, for the caller to verify.
    pub async fn ping(
        &mut self,
        nonce: &str,
        within: Duration,
    ) -> Result<Option<(u32, String)>, SessionError> {
        self.send(&Input::Ping { nonce: nonce.into() }).await?;
        let deadline = Instant::now() + within;
        loop {
            match self.next_until(deadline).await? {
                None => return Ok(None),
                Some(Line::Frame(Output::Ready { served, nonce: n, mac })) if n == nonce => {
                    return Ok(Some((served, mac)))
                }
                Some(Line::Frame(Output::Spoiled { .. })) => return Ok(None),
                Some(_) => {}
            }
        }
    }

    /// Close the session (the runner keeps running; its stdin stays open for the next one).
    pub fn close(self) {
        self.process.abort();
    }
}

fn classify(line: Vec<u8>) -> Line {
    if line.starts_with(RESULT_PREFIX.as_bytes()) {
        return Line::Result(line);
    }
    match Output::parse(&line) {
        Some(o) => Line::Frame(o),
        None => Line::Other(line),
    }
}

/// Open sessions, by Pod uid.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take the session of the Pod with uid `pod_uid`, if one is open.
    pub fn take(&self, pod_uid: &str) -> Option<Session> {
        self.lock().remove(pod_uid)
    }

    /// Keep `session` for the Pod with uid `pod_uid` (closing one already there).
    pub fn put(&self, pod_uid: &str, session: Session) {
        if let Some(old) = self.lock().insert(pod_uid.to_string(), session) {
            old.close();
        }
    }

    /// Is a session of this Pod held?
    pub fn has(&self, pod_uid: &str) -> bool {
        self.lock().contains_key(pod_uid)
    }

    /// Close and forget the session of a Pod that is gone.
    pub fn drop_pod(&self, pod_uid: &str) {
        if let Some(s) = self.take(pod_uid) {
            s.close();
        }
    }

    /// Uids of the Pods with a session.
    pub fn pods(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

/// The result of run `run_id` in a serving runner's log (which holds the results of every
/// run the Pod served): the one result line sealed under `key` that names `run_id`.
pub fn find_result(log: &[u8], key: &[u8], run_id: &str) -> Option<RunResult> {
    log.split(|b| *b == b'\n')
        .filter(|l| l.starts_with(RESULT_PREFIX.as_bytes()))
        .filter_map(|l| ResultLine::open(l, key, run_id).ok())
        .find(|r| r.run_id == run_id)
}

/// Did the runner whose log this is start run `run_id`?
pub fn started_in(log: &[u8], run_id: &str) -> bool {
    log.split(|b| *b == b'\n')
        .filter_map(Output::parse)
        .any(|o| matches!(o, Output::Started { run_id: r } if r == run_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_api::protocol::{seal, Outcome};

    fn result(run_id: &str) -> RunResult {
        RunResult {
            tests: vec![],
            run_id: run_id.into(),
            outcome: Outcome::Ran,
            message: None,
            compile: None,
            run: None,
            runs: 1,
        }
    }

    #[test]
    fn results_and_starts_are_found_by_run_in_a_log_of_many() {
        let key = b"thirty-two bytes of key material";
        let mut log = Vec::new();
        for id in ["u1/1", "u2/1", "u3/2"] {
            log.extend_from_slice(Output::Started { run_id: id.into() }.line().as_bytes());
            log.extend_from_slice(seal(&result(id), Some(key)).as_bytes());
            log.push(b'\n');
        }
        // A forged line (wrong key) naming a run is never taken.
        log.extend_from_slice(seal(&result("u4/1"), Some(b"another key of thirty-two bytes!")).as_bytes());
        log.push(b'\n');
        log.extend_from_slice(Output::Started { run_id: "u4/1".into() }.line().as_bytes());
        assert_eq!(find_result(&log, key, "u2/1").map(|r| r.run_id), Some("u2/1".into()));
        assert_eq!(find_result(&log, key, "u3/2").map(|r| r.run_id), Some("u3/2".into()));
        assert!(find_result(&log, key, "u3/1").is_none());
        assert!(find_result(&log, key, "u4/1").is_none());
        assert!(started_in(&log, "u4/1"));
        assert!(!started_in(&log, "u5/1"));
    }

    #[test]
    fn lines_are_classified() {
        assert_eq!(classify(b"{\"rceResult\":{}}".to_vec()), Line::Result(b"{\"rceResult\":{}}".to_vec()));
        assert_eq!(
            classify(b"{\"t\":\"started\",\"runId\":\"a\"}".to_vec()),
            Line::Frame(Output::Started { run_id: "a".into() })
        );
        assert_eq!(classify(b"hello".to_vec()), Line::Other(b"hello".to_vec()));
    }
}
