//! Linux signals: one table of numbers and names, used by the runner (which names the signal
//! that ended a program), the operator (which records it in the status) and the shim (whose
//! Judge0 surface reports the number).

use std::{borrow::Cow, fmt};

/// A signal by number (x86_64 Linux numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(pub i32);

/// The standard signals, by number.
const NAMES: [(i32, &str); 31] = [
    (1, "SIGHUP"),
    (2, "SIGINT"),
    (3, "SIGQUIT"),
    (4, "SIGILL"),
    (5, "SIGTRAP"),
    (6, "SIGABRT"),
    (7, "SIGBUS"),
    (8, "SIGFPE"),
    (9, "SIGKILL"),
    (10, "SIGUSR1"),
    (11, "SIGSEGV"),
    (12, "SIGUSR2"),
    (13, "SIGPIPE"),
    (14, "SIGALRM"),
    (15, "SIGTERM"),
    (16, "SIGSTKFLT"),
    (17, "SIGCHLD"),
    (18, "SIGCONT"),
    (19, "SIGSTOP"),
    (20, "SIGTSTP"),
    (21, "SIGTTIN"),
    (22, "SIGTTOU"),
    (23, "SIGURG"),
    (24, "SIGXCPU"),
    (25, "SIGXFSZ"),
    (26, "SIGVTALRM"),
    (27, "SIGPROF"),
    (28, "SIGWINCH"),
    (29, "SIGIO"),
    (30, "SIGPWR"),
    (31, "SIGSYS"),
];

/// Other names of the same signals.
const ALIASES: [(&str, i32); 3] = [("SIGIOT", 6), ("SIGPOLL", 29), ("SIGCLD", 17)];

/// glibc's SIGRTMIN: the kernel's real-time range is 32..=64, glibc keeps 32 and 33, and
/// programs (and `kill -l`) call 34 SIGRTMIN.
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

impl Signal {
    pub const ABRT: Signal = Signal(6);
    pub const FPE: Signal = Signal(8);
    pub const KILL: Signal = Signal(9);
    pub const SEGV: Signal = Signal(11);
    pub const STKFLT: Signal = Signal(16);
    pub const XCPU: Signal = Signal(24);
    pub const XFSZ: Signal = Signal(25);

    pub fn number(self) -> i32 {
        self.0
    }

    /// Its conventional name: `SIGSEGV`, `SIGRTMIN+n` for real-time signals, `SIG<n>` for
    /// anything else.
    pub fn name(self) -> Cow<'static, str> {
        if let Some((_, n)) = NAMES.iter().find(|(i, _)| *i == self.0) {
            return Cow::Borrowed(n);
        }
        if (RTMIN..=RTMAX).contains(&self.0) {
            return Cow::Owned(format!("SIGRTMIN+{}", self.0 - RTMIN));
        }
        Cow::Owned(format!("SIG{}", self.0))
    }

    /// The signal a name stands for: any [`Signal::name`] (`SIGSEGV`, `SIGRTMIN+3`, `SIG99`),
    /// the name without `SIG` (`SEGV`), an alias (`SIGIOT`), `SIGRTMAX-n`, or a bare number.
    pub fn parse(s: &str) -> Option<Signal> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i32>() {
            return (n > 0).then_some(Signal(n));
        }
        let upper = s.to_ascii_uppercase();
        let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
        if let Some((n, _)) = NAMES.iter().find(|(_, m)| *m == name) {
            return Some(Signal(*n));
        }
        if let Some((_, n)) = ALIASES.iter().find(|(m, _)| *m == name) {
            return Some(Signal(*n));
        }
        let offset = |rest: &str| rest.parse::<i32>().ok().filter(|k| (0..=RTMAX - RTMIN).contains(k));
        if name == "SIGRTMIN" {
            return Some(Signal(RTMIN));
        }
        if name == "SIGRTMAX" {
            return Some(Signal(RTMAX));
        }
        if let Some(k) = name.strip_prefix("SIGRTMIN+").and_then(offset) {
            return Some(Signal(RTMIN + k));
        }
        if let Some(k) = name.strip_prefix("SIGRTMAX-").and_then(offset) {
            return Some(Signal(RTMAX - k));
        }
        name.strip_prefix("SIG").and_then(|n| n.parse::<i32>().ok()).filter(|n| *n > 0).map(Signal)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_signals_have_their_names() {
        let cases = [
            (11, "SIGSEGV"),
            (8, "SIGFPE"),
            (6, "SIGABRT"),
            (9, "SIGKILL"),
            (24, "SIGXCPU"),
            (25, "SIGXFSZ"),
            (7, "SIGBUS"),
            (4, "SIGILL"),
            (13, "SIGPIPE"),
            (15, "SIGTERM"),
            (16, "SIGSTKFLT"),
            (31, "SIGSYS"),
        ];
        for (n, name) in cases {
            assert_eq!(Signal(n).name(), name, "signal {n}");
        }
    }

    #[test]
    fn realtime_and_unknown_signals() {
        assert_eq!(Signal(34).name(), "SIGRTMIN+0");
        assert_eq!(Signal(40).name(), "SIGRTMIN+6");
        assert_eq!(Signal(0).name(), "SIG0");
        assert_eq!(Signal(99).name(), "SIG99");
    }

    #[test]
    fn every_name_parses_back_to_its_number() {
        for n in 1..=70 {
            let s = Signal(n);
            assert_eq!(Signal::parse(&s.name()), Some(s), "{s}");
            assert_eq!(Signal::parse(&n.to_string()), Some(s));
        }
        assert_eq!(Signal::parse("SEGV"), Some(Signal::SEGV));
        assert_eq!(Signal::parse("sigsegv"), Some(Signal::SEGV));
        assert_eq!(Signal::parse("SIGIOT"), Some(Signal::ABRT));
        assert_eq!(Signal::parse("SIGRTMAX"), Some(Signal(64)));
        assert_eq!(Signal::parse("SIGRTMAX-2"), Some(Signal(62)));
        assert_eq!(Signal::parse("SIGSTKFLT"), Some(Signal(16)));
        for bad in ["", "SIG", "SIGNOPE", "nope", "-1", "0", "SIGRTMIN+99"] {
            assert_eq!(Signal::parse(bad), None, "{bad:?}");
        }
    }
}
