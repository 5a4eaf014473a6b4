//! The binary's `migrate` and `admin` commands, run as a real process.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_samokoder-server");

/// Runs the binary with a private data directory, test settings and `stdin`.
fn run(data_dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars() {
        if name.starts_with("SAMOKODER_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(args)
        .env("SAMOKODER_ENV", "test")
        .env("SAMOKODER_DATA_DIR", data_dir)
        .env("SAMOKODER_AUTH__PASSWORD_HASH__MEMORY_KIB", "256")
        .env("SAMOKODER_AUTH__PASSWORD_HASH__ITERATIONS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_describes_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let help = run(dir.path(), &["--help"], "");
    assert!(help.status.success());
    let out = text(&help.stdout);
    for command in ["serve", "migrate", "admin", "openapi", "config"] {
        assert!(out.contains(command), "{command} missing from:\n{out}");
    }
    let admin = run(dir.path(), &["admin", "--help"], "");
    let out = text(&admin.stdout);
    for command in ["create-user", "set-tier", "grant-admin"] {
        assert!(out.contains(command), "{command} missing from:\n{out}");
    }
    let create = run(dir.path(), &["admin", "create-user", "--help"], "");
    let out = text(&create.stdout);
    assert!(out.contains("standard input"), "{out}");
    assert!(out.contains("--tier"), "{out}");
}

#[test]
fn migrate_then_manage_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path(), &["migrate"], "");
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("applied migrations"),
        "{}",
        text(&first.stdout)
    );
    let again = run(dir.path(), &["migrate"], "");
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("schema is current"),
        "{}",
        text(&again.stdout)
    );

    let password = "Correct-Horse-7-Battery";
    let created = run(
        dir.path(),
        &[
            "admin",
            "create-user",
            "--email",
            "Ops@Example.com",
            "--tier",
            "pro",
            "--admin",
        ],
        &format!("{password}\n"),
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let out = text(&created.stdout);
    assert!(
        out.contains("<ops@example.com> tier=pro admin=true"),
        "{out}"
    );
    assert!(!out.contains(password));

    let tier = run(
        dir.path(),
        &["admin", "set-tier", "ops@example.com", "team"],
        "",
    );
    assert!(
        text(&tier.stdout).contains("tier=team"),
        "{}",
        text(&tier.stderr)
    );
    let revoked = run(
        dir.path(),
        &["admin", "grant-admin", "ops@example.com", "--revoke"],
        "",
    );
    assert!(
        text(&revoked.stdout).contains("admin=false"),
        "{}",
        text(&revoked.stderr)
    );

    let duplicate = run(
        dir.path(),
        &["admin", "create-user", "--email", "ops@example.com"],
        password,
    );
    assert!(!duplicate.status.success());
    assert!(
        text(&duplicate.stderr).contains("exists already"),
        "{}",
        text(&duplicate.stderr)
    );
    let weak = run(
        dir.path(),
        &["admin", "create-user", "--email", "weak@example.com"],
        "password\n",
    );
    assert!(!weak.status.success());
    let err = text(&weak.stderr);
    assert!(err.contains("breaks the policy"), "{err}");
    assert!(!err.contains("password\n"), "{err}");
    let empty = run(
        dir.path(),
        &["admin", "create-user", "--email", "x@example.com"],
        "",
    );
    assert!(!empty.status.success());
    assert!(
        text(&empty.stderr).contains("standard input"),
        "{}",
        text(&empty.stderr)
    );
    let unknown = run(
        dir.path(),
        &["admin", "set-tier", "nobody@example.com", "pro"],
        "",
    );
    assert!(!unknown.status.success());
    let bad_tier = run(
        dir.path(),
        &["admin", "set-tier", "ops@example.com", "platinum"],
        "",
    );
    assert!(!bad_tier.status.success());
}
