//! The packet stream (cs.packetstream) from the command line: the test
//! server of `echo --codec packet` and the client of `call`. Both run on
//! `framewire_tokio::packet`; every protocol rule is the core's.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use framewire_tokio::packet::{
    serve, Builder, CallError, PacketConnection, Reply, Request, Response, ServeOptions,
};
use serde_json::{Map, Value};
use tokio::net::TcpStream;

use crate::echo::EchoArgs;
use crate::error::{resolve, CliError};
use crate::listen::bind;
use crate::render::{json_payload, readable};
use crate::show::READABLE_MAX;

/// The payload of the rq_type 2 answer.
pub(crate) const FLAGS_PAYLOAD: &[u8] = b"flags";

/// The flags of the rq_type 2 answer.
pub(crate) const FLAGS_FLAGS: u64 = 7;

/// The test server's answer to `rq`:
///
/// | rq_type | answer |
/// |---|---|
/// | 0 | the payload |
/// | 1 | the payload reversed |
/// | 2 | flags 7, payload `flags` |
/// | 3 | the request's own flags and payload |
/// | 4 | the payload, after (payload length mod 50) ms |
/// | other | failure `exception during handler` (the original's answer when its handler raises) |
pub(crate) async fn test_handler(rq: Request) -> Reply {
    match rq.rq_type {
        0 => Reply::ok(rq.payload),
        1 => Reply::ok(rq.payload.iter().rev().copied().collect::<Vec<u8>>()),
        2 => Reply::with_flags(FLAGS_FLAGS, Bytes::from_static(FLAGS_PAYLOAD)),
        3 => Reply::with_flags(rq.flags, rq.payload),
        4 => {
            let ms = (rq.payload.len() % 50) as u64;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Reply::ok(rq.payload)
        }
        _ => Reply::exception(),
    }
}

/// What `test_handler` answers, computed without a server (for checks).
pub(crate) fn expected(rq_type: u64, flags: u64, payload: &[u8]) -> (bool, u64, Vec<u8>) {
    match rq_type {
        0 | 4 => (true, 0, payload.to_vec()),
        1 => (true, 0, payload.iter().rev().copied().collect()),
        2 => (true, FLAGS_FLAGS, FLAGS_PAYLOAD.to_vec()),
        3 => (true, flags, payload.to_vec()),
        _ => (
            false,
            0,
            framewire::packet::reason::EXCEPTION_DURING_HANDLER
                .as_bytes()
                .to_vec(),
        ),
    }
}

