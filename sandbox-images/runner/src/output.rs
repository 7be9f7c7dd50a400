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
    fn invalid_utf8_is_replaced() {
        let mut b = CappedBuf::new(10);
        b.push(b"a\xffb");
        assert_eq!(b.into_text(), ("a\u{fffd}b".to_string(), false));
    }
}
