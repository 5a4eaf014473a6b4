//! The `samokoder-server` binary.

use clap::Parser;

/// Samokoder's reference server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address and port to listen on.
    #[arg(long, env = "SAMOKODER_LISTEN", default_value = "127.0.0.1:8000")]
    listen: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "listening (only /health is served for now)");
    axum::serve(listener, samokoder_server::router()).await
}
