//! The jail: bubblewrap detection and arguments, the scrubbed environment, and killing a
//! command's whole process tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::BwrapMode;

/// Where the workspace appears inside the jail. A fixed path keeps host directory names (which
/// may contain user or project ids) out of the command's view and its output.
pub const JAIL_WORKSPACE: &str = "/workspace";
/// `HOME` inside the jail (on the jail's private `/tmp`).
pub const JAIL_HOME: &str = "/tmp/home";
/// The unprivileged user and group id the command runs as inside the jail.
pub const JAIL_UID: u32 = 1000;

/// The minimal `PATH` every command gets.
pub const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a command was confined: reported in every outcome, so the engine can say so in the
/// run's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SandboxKind {
    /// In a bubblewrap jail: own user, pid, ipc, uts and network namespaces (the network
    /// reached only through the runner's bridges), read-only system directories, only the
    /// workspace writable, no capabilities.
    Bubblewrap,
    /// Without a jail: scrubbed environment, own process group, resource limits, working
    /// directory in the workspace — but the command can read what the server's user can and
    /// use the network.
    Unconfined {
        /// Why there is no jail.
        reason: String,
    },
}

impl SandboxKind {
    /// Whether the command ran in the jail.
    pub fn is_confined(&self) -> bool {
        matches!(self, SandboxKind::Bubblewrap)
    }
}

/// bubblewrap found and proven to work here.
#[derive(Debug, Clone)]
pub(crate) struct Bwrap {
    pub(crate) path: PathBuf,
    /// `--disable-userns` (bubblewrap 0.8+): no nested user namespaces inside the jail.
    pub(crate) disable_userns: bool,
    /// `--size` on the `/tmp` tmpfs (bubblewrap 0.8+).
    pub(crate) tmp_size: bool,
}

fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Finds `prlimit` where the jail can see it.
pub(crate) fn find_prlimit(configured: Option<&Path>) -> Option<PathBuf> {
    match configured {
        Some(p) => p.is_file().then(|| p.to_path_buf()),
        None => first_existing(&["/usr/bin/prlimit", "/bin/prlimit", "/usr/sbin/prlimit"]),
    }
}

/// Finds `socat` (the relay inside the jail) where the jail can see it.
pub(crate) fn find_socat(configured: Option<&Path>) -> Result<PathBuf, String> {
    match configured {
        Some(p) if p.is_file() => Ok(p.to_path_buf()),
        Some(p) => Err(format!("socat not found at {}", p.display())),
        None => first_existing(&["/usr/bin/socat", "/bin/socat"])
            .ok_or_else(|| "socat is not installed (Debian package socat)".to_owned()),
    }
}

/// Finds the bubblewrap executable per `mode`.
pub(crate) fn find_bwrap(mode: &BwrapMode) -> Result<PathBuf, String> {
    let configured = match mode {
        BwrapMode::Disabled => return Err("bubblewrap is disabled by configuration".into()),
        BwrapMode::Auto { path } | BwrapMode::Require { path } => path.clone(),
    };
    match configured {
        Some(p) if p.is_file() => Ok(p),
        Some(p) => Err(format!("bubblewrap not found at {}", p.display())),
        None => first_existing(&["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"])
            .ok_or_else(|| "bubblewrap (bwrap) is not installed".to_owned()),
    }
}

/// Where a jail's bridge directory appears inside it.
pub const JAIL_BRIDGE_DIR: &str = "/run/bridge";

/// What one jail needs.
pub(crate) struct JailSpec<'a> {
    /// The workspace directory on the host.
    pub(crate) root: &'a Path,
    /// Working directory inside the jail.
    pub(crate) cwd_inside: String,
    /// Holds the synthetic `passwd` and `group` files.
    pub(crate) passwd_dir: &'a Path,
    pub(crate) extra_ro_binds: &'a [PathBuf],
    /// Size of the private `/tmp`.
    pub(crate) tmp_bytes: u64,
    /// A host directory holding the jail's bridge sockets, bound at [`JAIL_BRIDGE_DIR`];
    /// writable when the jail creates a socket there (a preview's).
    pub(crate) bridge: Option<(&'a Path, bool)>,
    /// The package cache, bound writable at [`JAIL_CACHE_DIR`] (installs only).
    pub(crate) cache: Option<&'a Path>,
}

/// Where the package cache appears inside an install's jail.
pub const JAIL_CACHE_DIR: &str = "/cache";

