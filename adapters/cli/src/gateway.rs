//! `framewire gateway --ws ADDR --tcp ADDR [--frame C]`: the WebSocket↔TCP
//! gateway of `framewire_tokio::gateway`, so browsers reach TCP services.
//!
//! Without `--frame` it is raw (binary messages are arbitrary chunks of the
//! byte stream); with `--frame C` each binary message is exactly one frame
//! of codec C. The first stderr line is `framewire: listening on ADDR
//! (WebSocket gateway to TCP, mode)`; Ctrl-C closes every connection (1001)
//! and prints the counters.

use std::time::Duration;

use framewire_tokio::gateway::{Gateway, GatewayConfig, GatewayMode};

use crate::codec::FrameSpec;
use crate::error::{resolve, CliError};

/// What `gateway` was asked to do.
pub(crate) struct GatewayArgs {
    /// Where WebSocket clients connect.
    pub(crate) ws: String,
    /// The TCP service.
    pub(crate) tcp: String,
    /// One frame per message, of this codec; raw when `None`.
    pub(crate) frame: Option<FrameSpec>,
    /// Largest WebSocket message, if not the default (16 MiB).
    pub(crate) max_message: Option<usize>,
    /// Most connections at once, if not the default (1024).
    pub(crate) max_connections: Option<usize>,
    /// Seconds to wait for the TCP service to accept, if not the default (10).
    pub(crate) connect_timeout: Option<f64>,
}

/// Runs the gateway until Ctrl-C.
pub(crate) async fn run(args: GatewayArgs) -> Result<(), CliError> {
    let ws = resolve(&args.ws).await?;
    let tcp = resolve(&args.tcp).await?;
    let mode = match args.frame {
        Some(spec) => GatewayMode::Framed(spec),
        None => GatewayMode::Raw,
    };
    let mut config = GatewayConfig::new().with_mode(mode.clone());
    if let Some(max) = args.max_message {
        config = config.with_max_message_size(max);
    }
    if let Some(n) = args.max_connections {
        if n == 0 {
            return Err(CliError::Usage {
                what: "--max-connections",
                why: "must be at least 1".into(),
            });
        }
        config = config.with_max_connections(n);
    }
    if let Some(secs) = args.connect_timeout {
        config = config.with_connect_timeout(Duration::from_secs_f64(secs));
    }
    let gateway = Gateway::bind(ws, tcp, config)
        .await
        .map_err(|source| CliError::Bind { addr: ws, source })?;
    eprintln!(
        "framewire: listening on {} (WebSocket gateway to TCP {tcp}, {mode})",
        gateway.local_addr()
    );
    let handle = gateway.spawn();
    let _ = tokio::signal::ctrl_c().await;
    let stats = handle
        .shutdown()
        .await
        .map_err(|source| CliError::Bind { addr: ws, source })?;
    eprintln!(
        "framewire: gateway stopped: {} connections served, {} refused over the limit, {} failed handshakes",
        stats.served, stats.refused, stats.failed_handshakes
    );
    Ok(())
}
