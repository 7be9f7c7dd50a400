//! The sandbox entrypoint: one JSON result line on stdout, exit status 0, whatever happens.

fn main() {
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let config = rce_runner::Config::from_args_and_env(&args, |k| std::env::var(k).ok());
    let result = rce_runner::catch_panics(|| rce_runner::run(&config));
    rce_runner::print_result(result);
}