impl Bwrap {
    /// The bubblewrap arguments up to (not including) `--`.
    pub(crate) fn args(&self, jail: &JailSpec<'_>) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
        // Namespaces: user, pid, ipc, uts, cgroup and network, always. The user namespace
        // explicitly, since --unshare-all only tries it and we need it for --disable-userns and
        // the uid map. Nothing in the jail ever shares the host's network: what crosses goes
        // through the bridge sockets.
        push(&["--unshare-all", "--unshare-user"]);
        if self.disable_userns {
            push(&["--disable-userns"]);
        }
        push(&["--die-with-parent", "--new-session", "--cap-drop", "ALL"]);
        let uid = JAIL_UID.to_string();
        push(&["--uid", &uid, "--gid", &uid, "--hostname", "sandbox"]);
        // System directories, read-only. Merged-/usr systems have /bin, /lib* as symlinks: the
        // same symlinks are recreated inside.
        push(&["--ro-bind", "/usr", "/usr"]);
        for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            let p = Path::new(dir);
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(p) {
                        push(&["--symlink", &target.to_string_lossy(), dir]);
                    }
                }
                Ok(m) if m.is_dir() => push(&["--ro-bind", dir, dir]),
                _ => {}
            }
        }
        // A minimal /etc: the dynamic linker's cache, name resolution of `localhost`, time
        // zone, TLS roots (installs go through the egress proxy with TLS end to end), and
        // alternatives symlinks. Not the host's passwd/group (a synthetic pair naming only
        // the sandbox user), never shadow.
        for file in [
            "/etc/ld.so.cache",
            "/etc/ld.so.conf",
            "/etc/ld.so.conf.d",
            "/etc/alternatives",
            "/etc/localtime",
            "/etc/nsswitch.conf",
            "/etc/hosts",
            "/etc/ssl/certs",
            "/etc/ca-certificates",
        ] {
            push(&["--ro-bind-try", file, file]);
        }
        let passwd = jail.passwd_dir.join("passwd");
        let group = jail.passwd_dir.join("group");
        push(&["--ro-bind", &passwd.to_string_lossy(), "/etc/passwd"]);
        push(&["--ro-bind", &group.to_string_lossy(), "/etc/group"]);
        for extra in jail.extra_ro_binds {
            let s = extra.to_string_lossy();
            push(&["--ro-bind-try", &s, &s]);
        }
        push(&["--proc", "/proc", "--dev", "/dev"]);
        // /tmp is a tmpfs, so host memory: capped (and charged to the jail's control group).
        if self.tmp_size {
            let size = jail.tmp_bytes.to_string();
            push(&["--size", &size]);
        }
        push(&["--tmpfs", "/tmp", "--dir", JAIL_HOME]);
        push(&["--bind", &jail.root.to_string_lossy(), JAIL_WORKSPACE]);
        if let Some((dir, writable)) = jail.bridge {
            let mode = if writable { "--bind" } else { "--ro-bind" };
            push(&[mode, &dir.to_string_lossy(), JAIL_BRIDGE_DIR]);
        }
        if let Some(cache) = jail.cache {
            push(&["--bind", &cache.to_string_lossy(), JAIL_CACHE_DIR]);
        }
        push(&["--chdir", &jail.cwd_inside]);
        a
    }
}

