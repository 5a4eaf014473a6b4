//! The workspace against a real file system: confinement, round trips, ignores, edits, export.

use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};

use samokoder_core::workspace::{
    ChangeKind, Edit, EditError, ExportOptions, IgnoreRules, MaterializeOptions, MemoryBlobs,
    PathError, ScanLimits, ScanOptions, SearchReplace, SkipReason, Snapshot, WorkspaceError,
    WorkspacePath, export_zip_bytes, materialize, scan,
};

fn p(s: &str) -> WorkspacePath {
    WorkspacePath::new(s).unwrap()
}

fn tree(files: &[(&str, &str)]) -> (Snapshot, MemoryBlobs) {
    let mut blobs = MemoryBlobs::new();
    let mut snap = Snapshot::new();
    for (path, content) in files {
        snap.write(&mut blobs, p(path), content);
    }
    (snap, blobs)
}

#[test]
fn model_paths_cannot_escape() {
    for raw in [
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "..\\..\\x",
        ".git/hooks/post-checkout",
        "a\0b",
    ] {
        let err = WorkspacePath::new(raw).unwrap_err();
        assert!(
            matches!(
                err,
                PathError::ParentSegment(_)
                    | PathError::Absolute(_)
                    | PathError::GitDirectory(_)
                    | PathError::ControlCharacter { .. }
            ),
            "{raw}: {err:?}"
        );
    }
    // Edits address files through the same type, so a bad path never reaches the disk.
    let err = serde_json::from_str::<WorkspacePath>("\"../secret\"").unwrap_err();
    assert!(err.to_string().contains(".."), "{err}");
}

#[test]
fn same_content_is_stored_once() {
    let (snap, blobs) = tree(&[("a.txt", "same"), ("b/c.txt", "same"), ("d.txt", "other")]);
    assert_eq!(snap.len(), 3);
    assert_eq!(blobs.len(), 2);
    assert_eq!(snap.get(&p("a.txt")), snap.get(&p("b/c.txt")));
    // And a scan of the same content adds nothing new either.
    let dir = tempfile::tempdir().unwrap();
    materialize(&snap, &blobs, dir.path(), &MaterializeOptions::default()).unwrap();
    let found = scan(dir.path(), &ScanOptions::default(), &snap).unwrap();
    assert_eq!(found.blobs.len(), 2);
    assert_eq!(found.snapshot, snap);
}

