//! The generation engine's `RunStore` port over the store passes the port's own conformance
//! checks (the same ones the engine's in-memory implementation passes), on every backend.

use std::sync::Arc;

use samokoder_core::llm::BudgetLimits;
use samokoder_core::state::conformance::{self, Harness};
use samokoder_core::state::{Autonomy, RunInfo, RunStore};
use samokoder_store::engine::StoreRunStore;
use samokoder_store::{NewRun, Store};
use uuid::Uuid;

use crate::fixtures;
use crate::harness::Ctx;

struct OverStore {
    store: Store,
    port: Arc<StoreRunStore>,
}

impl OverStore {
    async fn new_run(
        &self,
        project_id: Uuid,
        owner: Uuid,
        description: &str,
        autonomy: Autonomy,
        budget: BudgetLimits,
    ) -> RunInfo {
        let run = self
            .store
            .runs
            .create(&NewRun {
                project_id,
                user_id: owner,
                description: description.into(),
                autonomy: autonomy.as_str().into(),
                budget: serde_json::to_value(budget).unwrap(),
                options: serde_json::json!({}),
            })
            .await
            .expect("create run");
        self.port
            .run(run.id)
            .await
            .expect("load run through the port")
    }
}

#[samokoder_core::llm::async_trait]
impl Harness for OverStore {
    fn store(&self) -> Arc<dyn RunStore> {
        self.port.clone()
    }

    async fn create_run(
        &self,
        description: &str,
        autonomy: Autonomy,
        budget: BudgetLimits,
    ) -> RunInfo {
        let user = fixtures::user(&self.store).await;
        let project = fixtures::project(&self.store, user.id, "app").await;
        self.new_run(project.id, user.id, description, autonomy, budget)
            .await
    }

    async fn create_run_in(&self, project_id: Uuid, description: &str) -> RunInfo {
        let project = self.store.projects.get(project_id).await.expect("project");
        self.new_run(
            project_id,
            project.owner_id,
            description,
            Autonomy::Auto,
            BudgetLimits::unlimited(),
        )
        .await
    }
}

async fn conforms(ctx: Ctx) {
    let harness = OverStore {
        port: Arc::new(StoreRunStore::new(&ctx.store)),
        store: ctx.store.clone(),
    };
    conformance::run_all(&harness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_run_store_conforms() {
    crate::harness::run(crate::harness::Sqlite, conforms).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_run_store_conforms() {
    crate::harness::run(crate::harness::Postgres, conforms).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn diesel_postgres_run_store_conforms() {
    crate::harness::run(crate::harness::DieselPostgres, conforms).await;
}
