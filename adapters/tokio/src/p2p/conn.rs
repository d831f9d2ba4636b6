//! One peer's connection task: a reader (frames → router → handlers) and a writer fed
//! from the core's send queue for the peer.

use std::io::{self, IoSlice};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use framewire::framing::LengthPrefixed;
use framewire::p2p::{Dispatch, LeaveReason, PeerId, Received, Transmit, Verdict};
use framewire::stream::{FramedStream, ProtocolError, StreamError};
use futures_util::FutureExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::node::{Handler, Node};

/// How the node reaches a connection task.
pub(super) struct ConnCtl {
    /// Something was queued, or the peer started closing: the writer polls the table.
    pub(super) wake: Notify,
    /// The peer is closing with a flush: stop reading, write what is queued, close.
    pub(super) closing: CancellationToken,
    /// The peer is closing without a flush: drop the connection now.
    pub(super) abort: CancellationToken,
}

impl ConnCtl {
    pub(super) fn new() -> Self {
        ConnCtl {
            wake: Notify::new(),
            closing: CancellationToken::new(),
            abort: CancellationToken::new(),
        }
    }
}

enum ReadEnd {
    /// The peer closed cleanly between frames.
    Eof,
    /// The peer broke the framing.
    Protocol(ProtocolError),
    /// The read failed.
    Transport(io::Error),
    /// The peer was aborted: stop reading.
    Stopped,
}

enum WriteEnd {
    /// Everything queued was written and the write half shut down (the peer was closing).
    Finished,
    /// The peer is not in the table any more.
    Gone,
    /// The write failed.
    Failed(io::Error),
    /// The peer was aborted.
    Aborted,
}

/// Runs one peer until its connection is done, then removes it from the table.
pub(super) async fn run_peer(node: Node, id: PeerId, stream: TcpStream, ctl: Arc<ConnCtl>) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let reader = read_loop(&node, id, rd, &ctl);
    let writer = write_loop(&node, id, wr, &ctl);
    tokio::pin!(reader, writer);
    let close_timeout = node.inner.config.close_timeout;
    let fallback = tokio::select! {
        end = &mut reader => {
            let (reason, flush) = match end {
                ReadEnd::Eof => (LeaveReason::PeerClosed, true),
                ReadEnd::Protocol(e) => {
                    tracing::debug!(peer = %id, error = %e, "peer broke the framing");
                    (LeaveReason::Protocol(e), true)
                }
                ReadEnd::Transport(e) => {
                    tracing::debug!(peer = %id, error = %e, "read failed");
                    (LeaveReason::Transport, false)
                }
                ReadEnd::Stopped => (LeaveReason::Closed, false),
            };
            // The first close reason is kept: a peer the table was already closing keeps
            // its own.
            node.with_state(|s| s.table.close(id, reason, flush));
            // Let the writer take what is queued (it stops at once after an abort).
            if let Ok(WriteEnd::Failed(e)) = tokio::time::timeout(close_timeout, &mut writer).await {
                tracing::debug!(peer = %id, error = %e, "write failed while closing");
            }
            reason
        }
        end = &mut writer => {
            if let WriteEnd::Failed(e) = end {
                tracing::debug!(peer = %id, error = %e, "write failed");
                LeaveReason::Transport
            } else {
                // Finished: everything written, our FIN sent; wait for the peer's.
                let _ = tokio::time::timeout(close_timeout, &mut reader).await;
                LeaveReason::Closed
            }
        }
        () = ctl.closing.cancelled() => {
            // The table is closing the peer: the writer writes what is queued and sends
            // our FIN, the reader discards until the peer's FIN. Both within the close
            // timeout, whatever the peer does (it may read nothing and never close).
            let both = async {
                let end = (&mut writer).await;
                if matches!(end, WriteEnd::Finished) {
                    let _ = (&mut reader).await;
                }
                end
            };
            if let Ok(WriteEnd::Failed(e)) = tokio::time::timeout(close_timeout, both).await {
                tracing::debug!(peer = %id, error = %e, "write failed while closing");
            }
            LeaveReason::Closed
        }
    };
    node.finish_peer(id, fallback);
}

async fn read_loop(node: &Node, id: PeerId, mut rd: OwnedReadHalf, ctl: &ConnCtl) -> ReadEnd {
    let framing = LengthPrefixed::new().with_max_frame_len(node.inner.config.max_frame_len);
    let mut stream = FramedStream::new(framing);
    loop {
        loop {
            match stream.poll_frame() {
                Ok(Some(frame)) => {
                    if dispatch(node, id, &frame).await == Verdict::Stop {
                        return linger(&mut rd, ctl).await;
                    }
                }
                Ok(None) => break,
                Err(StreamError::Protocol(e)) => return ReadEnd::Protocol(e),
                Err(e) => return ReadEnd::Transport(io::Error::other(e.to_string())),
            }
        }
        if stream.is_terminal() {
            return ReadEnd::Eof;
        }
        let buf = stream.receive_buffer();
        if buf.is_empty() {
            // Draining frames always makes room; an empty buffer here is a bug, and a
            // read into it would look like the peer's EOF.
            return ReadEnd::Transport(io::Error::other("receive buffer full"));
        }
        let read = tokio::select! {
            biased;
            () = ctl.abort.cancelled() => return ReadEnd::Stopped,
            () = ctl.closing.cancelled() => return linger(&mut rd, ctl).await,
            r = rd.read(buf) => r,
        };
        let result = match read {
            Ok(0) => stream.handle_eof(),
            Ok(n) => stream.commit_received(n),
            Err(e) => return ReadEnd::Transport(e),
        };
        match result {
            Ok(()) => {}
            Err(StreamError::Protocol(e)) => return ReadEnd::Protocol(e),
            Err(e) => return ReadEnd::Transport(io::Error::other(e.to_string())),
        }
    }
}

