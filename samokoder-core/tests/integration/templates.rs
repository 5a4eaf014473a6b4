//! Each starter template, rendered, materialised and run through the sandboxed runner: its own
//! tests pass offline, and its start command serves on the port it is given.

use std::time::Duration;

use samokoder_core::runner::{PREVIEW_PORT, SandboxKind};
use samokoder_core::templates::{self, TemplateVars};
use samokoder_core::workspace::{MaterializeOptions, MemoryBlobs, ScanOptions, materialize, scan};

use crate::sandbox::{http_get, jail};

#[tokio::test]
async fn every_template_passes_its_own_tests_in_the_sandbox_and_serves() {
    assert!(templates::list().len() >= 2);
    let Some(runner) = jail("every_template_passes_its_own_tests_in_the_sandbox_and_serves") else {
        return;
    };
    for template in templates::list() {
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
