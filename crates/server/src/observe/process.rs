//! `ProcessStats`: this process's resources as the Prometheus client
//! libraries report them (`process_*`: resident and virtual memory, CPU
//! seconds, open and maximum file descriptors, threads, start time), read
//! from Linux's `/proc/self`.
//!
//! Invariant: reading never fails the caller — a figure that cannot be read
//! (another OS, a restricted `/proc`) is `None` and is left out of
//! `/metrics` and `/v1/stats`, never reported as zero.

use std::fmt::Write as _;

use serde::Serialize;

/// This process's resources now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcessStats {
    /// Resident set size, bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// User + system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// OS threads.
    pub threads: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self` (all `None` elsewhere).
    pub fn read() -> ProcessStats {
        let mut p = ProcessStats::default();
        // SAFETY: sysconf has no preconditions; it only reads a constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name, which is in parentheses and
            // may contain spaces: split after the last ')'.
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                // rest[0] is field 3 (state): field N is f[N - 3].
                let num = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok());
                if ticks > 0 {
                    if let (Some(u), Some(s)) = (num(14), num(15)) {
                        p.cpu_seconds = Some((u + s) as f64 / ticks as f64);
                    }
                    if let (Some(start), Some(boot)) = (num(22), boot_time()) {
                        p.start_time_seconds = Some(boot + start as f64 / ticks as f64);
                    }
                }
                p.threads = num(20);
                p.virtual_memory_bytes = num(23);
                if page > 0 {
                    p.resident_memory_bytes = num(24).map(|pages| pages * page as u64);
                }
            }
        }
        p.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        p.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse().ok())
            });
        p
    }

    /// Appends the `process_*` families to a Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        let mut family = |name: &str, kind: &str, help: &str, v: Option<f64>| {
            if let Some(v) = v {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                let _ = writeln!(out, "{name} {v}");
            }
        };
        let f = |v: Option<u64>| v.map(|v| v as f64);
        family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            self.cpu_seconds,
        );
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            f(self.resident_memory_bytes),
        );
        family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            f(self.virtual_memory_bytes),
        );
        family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            f(self.open_fds),
        );
        family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            f(self.max_fds),
        );
        family(
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            f(self.threads),
        );
        family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            self.start_time_seconds,
        );
    }
}

/// The system's boot time, seconds since the epoch (`btime` of /proc/stat).
fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|v| v as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_on_linux() {
        let p = ProcessStats::read();
        if cfg!(target_os = "linux") {
            assert!(p.resident_memory_bytes.is_some_and(|b| b > 0), "{p:?}");
            assert!(p.threads.is_some_and(|t| t >= 1), "{p:?}");
            assert!(p.open_fds.is_some_and(|n| n >= 1), "{p:?}");
            assert!(p.start_time_seconds.is_some_and(|t| t > 1.0e9), "{p:?}");
        }
        let mut out = String::new();
        p.render(&mut out);
        // A figure that cannot be read is left out, never written as 0.
        let none = ProcessStats::default();
        let mut empty = String::new();
        none.render(&mut empty);
        assert!(empty.is_empty());
    }
}
