//! The limits a jail ran into, as the outcome reports them, and the workspace disk quota.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cgroup::Pressure;
use super::config::ResourceLimits;
use super::tree;

/// A limit a command ran into. Each also ends its captured stderr as a `[sandbox]` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LimitHit {
    /// A fork failed: the jail had [`ResourceLimits::max_processes`] processes.
    Processes {
        /// The limit.
        limit: u64,
    },
    /// The kernel killed a process of the jail for want of memory
    /// ([`ResourceLimits::total_memory_bytes`], its `/tmp` included).
    Memory {
        /// The limit.
        limit_bytes: u64,
    },
    /// The workspace was over [`ResourceLimits::workspace_bytes`] (the command was stopped
    /// when the runner noticed, and its changes must not be kept).
    DiskQuota {
        /// What it used.
        used_bytes: u64,
        /// The quota.
        limit_bytes: u64,
    },
}

impl LimitHit {
    /// The hits the kernel's counters show.
    pub(crate) fn from_pressure(pressure: Pressure, limits: &ResourceLimits) -> Vec<LimitHit> {
        let mut hits = Vec::new();
        if pressure.process_limit_hit {
            hits.push(LimitHit::Processes {
                limit: limits.max_processes,
            });
        }
        if pressure.oom_kills > 0 {
            hits.push(LimitHit::Memory {
                limit_bytes: limits.total_memory_bytes,
            });
        }
        hits
    }

    /// A stable snake_case name.
    pub fn kind(&self) -> &'static str {
        match self {
            LimitHit::Processes { .. } => "process_limit",
            LimitHit::Memory { .. } => "memory_limit",
            LimitHit::DiskQuota { .. } => "disk_quota",
        }
    }

    /// What happened, for a person (or a model).
    pub fn message(&self) -> String {
        match self {
            LimitHit::Processes { limit } => format!(
                "the command reached the sandbox's process limit ({limit} processes and threads); a fork failed"
            ),
            LimitHit::Memory { limit_bytes } => format!(
                "the command ran out of memory: the sandbox allows {} in all, files in /tmp included",
                human_bytes(*limit_bytes)
            ),
            LimitHit::DiskQuota {
                used_bytes,
                limit_bytes,
            } => format!(
                "the workspace used {}, over its disk quota of {}: the command was stopped and its changes are not kept",
                human_bytes(*used_bytes),
                human_bytes(*limit_bytes)
            ),
        }
    }

    /// The `[sandbox]` line added to the command's stderr.
    pub(crate) fn line(&self) -> String {
        format!("[sandbox] {}\n", self.message())
    }
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `7 B`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The shortest time between two measurements of the workspace while a command runs.
const QUOTA_INTERVAL: Duration = Duration::from_secs(1);

/// Resolves with the workspace's usage once it is over `quota`, measuring now and then while
/// a command runs (every [`QUOTA_INTERVAL`], or ten times as long as a measurement takes on a
/// big tree, so the checks cost at most a tenth of a core). Never resolves otherwise.
pub(crate) async fn watch_quota(root: PathBuf, quota: u64) -> u64 {
    let mut interval = QUOTA_INTERVAL;
    loop {
        tokio::time::sleep(interval).await;
        let at = root.clone();
        let started = Instant::now();
        let used = tokio::task::spawn_blocking(move || tree::disk_usage(&at)).await;
        interval = next_interval(started.elapsed());
        if let Ok(Ok(used)) = used
            && over(used, quota)
        {
            return used;
        }
    }
}

/// The pause after a measurement that took `took`.
fn next_interval(took: Duration) -> Duration {
    QUOTA_INTERVAL.max(took * 10)
}

/// Using exactly the quota is within it.
fn over(used: u64, quota: u64) -> bool {
    used > quota
}

/// The workspace's usage when it is over `quota` (an unreadable tree counts as within it:
/// the scan that follows reports what it cannot read).
pub(crate) async fn usage_over(root: &std::path::Path, quota: u64) -> Option<u64> {
    let at = root.to_path_buf();
    let used = tokio::task::spawn_blocking(move || tree::disk_usage(&at))
        .await
        .ok()?
        .ok()?;
    over(used, quota).then_some(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(7), "7 B");
        assert_eq!(human_bytes(12 * 1024), "12 KiB");
        assert_eq!(human_bytes(1536 * 1024 * 1024), "1.5 GiB");
        assert_eq!(human_bytes(300 * 1024 * 1024), "300 MiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024 * 1024), "5120 GiB");
    }

    #[test]
    fn pressure_becomes_hits_with_their_limits() {
        let limits = ResourceLimits::default();
        assert!(LimitHit::from_pressure(Pressure::default(), &limits).is_empty());
        let hits = LimitHit::from_pressure(
            Pressure {
                process_limit_hit: true,
                oom_kills: 1,
            },
            &limits,
        );
        assert_eq!(
            hits,
            [
                LimitHit::Processes { limit: 256 },
                LimitHit::Memory {
                    limit_bytes: limits.total_memory_bytes
                }
            ]
        );
        assert_eq!(hits[0].kind(), "process_limit");
        assert!(
            hits[1]
                .line()
                .starts_with("[sandbox] the command ran out of memory")
        );
        let quota = LimitHit::DiskQuota {
            used_bytes: 3 << 20,
            limit_bytes: 1 << 20,
        };
        assert_eq!(quota.kind(), "disk_quota");
        assert!(
            quota
                .message()
                .contains("3.0 MiB, over its disk quota of 1.0 MiB")
        );
    }

    #[test]
    fn checks_slow_down_on_big_trees_and_the_quota_itself_is_allowed() {
        assert_eq!(next_interval(Duration::from_millis(20)), QUOTA_INTERVAL);
        assert_eq!(
            next_interval(Duration::from_millis(300)),
            Duration::from_secs(3)
        );
        assert!(!over(100, 100));
        assert!(over(101, 100));
        assert!(!over(99, 100));
    }

    #[tokio::test]
    async fn the_quota_is_noticed_while_a_command_writes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(usage_over(dir.path(), 1 << 20).await, None);
        std::fs::write(dir.path().join("big"), vec![7u8; 2 << 20]).unwrap();
        let used = tokio::time::timeout(
            Duration::from_secs(10),
            watch_quota(dir.path().to_path_buf(), 1 << 20),
        )
        .await
        .expect("noticed within a few intervals");
        assert!(used > 2 << 20);
        assert!(usage_over(dir.path(), 1 << 20).await.is_some());
        assert_eq!(usage_over(dir.path(), 1 << 30).await, None);
    }
}
