//! Each starter template, rendered, materialised and run through the sandboxed runner: its own
//! tests pass offline, and its start command serves on the port it is given.

use std::path::Path;
use std::time::{Duration, Instant};

use samokoder_core::engine::{CancellationToken, Quietly, prepare_dependencies};
use samokoder_core::install::Wanted;
use samokoder_core::runner::{PREVIEW_PORT, Runner, SandboxKind};
use samokoder_core::templates::{self, Template, TemplateVars};
use samokoder_core::workspace::{
    MaterializeOptions, MemoryBlobs, ScanOptions, Snapshot, materialize, scan,
};

use crate::sandbox::{http_get, installing_jail, jail, registry};

/// `template` rendered as "Demo Project" into a fresh directory.
fn rendered(template: &Template) -> (tempfile::TempDir, Snapshot) {
    let mut blobs = MemoryBlobs::new();
    let snapshot = template
        .render(&TemplateVars::new("Demo Project"), &mut blobs)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    materialize(
        &snapshot,
        &blobs,
        dir.path(),
        &MaterializeOptions::default(),
    )
    .unwrap();
    (dir, snapshot)
}

async fn install(runner: &Runner, dir: &Path) {
    prepare_dependencies(
        runner,
        dir,
        &Wanted::default(),
        &mut Quietly,
        &CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| match e {
        samokoder_core::engine::PrepareError::Failed(failed) => panic!(
            "`{}` failed:\n{}\n{}",
            failed.argv.join(" "),
            failed.result.stdout,
            failed.result.stderr
        ),
        other => panic!("{other}"),
    });
}

#[tokio::test]
async fn every_template_passes_its_own_tests_in_the_sandbox_and_serves() {
    assert!(templates::list().len() >= 2);
    let Some(runner) = jail("every_template_passes_its_own_tests_in_the_sandbox_and_serves") else {
        return;
    };
    for template in templates::list().iter().filter(|t| !t.needs_install) {
        let (dir, snapshot) = rendered(template);

        let outcome = runner
            .run(dir.path(), &template.test_spec(), None)
            .await
            .unwrap();
        assert_eq!(outcome.sandbox, SandboxKind::Bubblewrap);
        assert!(
            outcome.success(),
            "{}: tests failed\nstdout:\n{}\nstderr:\n{}",
            template.id,
            outcome.stdout.text,
            outcome.stderr.text
        );

        // Running the tests leaves nothing new in the project (caches are ignored).
        let after = scan(dir.path(), &ScanOptions::default(), &snapshot).unwrap();
        assert_eq!(
            after.snapshot, snapshot,
            "{}: tests changed the project",
            template.id
        );

        let service = runner
            .start_service(dir.path(), &template.start_spec())
            .await
            .unwrap();
        service
            .wait_until_listening(Duration::from_secs(30))
            .await
            .unwrap();
        let health = http_get(&service, "/health").await;
        assert!(health.starts_with("HTTP/1."), "{}: {health}", template.id);
        assert!(
            health.contains("200") && health.contains("\"status\": \"ok\"")
                || health.contains("{\"status\":\"ok\"}"),
            "{}: {health}",
            template.id
        );
        let lines = service.recent_output(20);
        assert!(
            lines.iter().any(|l| l.text.contains(&format!(
                "Demo Project listening on http://127.0.0.1:{PREVIEW_PORT}"
            ))),
            "{}: {lines:?}",
            template.id
        );
        service.stop().await;
    }
}

#[tokio::test]
async fn full_stack_templates_install_from_their_lockfiles_pass_check_and_serve_in_the_jail() {
    let name = "full_stack_templates_install_from_their_lockfiles_pass_check_and_serve_in_the_jail";
    if !registry(name) {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let Some(runner) = installing_jail(name, cache.path()) else {
        return;
    };
    assert!(runner.can_install());
    for template in templates::list().iter().filter(|t| t.needs_install) {
        let (dir, snapshot) = rendered(template);
        let started = Instant::now();
        install(&runner, dir.path()).await;
        let cold = started.elapsed();
        let outcome = runner
            .run(dir.path(), &template.test_spec(), None)
            .await
            .unwrap();
        assert!(
            outcome.success(),
            "{}: `{}` failed\nstdout:\n{}\nstderr:\n{}",
            template.id,
            template.test_command.join(" "),
            outcome.stdout.text,
            outcome.stderr.text
        );
        // Installing, testing and building leave the project's files as they were: the
        // lockfiles it came with are the ones it keeps.
        let after = scan(dir.path(), &ScanOptions::default(), &snapshot).unwrap();
        assert_eq!(
            after.snapshot, snapshot,
            "{}: the project changed",
            template.id
        );

        if let Some(build) = template.build_spec() {
            let built = runner.run(dir.path(), &build, None).await.unwrap();
            assert!(built.success(), "{}: {built:?}", template.id);
        }
        let service = runner
            .start_service(dir.path(), &template.start_spec())
            .await
            .unwrap();
        service
            .wait_until_listening(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", template.id));
        let health = http_get(&service, "/api/health").await;
        assert!(
            health.starts_with("HTTP/1.1 200") && health.contains(r#""status":"ok""#),
            "{}: {health}",
            template.id
        );
        if !template.build_command.is_empty() {
            let page = http_get(&service, "/").await;
            assert!(
                page.contains(r#"<div id="root"></div>"#),
                "{}: {page}",
                template.id
            );
        }
        service.stop().await;

        // The same lockfile again, in a fresh directory: everything comes from the cache,
        // not one connection goes through the proxy.
        let (again, _) = rendered(template);
        let before = runner.egress_stats().allowed();
        let started = Instant::now();
        install(&runner, again.path()).await;
        let warm = started.elapsed();
        assert_eq!(
            runner.egress_stats().allowed(),
            before,
            "{}: a warm install went to the registry",
            template.id
        );
        eprintln!("{}: install cold {cold:?}, warm {warm:?}", template.id);
    }
}
