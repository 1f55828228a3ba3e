//! `omniroute`: the command line.
//!
//! ```text
//! omniroute serve [--config FILE]   run the router
//! omniroute check [--config FILE]   validate the settings and exit
//! omniroute tenants|keys …          manage tenants and API keys
//! ```
//!
//! Settings come from built-in defaults, then the TOML file (from `--config`
//! or `OMNIROUTE_CONFIG`), then `OMNIROUTE__SECTION__KEY` variables.

use std::path::PathBuf;
use std::process::ExitCode;

use omniroute::{Application, Settings, cli, telemetry};

const USAGE: &str = "usage: omniroute <serve|check|tenants|keys> … [--config FILE]

  serve    run the gRPC server until SIGTERM or ctrl-c
  check    validate the settings and exit
";

const USAGE_END: &str = "

Settings: built-in defaults, then FILE (or $OMNIROUTE_CONFIG), then
OMNIROUTE__SECTION__KEY environment variables. See deploy/omniroute.toml.";

enum Command {
    Serve,
    Check,
    Admin(cli::Admin),
}

fn usage() -> String {
    format!("{USAGE}{}{USAGE_END}", cli::USAGE)
}

fn parse_args() -> Result<(Command, Option<PathBuf>), String> {
    let mut config = std::env::var_os("OMNIROUTE_CONFIG").map(PathBuf::from);
    // `--config FILE` anywhere; the other words are the command's.
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                config = Some(PathBuf::from(
                    args.next().ok_or("--config needs a file name")?,
                ));
            }
            _ => words.push(arg),
        }
    }
    if let Some(admin) = cli::parse(&words) {
        return Ok((Command::Admin(admin?), config));
    }
    let command = match words.first().map(String::as_str) {
        Some("serve") => Command::Serve,
        Some("check") => Command::Check,
        Some("-h" | "--help" | "help") | None => return Err(usage()),
        Some("-V" | "--version") => {
            return Err(format!("omniroute {}", env!("CARGO_PKG_VERSION")));
        }
        Some(other) => return Err(format!("unknown command {other:?}\n\n{}", usage())),
    };
    if let Some(extra) = words.get(1) {
        return Err(format!("unknown argument {extra:?}\n\n{}", usage()));
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
        Command::Admin(admin) => {
            let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(cli::run(&settings, admin)) {
                Ok(output) => {
                    if !output.is_empty() {
                        // The command's answer (a new key) is its output.
                        use std::io::Write as _;
                        let mut stdout = std::io::stdout().lock();
                        if writeln!(stdout, "{output}").is_err() {
                            return ExitCode::FAILURE;
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("omniroute: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => {
            telemetry::init(&settings.log);
            let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
                return ExitCode::FAILURE;
            };
            let code = match runtime.block_on(serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "omniroute failed");
                    eprintln!("omniroute: {e:#}");
                    ExitCode::FAILURE
                }
            };
            // The spans still queued for export go before the process does.
            telemetry::shutdown();
            code
        }
    }
}

/// The runtime `builder` makes, with every driver on; `None` (said on
/// stderr) when it cannot start.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|e| eprintln!("omniroute: cannot start the runtime: {e}"))
        .ok()
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
