//! Process metrics (CPU time, memory, file descriptors, start time) in the names the official
//! Prometheus clients use, read from `/proc/self` at scrape time: nothing samples in the
//! background and nothing blocks a request path.
//!
//! Only on Linux; elsewhere nothing is rendered.

use std::fmt::Write as _;

/// Clock ticks per second in `/proc` figures. `USER_HZ` is fixed at 100 in the kernel's ABI for
/// user space on every mainstream architecture (Prometheus' own procfs library assumes the same),
/// which avoids calling `sysconf` and needing `unsafe`.
#[cfg(target_os = "linux")]
const USER_HZ: f64 = 100.0;

/// The process figures that could be read.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProcessStats {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

/// The exposition text of the process metrics.
pub(crate) fn render() -> String {
    render_stats(&read())
}

fn render_stats(stats: &ProcessStats) -> String {
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: Option<String>| {
        if let Some(value) = value {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
            );
        }
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        stats.cpu_seconds.map(|v| v.to_string()),
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        stats.resident_bytes.map(|v| v.to_string()),
    );
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        stats.virtual_bytes.map(|v| v.to_string()),
    );
    metric(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        stats.open_fds.map(|v| v.to_string()),
    );
    metric(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        stats.max_fds.map(|v| v.to_string()),
    );
    metric(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        stats.start_time_seconds.map(|v| v.to_string()),
    );
    text
}

#[cfg(target_os = "linux")]
fn read() -> ProcessStats {
    use std::fs;

    let stat = fs::read_to_string("/proc/self/stat").ok();
    let stat_fields = stat.as_deref().and_then(stat_fields);
    let field =
        |index: usize| -> Option<f64> { stat_fields.as_ref()?.get(index)?.parse::<f64>().ok() };
    // Indexes count from the field after the command name: 0 is `state` (field 3 in proc(5)).
    let cpu_seconds = field(11)
        .zip(field(12))
        .map(|(utime, stime)| (utime + stime) / USER_HZ);
    let virtual_bytes = stat_fields
        .as_ref()
        .and_then(|f| f.get(20)?.parse::<u64>().ok());
    let boot_time = fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| boot_time(&s));
    let start_time_seconds = field(19)
        .zip(boot_time)
        .map(|(ticks, boot)| boot + ticks / USER_HZ);
    let resident_bytes = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| resident_bytes(&s));
    let open_fds = fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as u64);
    let max_fds = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| max_open_files(&s));
    ProcessStats {
        cpu_seconds,
        resident_bytes,
        virtual_bytes,
        open_fds,
        max_fds,
        start_time_seconds,
    }
}

#[cfg(not(target_os = "linux"))]
fn read() -> ProcessStats {
    ProcessStats::default()
}

/// The fields of `/proc/self/stat` after the command name, which may itself contain spaces
/// and parentheses (hence the last `)`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `VmRSS` of `/proc/self/status`, which is in kB.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 \
                    8 0 5000 123456789 1000 18446744073709551615";
        let fields = stat_fields(stat).unwrap();
        assert_eq!(fields[0], "S");
        assert_eq!(fields[11], "250");
        assert_eq!(fields[12], "50");
        assert_eq!(fields[19], "5000");
        assert_eq!(fields[20], "123456789");
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
        assert_eq!(
            resident_bytes("Name:\tx\nVmRSS:\t    2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(
            max_open_files(
                "Limit                     Soft Limit           Hard Limit           Units\n\
                 Max open files            1024                 1048576              files\n"
            ),
            Some(1024)
        );
    }

    #[test]
    fn renders_what_it_has() {
        let text = render_stats(&ProcessStats {
            cpu_seconds: Some(1.5),
            open_fds: Some(12),
            ..ProcessStats::default()
        });
        assert!(
            text.contains(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n"
            )
        );
        assert!(text.contains("process_open_fds 12\n"));
        assert!(!text.contains("process_max_fds"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let stats = read();
        assert!(stats.cpu_seconds.is_some());
        assert!(stats.resident_bytes.unwrap() > 0);
        assert!(stats.open_fds.unwrap() > 0);
        assert!(stats.max_fds.unwrap() > 0);
        assert!(stats.start_time_seconds.unwrap() > 1_000_000_000.0);
    }
}
