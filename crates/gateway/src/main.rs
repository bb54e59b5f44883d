//! `sio-gateway` binary: parse the command line, then run the node or `check-config`.
//! Exit codes: 0 ok (including after a drain), 1 runtime failure, 2 bad configuration.
use std::process::ExitCode;

use clap::Parser;
use sio_gateway::config::{Cli, Command, Config, Options};

fn check_config(file: &std::path::Path) -> ExitCode {
    match Options::from_toml_file(file).and_then(Config::resolve) {
        Ok(config) => {
            println!(
                "OK: {} is valid\n\n# effective configuration (a valid config file, secrets redacted)\n{}",
                file.display(),
                config.to_toml()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(file) = cli.command.as_ref().and_then(Command::check_config_file) {
        return check_config(file);
    }
    let config = match Config::load(cli.options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sio-gateway: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    // Before the logger or the runtime start any thread: glibc reads its tunables only at exec.
    let heap_reexec_error = config
        .heap_huge_pages
        .then(sio_gateway::heap::reexec_with_huge_pages)
        .and_then(Result::err);
    sio_gateway::logging::init(&config);
    match heap_reexec_error {
        Some(e) => tracing::warn!(
            "heap huge pages not enabled (re-exec failed: {e}); running with the default heap"
        ),
        None => sio_gateway::heap::log_state(config.heap_huge_pages),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sio-gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(sio_gateway::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sio-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}
