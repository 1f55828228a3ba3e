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
    // Handlers first: a SIGTERM that arrives while the store opens must stop
    // the server gracefully, not kill it.
    let shutdown = shutdown_signal()?;
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown).await
}

/// Installs the ctrl-c and SIGTERM handlers now; the future completes on
/// either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        let terminated = terminate.recv();
        #[cfg(not(unix))]
        let terminated = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
            _ = terminated => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}
