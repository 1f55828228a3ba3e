//! The machine: what it is (for the report) and how much memory this process
//! holds while the benchmark runs.
//!
//! The server runs inside this process, so the resident set sampled here is
//! the server's plus the load generator's (its clients, histograms and the
//! tonic/tokio-postgres buffers): an upper bound on the server's own.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Facts about the machine, for the report.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// CPUs this process may use.
    pub cpus: usize,
    /// The CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Total memory, from /proc/meminfo.
    pub memory: String,
    /// The kernel release.
    pub kernel: String,
    /// `rustc -V`, if rustc is on the PATH.
    pub rustc: String,
    /// The git commit of the working directory, if it is a repository.
    pub commit: String,
}

impl Machine {
    /// Looks at the machine.
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".to_owned());
        let commit = match command("git", &["rev-parse", "--short", "HEAD"]) {
            Some(commit) => {
                let dirty = command("git", &["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|s| !s.is_empty());
                if dirty {
                    format!("{commit} (with uncommitted changes)")
                } else {
                    commit
                }
            }
            None => "unknown".to_owned(),
        };
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
            rustc: command("rustc", &["-V"]).unwrap_or_else(|| "unknown".to_owned()),
            commit,
        }
    }
}

fn command(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg prints them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A field of /proc/self/status in bytes (`VmRSS`, `VmHWM`).
pub fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU time counters at one moment: this process, the PostgreSQL processes,
/// and the whole machine (from /proc).
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    at: Instant,
    process: u64,
    postgres: u64,
    busy: u64,
    iowait: u64,
    total: u64,
}

/// Where the CPU went between two snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUse {
    /// Cores used by this process (server and load generator).
    pub process: f64,
    /// Cores used by PostgreSQL processes (backends that exited in between
    /// are missed).
    pub postgres: f64,
    /// Share of all the machine's CPU time spent busy (anyone).
    pub busy: f64,
    /// Share spent idle waiting for I/O.
    pub iowait: f64,
}

/// utime + stime of a /proc/PID/stat line (fields 14 and 15, counted after
/// the parenthesised command name, which may contain spaces).
fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11, 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

impl CpuSnapshot {
    /// Reads the counters now.
    pub fn take() -> CpuSnapshot {
        let process = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| stat_ticks(&s))
            .map_or(0, |(_, t)| t);
        let mut postgres = 0;
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
                    && let Some((comm, ticks)) = stat_ticks(&stat)
                    && comm == "postgres"
                {
                    postgres += ticks;
                }
            }
        }
        let (mut busy, mut iowait, mut total) = (0, 0, 0);
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().next()
        {
            // cpu user nice system idle iowait irq softirq steal guest guest_nice
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() >= 8 {
                let idle = v[3];
                iowait = v[4];
                // guest time is already counted in user.
                total = v[..8].iter().sum();
                busy = total - idle - iowait;
            }
        }
        CpuSnapshot {
            at: Instant::now(),
            process,
            postgres,
            busy,
            iowait,
            total,
        }
    }

    /// The use from `self` to `later`.
    pub fn until(&self, later: &CpuSnapshot) -> CpuUse {
        let secs = later.at.duration_since(self.at).as_secs_f64();
        let total = later.total.saturating_sub(self.total) as f64;
        if secs <= 0.0 || total <= 0.0 {
            return CpuUse::default();
        }
        CpuUse {
            process: later.process.saturating_sub(self.process) as f64 / TICKS_PER_SEC / secs,
            postgres: later.postgres.saturating_sub(self.postgres) as f64 / TICKS_PER_SEC / secs,
            busy: later.busy.saturating_sub(self.busy) as f64 / total,
            iowait: later.iowait.saturating_sub(self.iowait) as f64 / total,
        }
    }
}

/// Samples this process's resident set (`VmRSS`) every 100 ms on a thread of
/// its own, so that a busy runtime does not skew the samples.
#[derive(Debug, Clone)]
pub struct RssSampler {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start() -> RssSampler {
        let sampler = RssSampler {
            samples: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let samples = Arc::clone(&sampler.samples);
        let stop = Arc::clone(&sampler.stop);
        std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let rss = status_bytes("VmRSS");
                    if let Ok(mut s) = samples.lock() {
                        s.push((Instant::now(), rss));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .expect("spawn the RSS sampler");
        sampler
    }

    /// The highest sample taken between `from` and `to` (or the current RSS
    /// when none was).
    pub fn max_between(&self, from: Instant, to: Instant) -> u64 {
        let samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, rss)| *rss)
            .max()
            .unwrap_or_else(|| status_bytes("VmRSS"))
    }

    /// The highest sample of the whole run.
    pub fn max(&self) -> u64 {
        let samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        samples.iter().map(|(_, rss)| *rss).max().unwrap_or(0)
    }

    /// Stops sampling.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(status_bytes("VmRSS") > 0);
        assert!(status_bytes("VmHWM") >= status_bytes("VmRSS") / 2);
        assert_eq!(status_bytes("NoSuchField"), 0);
        assert_eq!(load_average().split(' ').count(), 3);
    }

    #[test]
    fn parses_stat_lines_and_measures_cpu() {
        let line = "42 (my (odd) name) S 1 42 42 0 -1 4194560 10 0 0 0 250 75 0 0 20 0 1 0";
        assert_eq!(stat_ticks(line), Some(("my (odd) name".to_owned(), 325)));
        let before = CpuSnapshot::take();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let used = before.until(&CpuSnapshot::take());
        assert!(used.process > 0.3, "{used:?} after {x} spins");
        assert!(used.busy > 0.0 && used.busy <= 1.0);
    }
}
