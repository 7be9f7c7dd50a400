//! The sandbox entrypoint: one sealed JSON result line on stdout, exit status 0, whatever
//! happens. With `--serve`, a warm sandbox's serving runner (see `rce_runner::serve`).

fn main() {
    // Before anything else, and before any program exists: out of reach of the same uid.
    let nondumpable = rce_runner::sys::make_nondumpable();
    let key = rce_runner::take_result_key();
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let config = rce_runner::Config::from_args_and_env(&args, |k| std::env::var(k).ok());
    if args.get(1).map(String::as_str) == Some(rce_runner::serve::SERVE_ARG) {
        // A warm sandbox: idle until the operator sends a run (see `serve`).
        std::process::exit(rce_runner::serve::main(nondumpable, key, &config));
    }
    // Fail closed: without these layers the program could reach the runner or its output.
    let result = match nondumpable {
        Err(e) => rce_runner::internal_error_result(format!("cannot make the runner non-dumpable: {e}")),
        Ok(()) => match rce_runner::sys::stash_stdio() {
            Err(e) => rce_runner::internal_error_result(format!("cannot park stdout and stderr: {e}")),
            Ok(stash) => {
                let result = rce_runner::catch_panics(|| rce_runner::run(&config, key.as_deref()));
                if stash.restore().is_err() {
                    // Nowhere to print: the operator sees no result, a Failed Execution.
                    std::process::exit(2);
                }
                result
            }
        },
    };
    rce_runner::print_result(&result, key.as_deref());
}