/// `echo --codec packet`: the test server, until Ctrl-C.
pub(crate) async fn serve_cli(args: &EchoArgs) -> Result<(), CliError> {
    let listener = bind(&args.addr, "packet-stream test server").await?;
    let local = listener.local_addr().map_err(|source| CliError::Bind {
        addr: local_or_unspecified(&listener),
        source,
    })?;
    let verbose = args.verbose;
    let json = args.json;
    let handler = move |rq: Request| async move {
        if verbose {
            print_request(&rq, json);
        }
        test_handler(rq).await
    };
    let mut options = ServeOptions::new().max_connections(args.max_connections);
    if let Some(max) = args.max_frame {
        let default = framewire_tokio::packet::Config::default();
        let config = framewire_tokio::packet::Config {
            max_packet_len: max,
            max_receive_buffer: default.max_receive_buffer.max(max),
            ..default
        };
        options = options.connection(Builder::new().config(config));
    }
    let server = serve(listener, handler, options).map_err(|source| CliError::Bind {
        addr: local,
        source,
    })?;
    server
        .shutdown_on(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}

fn local_or_unspecified(listener: &tokio::net::TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn print_request(rq: &Request, json: bool) {
    if json {
        let mut m = Map::new();
        m.insert("event".into(), Value::from("request"));
        m.insert("channel".into(), Value::from(rq.channel));
        m.insert("tag".into(), Value::from(rq.tag));
        m.insert("rq_type".into(), Value::from(rq.rq_type));
        m.insert("flags".into(), Value::from(rq.flags));
        let (k, v) = json_payload(&rq.payload);
        m.insert(k.into(), v);
        println!("{}", Value::Object(m));
    } else {
        println!(
            "request tag {} type {} flags {}{} payload {}",
            rq.tag,
            rq.rq_type,
            rq.flags,
            if rq.channel == 0 {
                String::new()
            } else {
                format!(" channel {}", rq.channel)
            },
            readable(&rq.payload, READABLE_MAX)
        );
    }
}

/// What `call` was asked to do.
pub(crate) struct CallArgs {
    /// Where to connect.
    pub(crate) addr: String,
    /// The request type.
    pub(crate) rq_type: u64,
    /// The payload (text, or hex with `hex`).
    pub(crate) payload: Option<String>,
    /// The payload is hex.
    pub(crate) hex: bool,
    /// Request flags.
    pub(crate) flags: u64,
    /// Channel (0 unless both sides opened another).
    pub(crate) channel: u64,
    /// Seconds to wait for the response.
    pub(crate) timeout: f64,
    /// JSON output.
    pub(crate) json: bool,
}

/// Connects a packet-stream client to `addr`.
pub(crate) async fn connect(addr: SocketAddr) -> Result<PacketConnection, CliError> {
    let sock = TcpStream::connect(addr)
        .await
        .map_err(|source| CliError::Connect { addr, source })?;
    let _ = sock.set_nodelay(true);
    PacketConnection::new(sock).map_err(|e| CliError::Usage {
        what: "packet connection",
        why: e.to_string(),
    })
}

/// Why a call failed, as a [`CliError`].
pub(crate) fn call_error(peer: SocketAddr, e: CallError, timeout: f64) -> CliError {
    match e {
        CallError::TimedOut => CliError::Timeout {
            what: format!("request to {peer}"),
            secs: timeout,
        },
        other => CliError::Call {
            peer,
            source: other,
        },
    }
}

/// Runs `call`: one request, its response on stdout (`ok flags N payload
/// …`, or JSON). A failure response is printed too, and exits non-zero.
pub(crate) async fn call(args: CallArgs) -> Result<(), CliError> {
    let payload = match (&args.payload, args.hex) {
        (None, _) => Vec::new(),
        (Some(p), false) => p.as_bytes().to_vec(),
        (Some(p), true) => crate::render::parse_hex(p).map_err(|e| CliError::Input {
            line: 1,
            source: e.into(),
        })?,
    };
    let addr = resolve(&args.addr).await?;
    let conn = connect(addr).await?;
    if args.channel != 0 {
        conn.open_channel(args.channel)
            .await
            .map_err(|e| CliError::Usage {
                what: "--channel",
                why: e.to_string(),
            })?;
    }
    let result = conn
        .request(args.rq_type, payload)
        .channel(args.channel)
        .flags(args.flags)
        .timeout(Duration::from_secs_f64(args.timeout))
        .await;
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            conn.abort();
            return Err(call_error(addr, e, args.timeout));
        }
    };
    println!("{}", format_response(&response, args.json));
    // ERQ, EOF, the peer's EOF; a peer that vanished now changes nothing.
    let _ = conn.close().await;
    match response.failure_reason() {
        None => Ok(()),
        Some(reason) => Err(CliError::Failed {
            peer: addr,
            reason: reason.into_owned(),
        }),
    }
}

/// A response, readable (`ok flags 7 payload "flags"`) or as JSON.
pub(crate) fn format_response(r: &Response, json: bool) -> String {
    if json {
        let mut m = Map::new();
        m.insert("ok".into(), Value::from(r.ok));
        m.insert("flags".into(), Value::from(r.flags));
        m.insert("len".into(), Value::from(r.payload.len()));
        let (k, v) = json_payload(&r.payload);
        m.insert(k.into(), v);
        Value::Object(m).to_string()
    } else {
        format!(
            "{} flags {} payload {}",
            if r.ok { "ok" } else { "failed" },
            r.flags,
            readable(&r.payload, READABLE_MAX)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_answers() {
        assert_eq!(expected(0, 9, b"abc"), (true, 0, b"abc".to_vec()));
        assert_eq!(expected(1, 0, b"abc"), (true, 0, b"cba".to_vec()));
        assert_eq!(expected(2, 0, b"abc"), (true, 7, b"flags".to_vec()));
        assert_eq!(expected(3, 5, b"abc"), (true, 5, b"abc".to_vec()));
        assert_eq!(expected(4, 0, b"abc"), (true, 0, b"abc".to_vec()));
        assert_eq!(
            expected(9, 0, b"abc"),
            (false, 0, b"exception during handler".to_vec())
        );
    }

    #[tokio::test]
    async fn the_test_server_answers_as_specified() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = serve(listener, test_handler, ServeOptions::new()).unwrap();
        let conn = connect(server.local_addr()).await.unwrap();
        let run = async {
            for (rq_type, flags, payload) in [
                (0, 0, &b"hello"[..]),
                (1, 0, b"stressed"),
                (2, 0, b""),
                (3, 63, b"abc"),
                (4, 0, b"0123456789"),
                (9, 0, b"?"),
            ] {
                let r = conn.call(0, rq_type, flags, payload).await.unwrap();
                assert_eq!(
                    (r.ok, r.flags, r.payload.to_vec()),
                    expected(rq_type, flags, payload),
                    "rq_type {rq_type}"
                );
            }
            conn.close().await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("deadline");
        server.shutdown().await;
    }
}
