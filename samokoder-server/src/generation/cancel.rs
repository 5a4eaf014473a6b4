//! The cancellation tokens of the runs this process's workers drive, so a cancel request
//! stops an in-process run at once. Runs driven by other processes notice the `cancelled`
//! status at their next heartbeat instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use samokoder_core::engine::CancellationToken;
use uuid::Uuid;

/// Run id → the token its drive watches.
#[derive(Clone, Default)]
pub struct CancelRegistry {
    inner: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    /// Per run: which registration it is, and its token.
    tokens: Mutex<HashMap<Uuid, (u64, CancellationToken)>>,
    next: AtomicU64,
}

impl std::fmt::Debug for CancelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelRegistry")
            .field("runs", &self.lock().len())
            .finish()
    }
}

/// Removes the run's token from the registry when the drive ends (however it ends).
#[derive(Debug)]
pub struct Registration {
    registry: CancelRegistry,
    run_id: Uuid,
    id: u64,
    token: CancellationToken,
}

impl Registration {
    /// The token to drive the run with.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut tokens = self.registry.lock();
        // Only our own entry: a newer drive of the same run may have registered since.
        if tokens
            .get(&self.run_id)
            .is_some_and(|(id, _)| *id == self.id)
        {
            tokens.remove(&self.run_id);
        }
    }
}

impl CancelRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, (u64, CancellationToken)>> {
        self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a fresh token for a drive of `run_id`.
    pub fn register(&self, run_id: Uuid) -> Registration {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        self.lock().insert(run_id, (id, token.clone()));
        Registration {
            registry: self.clone(),
            run_id,
            id,
            token,
        }
    }

    /// Fires the token of `run_id` if this process drives it; returns whether it did.
    pub fn cancel(&self, run_id: Uuid) -> bool {
        match self.lock().get(&run_id) {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancels_the_registered_drive_and_forgets_it_when_it_ends() {
        let registry = CancelRegistry::default();
        let run = Uuid::now_v7();
        assert!(!registry.cancel(run), "nothing registered");
        let first = registry.register(run);
        let second = registry.register(run);
        drop(first);
        assert!(registry.cancel(run), "the newer drive stays registered");
        assert!(second.token().is_cancelled());
        drop(second);
        assert!(!registry.cancel(run));
    }
}
