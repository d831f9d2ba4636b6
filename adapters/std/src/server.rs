//! A small multi-client TCP server: one thread per connection, at most
//! `max_connections` at once.
//!
//! When the limit is reached the server stops accepting until a connection
//! ends, so excess clients wait in the kernel's listen backlog (backpressure)
//! instead of each getting a thread. [`ServerHandle::shutdown`] stops
//! accepting and waits for the running connections to end.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

/// Default for [`Server::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// A bound TCP listener waiting to [`serve`](Server::serve).
///
/// ```no_run
/// use framewire_std::server::Server;
/// use std::io::{Read, Write};
/// let server = Server::bind("127.0.0.1:0").unwrap().max_connections(8);
/// let handle = server.serve(|mut stream, _peer| {
///     let mut buf = [0u8; 1024];
///     while let Ok(n) = stream.read(&mut buf) {
///         if n == 0 || stream.write_all(&buf[..n]).is_err() { break; }
///     }
/// }).unwrap();
/// println!("listening on {}", handle.local_addr());
/// handle.shutdown();
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    max_connections: usize,
}

impl Server {
    /// Binds a listener.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        })
    }

    /// Wraps an existing listener.
    pub fn from_listener(listener: TcpListener) -> Server {
        Server {
            listener,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// At most `n` connections are served at once (default
    /// [`DEFAULT_MAX_CONNECTIONS`]). Panics if `n` is 0.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Server {
        assert!(n > 0, "max_connections must be at least 1");
        self.max_connections = n;
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts accepting on a background thread; `handler` runs on its own
    /// thread for each connection.
    pub fn serve<H>(self, handler: H) -> io::Result<ServerHandle>
    where
        H: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    {
        let local_addr = self.listener.local_addr()?;
        let shared = Arc::new(Shared {
            active: Mutex::new(0),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            served: AtomicU64::new(0),
        });
        let handler = Arc::new(handler);
        let accept_shared = Arc::clone(&shared);
        let max = self.max_connections;
        let listener = self.listener;
        let acceptor = thread::Builder::new()
            .name("framewire-accept".into())
            .spawn(move || accept_loop(&listener, max, &accept_shared, &handler))?;
        Ok(ServerHandle {
            local_addr,
            shared,
            acceptor: Some(acceptor),
        })
    }
}

struct Shared {
    active: Mutex<usize>,
    changed: Condvar,
    stopping: AtomicBool,
    served: AtomicU64,
}

fn accept_loop<H>(listener: &TcpListener, max: usize, shared: &Arc<Shared>, handler: &Arc<H>)
where
    H: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
{
    loop {
        {
            let mut active = shared.active.lock().unwrap_or_else(PoisonError::into_inner);
            while *active >= max && !shared.stopping.load(Ordering::SeqCst) {
                active = shared
                    .changed
                    .wait(active)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match listener.accept() {
            Ok(conn) => conn,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return,
            Err(_) => {
                // Transient accept failures (EMFILE, ECONNABORTED): keep serving.
                thread::yield_now();
                continue;
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        *shared.active.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        let conn_shared = Arc::clone(shared);
        let handler = Arc::clone(handler);
        let spawned = thread::Builder::new()
            .name(format!("framewire-conn-{peer}"))
            .spawn(move || {
                let _guard = ActiveGuard(&conn_shared);
                handler(stream, peer);
            });
        if spawned.is_err() {
            // The closure (and its guard) never ran: give the slot back.
            let mut active = shared.active.lock().unwrap_or_else(PoisonError::into_inner);
            *active -= 1;
            shared.changed.notify_all();
        }
    }
}

/// Decrements the active count when a connection thread ends, even by panic.
struct ActiveGuard<'a>(&'a Shared);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        let mut active = self.0.active.lock().unwrap_or_else(PoisonError::into_inner);
        *active -= 1;
        self.0.served.fetch_add(1, Ordering::SeqCst);
        self.0.changed.notify_all();
    }
}

/// A running server. Dropping it shuts the server down.
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections being served right now.
    pub fn active_connections(&self) -> usize {
        *self
            .shared
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections that have ended.
    pub fn served_connections(&self) -> u64 {
        self.shared.served.load(Ordering::SeqCst)
    }

    /// Stops accepting and waits until every running connection handler has
    /// returned (handlers end when their peers close).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Wake a blocking accept() with a throwaway connection.
        let _ = TcpStream::connect(self.local_addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let mut active = self
            .shared
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *active > 0 {
            active = self
                .shared
                .changed
                .wait(active)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.stop();
        }
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("active", &self.active_connections())
            .finish_non_exhaustive()
    }
}