/// Writes the synthetic `/etc/passwd` and `/etc/group` naming the sandbox user, so tools that
/// look the user up (`os.userInfo()`, `getpass`) work without the host's user list.
pub(crate) fn write_passwd_files(dir: &Path) -> std::io::Result<()> {
    std::fs::write(
        dir.join("passwd"),
        format!(
            "sandbox:x:{JAIL_UID}:{JAIL_UID}:sandbox:{JAIL_HOME}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
    )?;
    std::fs::write(
        dir.join("group"),
        format!("sandbox:x:{JAIL_UID}:\nnogroup:x:65534:\n"),
    )
}

/// The environment every command starts from: nothing of the server's, only these.
pub(crate) fn base_env(home: &str, tmp: &str) -> BTreeMap<String, String> {
    [
        ("PATH", SANDBOX_PATH),
        ("HOME", home),
        ("TMPDIR", tmp),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("TERM", "dumb"),
        ("CI", "1"),
        ("NO_COLOR", "1"),
        ("USER", "sandbox"),
        ("LOGNAME", "sandbox"),
        // Output arrives as it is written rather than at exit.
        ("PYTHONUNBUFFERED", "1"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        // npm must not reach out for update checks, funding or audit on every run.
        ("npm_config_update_notifier", "false"),
        ("npm_config_fund", "false"),
        ("npm_config_audit", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Kills a command's process group and, in case members left it (`setsid`), every process
/// descended from its leader. Idempotent; a group already gone is not an error.
///
/// In the jail this is belt and braces — killing bubblewrap takes the whole pid namespace with
/// it (`--die-with-parent`); unconfined it is what makes "no process survives" hold, except for
/// a daemon that both left the group and was re-parented before we looked.
pub(crate) fn kill_tree(leader: u32) {
    use rustix::process::{Pid, Signal, kill_process, kill_process_group};
    let Some(pid) = Pid::from_raw(leader as i32) else {
        return;
    };
    let signal_all = |pids: &[u32], signal: Signal| {
        for p in pids.iter().filter_map(|&v| Pid::from_raw(v as i32)) {
            let _ = kill_process(p, signal);
        }
    };
    // Freeze first, then look: once a process is killed its children are re-parented to init
    // and can no longer be found through it, and a running process can fork between our scan
    // and our kill. Stopped processes do neither.
    let _ = kill_process_group(pid, Signal::STOP);
    let mut victims: Vec<u32> = Vec::new();
    for _ in 0..3 {
        let new: Vec<u32> = descendants(leader)
            .into_iter()
            .filter(|p| !victims.contains(p))
            .collect();
        if new.is_empty() {
            break;
        }
        signal_all(&new, Signal::STOP);
        victims.extend(new);
    }
    let _ = kill_process_group(pid, Signal::KILL);
    let _ = kill_process(pid, Signal::KILL);
    signal_all(&victims, Signal::KILL);
}

/// Kills what remains of a process group whose leader was already reaped.
pub(crate) fn kill_group(leader: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(leader as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Pids whose process group is `leader`'s or whose parent chain leads to `leader`, read from
/// `/proc`.
fn descendants(leader: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut procs: Vec<(u32, u32, u32)> = Vec::new(); // (pid, ppid, pgid)
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After ')': state, ppid, pgrp, ...
        if let (Some(ppid), Some(pgid)) = (fields.get(1), fields.get(2))
            && let (Ok(ppid), Ok(pgid)) = (ppid.parse(), pgid.parse())
        {
            procs.push((pid, ppid, pgid));
        }
    }
    let mut found: Vec<u32> = procs
        .iter()
        .filter(|(pid, _, pgid)| *pgid == leader && *pid != leader)
        .map(|p| p.0)
        .collect();
    let mut frontier = vec![leader];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid, _) in &procs {
            if *ppid == parent && !found.contains(pid) {
                found.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(passwd: &'a Path, bridge: Option<(&'a Path, bool)>) -> JailSpec<'a> {
        JailSpec {
            root: Path::new("/data/ws/p1"),
            cwd_inside: "/workspace/web".into(),
            passwd_dir: passwd,
            extra_ro_binds: &[],
            tmp_bytes: 1234,
            bridge,
            cache: None,
        }
    }

    #[test]
    fn bwrap_args_confine() {
        let bw = Bwrap {
            path: "/usr/bin/bwrap".into(),
            disable_userns: true,
            tmp_size: true,
        };
        let passwd = Path::new("/run/x");
        let args = bw.args(&spec(passwd, None)).join(" ");
        for needle in [
            "--unshare-all --unshare-user",
            "--disable-userns",
            "--die-with-parent --new-session --cap-drop ALL",
            "--ro-bind /usr /usr",
            "--bind /data/ws/p1 /workspace",
            "--chdir /workspace/web",
            "--size 1234 --tmpfs /tmp",
            "--ro-bind /run/x/passwd /etc/passwd",
        ] {
            assert!(args.contains(needle), "missing {needle:?} in {args}");
        }
        for absent in ["--share-net", "/etc/shadow", JAIL_BRIDGE_DIR] {
            assert!(!args.contains(absent), "{absent:?} in {args}");
        }
        let old = Bwrap {
            disable_userns: false,
            tmp_size: false,
            ..bw.clone()
        };
        let args = old.args(&spec(passwd, None)).join(" ");
        assert!(
            !args.contains("--size") && !args.contains("--disable-userns"),
            "{args}"
        );
    }

    #[test]
    fn the_bridge_directory_is_bound_at_a_neutral_path() {
        let bw = Bwrap {
            path: "/usr/bin/bwrap".into(),
            disable_userns: true,
            tmp_size: true,
        };
        let passwd = Path::new("/run/x");
        let dir = Path::new("/srv/runner/b7");
        let ro = bw.args(&spec(passwd, Some((dir, false)))).join(" ");
        assert!(ro.contains("--ro-bind /srv/runner/b7 /run/bridge"), "{ro}");
        let rw = bw.args(&spec(passwd, Some((dir, true)))).join(" ");
        assert!(rw.contains(" --bind /srv/runner/b7 /run/bridge"), "{rw}");
        assert!(!rw.contains("--share-net"), "{rw}");
    }

    #[test]
    fn base_env_has_nothing_of_ours() {
        let env = base_env("/tmp/home", "/tmp");
        assert_eq!(env["TERM"], "dumb");
        assert_eq!(env["CI"], "1");
        assert!(
            env.keys()
                .all(|k| !k.contains("KEY") && !k.contains("DATABASE") && !k.contains("SECRET"))
        );
    }
}
