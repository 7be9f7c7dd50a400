//! Capturing a program's stdout/stderr under a byte cap.

/// A byte buffer that keeps at most `cap` bytes and remembers whether more was offered.
///
/// The reader asks [`CappedBuf::read_size`] how much to read next, so it never pulls more
/// than one byte past the cap out of the pipe: memory stays bounded by the cap whatever the
/// program writes.
#[derive(Debug)]
pub struct CappedBuf {
    data: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl CappedBuf {
    pub fn new(cap: u64) -> Self {
        CappedBuf { data: Vec::new(), cap: usize::try_from(cap).unwrap_or(usize::MAX), truncated: false }
    }

    /// How many bytes to read next, at most `chunk`: one byte past the cap is enough to
    /// know the output was too long.
    pub fn read_size(&self, chunk: usize) -> usize {
        chunk.min(self.cap.saturating_sub(self.data.len()).saturating_add(1))
    }

    /// Appends what fits; returns how many bytes were kept (the bytes past the cap are
    /// dropped).
    pub fn push_kept(&mut self, bytes: &[u8]) -> usize {
        let before = self.data.len();
        self.push(bytes);
        self.data.len() - before
    }

    /// Appends what fits; returns `true` once the cap has been exceeded (the bytes past the
    /// cap are dropped).
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        let room = self.cap.saturating_sub(self.data.len());
        if bytes.len() > room {
            self.data.extend_from_slice(&bytes[..room]);
            self.truncated = true;
        } else {
            self.data.extend_from_slice(bytes);
        }
        self.truncated
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The captured bytes, exactly, and whether they were truncated.
    pub fn into_bytes(self) -> (Vec<u8>, bool) {
        (self.data, self.truncated)
    }

    /// The captured bytes as text: see [`text_of`].
    pub fn into_text(self) -> (String, bool) {
        let truncated = self.truncated;
        (text_of(&self.data, truncated), truncated)
    }
}

pub use rce_api::protocol::text_of;

/// The order in which a stage's stdout and stderr arrived, as
/// [`StageResult::arrival`](crate::protocol::StageResult::arrival): one entry per run of
/// reads from the same stream, `+n` for `n` bytes of stdout, `-n` for `n` of stderr, only
/// bytes that were kept. At most [`MAX_ARRIVAL`] entries: when they run out, the detail
/// stops and [`Arrival::finish`] ends with the rest of stdout, then the rest of stderr.
///
/// The runner sees the order of its reads, not of the program's writes: writes to both
/// streams between two wake-ups of the runner are read stdout first. (Piston, reading two
/// pipes in an event loop, has the same limit.)
#[derive(Debug, Default)]
pub struct Arrival {
    entries: Vec<i64>,
    /// No room left: later reads are only counted by [`Arrival::finish`].
    full: bool,
}

pub use rce_api::protocol::MAX_ARRIVAL;

impl Arrival {
    /// `kept` bytes of stdout (`stderr == false`) or stderr were kept from one read.
    pub fn record(&mut self, stderr: bool, kept: usize) {
        if kept == 0 || self.full {
            return;
        }
        let n = i64::try_from(kept).unwrap_or(i64::MAX);
        let n = if stderr { -n } else { n };
        let room = self.entries.len() + 2 < MAX_ARRIVAL;
        match self.entries.last_mut() {
            Some(last) if (*last < 0) == stderr => *last = last.saturating_add(n),
            // Two entries stay free for finish's rest of stdout and rest of stderr.
            _ if !room => self.full = true,
            _ => self.entries.push(n),
        }
    }

