//! A control group per jail: limits on its processes, memory (its `/tmp` tmpfs included) and
//! CPU that hold whoever the server runs as, root included, and a kill that reaches every
//! process of the jail.
//!
//! cgroup v2 is used where the host delegates it (as root: a group under the hierarchy's root;
//! otherwise next to the runner's own group, or a configured directory); on hosts still on the
//! v1 hierarchies, their `pids`, `memory` and `cpu` controllers as root.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::config::{CgroupMode, ResourceLimits};

/// The directory per-jail groups are created in, under a hierarchy's chosen parent.
const JAILS_DIR: &str = "samokoder-jails";

/// CPU bandwidth period, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// Where this runner creates its jails' groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    /// A cgroup v2 directory whose `cgroup.subtree_control` enables `pids` and `memory` (and
    /// `cpu` when `cpu` is true).
    V2 { base: PathBuf, cpu: bool },
    /// Directories in the v1 hierarchies.
    V1 {
        pids: PathBuf,
        memory: PathBuf,
        cpu: Option<PathBuf>,
    },
}

/// The control groups of one runner.
#[derive(Debug)]
pub(crate) struct Cgroups {
    hierarchy: Hierarchy,
}

/// Numbers the groups of this process (one process may hold several runners).
static NEXT_GROUP: AtomicU64 = AtomicU64::new(0);

/// What the kernel reported about a jail's limits after it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pressure {
    /// A fork failed because `pids.max` was reached.
    pub(crate) process_limit_hit: bool,
    /// Processes the kernel killed for want of memory.
    pub(crate) oom_kills: u64,
}

/// One jail's group (one directory per hierarchy). Dropping it kills whatever is left in it
/// and removes it.
#[derive(Debug)]
pub(crate) struct JailGroup {
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    /// Finds a usable hierarchy per `mode`, or says why there is none.
    pub(crate) fn detect(mode: &CgroupMode) -> Result<Self, String> {
        let hierarchy = match mode {
            CgroupMode::Disabled => {
                return Err("control groups are disabled by configuration".into());
            }
            CgroupMode::Path { path } => prepare_v2(path, false)?,
            CgroupMode::Auto => auto_hierarchy()?,
        };
        let cgroups = Self::new(hierarchy);
        cgroups.sweep_stale();
        Ok(cgroups)
    }

    pub(crate) fn new(hierarchy: Hierarchy) -> Self {
        Self { hierarchy }
    }

    /// For the self-test and the logs.
    pub(crate) fn describe(&self) -> String {
        match &self.hierarchy {
            Hierarchy::V2 { base, cpu } => format!(
                "cgroup v2 under {} (pids, memory{})",
                base.display(),
                if *cpu { ", cpu" } else { "" }
            ),
            Hierarchy::V1 { pids, memory, cpu } => format!(
                "cgroup v1 under {} and {}{}",
                pids.display(),
                memory.display(),
                cpu.as_ref()
                    .map(|c| format!(" and {}", c.display()))
                    .unwrap_or_default()
            ),
        }
    }

    /// Creates a new group with `limits`.
    pub(crate) fn create(&self, limits: &ResourceLimits) -> io::Result<JailGroup> {
        let name = format!(
            "j{}-{}",
            std::process::id(),
            NEXT_GROUP.fetch_add(1, Ordering::Relaxed)
        );
        let memory = limits.total_memory_bytes.to_string();
        let pids = limits.max_processes.to_string();
        let cpu_quota = u64::from(limits.cpu_millicores.max(1)) * CPU_PERIOD_US / 1000;
        let mut group = JailGroup { dirs: Vec::new() };
        match &self.hierarchy {
            Hierarchy::V2 { base, cpu } => {
                let dir = base.join(&name);
                std::fs::create_dir(&dir)?;
                group.dirs.push(dir.clone());
                write(&dir, "pids.max", &pids)?;
                write(&dir, "memory.max", &memory)?;
                write_if_present(&dir, "memory.swap.max", "0")?;
                // One out-of-memory kill takes the whole jail, not a random member of it.
                write_if_present(&dir, "memory.oom.group", "1")?;
                if *cpu {
                    write(&dir, "cpu.max", &format!("{cpu_quota} {CPU_PERIOD_US}"))?;
                }
            }
            Hierarchy::V1 {
                pids: p,
                memory: m,
                cpu,
            } => {
                let pids_dir = p.join(&name);
                std::fs::create_dir(&pids_dir)?;
                group.dirs.push(pids_dir.clone());
                write(&pids_dir, "pids.max", &pids)?;
                let memory_dir = m.join(&name);
                std::fs::create_dir(&memory_dir)?;
                group.dirs.push(memory_dir.clone());
                write(&memory_dir, "memory.limit_in_bytes", &memory)?;
                // Memory plus swap at the same figure: no swapping past the limit.
                write_if_present(&memory_dir, "memory.memsw.limit_in_bytes", &memory)?;
                if let Some(c) = cpu {
                    let cpu_dir = c.join(&name);
                    std::fs::create_dir(&cpu_dir)?;
                    group.dirs.push(cpu_dir.clone());
                    write(&cpu_dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                    write(&cpu_dir, "cpu.cfs_quota_us", &cpu_quota.to_string())?;
                }
            }
        }
        Ok(group)
    }

    /// Removes groups left by runner processes that died without cleaning up.
    fn sweep_stale(&self) {
        let bases: Vec<&Path> = match &self.hierarchy {
            Hierarchy::V2 { base, .. } => vec![base],
            Hierarchy::V1 { pids, memory, cpu } => {
                let mut v = vec![pids.as_path(), memory.as_path()];
                v.extend(cpu.as_deref());
                v
            }
        };
        for base in bases {
            let Ok(entries) = std::fs::read_dir(base) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let owner = name
                    .to_str()
                    .and_then(|n| n.strip_prefix('j'))
                    .and_then(|n| n.split_once('-'))
                    .and_then(|(pid, _)| pid.parse::<u32>().ok());
                if let Some(pid) = owner
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    drop(JailGroup {
                        dirs: vec![entry.path()],
                    });
                }
            }
        }
    }
}

