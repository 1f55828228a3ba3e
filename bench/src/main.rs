//! `omniroute-bench`: the command line. See `omniroute-bench --help` and the
//! library documentation for what each phase measures.

use std::process::ExitCode;

use omniroute_bench::cli;

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let out = opts.out.clone();
    let smoke = opts.smoke;
    let result = if smoke {
        omniroute_bench::smoke_blocking()
    } else {
        omniroute_bench::run_blocking(opts)
    };
    let report = match result {
        Ok(report) => report.markdown(),
        Err(e) => {
            eprintln!("omniroute-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    print_report(&report);
    if let Some(path) = out
        && let Err(e) = std::fs::write(&path, &report)
    {
        eprintln!("omniroute-bench: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[allow(clippy::print_stdout)]
fn print_report(report: &str) {
    println!("{report}");
}
