//! The Rust packet-stream peer of the package's JavaScript end-to-end tests
//! (`wasm/tests-js`): a cs.packetstream server on loopback that the tests
//! reach through `framewire gateway`. It prints `listening HOST:PORT` on
//! stdout and serves until stdin closes (so it ends with the test that
//! started it).
//!
//! | rq_type | answer |
//! |---|---|
//! | 0 | the payload |
//! | 1 | the payload reversed |
//! | 3 | the request's flags and payload |
//! | 10 | calls the client back (rq_type = the request's flags, the same payload) and answers with the client's response: its flags and payload, or its failure reason as a failure |
//! | 11 | answers "bye", then closes the connection (orderly: ERQ, EOF) |
//! | other | the failure `exception during handler` |
//!
//! ```sh
//! cargo run -p framewire-wasm --example js_peer -- 127.0.0.1:0
//! ```

use std::io::Read;
use std::time::Duration;

use framewire_tokio::packet::{serve, Reply, Request, ServeOptions};

async fn handle(rq: Request) -> Reply {
    match rq.rq_type {
        0 => Reply::ok(rq.payload),
        1 => Reply::ok(rq.payload.iter().rev().copied().collect::<Vec<u8>>()),
        3 => Reply::with_flags(rq.flags, rq.payload),
        10 => {
            let call = rq
                .connection()
                .request(rq.flags, rq.payload.clone())
                .timeout(Duration::from_secs(10));
            match call.await {
                Ok(r) if r.ok => Reply::with_flags(r.flags, r.payload),
                Ok(r) => Reply::fail(format!(
                    "client failed: {}",
                    r.failure_reason().unwrap_or_default()
                )),
                Err(e) => Reply::fail(format!("call back failed: {e}")),
            }
        }
        11 => {
            let conn = rq.connection().clone();
            tokio::spawn(async move {
                // Let the answer go out first.
                tokio::time::sleep(Duration::from_millis(20)).await;
                conn.begin_close();
            });
            Reply::ok(&b"bye"[..])
        }
        _ => Reply::exception(),
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let server = serve(listener, handle, ServeOptions::new())?;
        println!("listening {}", server.local_addr());
        // Serve until stdin closes (the test that started us ended).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .ok();
        server.shutdown().await;
        Ok(())
    })
}
