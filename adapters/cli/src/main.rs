//! `framewire`: the command-line tool.
//!
//! ```text
//! framewire demo                                  servers and clients on loopback, every check shown
//! framewire listen ADDR --codec C [--json]        print every frame/document received
//! framewire send ADDR --codec C [DATA|-]          send frames, or BSON documents given as JSON
//! framewire call ADDR RQ_TYPE [PAYLOAD]           one packet-stream request
//! framewire echo ADDR --codec C                   echo server (packet: the test server)
//! framewire gateway --ws ADDR --tcp ADDR          WebSocket-to-TCP gateway
//! framewire bench [--codec C]                     loopback throughput and latency
//! ```
//!
//! Every failure is one line on stderr, `framewire: <what>: <why>`, and a
//! non-zero exit status (1; 2 for command-line usage errors).

mod bench;
mod codec;
mod conn;
mod demo;
mod docjson;
mod echo;
mod error;
mod gateway;
mod listen;
mod packet;
mod render;
mod send;
mod show;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::CliError;

/// framewire: framed messages and packet streams over TCP, from the command line.
#[derive(Parser, Debug)]
#[command(name = "framewire", version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "Examples:
  framewire demo
  framewire echo 127.0.0.1:7000 --codec bson
  echo '{\"hello\": \"world\"}' | framewire send 127.0.0.1:7000 --codec bson --replies
  framewire listen 127.0.0.1:7001 --codec length:2:le --json
  framewire echo 127.0.0.1:7002 --codec packet
  framewire call 127.0.0.1:7002 1 stressed
  framewire gateway --ws 127.0.0.1:8080 --tcp 127.0.0.1:7002 --frame packet
  framewire bench --codec bson --count 50000

Codecs: length[:W[:le|be]] (W = 1..8 or varint), bson, lines, fixed:N, json-header, packet.
Errors are one line on stderr, `framewire: <what>: <why>`, with a non-zero exit status.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Servers and clients on loopback: what goes over the wire, and every check
    ///
    /// Starts a BSON echo server and a packet-stream test server on 127.0.0.1, runs
    /// clients against them (documents, requests, 1,000 pipelined calls answered out
    /// of order), shows the bytes, and prints a summary. Exits non-zero if a check fails.
    Demo,
    /// Accept connections and print every frame, BSON document or message received.
    Listen(ListenCmd),
    /// Send frames (text or hex), BSON documents (JSON objects) or JSON-header messages.
    Send(SendCmd),
    /// One packet-stream (cs.packetstream) request; prints ok, flags and payload.
    Call(CallCmd),
    /// An echo server for any codec (`--codec packet`: the packet-stream test server)
    ///
    /// Frames go back unchanged; BSON documents are decoded and re-encoded (a malformed
    /// one ends the connection with an error). The packet-stream test server answers
    /// rq_type 0 with the payload, 1 with it reversed, 2 with flags 7 and "flags", 3 with
    /// the request's flags and payload, 4 with the payload after (payload length mod 50)
    /// ms, and anything else with the failure "exception during handler".
    Echo(EchoCmd),
    /// A WebSocket-to-TCP gateway, so browsers reach TCP services (raw, or one frame
    /// per message with --frame).
    Gateway(GatewayCmd),
    /// Loopback throughput and latency of a codec or the packet stream.
    Bench(BenchCmd),
}

/// Options shared by the commands that frame bytes.
#[derive(Args, Debug)]
struct CodecOpts {
    /// The codec: length[:W[:le|be]] (W = 1..8 or varint), bson, lines, fixed:N,
    /// json-header, packet.
    #[arg(long, short = 'c', default_value = "length", value_name = "C")]
    codec: String,
    /// Largest frame accepted or sent, in bytes (default: the codec's limit).
    #[arg(long, value_name = "BYTES")]
    max_frame: Option<usize>,
}

impl CodecOpts {
    fn spec(&self) -> Result<codec::FrameSpec, CliError> {
        codec::parse(&self.codec, self.max_frame)
    }
}

#[derive(Args, Debug)]
struct ListenCmd {
    /// Address to listen on (HOST:PORT; port 0 picks a free one, printed on stderr).
    addr: String,
    #[command(flatten)]
    codec: CodecOpts,
    /// One JSON object per line instead of readable text.
    #[arg(long)]
    json: bool,
    /// Exit after this many frames.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Serve a single connection, then exit (non-zero if it ended in an error).
    #[arg(long)]
    once: bool,
    /// Connections served at once; accepting pauses beyond.
    #[arg(long, value_name = "N", default_value_t = listen::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
}

#[derive(Args, Debug)]
struct SendCmd {
    /// Address to connect to (HOST:PORT).
    addr: String,
    /// What to send; `-` or nothing reads one frame per line from stdin.
    data: Option<String>,
    #[command(flatten)]
    codec: CodecOpts,
    /// Inputs are hex digits (frame payloads, or raw BSON documents).
    #[arg(long)]
    hex: bool,
    /// Read and print one reply per frame sent.
    #[arg(long)]
    replies: bool,
    /// Print replies as JSON lines.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the replies.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    timeout: f64,
}

