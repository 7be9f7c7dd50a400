//! Signal names for the result document.

/// The conventional name of a Linux signal (`SIGSEGV`), `SIGRTMIN+n` for real-time signals,
/// `SIG<n>` for anything else.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        // The kernel's real-time range is 32..=64; glibc reserves 32 and 33, so its SIGRTMIN is
        // 34, which is what programs (and `kill -l`) call SIGRTMIN.
        34..=64 => return format!("SIGRTMIN+{}", sig - 34),
        _ => return format!("SIG{sig}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::signal_name;

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
            (31, "SIGSYS"),
        ];
        for (n, name) in cases {
            assert_eq!(signal_name(n), name, "signal {n}");
        }
    }

    #[test]
    fn realtime_and_unknown_signals() {
        assert_eq!(signal_name(34), "SIGRTMIN+0");
        assert_eq!(signal_name(40), "SIGRTMIN+6");
        assert_eq!(signal_name(0), "SIG0");
        assert_eq!(signal_name(99), "SIG99");
    }
}