/// The peer is closing: nothing more is dispatched, but reading goes on (discarding)
/// until the peer's EOF, so that closing the socket with unread bytes does not turn into
/// a reset that could destroy the last messages written to it. Bounded by the caller's
/// close timeout and by an abort.
async fn linger(rd: &mut OwnedReadHalf, ctl: &ConnCtl) -> ReadEnd {
    let mut scratch = vec![0u8; 8 * 1024];
    loop {
        let read = tokio::select! {
            biased;
            () = ctl.abort.cancelled() => return ReadEnd::Stopped,
            r = rd.read(&mut scratch) => r,
        };
        match read {
            Ok(0) => return ReadEnd::Eof,
            Ok(_) => {}
            Err(e) => return ReadEnd::Transport(e),
        }
    }
}

/// Routes one frame, records it in the table, and runs its handlers.
async fn dispatch(node: &Node, id: PeerId, payload: &[u8]) -> Verdict {
    let (received, message) = {
        let router = node
            .inner
            .router
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let dispatch = router.dispatch(payload);
        let received = dispatch.received();
        match dispatch {
            Dispatch::Message {
                msg_type,
                data,
                route,
            } => (received, Some((msg_type, data, route.handlers().to_vec()))),
            Dispatch::Empty => (received, None),
            Dispatch::Malformed(e) => {
                tracing::debug!(peer = %id, error = %e, "malformed message");
                (received, None)
            }
        }
    };
    let now = node.now();
    if node.with_state(|s| s.table.handle_frame(id, now, received)) == Verdict::Stop {
        return Verdict::Stop;
    }
    if received == Received::Unknown {
        tracing::trace!(peer = %id, "message of a type without handler dropped");
    }
    let Some((msg_type, data, handlers)) = message else {
        return Verdict::Continue;
    };
    let last = handlers.len().saturating_sub(1);
    let mut data = Some(data);
    for (i, handler) in handlers.iter().enumerate() {
        // Each handler gets the data; only the extra ones cost a clone.
        let data = if i == last {
            data.take().unwrap_or(Value::Null)
        } else {
            data.clone().unwrap_or(Value::Null)
        };
        let outcome = match handler {
            Handler::Sync(f) => std::panic::catch_unwind(AssertUnwindSafe(|| f(node, id, data))),
            Handler::Async(f) => {
                AssertUnwindSafe(f(node.clone(), id, data))
                    .catch_unwind()
                    .await
            }
            Handler::Any(f) => {
                let msg_type = msg_type.clone();
                std::panic::catch_unwind(AssertUnwindSafe(|| f(node, id, msg_type, data)))
            }
        };
        if outcome.is_err() {
            tracing::error!(peer = %id, msg_type = %msg_type, "message handler panicked");
        }
    }
    Verdict::Continue
}

async fn write_loop(node: &Node, id: PeerId, mut wr: OwnedWriteHalf, ctl: &ConnCtl) -> WriteEnd {
    let mut out: Vec<Bytes> = Vec::new();
    loop {
        match node.with_state(|s| s.table.poll_transmit(id, &mut out)) {
            Transmit::Frames(_) => {
                let written = tokio::select! {
                    biased;
                    () = ctl.abort.cancelled() => return WriteEnd::Aborted,
                    r = write_frames(&mut wr, &out) => r,
                };
                out.clear();
                if let Err(e) = written {
                    return WriteEnd::Failed(e);
                }
            }
            Transmit::Idle => {
                tokio::select! {
                    biased;
                    () = ctl.abort.cancelled() => return WriteEnd::Aborted,
                    () = ctl.wake.notified() => {}
                }
            }
            Transmit::Finish => {
                // A peer that never reads may never take the FIN either: bounded by the
                // caller's close timeout, and by an abort.
                tokio::select! {
                    biased;
                    () = ctl.abort.cancelled() => return WriteEnd::Aborted,
                    _ = wr.shutdown() => {}
                }
                return WriteEnd::Finished;
            }
            Transmit::Gone => return WriteEnd::Gone,
        }
    }
}

/// Writes every frame, several per system call.
async fn write_frames(wr: &mut OwnedWriteHalf, frames: &[Bytes]) -> io::Result<()> {
    const MAX_SLICES: usize = 64;
    let mut index = 0;
    let mut offset = 0;
    loop {
        while index < frames.len() && offset == frames[index].len() {
            index += 1;
            offset = 0;
        }
        if index == frames.len() {
            return Ok(());
        }
        let slices: Vec<IoSlice<'_>> = frames[index..]
            .iter()
            .take(MAX_SLICES)
            .enumerate()
            .map(|(k, f)| IoSlice::new(if k == 0 { &f[offset..] } else { f }))
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let left = frames[index].len() - offset;
            if n >= left {
                n -= left;
                index += 1;
                offset = 0;
            } else {
                offset += n;
                n = 0;
            }
        }
    }
}