#[derive(Args, Debug)]
struct CallCmd {
    /// Address of a packet-stream server (HOST:PORT).
    addr: String,
    /// The request type.
    rq_type: u64,
    /// The payload (text; hex with --hex). Empty if omitted.
    payload: Option<String>,
    /// Request flags.
    #[arg(long, default_value_t = 0, value_name = "N")]
    flags: u64,
    /// Channel (0 unless both sides opened another).
    #[arg(long, default_value_t = 0, value_name = "N")]
    channel: u64,
    /// The payload is hex digits.
    #[arg(long)]
    hex: bool,
    /// Seconds to wait for the response.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    timeout: f64,
    /// Print the response as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct GatewayCmd {
    /// Address WebSocket clients connect to (HOST:PORT; port 0 picks a free one,
    /// printed on stderr).
    #[arg(long, value_name = "ADDR")]
    ws: String,
    /// The TCP service each WebSocket client is relayed to (HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    tcp: String,
    /// Each binary message is exactly one frame of this codec (default: raw bytes).
    #[arg(long, value_name = "C")]
    frame: Option<String>,
    /// Largest frame on the TCP side, in bytes (default: the codec's limit).
    #[arg(long, value_name = "BYTES", requires = "frame")]
    max_frame: Option<usize>,
    /// Largest WebSocket message, in bytes (default 16 MiB).
    #[arg(long, value_name = "BYTES")]
    max_message: Option<usize>,
    /// Most connections at once (default 1024; more are refused with HTTP 503).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Seconds to wait for the TCP service to accept a connection (default 10).
    #[arg(long, value_name = "SECS")]
    connect_timeout: Option<f64>,
}

#[derive(Args, Debug)]
struct BenchCmd {
    /// The codec, or `packet` for packet-stream calls.
    #[arg(long, short = 'c', default_value = "packet", value_name = "C")]
    codec: String,
    /// Frames (or calls) to send.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    count: u64,
    /// Payload size in bytes (fixed:N uses N).
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    size: usize,
    /// Frames (or calls) in flight at once.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pipeline: usize,
    /// Benchmark an echo server already running there (`framewire echo`)
    /// instead of one in this process.
    #[arg(long, value_name = "ADDR")]
    connect: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct EchoCmd {
    /// Address to listen on (HOST:PORT; port 0 picks a free one, printed on stderr).
    addr: String,
    #[command(flatten)]
    codec: CodecOpts,
    /// Print every frame received.
    #[arg(long, short)]
    verbose: bool,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
    /// Connections served at once; accepting pauses beyond.
    #[arg(long, value_name = "N", default_value_t = listen::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    let outcome = std::panic::catch_unwind(|| run(cli));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("framewire: {e}");
            ExitCode::FAILURE
        }
        // The hook has printed the one line already.
        Err(_) => ExitCode::from(70),
    }
}

/// A panic is a bug: say so in one line, without a backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("panic");
        let msg = msg.lines().next().unwrap_or_default();
        match info.location() {
            Some(l) => eprintln!(
                "framewire: internal error: {msg} (at {}:{}; please report it)",
                l.file(),
                l.line()
            ),
            None => eprintln!("framewire: internal error: {msg} (please report it)"),
        }
    }));
}

fn run(cli: Cli) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    rt.block_on(async move {
        match cli.command {
            Command::Demo => demo::run().await,
            Command::Listen(c) => {
                listen::run(listen::ListenArgs {
                    codec: c.codec.spec()?,
                    addr: c.addr,
                    json: c.json,
                    count: c.count,
                    once: c.once,
                    max_connections: c.max_connections,
                })
                .await
            }
            Command::Send(c) => {
                check_timeout(c.timeout)?;
                send::run(send::SendArgs {
                    codec: c.codec.spec()?,
                    addr: c.addr,
                    data: c.data,
                    hex: c.hex,
                    replies: c.replies,
                    json: c.json,
                    timeout: c.timeout,
                })
                .await
            }
            Command::Call(c) => {
                check_timeout(c.timeout)?;
                packet::call(packet::CallArgs {
                    addr: c.addr,
                    rq_type: c.rq_type,
                    payload: c.payload,
                    hex: c.hex,
                    flags: c.flags,
                    channel: c.channel,
                    timeout: c.timeout,
                    json: c.json,
                })
                .await
            }
            Command::Gateway(c) => {
                if let Some(t) = c.connect_timeout {
                    check_timeout(t)?;
                }
                gateway::run(gateway::GatewayArgs {
                    frame: c
                        .frame
                        .as_deref()
                        .map(|f| codec::parse(f, c.max_frame))
                        .transpose()?,
                    ws: c.ws,
                    tcp: c.tcp,
                    max_message: c.max_message,
                    max_connections: c.max_connections,
                    connect_timeout: c.connect_timeout,
                })
                .await
            }
            Command::Bench(c) => {
                bench::run(bench::BenchArgs {
                    codec: codec::parse(&c.codec, None)?,
                    count: c.count,
                    size: c.size,
                    pipeline: c.pipeline,
                    connect: c.connect,
                    json: c.json,
                })
                .await
            }
            Command::Echo(c) => {
                echo::run(echo::EchoArgs {
                    codec: c.codec.spec()?,
                    addr: c.addr,
                    max_frame: c.codec.max_frame,
                    verbose: c.verbose,
                    json: c.json,
                    max_connections: c.max_connections,
                })
                .await
            }
        }
    })
}

fn check_timeout(secs: f64) -> Result<(), CliError> {
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Ok(())
    } else {
        Err(CliError::Usage {
            what: "--timeout",
            why: format!("{secs} is not a positive number of seconds"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