#[test]
fn snapshot_diff_lists_changes() {
    let (a, mut blobs) = tree(&[("keep", "1"), ("change", "1"), ("remove", "1")]);
    let mut b = a.clone();
    b.write(&mut blobs, p("change"), "2");
    b.remove(&p("remove"));
    b.write(&mut blobs, p("new/file"), "3");
    let changes = a.diff(&b);
    let kinds: Vec<(String, &str)> = changes
        .iter()
        .map(|c| {
            let kind = match c.kind {
                ChangeKind::Added { .. } => "added",
                ChangeKind::Modified { .. } => "modified",
                ChangeKind::Deleted { .. } => "deleted",
            };
            (c.path.to_string(), kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("change".to_owned(), "modified"),
            ("new/file".to_owned(), "added"),
            ("remove".to_owned(), "deleted")
        ]
    );
    assert_eq!(changes[2].new_hash(), None);
}

#[test]
fn materialise_scan_round_trip_with_ignore_rules() {
    let (snap, blobs) = tree(&[
        ("package.json", "{\"name\":\"x\"}\n"),
        ("src/index.js", "console.log('hi')\n"),
        (".gitignore", "*.local\n.env\n"),
        (".env", "TOKEN=tracked-before-ignored\n"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let report = materialize(&snap, &blobs, dir.path(), &MaterializeOptions::default()).unwrap();
    assert_eq!(report.written, 4);
    let mode = std::fs::metadata(dir.path().join("src/index.js"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let mode = std::fs::metadata(dir.path().join("src"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    // What a command might leave behind.
    let root = dir.path();
    std::fs::create_dir_all(root.join("node_modules/dep")).unwrap();
    std::fs::write(
        root.join("node_modules/dep/index.js"),
        "module.exports = 1\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("src/__pycache__")).unwrap();
    std::fs::write(root.join("src/__pycache__/x.pyc"), [0u8, 1, 2]).unwrap();
    std::fs::write(root.join("settings.local"), "ignored by the project").unwrap();
    std::fs::write(root.join("src/new.js"), "export const x = 1;\n").unwrap();
    std::fs::write(root.join("src/index.js"), "console.log('changed')\n").unwrap();

    let found = scan(root, &ScanOptions::default(), &snap).unwrap();
    let paths: Vec<&str> = found.snapshot.paths().map(|p| p.as_str()).collect();
    // `.env` is ignored by .gitignore but tracked, so it stays; new ignored files stay out.
    assert_eq!(
        paths,
        [
            ".env",
            ".gitignore",
            "package.json",
            "src/index.js",
            "src/new.js"
        ]
    );
    let changes = snap.diff(&found.snapshot);
    assert_eq!(changes.len(), 2, "{changes:?}");

    // Materialising the old snapshot again restores it, prunes the new file, and leaves
    // ignored content (node_modules, the project's *.local) alone.
    let mut all = blobs.clone();
    all.extend(found.blobs);
    let report = materialize(&snap, &all, root, &MaterializeOptions::default()).unwrap();
    assert_eq!(
        (report.written, report.unchanged, report.removed),
        (1, 3, 1)
    );
    assert!(!root.join("src/new.js").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("src/index.js")).unwrap(),
        "console.log('hi')\n"
    );
    assert!(root.join("node_modules/dep/index.js").exists());
    assert!(root.join("settings.local").exists());
    assert_eq!(
        scan(root, &ScanOptions::default(), &snap).unwrap().snapshot,
        snap
    );
}

#[test]
fn scan_never_follows_symlinks_out() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "TOPSECRET").unwrap();
    std::fs::create_dir(outside.path().join("dir")).unwrap();
    std::fs::write(outside.path().join("dir/inner.txt"), "TOPSECRET-INNER").unwrap();

    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("ok.txt"), "fine").unwrap();
    symlink(
        outside.path().join("secret.txt"),
        ws.path().join("leak.txt"),
    )
    .unwrap();
    symlink(outside.path().join("dir"), ws.path().join("leakdir")).unwrap();

    // Even a tracked path that is now a symlink (or under one) is not read through.
    let (tracked, _) = tree(&[("leak.txt", "x"), ("leakdir/inner.txt", "x")]);
    let found = scan(ws.path(), &ScanOptions::default(), &tracked).unwrap();
    let paths: Vec<&str> = found.snapshot.paths().map(|p| p.as_str()).collect();
    assert_eq!(paths, ["ok.txt"]);
    for (_, content) in found.blobs.iter() {
        assert!(!String::from_utf8_lossy(content).contains("TOPSECRET"));
    }
    let skipped: Vec<(&str, &SkipReason)> = found
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), &s.reason))
        .collect();
    assert!(
        skipped.contains(&("leak.txt", &SkipReason::Symlink)),
        "{skipped:?}"
    );
    assert!(
        skipped.contains(&("leakdir", &SkipReason::Symlink)),
        "{skipped:?}"
    );
}

#[test]
fn materialise_never_writes_through_symlinks() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("victim.txt");
    std::fs::write(&target, "original").unwrap();

    let ws = tempfile::tempdir().unwrap();
    // A command planted links where the snapshot has a file and a directory.
    symlink(&target, ws.path().join("app.js")).unwrap();
    symlink(outside.path(), ws.path().join("src")).unwrap();

    let (snap, blobs) = tree(&[
        ("app.js", "overwritten?"),
        ("src/victim.txt", "overwritten?"),
    ]);
    materialize(
        &snap,
        &blobs,
        ws.path(),
        &MaterializeOptions {
            prune: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "original");
    // The links were replaced by real files and directories inside the workspace.
    assert!(!ws.path().join("app.js").is_symlink());
    assert!(!ws.path().join("src").is_symlink());
    assert_eq!(
        std::fs::read_to_string(ws.path().join("src/victim.txt")).unwrap(),
        "overwritten?"
    );
}

#[test]
fn scan_caps_sizes_and_reports() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("big.bin"), vec![7u8; 5000]).unwrap();
    for i in 0..5 {
        std::fs::write(
            ws.path().join(format!("f{i}.txt")),
            vec![b'a' + i as u8; 400],
        )
        .unwrap();
    }
    let options = ScanOptions {
        ignore: IgnoreRules::default(),
        limits: ScanLimits {
            max_file_bytes: 1000,
            max_total_bytes: 1000,
            max_files: 100,
        },
    };
    let found = scan(ws.path(), &options, &Snapshot::new()).unwrap();
    assert_eq!(
        found.snapshot.len(),
        2,
        "two 400-byte files fit in 1000 bytes"
    );
    assert!(found.skipped.iter().any(|s| s.path == "big.bin"
        && s.reason
            == SkipReason::TooLarge {
                bytes: 5000,
                limit: 1000
            }));
    let total_skips = found
        .skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::TotalSizeLimit { .. }))
        .count();
    assert_eq!(total_skips, 3);

    let options = ScanOptions {
        limits: ScanLimits {
            max_files: 3,
            ..ScanLimits::default()
        },
        ..Default::default()
    };
    let found = scan(ws.path(), &options, &Snapshot::new()).unwrap();
    assert_eq!(found.snapshot.len(), 3);
    assert!(
        found
            .skipped
            .iter()
            .any(|s| matches!(s.reason, SkipReason::FileCountLimit { limit: 3 }))
    );
}

