//! The request handler contract: what a handler receives and what it may
//! return, mirroring cs.packetstream's `request_handler`.

use std::error::Error as StdError;
use std::fmt;

use bytes::Bytes;

/// A request from the peer, as the handler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

/// A successful answer: response flags and payload.
///
/// Built from what an original handler may return (see [`IntoOutcome`]):
///
/// | original (Python) | Rust | response |
/// |---|---|---|
/// | `None` | `()` | flags 0, empty payload |
/// | `int` | `u64` | those flags, empty payload |
/// | `bytes` | `Vec<u8>`, `Bytes`, `&'static [u8]` | flags 0, the bytes |
/// | `str` | `String`, `&'static str` | flags 0, the UTF-8 text |
/// | `(int, bytes)` | `(u64, Bytes)`, `(u64, Vec<u8>)`, `(u64, &'static [u8])` | both |
///
/// A reply that cannot be sent — flags over `u64::MAX >> 3` (the response's
/// flags field carries them shifted left by three bits) or a packet over
/// [`Config::max_packet_len`](framewire::packet::Config::max_packet_len) —
/// is answered as a handler failure, `exception during handler`.
///
/// ```
/// use framewire_std::packet::Reply;
/// assert_eq!(Reply::from(()), Reply { flags: 0, payload: Default::default() });
/// assert_eq!(Reply::from(7u64).flags, 7);
/// assert_eq!(&Reply::from("text").payload[..], b"text");
/// assert_eq!(Reply::from((3u64, vec![1u8])), Reply { flags: 3, payload: vec![1u8].into() });
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// The response's user flags.
    pub flags: u64,
    /// The response payload.
    pub payload: Bytes,
}

impl From<()> for Reply {
    fn from((): ()) -> Self {
        Reply::default()
    }
}

impl From<u64> for Reply {
    fn from(flags: u64) -> Self {
        Reply {
            flags,
            payload: Bytes::new(),
        }
    }
}

impl From<Bytes> for Reply {
    fn from(payload: Bytes) -> Self {
        Reply { flags: 0, payload }
    }
}

impl From<Vec<u8>> for Reply {
    fn from(payload: Vec<u8>) -> Self {
        Reply::from(Bytes::from(payload))
    }
}

impl From<&'static [u8]> for Reply {
    fn from(payload: &'static [u8]) -> Self {
        Reply::from(Bytes::from_static(payload))
    }
}

impl From<String> for Reply {
    fn from(text: String) -> Self {
        Reply::from(Bytes::from(text))
    }
}

impl From<&'static str> for Reply {
    fn from(text: &'static str) -> Self {
        Reply::from(Bytes::from_static(text.as_bytes()))
    }
}

impl From<(u64, Bytes)> for Reply {
    fn from((flags, payload): (u64, Bytes)) -> Self {
        Reply { flags, payload }
    }
}

impl From<(u64, Vec<u8>)> for Reply {
    fn from((flags, payload): (u64, Vec<u8>)) -> Self {
        Reply {
            flags,
            payload: payload.into(),
        }
    }
}

impl From<(u64, &'static [u8])> for Reply {
    fn from((flags, payload): (u64, &'static [u8])) -> Self {
        Reply {
            flags,
            payload: Bytes::from_static(payload),
        }
    }
}

/// A handler's failure: any error. The peer gets the failure response
/// `exception during handler`, as from the original when its handler raises;
/// the error itself stays on this side.
pub type HandlerError = Box<dyn StdError + Send + Sync>;

/// What a handler closure may return: any [`Reply`] source, or a `Result` of
/// one with an error convertible to [`HandlerError`] (`String`, `&str`, any
/// `std::error::Error`).
pub trait IntoOutcome {
    /// The reply, or the error that makes it a failure response.
    fn into_outcome(self) -> Result<Reply, HandlerError>;
}

macro_rules! into_outcome_via_reply {
    ($($t:ty),* $(,)?) => {$(
        impl IntoOutcome for $t {
            fn into_outcome(self) -> Result<Reply, HandlerError> {
                Ok(Reply::from(self))
            }
        }
    )*};
}

into_outcome_via_reply!(
    (),
    u64,
    Bytes,
    Vec<u8>,
    &'static [u8],
    String,
    &'static str,
    (u64, Bytes),
    (u64, Vec<u8>),
    (u64, &'static [u8]),
);

impl IntoOutcome for Reply {
    fn into_outcome(self) -> Result<Reply, HandlerError> {
        Ok(self)
    }
}

impl<T, E> IntoOutcome for Result<T, E>
where
    T: Into<Reply>,
    E: Into<HandlerError>,
{
    fn into_outcome(self) -> Result<Reply, HandlerError> {
        self.map(Into::into).map_err(Into::into)
    }
}

/// Serves the peer's requests. Runs on the connection's worker pool, so
/// several requests may be handled at once; responses go out in completion
/// order.
///
/// Any `Fn(Request) -> impl IntoOutcome` closure is a handler. A handler that
/// returns an error **or panics** makes the response the failure `exception
/// during handler`.
///
/// ```
/// use framewire_std::packet::{Handler, HandlerError, Reply, Request};
///
/// struct Echo;
/// impl Handler for Echo {
///     fn handle(&self, request: Request) -> Result<Reply, HandlerError> {
///         Ok(Reply { flags: request.flags, payload: request.payload })
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Request) -> Result<Reply, HandlerError>;
}

impl<F, O> Handler for F
where
    F: Fn(Request) -> O + Send + Sync + 'static,
    O: IntoOutcome,
{
    fn handle(&self, request: Request) -> Result<Reply, HandlerError> {
        self(request).into_outcome()
    }
}

/// How a handler ended.
pub(crate) enum HandlerOutcome {
    /// It returned a reply.
    Reply(Reply),
    /// It returned an error or panicked.
    Failed,
}

/// Runs `handler` on `request`, turning an error or a panic into a failure.
pub(crate) fn run_handler(handler: &dyn Handler, request: Request) -> HandlerOutcome {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(request))) {
        Ok(Ok(reply)) => HandlerOutcome::Reply(reply),
        Ok(Err(_)) | Err(_) => HandlerOutcome::Failed,
    }
}

impl fmt::Debug for dyn Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handler")
    }
}
