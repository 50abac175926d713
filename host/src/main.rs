//! The `crypto-etl` command.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Started by the Lambda runtime: serve invocations instead of reading a command line.
    if crypto_etl::lambda::is_lambda() {
        return serve_lambda();
    }
    if let Err(message) = apply_config_file() {
        eprintln!("error: {message}");
        return ExitCode::from(cli::Code::BadInput as u8);
    }
    let args = cli::Cli::parse();
    cli::init_logging(args.verbose, args.quiet);
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            if let Some(hint) = failure.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(failure.code as u8)
        }
    }
}

fn serve_lambda() -> ExitCode {
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(lambda_runtime::Error::from)
        .and_then(|runtime| runtime.block_on(crypto_etl::lambda::serve()));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: the Lambda runtime stopped: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Applies the configuration file's settings as defaults for their environment variables (see
/// `cli::config`): a variable already set wins, and flags win over both.
fn apply_config_file() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = cli::config::locate(&args) else { return Ok(()) };
    for (variable, value) in cli::config::read(&path)? {
        if std::env::var_os(variable).is_none() {
            // SAFETY: called first thing in `main`, before any other thread exists.
            unsafe { std::env::set_var(variable, value) };
        }
    }
    Ok(())
}
