//! The sandbox entrypoint: one sealed JSON result line on stdout, exit status 0, whatever
//! happens.

fn main() {
    // Before anything else, and before any program exists: out of reach of the same uid.
    let nondumpable = rce_runner::sys::make_nondumpable();
    let key = rce_runner::take_result_key();
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let config = rce_runner::Config::from_args_and_env(&args, |k| std::env::var(k).ok());
    let result = match nondumpable {
        // Fail closed: without this layer the program could reach the runner.
        Err(e) => rce_runner::internal_error_result(format!("cannot make the runner non-dumpable: {e}")),
        Ok(()) => rce_runner::catch_panics(|| rce_runner::run(&config, key.as_deref())),
    };
    rce_runner::print_result(&result, key.as_deref());
}