impl JailGroup {
    /// Moves process `pid` (and so everything it starts afterwards) into the group.
    pub(crate) fn attach(&self, pid: u32) -> io::Result<()> {
        for dir in &self.dirs {
            write(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// What the kernel counted against the limits.
    pub(crate) fn pressure(&self) -> Pressure {
        let mut pressure = Pressure::default();
        for dir in &self.dirs {
            if let Some(max) = read_key(dir, "pids.events", "max") {
                pressure.process_limit_hit |= max > 0;
            }
            // v2 `memory.events`, v1 `memory.oom_control` (kernel 4.13+).
            for (file, key) in [
                ("memory.events", "oom_kill"),
                ("memory.oom_control", "oom_kill"),
            ] {
                if let Some(kills) = read_key(dir, file, key) {
                    pressure.oom_kills = pressure.oom_kills.max(kills);
                }
            }
        }
        pressure
    }

    /// Kills every process in the group and waits (briefly) until it is empty.
    pub(crate) fn kill_all(&self) {
        for dir in &self.dirs {
            // v2 since Linux 5.14: one write kills the whole group, forks in flight included.
            let _ = write(dir, "cgroup.kill", "1");
        }
        for _ in 0..200 {
            let mut alive = 0;
            for dir in &self.dirs {
                let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
                    continue;
                };
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    alive += 1;
                    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                }
            }
            if alive == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for JailGroup {
    fn drop(&mut self) {
        self.kill_all();
        for dir in &self.dirs {
            // Exiting processes leave the group a moment after they are gone from its list.
            for _ in 0..100 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.kind() == io::ErrorKind::ResourceBusy => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    _ => break,
                }
            }
        }
    }
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    std::fs::write(dir.join(file), value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot write {value:?} to {}: {e}",
                dir.join(file).display()
            ),
        )
    })
}

fn write_if_present(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    if dir.join(file).exists() {
        write(dir, file, value)
    } else {
        Ok(())
    }
}

/// The number after `key` in a flat-keyed file (`max 3`, `oom_kill 1`).
fn read_key(dir: &Path, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A mounted cgroup hierarchy, from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    point: PathBuf,
    v2: bool,
    /// v1: the controllers in the super options.
    controllers: Vec<String>,
}

fn cgroup_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next();
            let options = right.next().unwrap_or("");
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(Mount {
                point: PathBuf::from(point.replace("\\040", " ")),
                v2,
                controllers: options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn auto_hierarchy() -> Result<Hierarchy, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mounts = cgroup_mounts(&mountinfo);
    let mut why = Vec::new();
    if let Some(v2) = mounts.iter().find(|m| m.v2) {
        match v2_parent(&v2.point).and_then(|parent| prepare_v2(&parent.join(JAILS_DIR), true)) {
            Ok(h) => return Ok(h),
            Err(e) => why.push(format!("cgroup v2: {e}")),
        }
    } else {
        why.push("cgroup v2: not mounted".into());
    }
    match v1_hierarchy(&mounts) {
        Ok(h) => Ok(h),
        Err(e) => {
            why.push(format!("cgroup v1: {e}"));
            Err(why.join("; "))
        }
    }
}

/// Where jails go in the v2 hierarchy mounted at `root`: under the root as root, otherwise
/// next to the runner's own group (delegated to its user, as systemd's `Delegate=` does).
fn v2_parent(root: &Path) -> Result<PathBuf, String> {
    if is_root() {
        return Ok(root.to_path_buf());
    }
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("the runner is in no v2 group")?;
    let own = root.join(own.trim_start_matches('/'));
    own.parent()
        .filter(|p| p.starts_with(root) && *p != root)
        .map(Path::to_path_buf)
        .ok_or_else(|| "the runner's group has no delegated parent".into())
}

/// Makes `base` a directory whose children get `pids`, `memory` (and `cpu` if available).
/// With `enable_in_parent`, the controllers are first enabled in its parent's
/// `cgroup.subtree_control`.
fn prepare_v2(base: &Path, enable_in_parent: bool) -> Result<Hierarchy, String> {
    let parent = base.parent().ok_or("no parent directory")?;
    let available = std::fs::read_to_string(parent.join("cgroup.controllers"))
        .map_err(|e| format!("{} is not a cgroup v2 group: {e}", parent.display()))?;
    let available: Vec<&str> = available.split_whitespace().collect();
    for needed in ["pids", "memory"] {
        if !available.contains(&needed) {
            return Err(format!(
                "the {needed} controller is not available in {} (it has: {})",
                parent.display(),
                available.join(" ")
            ));
        }
    }
    let cpu = available.contains(&"cpu");
    let wanted = if cpu {
        "+pids +memory +cpu"
    } else {
        "+pids +memory"
    };
    if enable_in_parent {
        write(parent, "cgroup.subtree_control", wanted).map_err(|e| e.to_string())?;
    }
    match std::fs::create_dir(base) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", base.display())),
    }
    write(base, "cgroup.subtree_control", wanted).map_err(|e| e.to_string())?;
    Ok(Hierarchy::V2 {
        base: base.to_path_buf(),
        cpu,
    })
}

