//! Batches: many requests handed to the driver in one command, answered
//! together ([`PacketConnection::call_batch`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::connection::{PacketConnection, Response, Shared};
use super::driver::{BatchCmd, Command, Outcome};
use super::error::CallError;

/// One request of a batch ([`PacketConnection::call_batch`]): the arguments
/// of [`PacketConnection::call`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRequest {
    /// The channel (0 unless opened on both sides).
    pub channel: u64,
    /// The user request type (sent as `rq_type + 1`).
    pub rq_type: u64,
    /// The request flags.
    pub flags: u64,
    /// The payload.
    pub payload: Bytes,
}

impl BatchRequest {
    /// A request of `rq_type` with `flags` and `payload` on `channel`.
    pub fn new(channel: u64, rq_type: u64, flags: u64, payload: impl Into<Bytes>) -> Self {
        BatchRequest {
            channel,
            rq_type,
            flags,
            payload: payload.into(),
        }
    }
}

impl PacketConnection {
    /// Sends many requests at once and returns a future of all their
    /// outcomes, in the order of `requests`: each the `Result` that
    /// [`call`](Self::call) would give for it.
    ///
    /// The batch reaches the connection's driver as one command and its
    /// caller is woken once, when the last response is in: no future,
    /// channel message or wakeup per request, which makes pipelined small
    /// requests several times cheaper than as many `call`s. The requests are
    /// sent in order, as many at once as the limits allow: beyond
    /// [`Config::max_pending_outbound`](super::Config::max_pending_outbound)
    /// waiting responses, or while the transmit queue is full, the rest wait
    /// for room (back-pressure, as `call`s do), so a batch may be larger than
    /// the limits. Each request has the builder's call timeout, counted from
    /// the batch's first poll (see [`Batch::timeout`]); a request past it
    /// fails with [`CallError::TimedOut`], the others are unaffected.
    ///
    /// Results are delivered together: a batch waits for its slowest
    /// request. Dropping the [`Batch`] before it completes abandons every
    /// request of it still unanswered.
    ///
    /// ```
    /// use framewire_tokio::packet::{BatchRequest, Builder, PacketConnection, Reply, Request};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (a, b) = tokio::io::duplex(64 * 1024);
    /// let server = Builder::new()
    ///     .handler(|rq: Request| async move { Reply::with_flags(rq.flags, rq.payload) })
    ///     .start(b)?;
    /// let client = PacketConnection::new(a)?;
    ///
    /// let requests = (0..100u8).map(|i| BatchRequest::new(0, 0, u64::from(i), vec![i]));
    /// let results = client.call_batch(requests).await;
    /// assert_eq!(results.len(), 100);
    /// for (i, result) in results.into_iter().enumerate() {
    ///     let response = result?;
    ///     assert_eq!((response.flags, &response.payload[..]), (i as u64, &[i as u8][..]));
    /// }
    ///
    /// client.close().await?;
    /// server.wait().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_batch<I>(&self, requests: I) -> Batch
    where
        I: IntoIterator<Item = BatchRequest>,
    {
        Batch {
            state: BatchState::Start {
                shared: Arc::clone(&self.shared),
                requests: requests.into_iter().collect(),
                timeout: self.shared.call_timeout,
            },
        }
    }
}

/// A batch of requests in flight, from [`PacketConnection::call_batch`]: a
/// future of every request's outcome, in order. `'static` and `Send`.
///
/// Dropping it before it completes abandons the requests still unanswered.
#[must_use = "a batch does nothing unless polled; dropping it abandons its requests"]
pub struct Batch {
    state: BatchState,
}

enum BatchState {
    /// Not polled yet.
    Start {
        shared: Arc<Shared>,
        requests: Vec<BatchRequest>,
        timeout: Option<Duration>,
    },
    /// Handed to the driver. Dropping the batch now abandons it.
    Waiting {
        shared: Arc<Shared>,
        id: u64,
        len: usize,
        rx: oneshot::Receiver<Vec<Outcome>>,
    },
    Done,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

impl Batch {
    /// Every request's timeout, counted from the batch's first poll
    /// (default: the builder's call timeout). Has no effect once polled.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if let BatchState::Start { timeout: t, .. } = &mut self.state {
            *t = Some(timeout);
        }
        self
    }

    /// No timeout, whatever the builder's call timeout. Has no effect once
    /// polled.
    pub fn no_timeout(mut self) -> Self {
        if let BatchState::Start { timeout: t, .. } = &mut self.state {
            *t = None;
        }
        self
    }
}

impl Future for Batch {
    type Output = Vec<Result<Response, CallError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let BatchState::Start { .. } = this.state {
            let BatchState::Start {
                shared,
                requests,
                timeout,
            } = std::mem::replace(&mut this.state, BatchState::Done)
            else {
                unreachable!("in the start state")
            };
            if requests.is_empty() {
                return Poll::Ready(Vec::new());
            }
            let len = requests.len();
            let id = shared.next_call.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            let cmd = Command::Batch(BatchCmd {
                id,
                requests,
                deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
                reply: tx,
            });
            shared.send(cmd);
            this.state = BatchState::Waiting {
                shared,
                id,
                len,
                rx,
            };
        }
        match &mut this.state {
            BatchState::Waiting { rx, .. } => {
                let outcome = match Pin::new(rx).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(outcome) => outcome,
                };
                let BatchState::Waiting { shared, len, .. } =
                    std::mem::replace(&mut this.state, BatchState::Done)
                else {
                    unreachable!("in the waiting state")
                };
                Poll::Ready(outcome.unwrap_or_else(|_| {
                    let e = shared.ended();
                    vec![Err(e); len]
                }))
            }
            BatchState::Done => panic!("Batch polled after completion"),
            BatchState::Start { .. } => unreachable!("started above"),
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let BatchState::Waiting { shared, id, .. } = &self.state {
            shared.send(Command::AbandonBatch { id: *id });
        }
    }
}
