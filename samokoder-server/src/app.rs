//! [`Application`]: binds the listener, serves the router, shuts down gracefully.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError, DevSecretsOutcome, Problem};
use crate::generation::preview_origin::PreviewOrigin;
use crate::generation::worker::WorkerPool;
use crate::preview_site;
use crate::routes::{self, Api};
use crate::state::{AppState, StateError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state (database, keys, LLM settings, Redis URL) could not be built.
    #[error(transparent)]
    State(#[from] StateError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A bound, not yet serving, server.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = samokoder_server::Config::load()?;
/// let app = samokoder_server::Application::build(config).await?;
/// println!("listening on {}", app.local_addr());
/// app.run_until_stopped().await?;
/// # Ok(()) }
/// ```
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// The preview listener, when previews are served to their owners.
    previews: Option<TcpListener>,
    state: AppState,
}

impl Application {
    /// Validates `config` (logging its warnings), resolves the keys (generating development keys
    /// once when needed, and logging it), builds the state and the reference API, and binds
    /// the configured address (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        for warning in config.validate()? {
            tracing::warn!(setting = %warning.setting, "configuration: {}", warning.message);
        }
        let (secrets, outcome) = config.resolve_secrets()?;
        log_dev_secrets(&outcome);
        let state = AppState::builder(config, secrets).build().await?;
        Self::build_with(state, Api::standard()).await
    }

    /// Binds the state's configured address and serves `api` with `state`; for callers that
    /// build the state themselves (to register checks, probes or their own resources).
    pub async fn build_with(state: AppState, api: Api) -> Result<Self, StartupError> {
        let address = state.config().listen;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| StartupError::Bind { address, source })?;
        let previews = if state.config().preview.enabled {
            let address = state.config().preview.listen;
            let listener = TcpListener::bind(address)
                .await
                .map_err(|source| StartupError::Bind { address, source })?;
            let port = listener
                .local_addr()
                .map_err(|source| StartupError::Bind { address, source })?
                .port();
            let template = state.config().preview_origin_template();
            let origin = PreviewOrigin::parse(&template, port)
                .map_err(|why| ConfigError::Invalid(vec![Problem::new("preview.origin", why)]))?;
            state.generation().previews().set_origin(origin);
            Some(listener)
        } else {
            None
        };
        let router = routes::build(state.clone(), api);
        Ok(Self {
            listener,
            router,
            previews,
            state,
        })
    }

    /// The preview listener's bound address, when previews are served.
    pub fn preview_addr(&self) -> Option<SocketAddr> {
        self.previews.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound address (with the real port when port 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        // A bound TCP listener always has a local address.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config().listen)
    }

    /// The state the server runs with.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves (with `workers.concurrency` in-process workers driving runs) until SIGINT or
    /// SIGTERM, then stops accepting, ends event streams, lets open requests finish for up to
    /// `limits.shutdown_grace_secs`, releases the runs being driven for other workers, stops
    /// previews, and returns.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then shuts down gracefully as above.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let grace = Duration::from_secs(self.state.config().limits.shutdown_grace_secs);
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(
            address = %self.listener.local_addr()?,
            env = %self.state.config().env,
            "listening"
        );
        let workers = WorkerPool::start(&self.state, self.state.config().workers.concurrency);
        if !workers.is_empty() {
            tracing::info!(workers = workers.len(), "workers started");
        }
        let generation = self.state.generation().clone();
        let preview_site = self.previews.map(|listener| {
            let signal = generation.shutdown_signal().clone();
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "serving previews to their owners");
            }
            let app = preview_site::router(self.state.clone());
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { signal.cancelled().await })
                    .await
            })
        });
        let serve = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!(grace_secs = grace.as_secs(), "shutting down");
            // Event streams, sockets and the preview listener end, so their connections do
            // not hold shutdown.
            generation.shutdown_signal().cancel();
            let _ = started_tx.send(());
        });
        // Open connections (a streaming response, a stuck client) must not hold shutdown
        // forever: after the grace period the server stops regardless.
        let deadline = async move {
            match started_rx.await {
                Ok(()) => tokio::time::sleep(grace).await,
                Err(_) => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            result = serve => result,
            () = deadline => {
                tracing::warn!("grace period over; closing the remaining connections");
                Ok(())
            }
        };
        // Runs being driven are released for other workers to resume; previews stop.
        self.state.generation().shutdown_signal().cancel();
        workers.shutdown(grace).await;
        self.state.generation().previews().stop_all().await;
        if let Some(site) = preview_site {
            // Its connections to stopped previews end with them.
            site.abort();
        }
        result
    }

    /// Serves in a background task until [`RunningServer::shutdown`], for tests and tools.
    pub fn spawn(self) -> RunningServer {
        let address = self.local_addr();
        let preview_address = self.preview_addr();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run_until(async move {
            let _ = stop_rx.await;
        }));
        RunningServer {
            address,
            preview_address,
            stop: Some(stop_tx),
            task,
        }
    }
}

/// Runs `concurrency` workers on `state` without serving HTTP (`samokoder-server worker`),
/// until SIGINT or SIGTERM; then releases the runs being driven (another worker resumes them
/// from their last checkpoint) within `limits.shutdown_grace_secs`.
pub async fn work_until_stopped(state: AppState, concurrency: usize) {
    let workers = WorkerPool::start(&state, concurrency);
    tracing::info!(workers = workers.len(), "worker process started");
    shutdown_signal().await;
    tracing::info!("stopping the workers");
    state.generation().shutdown_signal().cancel();
    let grace = Duration::from_secs(state.config().limits.shutdown_grace_secs);
    workers.shutdown(grace).await;
}

/// A server serving in the background (see [`Application::spawn`]).
pub struct RunningServer {
    address: SocketAddr,
    preview_address: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://<address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Where the preview listener listens, when previews are served.
    pub fn preview_address(&self) -> Option<SocketAddr> {
        self.preview_address
    }

    /// Shuts down gracefully and waits for the server to stop.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(join) => Err(io::Error::other(join)),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop it rather than leak a listening task.
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// Tells the operator about development keys.
fn log_dev_secrets(outcome: &DevSecretsOutcome) {
    match outcome {
        DevSecretsOutcome::NotNeeded => {}
        DevSecretsOutcome::Generated { path } => tracing::warn!(
            path = %path.display(),
            "generated development secrets (kept for later starts; never use them in production)"
        ),
        DevSecretsOutcome::Loaded {
            path,
            permissions_tightened,
        } => {
            tracing::info!(path = %path.display(), "using development secrets");
            if *permissions_tightened {
                tracing::warn!(path = %path.display(), "development secrets were readable by others; restricted to the owner");
            }
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM (what container runtimes send).
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
