//! The tool's errors. Every failure is printed as one line,
//! `framewire: <what>: <why>`, and the process exits non-zero.

use std::io;
use std::net::SocketAddr;

use crate::conn::ConnError;
use crate::docjson::DocJsonError;
use crate::render::HexError;
use framewire_tokio::gateway::SpecError;

/// A failure of a command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// `--codec` names no codec.
    #[error("bad codec {spec:?}: {source}")]
    Codec {
        /// The name given.
        spec: String,
        /// Why it does not parse.
        source: SpecError,
    },
    /// An address that does not parse or resolve.
    #[error("bad address {addr:?}: {why}")]
    Address {
        /// The address given.
        addr: String,
        /// Why it is bad.
        why: String,
    },
    /// Binding a listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Connecting failed (refused, unreachable, …).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// An input line (argument or stdin) is not valid for the codec.
    #[error("input line {line}: {source}")]
    Input {
        /// 1-based line number (1 for a command-line argument).
        line: usize,
        /// What is wrong.
        source: InputError,
    },
    /// Reading standard input failed.
    #[error("reading standard input: {0}")]
    Stdin(io::Error),
    /// A frame could not be sent.
    #[error("sending frame {index} to {peer}: {source}")]
    Send {
        /// 1-based index of the frame.
        index: u64,
        /// The peer.
        peer: SocketAddr,
        /// What went wrong.
        source: ConnError,
    },
    /// A connection failed while receiving.
    #[error("{peer}: {source}")]
    Conn {
        /// The peer.
        peer: SocketAddr,
        /// What went wrong.
        source: ConnError,
    },
    /// The peer closed before answering.
    #[error("{peer}: closed the connection after {got} of {expected} replies")]
    ClosedEarly {
        /// The peer.
        peer: SocketAddr,
        /// Replies received.
        got: u64,
        /// Replies expected.
        expected: u64,
    },
    /// A packet-stream request got no response.
    #[error("request to {peer}: {source}")]
    Call {
        /// The peer.
        peer: SocketAddr,
        /// Why.
        source: framewire_tokio::packet::CallError,
    },
    /// The peer answered a request with a failure response.
    #[error("{peer}: request failed: {reason}")]
    Failed {
        /// The peer.
        peer: SocketAddr,
        /// The failure text.
        reason: String,
    },
    /// Waiting took too long.
    #[error("{what}: no answer within {secs} s")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit.
        secs: f64,
    },
    /// A value on the command line is out of range.
    #[error("{what}: {why}")]
    Usage {
        /// The option.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// Some of the demo's checks failed.
    #[error("{what}: {failed} of {total} checks failed")]
    Checks {
        /// The command.
        what: &'static str,
        /// Checks failed.
        failed: usize,
        /// Checks made.
        total: usize,
    },
    /// Starting the async runtime failed.
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
}

/// An input line that is not valid for the codec.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    /// JSON for a BSON document that does not convert.
    #[error("{0}")]
    Doc(#[from] DocJsonError),
    /// Hex that does not parse.
    #[error("bad hex: {0}")]
    Hex(#[from] HexError),
    /// The codec cannot frame this payload (too long for the length field or
    /// the limit, the wrong size for `fixed:N`, a delimiter inside a line).
    #[error("{0}")]
    Encode(framewire::framing::EncodeError),
    /// `send --codec packet` with text: packets are given as hex.
    #[error("raw packets are given as hex (--hex); `framewire call` makes requests")]
    PacketText,
}

/// Resolves `addr` (`host:port`) to its first socket address.
pub(crate) async fn resolve(addr: &str) -> Result<SocketAddr, CliError> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bad = |why: String| CliError::Address {
        addr: addr.to_owned(),
        why,
    };
    if !addr.contains(':') {
        return Err(bad("expected HOST:PORT, e.g. 127.0.0.1:7000".into()));
    }
    match tokio::net::lookup_host(addr).await {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| bad("the name has no addresses".into())),
        Err(e) => Err(bad(e.to_string())),
    }
}
