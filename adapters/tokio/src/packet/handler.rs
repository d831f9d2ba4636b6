//! The request handler contract: what an async handler receives and returns.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use bytes::Bytes;
use framewire::packet::{reason, Answerer, LentRequest};
use futures_util::future::BoxFuture;

use super::connection::PacketConnection;

/// A request from the peer, as the handler sees it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The request's channel (0 unless both ends opened another).
    pub channel: u64,
    /// The peer's tag for it (informational: the connection answers it).
    pub tag: u64,
    /// The user request type (the original's `rq_type`).
    pub rq_type: u64,
    /// The request flags, as the peer sent them.
    pub flags: u64,
    /// The request payload (shares the receive buffer; no copy).
    pub payload: Bytes,
    pub(crate) connection: PacketConnection,
}

impl Request {
    /// The connection the request came in on, to call the peer back (a
    /// server calling its client, or the other way round). This handle does
    /// not keep the connection open: dropping it never closes anything.
    pub fn connection(&self) -> &PacketConnection {
        &self.connection
    }
}

/// A handler's answer: a response with flags and payload, or a failure with
/// a reason.
///
/// Built from what an original handler may return (the original derives the
/// response from its handler's return value the same way):
///
/// | original (Python) | Rust | response |
/// |---|---|---|
/// | `None` | `()` | flags 0, empty payload |
/// | `int` | `u64` | those flags, empty payload |
/// | `bytes` | `Vec<u8>`, `Bytes`, `&'static [u8]` | flags 0, the bytes |
/// | `str` | `String`, `&'static str` | flags 0, the UTF-8 text |
/// | `(int, bytes)` | `(u64, Bytes)`, `(u64, Vec<u8>)`, `(u64, &'static [u8])` | both |
/// | raises | `Err(e)` of a `Result` | failure `exception during handler` |
///
/// A [`Reply::Fail`] sends its reason as a failure response (`ok == false`).
/// A reply the connection cannot send — flags over `u64::MAX >> 3` or a
/// packet over [`Config::max_packet_len`](framewire::packet::Config::max_packet_len)
/// — is answered as a handler failure, `exception during handler`, as is a
/// handler that panics.
///
/// ```
/// use framewire_tokio::packet::Reply;
/// assert_eq!(Reply::from(()), Reply::ok(bytes::Bytes::new()));
/// assert_eq!(Reply::from((3u64, vec![1u8])), Reply::with_flags(3, vec![1u8]));
/// assert_eq!(
///     Reply::from(Err::<(), _>("disk on fire")),
///     Reply::fail("exception during handler"),
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Answer successfully: `pflags = (flags << 1) | 1`, and the payload.
    Respond {
        /// The response's user flags.
        flags: u64,
        /// The response payload.
        payload: Bytes,
    },
    /// Answer with a failure: `pflags = 0` and the reason in UTF-8.
    Fail {
        /// The failure text.
        reason: Cow<'static, str>,
    },
}

impl Reply {
    /// A successful response with flags 0.
    pub fn ok(payload: impl Into<Bytes>) -> Self {
        Reply::Respond {
            flags: 0,
            payload: payload.into(),
        }
    }

    /// A successful response with `flags`.
    pub fn with_flags(flags: u64, payload: impl Into<Bytes>) -> Self {
        Reply::Respond {
            flags,
            payload: payload.into(),
        }
    }

    /// A failure response with `reason`.
    pub fn fail(reason: impl Into<Cow<'static, str>>) -> Self {
        Reply::Fail {
            reason: reason.into(),
        }
    }

    /// The original's answer to a handler that raised: the failure
    /// `exception during handler`.
    pub fn exception() -> Self {
        Reply::fail(reason::EXCEPTION_DURING_HANDLER)
    }
}

impl From<()> for Reply {
    fn from((): ()) -> Self {
        Reply::ok(Bytes::new())
    }
}

