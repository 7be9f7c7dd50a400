//! Compiler options a submission may pass (`spec.compilerOptions`, Judge0's
//! `compiler_options`): each must match one of the Runtime's patterns, so that a submission
//! cannot hand the compiler arbitrary options (plugins, response files, specs, wrappers).
//! The one definition: the shim refuses at once what the operator would refuse.

use std::fmt;

/// Most options in one submission.
pub const MAX_OPTIONS: usize = 32;
/// Longest single option.
pub const MAX_OPTION_LEN: usize = 128;

/// The element of a compile command that the options replace (zero or more arguments).
pub const PLACEHOLDER: &str = "{options}";

/// Why compiler options are refused, in words for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionsError(pub String);

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionsError {}

/// Characters a pattern's `*` may stand for: option values such as `c++17`, `X=5`,
/// `-Wno-unused`, `m` — no white space, quotes, shell or path-escape characters.
fn value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.,=+:-".contains(c)
}

/// Does `option` match `pattern` (exact, or a prefix ending in `*` followed by value
/// characters only)?
pub fn matches(pattern: &str, option: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => option.strip_prefix(prefix).is_some_and(|rest| rest.chars().all(value_char)),
        None => pattern == option,
    }
}

/// Check `given` against a Runtime's `allowed` patterns. `compiles`: whether the Runtime has
/// a compile step with the [`PLACEHOLDER`].
pub fn check(allowed: &[String], compiles: bool, given: &[String]) -> Result<(), OptionsError> {
    if given.is_empty() {
        return Ok(());
    }
    if !compiles {
        return Err(OptionsError(
            "compiler options are not accepted: this language has no compile step".into(),
        ));
    }
    if given.len() > MAX_OPTIONS {
        return Err(OptionsError(format!(
            "at most {MAX_OPTIONS} compiler options are accepted, not {}",
            given.len()
        )));
    }
    for option in given {
        if option.is_empty() || option.len() > MAX_OPTION_LEN || option.chars().any(|c| c.is_control()) {
            return Err(OptionsError(format!(
                "compiler option {option:?} is not allowed: options are 1 to {MAX_OPTION_LEN} printable bytes"
            )));
        }
        if !allowed.iter().any(|p| matches(p, option)) {
            let list = if allowed.is_empty() { "none".to_string() } else { allowed.join(" ") };
            return Err(OptionsError(format!(
                "compiler option {option:?} is not allowed; this language accepts: {list}"
            )));
        }
    }
    Ok(())
}

/// Split a Judge0-style options string into arguments (on white space; no quoting, as the
/// options never reach a shell).
pub fn split(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// The compile command with [`PLACEHOLDER`] replaced by `options` (dropped when there are
/// none).
pub fn expand(compile: &[String], options: &[String]) -> Vec<String> {
    let mut argv = Vec::with_capacity(compile.len() + options.len());
    for arg in compile {
        if arg == PLACEHOLDER {
            argv.extend(options.iter().cloned());
        } else {
            argv.push(arg.clone());
        }
    }
    argv
}

/// Does this compile command take options?
pub fn takes_options(compile: Option<&[String]>) -> bool {
    compile.is_some_and(|c| c.iter().any(|a| a == PLACEHOLDER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_listed_options_pass() {
        let allowed = v(&["-O*", "-std=*", "-D*", "-Wall", "-lm"]);
        assert!(check(&allowed, true, &v(&["-O2", "-std=c++17", "-DX=5", "-Wall", "-lm"])).is_ok());
        for bad in [
            "-fplugin=/tmp/x.so",
            "@/tmp/args",
            "-B/tmp",
            "-specs=/tmp/s",
            "-Wall2",
            "-DX=$(id)",
            "-O2 -x",
            "",
        ] {
            let e = check(&allowed, true, &v(&[bad])).unwrap_err();
            assert!(e.0.contains("is not allowed"), "{bad}: {e}");
        }
        assert!(check(&[], true, &v(&["-O2"])).unwrap_err().0.contains("accepts: none"));
        assert!(check(&allowed, false, &v(&["-O2"])).unwrap_err().0.contains("no compile step"));
        assert!(check(&[], false, &[]).is_ok());
        let many: Vec<String> = (0..33).map(|_| "-Wall".to_string()).collect();
        assert!(check(&allowed, true, &many).is_err());
    }

    #[test]
    fn options_replace_the_placeholder() {
        let compile = v(&["gcc", "{options}", "-o", "main", "{file}"]);
        assert_eq!(
            expand(&compile, &v(&["-O2", "-DX=5"])),
            v(&["gcc", "-O2", "-DX=5", "-o", "main", "{file}"])
        );
        assert_eq!(expand(&compile, &[]), v(&["gcc", "-o", "main", "{file}"]));
        assert!(takes_options(Some(&compile)));
        assert!(!takes_options(Some(&v(&["javac", "{file}"]))));
        assert!(!takes_options(None));
        assert_eq!(split("  -O2\t-DX=5 \n"), v(&["-O2", "-DX=5"]));
    }
}