#[test]
fn edits_apply_exactly_tolerantly_or_not_at_all() {
    let (mut snap, mut blobs) = tree(&[("app.py", "def main():\n    print('hi')\n    return 0\n")]);
    let before = snap.clone();
    let app = p("app.py");

    // Exact.
    let exact = Edit::parse_search_replace(
        "<<<<<<< SEARCH\n    print('hi')\n=======\n    print('hello')\n>>>>>>> REPLACE\n",
    )
    .unwrap();
    snap.apply_edit(&mut blobs, &app, &exact).unwrap();
    assert_eq!(
        snap.read_text(&blobs, &app).unwrap(),
        "def main():\n    print('hello')\n    return 0\n"
    );

    // Whitespace-tolerant: the model lost the indentation and added trailing spaces.
    let sloppy = Edit::SearchReplace {
        blocks: vec![SearchReplace {
            search: "print('hello')  \nreturn 0\n".into(),
            replace: "print('bye')\nreturn 1\n".into(),
        }],
    };
    snap.apply_edit(&mut blobs, &app, &sloppy).unwrap();
    assert_eq!(
        snap.read_text(&blobs, &app).unwrap(),
        "def main():\n    print('bye')\n    return 1\n"
    );

    // Refused: the second block does not match; the first must not have been applied.
    let after_two = snap.clone();
    let blob_count = blobs.len();
    let bad = Edit::SearchReplace {
        blocks: vec![
            SearchReplace {
                search: "def main():\n".into(),
                replace: "def run():\n".into(),
            },
            SearchReplace {
                search: "    print('bye!!')\n".into(),
                replace: "    pass\n".into(),
            },
        ],
    };
    let err = snap.apply_edit(&mut blobs, &app, &bad).unwrap_err();
    let WorkspaceError::Edit {
        path,
        source:
            EditError::NoMatch {
                block: 2,
                blocks: 2,
                closest: Some(closest),
            },
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(path, &app);
    assert_eq!(closest.start_line, 2);
    assert!(err.to_string().contains("block 2 of 2"), "{err}");
    assert_eq!(snap, after_two, "nothing changed");
    assert_eq!(blobs.len(), blob_count, "no blob stored for a refused edit");
    assert_ne!(snap, before);
}

#[test]
fn zip_export_honours_ignores() {
    let (snap, blobs) = tree(&[
        ("README.md", "# app\n"),
        ("src/app.js", "console.log(1)\n"),
        (".gitignore", "secrets/\n"),
        ("secrets/key.pem", "PRIVATE"),
        ("dist/bundle.js", "minified"),
    ]);
    let options = ExportOptions {
        folder: Some(p("my-app")),
        ..Default::default()
    };
    let (bytes, report) = export_zip_bytes(&snap, &blobs, &options).unwrap();
    assert_eq!(report.files, 3);
    let ignored: Vec<&str> = report.ignored.iter().map(|p| p.as_str()).collect();
    assert_eq!(ignored, ["dist/bundle.js", "secrets/key.pem"]);

    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    let mut names: Vec<String> = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["my-app/.gitignore", "my-app/README.md", "my-app/src/app.js"]
    );
    let mut content = String::new();
    archive
        .by_name("my-app/src/app.js")
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "console.log(1)\n");

    // Deterministic: the same snapshot gives the same bytes.
    let (again, _) = export_zip_bytes(&snap, &blobs, &options).unwrap();
    assert_eq!(again, bytes);
}
