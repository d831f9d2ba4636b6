//! Serving many packet connections: one [`PacketConnection`] per client on
//! the bounded thread-per-connection [`Server`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::server::{Server, ServerHandle};

use super::connection::{Builder, Shared};

/// A running packet-stream server: every client gets a [`PacketConnection`]
/// started from the same [`Builder`] (usually with a handler), served until
/// it closes.
///
/// [`shutdown`](PacketServer::shutdown) stops accepting and closes every
/// connection in an orderly way (ERQ, running requests answered, EOF), each
/// bounded by the builder's close timeout. Dropping the server does the same.
///
/// ```
/// use framewire_std::packet::{Builder, PacketConnection, PacketServer, Request};
/// use framewire_std::server::Server;
///
/// let server = PacketServer::serve(
///     Server::bind("127.0.0.1:0")?,
///     Builder::new().handler(|rq: Request| rq.payload),
/// )?;
/// let client = PacketConnection::connect(server.local_addr())?;
/// assert_eq!(&client.call(0, 0, &b"hi"[..])?.payload[..], b"hi");
/// drop(client);
/// server.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`PacketConnection`]: super::PacketConnection
#[derive(Debug)]
pub struct PacketServer {
    handle: Option<ServerHandle>,
    live: Arc<Live>,
}

#[derive(Debug, Default)]
struct Live {
    inner: Mutex<LiveInner>,
}

#[derive(Debug, Default)]
struct LiveInner {
    stopping: bool,
    next_id: u64,
    conns: HashMap<u64, Weak<Shared>>,
}

impl PacketServer {
    /// Starts serving on `server`'s listener (its connection limit
    /// applies: beyond it clients wait in the listen backlog).
    pub fn serve(server: Server, builder: Builder) -> io::Result<PacketServer> {
        let live = Arc::new(Live::default());
        let conn_live = Arc::clone(&live);
        let handle = server.serve(move |stream, _peer| {
            let Ok(conn) = builder.start(stream) else {
                return;
            };
            let id = {
                let mut inner = conn_live
                    .inner
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if inner.stopping {
                    None
                } else {
                    let id = inner.next_id;
                    inner.next_id += 1;
                    inner.conns.insert(id, Arc::downgrade(conn.shared()));
                    Some(id)
                }
            };
            if id.is_some() {
                let _ = conn.wait();
            }
            // Dropping closes (at once if the server is stopping).
            drop(conn);
            if let Some(id) = id {
                conn_live
                    .inner
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .conns
                    .remove(&id);
            }
        })?;
        Ok(PacketServer {
            handle: Some(handle),
            live,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle
            .as_ref()
            .map(ServerHandle::local_addr)
            .expect("the handle lives until shutdown")
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.handle
            .as_ref()
            .map_or(0, ServerHandle::active_connections)
    }

    /// Connections that have ended.
    pub fn served_connections(&self) -> u64 {
        self.handle
            .as_ref()
            .map_or(0, ServerHandle::served_connections)
    }

    /// Stops accepting, closes every connection in an orderly way, and
    /// waits for them to end (each bounded by the close timeout).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let conns: Vec<Arc<Shared>> = {
            let mut inner = self
                .live
                .inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            inner.stopping = true;
            inner.conns.values().filter_map(Weak::upgrade).collect()
        };
        for conn in &conns {
            conn.begin_close();
        }
        drop(conns);
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
        }
    }
}

impl Drop for PacketServer {
    fn drop(&mut self) {
        if self.handle.is_some() {
            self.stop();
        }
    }
}
