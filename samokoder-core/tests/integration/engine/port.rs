//! The in-memory `RunStore` passes the port's conformance checks (the store crate runs the
//! same checks against its SQL backends).

use std::sync::Arc;

use samokoder_core::llm::BudgetLimits;
use samokoder_core::state::conformance::{self, Harness};
use samokoder_core::state::{Autonomy, MemoryRunStore, RunInfo, RunStore};
use uuid::Uuid;

struct Memory(Arc<MemoryRunStore>);

#[samokoder_core::llm::async_trait]
impl Harness for Memory {
    fn store(&self) -> Arc<dyn RunStore> {
        self.0.clone()
    }

    async fn create_run(
        &self,
        description: &str,
        autonomy: Autonomy,
        budget: BudgetLimits,
    ) -> RunInfo {
        self.0.create_run(description, autonomy, budget)
    }

    async fn create_run_in(&self, project_id: Uuid, description: &str) -> RunInfo {
        self.0.create_run_in(
            project_id,
            description,
            Autonomy::Auto,
            BudgetLimits::unlimited(),
        )
    }
}

#[tokio::test]
async fn memory_run_store_conforms() {
    conformance::run_all(&Memory(Arc::new(MemoryRunStore::new()))).await;
}