impl From<u64> for Reply {
    fn from(flags: u64) -> Self {
        Reply::with_flags(flags, Bytes::new())
    }
}

impl From<Bytes> for Reply {
    fn from(payload: Bytes) -> Self {
        Reply::ok(payload)
    }
}

impl From<Vec<u8>> for Reply {
    fn from(payload: Vec<u8>) -> Self {
        Reply::ok(payload)
    }
}

impl From<&'static [u8]> for Reply {
    fn from(payload: &'static [u8]) -> Self {
        Reply::ok(Bytes::from_static(payload))
    }
}

impl From<String> for Reply {
    fn from(text: String) -> Self {
        Reply::ok(text)
    }
}

impl From<&'static str> for Reply {
    fn from(text: &'static str) -> Self {
        Reply::ok(Bytes::from_static(text.as_bytes()))
    }
}

impl From<(u64, Bytes)> for Reply {
    fn from((flags, payload): (u64, Bytes)) -> Self {
        Reply::with_flags(flags, payload)
    }
}

impl From<(u64, Vec<u8>)> for Reply {
    fn from((flags, payload): (u64, Vec<u8>)) -> Self {
        Reply::with_flags(flags, payload)
    }
}

impl From<(u64, &'static [u8])> for Reply {
    fn from((flags, payload): (u64, &'static [u8])) -> Self {
        Reply::with_flags(flags, Bytes::from_static(payload))
    }
}

impl<T: Into<Reply>, E: fmt::Display> From<Result<T, E>> for Reply {
    /// `Ok` as its reply; `Err` as `exception during handler` (the error is
    /// logged here with `tracing`, not sent, as the original does).
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(reply) => reply.into(),
            Err(e) => {
                tracing::debug!(error = %e, "request handler failed");
                Reply::exception()
            }
        }
    }
}

/// Serves the peer's requests. Requests are handled concurrently (bounded,
/// see
/// [`Builder::max_concurrent_handlers`](super::Builder::max_concurrent_handlers))
/// and answered in completion order. On a multi-threaded runtime each
/// request runs in its own Tokio task; on a current-thread runtime a handler
/// is first polled once inside the connection's driver, and gets its own
/// task only if it has to wait (either can be chosen with
/// [`Builder::inline_handlers`](super::Builder::inline_handlers)).
///
/// Any `Fn(Request) -> impl Future<Output = impl Into<Reply>>` closure is a
/// handler:
///
/// ```
/// use framewire_tokio::packet::{Reply, Request};
///
/// let echo = |rq: Request| async move { Reply::with_flags(rq.flags, rq.payload) };
/// # fn check<H: framewire_tokio::packet::Handler>(_: H) {}
/// # check(echo);
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Request) -> BoxFuture<'static, Reply>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Into<Reply>,
{
    fn handle(&self, request: Request) -> BoxFuture<'static, Reply> {
        let fut = self(request);
        Box::pin(async move { fut.await.into() })
    }
}

/// Answers requests in place, inside the connection's driver, before any
/// [`Handler`] sees them: see [`Builder::answer_in_place`](super::Builder::answer_in_place).
///
/// It gets each request lent ([`LentRequest`]: its payload borrowed from the
/// receive buffer) and an [`Answerer`] that encodes the response straight
/// into the transmit queue; a request it leaves unanswered goes to the
/// handler as usual.
pub trait InPlaceAnswer: Send + Sync + 'static {
    /// Answers `request` through `answer`, or leaves it for the handler.
    fn answer(&self, request: LentRequest<'_>, answer: &mut Answerer<'_>);
}

impl<F> InPlaceAnswer for F
where
    F: Fn(LentRequest<'_>, &mut Answerer<'_>) + Send + Sync + 'static,
{
    fn answer(&self, request: LentRequest<'_>, answer: &mut Answerer<'_>) {
        self(request, answer);
    }
}

impl fmt::Debug for dyn Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handler")
    }
}
