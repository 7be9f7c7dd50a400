//! Live output: an Execution's status updates interleaved with its live output stream
//! (`rce_api::redis_keys::live_key`, written by the operator while the program runs in a
//! serving sandbox), for the native SSE and WebSocket streams and Piston's `/connect`.
//!
//! [`watch_live`] sends [`Update`]s: the status views of [`crate::backend::watch`] (first,
//! one per phase change) and the live entries as they are read, the terminal status always
//! last. The live stream is read from id 0 (nothing written before the client came is
//! missed) by a reader that pulls one batch at a time into a small channel: a client that
//! does not read stalls the reader, it does not grow the shim's memory. At most
//! `output_cap` bytes per output stream are forwarded (the Execution's output limit: the
//! program cannot have written more that counts). When the store has no live stream (Redis
//! down, a cold sandbox that streams nothing), the updates are the status views alone, as
//! before.
//!
//! The operator writes `end` to the live stream before it publishes the terminal status, but
//! the two arrive on different connections (and the status may come from a poll): once the
//! terminal status is in, the live entries still on their way are awaited until `end`, for
//! at most [`END_GRACE`] ([`NO_LIVE_GRACE`] when no live entry came at all).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::{
    backend::{watch, Cluster, ExecView, Live, OutStream, StatusStore},
    error::ApiError,
};

/// After the terminal status: how long to wait for the live stream's `end`.
pub const END_GRACE: Duration = Duration::from_secs(2);
/// Same, when the live stream has shown nothing (there may be none).
pub const NO_LIVE_GRACE: Duration = Duration::from_millis(150);

/// What a live follower sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Status(Box<ExecView>),
    /// A live entry ([`Live::Output`] already cut to the output cap; never [`Live::End`]).
    Live(Live),
}

/// Follow an Execution's status and live output (see the module's documentation).
pub async fn watch_live(
    cluster: Arc<dyn Cluster>,
    status: Arc<dyn StatusStore>,
    poll_interval: Duration,
    namespace: &str,
    name: &str,
    max: Duration,
    output_cap: u64,
) -> Result<mpsc::Receiver<Update>, ApiError> {
    // Both at once: with Redis down each waits for its timeout, side by side.
    let (views, live) = tokio::join!(
        watch(cluster, status.clone(), poll_interval, namespace, name, max),
        status.live(namespace, name)
    );
    let mut views = views?;
    let live = match live {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(error = %e, "no live stream; status updates only");
            None
        }
    };
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut live = live;
        let mut seen_live = false;
        let mut sent = [0u64; 2];
        let mut terminal: Option<ExecView> = None;
        let mut grace = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                v = views.recv(), if terminal.is_none() => match v {
                    Some(v) if v.is_terminal() => {
                        if live.is_none() {
                            let _ = tx.send(Update::Status(Box::new(v))).await;
                            return;
                        }
                        grace = tokio::time::Instant::now() + if seen_live { END_GRACE } else { NO_LIVE_GRACE };
                        terminal = Some(v);
                    }
                    Some(v) => if tx.send(Update::Status(Box::new(v))).await.is_err() { return },
                    None => return,
                },
                e = async { match live.as_mut() { Some(s) => s.next().await, None => std::future::pending().await } } => match e {
                    None | Some(Live::End) => {
                        live = None;
                        if let Some(t) = terminal.take() {
                            let _ = tx.send(Update::Status(Box::new(t))).await;
                            return;
                        }
                    }
                    Some(Live::Output { stream, mut data }) => {
                        seen_live = true;
                        let n = &mut sent[stream as usize];
                        let room = usize::try_from(output_cap.saturating_sub(*n)).unwrap_or(usize::MAX);
                        data.truncate(room);
                        *n += data.len() as u64;
                        if !data.is_empty() && tx.send(Update::Live(Live::Output { stream, data })).await.is_err() {
                            return;
                        }
                    }
                    Some(stage @ Live::Stage(_)) => {
                        seen_live = true;
                        if tx.send(Update::Live(stage)).await.is_err() { return }
                    }
                },
                _ = tokio::time::sleep_until(grace), if terminal.is_some() => {
                    if let Some(t) = terminal.take() {
                        let _ = tx.send(Update::Status(Box::new(t))).await;
                    }
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// A chunk of output as a client gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Valid UTF-8.
    Text(String),
    /// Bytes that are not (sent as base64, or lossily where the protocol is text only).
    Bytes(Vec<u8>),
}

impl Chunk {
    /// The chunk as text, invalid bytes replaced (U+FFFD): Piston's `data.toString()`.
    pub fn lossy(self) -> String {
        match self {
            Chunk::Text(s) => s,
            Chunk::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
        }
    }
}

/// Cuts output into text chunks without splitting a UTF-8 character that straddles two
/// reads: an incomplete sequence at the end of a read waits for the next one.
#[derive(Debug, Default)]
pub struct Utf8Carry {
    carry: [Vec<u8>; 2],
}

impl Utf8Carry {
    pub fn push(&mut self, stream: OutStream, data: &[u8]) -> Option<Chunk> {
        let carry = &mut self.carry[stream as usize];
        let mut buf = std::mem::take(carry);
        buf.extend_from_slice(data);
        match std::str::from_utf8(&buf) {
            Ok(_) => {
                String::from_utf8(buf).ok().map(Chunk::Text).filter(|c| c != &Chunk::Text(String::new()))
            }
            Err(e) if e.error_len().is_none() && buf.len() - e.valid_up_to() <= 3 => {
                *carry = buf.split_off(e.valid_up_to());
                String::from_utf8(buf).ok().filter(|s| !s.is_empty()).map(Chunk::Text)
            }
            Err(_) => Some(Chunk::Bytes(buf)),
        }
    }

    /// What is still held (an incomplete character at the very end of the output).
    pub fn flush(&mut self, stream: OutStream) -> Option<Chunk> {
        let rest = std::mem::take(&mut self.carry[stream as usize]);
        (!rest.is_empty()).then_some(Chunk::Bytes(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_reads_stays_text() {
        let mut c = Utf8Carry::default();
        let euro = "€".as_bytes();
        assert_eq!(c.push(OutStream::Stdout, &[b'a', euro[0]]), Some(Chunk::Text("a".into())));
        // The other stream has its own carry.
        assert_eq!(c.push(OutStream::Stderr, b"x"), Some(Chunk::Text("x".into())));
        assert_eq!(c.push(OutStream::Stdout, &euro[1..2]), None);
        assert_eq!(c.push(OutStream::Stdout, &[euro[2], b'b']), Some(Chunk::Text("€b".into())));
        assert_eq!(c.flush(OutStream::Stdout), None);
    }

    #[test]
    fn invalid_bytes_are_bytes_and_an_unfinished_tail_is_flushed() {
        let mut c = Utf8Carry::default();
        assert_eq!(c.push(OutStream::Stdout, &[0xff, b'a']), Some(Chunk::Bytes(vec![0xff, b'a'])));
        assert_eq!(c.push(OutStream::Stdout, &[0xe2]), None);
        assert_eq!(c.flush(OutStream::Stdout), Some(Chunk::Bytes(vec![0xe2])));
        assert_eq!(Chunk::Bytes(vec![0xff, b'a']).lossy(), "\u{fffd}a");
    }
}
