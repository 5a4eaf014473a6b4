//! The ceiling for `benches/load.sh`: the least an HTTP server on this stack can do per request.
//!
//! hyper (through axum's `serve`, the same accept loop and HTTP/1 connection handling the
//! reference server uses) on the same multi-threaded tokio runtime, with one catch-all handler
//! that reads the request body and answers a fixed small JSON document. No middleware, no
//! authentication, no store. Whatever the load script measures here, on the same paths with the
//! same headers and bodies, is what the machine and the load tool allow; the reference server's
//! figures are read as a ratio to it.
//!
//! `cargo run --release --example hello_ceiling --all-features [-- ADDRESS]` listens on ADDRESS
//! (default `127.0.0.1:0`) and prints `listening on http://HOST:PORT` on standard output once it
//! accepts connections. It stops on Ctrl-C or SIGTERM.

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// Every request: drain the body (as a JSON route would), answer 200 with a fixed JSON body.
async fn hello(body: Bytes) -> impl IntoResponse {
    // Touch the body so reading it is not optimised into nothing.
    let _length = body.len();
    ([(CONTENT_TYPE, "application/json")], r#"{"hello":"world"}"#)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = Router::new().fallback(hello);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