    /// The entries, completed so that they add up to the kept lengths of stdout and stderr.
    pub fn finish(mut self, stdout_len: usize, stderr_len: usize) -> Vec<i64> {
        let recorded_out: i64 = self.entries.iter().filter(|n| **n > 0).sum();
        let recorded_err: i64 = -self.entries.iter().filter(|n| **n < 0).sum::<i64>();
        let rest_out = i64::try_from(stdout_len).unwrap_or(i64::MAX).saturating_sub(recorded_out);
        let rest_err = i64::try_from(stderr_len).unwrap_or(i64::MAX).saturating_sub(recorded_err);
        self.full = false;
        for (stderr, rest) in [(false, rest_out), (true, rest_err)] {
            if rest > 0 {
                match self.entries.last_mut() {
                    Some(last) if (*last < 0) == stderr => *last += if stderr { -rest } else { rest },
                    _ => self.entries.push(if stderr { -rest } else { rest }),
                }
            }
        }
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_cap() {
        let mut b = CappedBuf::new(10);
        assert!(!b.push(b"hello"));
        assert!(!b.push(b"world"));
        assert_eq!(b.into_text(), ("helloworld".to_string(), false));
    }

    #[test]
    fn cuts_at_the_cap_and_marks_truncated() {
        let mut b = CappedBuf::new(8);
        assert!(!b.push(b"12345"));
        assert!(b.push(b"6789"));
        // Stays truncated, nothing more is kept.
        assert!(b.push(b"x"));
        assert!(b.truncated());
        assert_eq!(b.into_text(), ("12345678".to_string(), true));
    }

    #[test]
    fn exactly_the_cap_is_not_truncated() {
        let mut b = CappedBuf::new(4);
        assert!(!b.push(b"abcd"));
        assert_eq!(b.read_size(65536), 1, "one more byte decides whether the output is too long");
        assert_eq!(b.into_text(), ("abcd".to_string(), false));
    }

    #[test]
    fn read_size_never_goes_much_past_the_cap() {
        let mut b = CappedBuf::new(100);
        assert_eq!(b.read_size(65536), 101);
        assert_eq!(b.read_size(16), 16);
        b.push(&[b'a'; 60]);
        assert_eq!(b.read_size(65536), 41);
        let huge = CappedBuf::new(u64::MAX);
        assert_eq!(huge.read_size(65536), 65536);
        let zero = CappedBuf::new(0);
        assert_eq!(zero.read_size(65536), 1);
    }

    #[test]
    fn zero_cap_truncates_any_output() {
        let mut b = CappedBuf::new(0);
        assert!(b.push(b"x"));
        assert_eq!(b.into_text(), (String::new(), true));
    }

    #[test]
    fn a_character_cut_by_the_cap_is_dropped() {
        // "é" is C3 A9: a cap of 2 keeps "a" and the lead byte, which is dropped.
        let mut b = CappedBuf::new(2);
        assert!(b.push("aé".as_bytes()));
        assert_eq!(b.into_text(), ("a".to_string(), true));
        // A complete multi-byte character at the end is kept.
        let mut b = CappedBuf::new(3);
        assert!(b.push("aéz".as_bytes()));
        assert_eq!(b.into_text(), ("aé".to_string(), true));
        // A 4-byte character cut after 3 bytes.
        let mut b = CappedBuf::new(4);
        assert!(b.push("a😀".as_bytes()));
        assert_eq!(b.into_text(), ("a".to_string(), true));
    }

    #[test]
    fn push_kept_counts_only_what_fits() {
        let mut b = CappedBuf::new(5);
        assert_eq!(b.push_kept(b"abc"), 3);
        assert_eq!(b.push_kept(b"defg"), 2);
        assert_eq!(b.push_kept(b"h"), 0);
        assert_eq!(b.into_bytes(), (b"abcde".to_vec(), true));
    }

    #[test]
    fn arrival_merges_reads_of_one_stream_and_keeps_the_order() {
        let mut a = Arrival::default();
        a.record(false, 2);
        a.record(false, 3);
        a.record(true, 2);
        a.record(false, 0);
        a.record(false, 2);
        a.record(true, 1);
        assert_eq!(a.finish(7, 3), vec![5, -2, 2, -1]);
        assert_eq!(Arrival::default().finish(0, 0), Vec::<i64>::new());
        // Bytes not seen by record (none here) would be added at the end.
        let mut a = Arrival::default();
        a.record(true, 4);
        assert_eq!(a.finish(3, 4), vec![-4, 3]);
    }

    #[test]
    fn arrival_past_its_room_ends_with_the_rest_of_each_stream() {
        let mut a = Arrival::default();
        for _ in 0..5000 {
            a.record(false, 1);
            a.record(true, 2);
        }
        let v = a.finish(5000, 10_000);
        assert_eq!(v.len(), MAX_ARRIVAL, "{:?}", &v[v.len() - 4..]);
        assert_eq!(v.iter().filter(|n| **n > 0).sum::<i64>(), 5000);
        assert_eq!(v.iter().filter(|n| **n < 0).sum::<i64>(), -10_000);
        // The detail holds while there is room: strictly alternating signs.
        assert!(v.windows(2).all(|w| (w[0] > 0) != (w[1] > 0)), "{v:?}");
        assert_eq!(&v[..4], &[1, -2, 1, -2]);
        let rest_out = 5000 - (MAX_ARRIVAL as i64 - 2) / 2;
        assert_eq!(v[v.len() - 2..], [rest_out, -(10_000 - 2 * (MAX_ARRIVAL as i64 - 2) / 2)]);
        // Room runs out on a read of stdout: it comes after the detail, with the rest.
        let mut a = Arrival::default();
        for _ in 0..(MAX_ARRIVAL - 3) / 2 {
            a.record(false, 1);
            a.record(true, 1);
        }
        a.record(false, 1);
        assert!(!a.full);
        a.record(true, 1);
        a.record(false, 1);
        let n = (MAX_ARRIVAL - 3) / 2;
        let v = a.finish(n + 2, n + 1);
        assert!(v.len() <= MAX_ARRIVAL);
        assert_eq!(v.iter().sum::<i64>(), 1);
        assert_eq!(v.iter().filter(|n| **n > 0).sum::<i64>(), n as i64 + 2);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut b = CappedBuf::new(10);
        b.push(b"a\xffb");
        assert_eq!(b.into_text(), ("a\u{fffd}b".to_string(), false));
    }
}
