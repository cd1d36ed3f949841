//! The standard `process_*` metrics (the names Prometheus' own clients export), read from
//! `/proc/self` at each scrape. On systems without `/proc` nothing is reported.
//!
//! A few fields of two files; the `procfs` crate would bring far more than this needs.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

/// Reads this process' memory, CPU time, file descriptors and start time when scraped.
#[derive(Debug)]
pub(super) struct ProcessCollector;

/// What `/proc/self/stat` says, in the units Prometheus wants.
#[derive(Debug, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    /// Seconds after boot.
    start_after_boot: f64,
    virtual_bytes: u64,
    resident_bytes: u64,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let ticks = clock_ticks_per_second();
        let page = page_size();
        if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|text| parse_stat(&text, ticks, page))
        {
            counter(
                &mut encoder,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                stat.cpu_seconds,
            )?;
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stat.resident_bytes as f64,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stat.virtual_bytes as f64,
            )?;
            if let Some(boot) = std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|text| boot_time(&text))
            {
                gauge(
                    &mut encoder,
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    boot as f64 + stat.start_after_boot,
                )?;
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                fds.count() as f64,
            )?;
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|text| max_open_files(&text))
        {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max,
            )?;
        }
        Ok(())
    }
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Parses `/proc/self/stat` (proc(5)). The command name, field 2, may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str, ticks_per_second: f64, page_size: u64) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is index 0 here.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let (utime, stime) = (field(14)?, field(15)?);
    Some(Stat {
        cpu_seconds: (utime + stime) as f64 / ticks_per_second,
        start_after_boot: field(22)? as f64 / ticks_per_second,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_size,
    })
}

/// `btime` of `/proc/stat`: when the system booted, in seconds since the epoch.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|n| n.trim().parse().ok())
}

/// The soft limit on open files in `/proc/self/limits` (`unlimited` is not reported).
fn max_open_files(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let text = "4242 (tokio (x) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 \
                    12345 104857600 2560 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_stat(text, 100.0, 4096).unwrap();
        assert_eq!(
            stat,
            Stat {
                cpu_seconds: 3.0,
                start_after_boot: 123.45,
                virtual_bytes: 104_857_600,
                resident_bytes: 2560 * 4096,
            }
        );
    }

    #[test]
    fn a_truncated_stat_is_not_reported() {
        assert_eq!(parse_stat("1 (x) S 1 2 3", 100.0, 4096), None);
        assert_eq!(parse_stat("no parenthesis", 100.0, 4096), None);
    }

    #[test]
    fn boot_time_and_open_file_limit_are_read() {
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_readable() {
        let text = std::fs::read_to_string("/proc/self/stat").unwrap();
        let stat = parse_stat(&text, clock_ticks_per_second(), page_size()).unwrap();
        assert!(stat.resident_bytes > 0, "{stat:?}");
        assert!(boot_time(&std::fs::read_to_string("/proc/stat").unwrap()).is_some());
    }
}