fn v1_hierarchy(mounts: &[Mount]) -> Result<Hierarchy, String> {
    if !is_root() {
        return Err("only usable as root".into());
    }
    let find = |controller: &str| {
        mounts
            .iter()
            .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))
            .map(|m| m.point.join(JAILS_DIR))
    };
    let pids = find("pids").ok_or("no pids hierarchy")?;
    let memory = find("memory").ok_or("no memory hierarchy")?;
    let cpu = find("cpu");
    for dir in [Some(&pids), Some(&memory), cpu.as_ref()]
        .into_iter()
        .flatten()
    {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Ok(Hierarchy::V1 { pids, memory, cpu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_read() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
            39 31 0:36 / /sys/fs/cgroup/pids rw,relatime shared:5 - cgroup cgroup rw,pids\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let mounts = cgroup_mounts(info);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(mounts[0].controllers.contains(&"cpu".to_owned()));
        assert!(!mounts[1].v2);
        assert_eq!(mounts[1].controllers, ["rw", "pids"]);
        assert!(mounts[2].v2);
    }

    #[test]
    fn a_v2_group_gets_the_limits() {
        let root = tempfile::tempdir().unwrap();
        let cgroups = Cgroups::new(Hierarchy::V2 {
            base: root.path().to_path_buf(),
            cpu: true,
        });
        std::fs::write(root.path().join("probe"), "").unwrap();
        let limits = ResourceLimits {
            max_processes: 64,
            total_memory_bytes: 1 << 30,
            cpu_millicores: 1500,
            ..ResourceLimits::default()
        };
        let group = cgroups.create(&limits).unwrap();
        let dir = &group.dirs[0];
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("pids.max"), "64");
        assert_eq!(read("memory.max"), "1073741824");
        assert_eq!(read("cpu.max"), "150000 100000");
        assert!(
            !dir.join("memory.swap.max").exists(),
            "only written where the kernel has it"
        );
        // A pid no process can have (above any pid_max): dropping the group must not kill.
        group.attach(2_000_000_000).unwrap();
        assert_eq!(read("cgroup.procs"), "2000000000");
        std::fs::write(dir.join("pids.events"), "max 3\n").unwrap();
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 9\noom 1\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(
            group.pressure(),
            Pressure {
                process_limit_hit: true,
                oom_kills: 2
            }
        );
        let second = cgroups.create(&limits).unwrap();
        assert_ne!(
            second.dirs[0], group.dirs[0],
            "every jail gets its own group"
        );
        // Not a real cgroup file system: nothing to kill, and the directories stay.
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        drop(group);
    }

    #[test]
    fn a_v1_group_spans_the_hierarchies() {
        let root = tempfile::tempdir().unwrap();
        let sub = |n: &str| {
            let p = root.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        };
        let cgroups = Cgroups::new(Hierarchy::V1 {
            pids: sub("pids"),
            memory: sub("memory"),
            cpu: None,
        });
        let limits = ResourceLimits {
            total_memory_bytes: 5000,
            ..ResourceLimits::default()
        };
        let group = cgroups.create(&limits).unwrap();
        assert_eq!(group.dirs.len(), 2);
        assert_eq!(
            std::fs::read_to_string(group.dirs[1].join("memory.limit_in_bytes")).unwrap(),
            "5000"
        );
        assert_eq!(group.pressure(), Pressure::default());
        for dir in &group.dirs {
            std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        }
        assert!(cgroups.describe().starts_with("cgroup v1 under"));
    }

    #[test]
    fn flat_keyed_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "max 0\noom_kill 7\n").unwrap();
        assert_eq!(read_key(dir.path(), "f", "oom_kill"), Some(7));
        assert_eq!(read_key(dir.path(), "f", "max"), Some(0));
        assert_eq!(read_key(dir.path(), "f", "oom"), None);
        assert_eq!(read_key(dir.path(), "missing", "max"), None);
    }
}
