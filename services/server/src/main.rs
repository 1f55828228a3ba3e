//! `omniroute`: the command line.
//!
//! ```text
//! omniroute serve [--config FILE]   run the router
//! omniroute check [--config FILE]   validate the settings and exit
//! ```
//!
//! Settings come from built-in defaults, then the TOML file (from `--config`
//! or `OMNIROUTE_CONFIG`), then `OMNIROUTE__SECTION__KEY` variables.

use std::path::PathBuf;
use std::process::ExitCode;

use omniroute::{Application, Settings, telemetry};

const USAGE: &str = "usage: omniroute <serve|check> [--config FILE]

  serve    run the gRPC server until SIGTERM or ctrl-c
  check    validate the settings and exit

Settings: built-in defaults, then FILE (or $OMNIROUTE_CONFIG), then
OMNIROUTE__SECTION__KEY environment variables. See deploy/omniroute.toml.";

enum Command {
    Serve,
    Check,
}

fn parse_args() -> Result<(Command, Option<PathBuf>), String> {
    let mut args = std::env::args().skip(1);
    let command = match args.next().as_deref() {
        Some("serve") => Command::Serve,
        Some("check") => Command::Check,
        Some("-h" | "--help" | "help") | None => return Err(USAGE.to_owned()),
        Some("-V" | "--version") => {
            return Err(format!("omniroute {}", env!("CARGO_PKG_VERSION")));
        }
        Some(other) => return Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    let mut config = std::env::var_os("OMNIROUTE_CONFIG").map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                config = Some(PathBuf::from(
                    args.next().ok_or("--config needs a file name")?,
                ));
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok((command, config))
}

fn main() -> ExitCode {
    let (command, config) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::load(config.as_deref(), std::env::vars()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("omniroute: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Check => {
            eprintln!("omniroute: settings are valid");
            ExitCode::SUCCESS
        }
        Command::Serve => {
            telemetry::init(&settings.log);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("omniroute: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "omniroute failed");
                    eprintln!("omniroute: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
