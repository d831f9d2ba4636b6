//! Two [`Connection`]s joined by simulated links: a test and fuzzing harness
//! in the manner of quinn-proto's `Pair`.
//!
//! Bytes move in random pieces (partial writes and partial reads, sizes from
//! a seeded xorshift generator), time is simulated, and every event each side
//! reports is collected in its [`Side::events`]. Nothing here touches a
//! socket or a clock.
//!
//! ```
//! use framewire::packet::pair::Pair;
//! use framewire::packet::{Config, Event};
//!
//! let mut pair = Pair::new(Config::default(), Config::default(), 7);
//! let now = pair.now;
//! let tag = pair.client.conn.submit(0, 3, 0, &b"ping"[..], now, None).unwrap();
//! pair.drive();
//! let Some(Event::RequestReceived { channel, tag: t, .. }) = pair.server.events.pop_front() else {
//!     panic!()
//! };
//! pair.server.conn.respond(channel, t, 0, &b"pong"[..]).unwrap();
//! pair.drive();
//! assert!(matches!(
//!     pair.client.events.pop_front(),
//!     Some(Event::ResponseReceived { tag: x, ok: true, .. }) if x == tag
//! ));
//! ```

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{Config, Connection, Event, InputError};
use crate::time::{Duration, Instant};

/// A tiny seeded xorshift64* generator: deterministic runs from a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng((seed ^ 0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A number in `1..=n` (at least 1).
    pub fn between_1_and(&mut self, n: usize) -> usize {
        1 + self.below(n.max(1))
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// One end of a [`Pair`]: a connection and its simulated socket.
#[derive(Debug)]
pub struct Side {
    /// The connection under test.
    pub conn: Connection,
    /// Events polled from `conn`, oldest first; tests pop or inspect them.
    pub events: VecDeque<Event>,
    /// Every byte this side transmitted, up to [`Pair::record_limit`].
    pub sent: Vec<u8>,
    /// Bytes written by the peer and not yet taken by `conn`.
    inbox: VecDeque<u8>,
    /// The peer shut its write side: deliver `handle_eof` once `inbox` drains.
    eof_pending: bool,
    eof_delivered: bool,
    /// `handle_input` failed: this side stopped reading.
    read_failed: Option<InputError>,
    /// This side shut its write side (no more transmission).
    write_shut: bool,
}

impl Side {
    fn new(conn: Connection) -> Self {
        Side {
            conn,
            events: VecDeque::new(),
            sent: Vec::new(),
            inbox: VecDeque::new(),
            eof_pending: false,
            eof_delivered: false,
            read_failed: None,
            write_shut: false,
        }
    }

    /// Whether this side has been given the transport's end of stream.
    pub fn transport_eof_delivered(&self) -> bool {
        self.eof_delivered
    }

    /// The error `handle_input` returned, if this side stopped reading.
    pub fn read_error(&self) -> Option<InputError> {
        self.read_failed
    }

    /// Bytes on their way to this side, not yet taken.
    pub fn inbox_len(&self) -> usize {
        self.inbox.len()
    }

    /// Removes and returns every collected event.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    fn poll_events(&mut self) -> bool {
        let mut any = false;
        while let Some(e) = self.conn.poll_event() {
            self.events.push_back(e);
            any = true;
        }
        any
    }
}

/// Which end of a [`Pair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// [`Pair::client`].
    Client,
    /// [`Pair::server`].
    Server,
}

/// Two connections joined by simulated links with a simulated clock.
#[derive(Debug)]
pub struct Pair {
    /// The first end (by convention the one that submits).
    pub client: Side,
    /// The second end.
    pub server: Side,
    /// The simulated time.
    pub now: Instant,
    /// The largest piece moved by one write or read; 0 moves everything at
    /// once. Piece sizes are random in `1..=max_chunk`. Default 7.
    pub max_chunk: usize,
    /// When a side reports [`Event::Closed`], its transport is shut (the
    /// peer then gets `handle_eof` after the bytes in flight). Default true.
    pub auto_shutdown: bool,
    /// Bytes recorded per side in [`Side::sent`]. Default 1 MiB.
    pub record_limit: usize,
    rng: Rng,
}

impl Pair {
    /// Two fresh connections and a generator seeded with `seed`.
    ///
    /// # Panics
    /// If either configuration is invalid.
    pub fn new(client: Config, server: Config, seed: u64) -> Self {
        Pair {
            client: Side::new(Connection::new(client).expect("valid client config")),
            server: Side::new(Connection::new(server).expect("valid server config")),
            now: Instant::ZERO,
            max_chunk: 7,
            auto_shutdown: true,
            record_limit: 1024 * 1024,
            rng: Rng::new(seed),
        }
    }

    /// The pair's random generator.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// One side.
    pub fn side(&mut self, which: Which) -> &mut Side {
        match which {
            Which::Client => &mut self.client,
            Which::Server => &mut self.server,
        }
    }

    /// Shuts `which`'s write side: the other side gets `handle_eof` once it
    /// has taken every byte already transmitted. Bytes still queued in
    /// `which`'s connection are never sent.
    pub fn shutdown_write(&mut self, which: Which) {
        let (from, to) = self.split(which);
        from.write_shut = true;
        to.eof_pending = true;
    }

    fn split(&mut self, from: Which) -> (&mut Side, &mut Side) {
        match from {
            Which::Client => (&mut self.client, &mut self.server),
            Which::Server => (&mut self.server, &mut self.client),
        }
    }

    fn piece(&mut self, available: usize) -> usize {
        if self.max_chunk == 0 {
            available
        } else {
            self.rng.between_1_and(self.max_chunk).min(available)
        }
    }

    /// Moves one random piece from `from`'s transmit queue onto the link, and
    /// one random piece from the link into the other side. Returns whether
    /// anything happened.
    fn step_direction(&mut self, from: Which) -> bool {
        let mut progress = false;
        // Write: a partial write of the queued bytes.
        let queued = {
            let side = self.side(from);
            if side.write_shut {
                0
            } else {
                side.conn.transmit_len()
            }
        };
        if queued > 0 {
            let n = self.piece(queued);
            let limit = self.record_limit;
            let (tx, rx) = self.split(from);
            let mut left = n;
            for chunk in tx.conn.transmit_chunks() {
                let k = chunk.len().min(left);
                rx.inbox.extend(&chunk[..k]);
                let room = limit.saturating_sub(tx.sent.len());
                tx.sent.extend_from_slice(&chunk[..k.min(room)]);
                left -= k;
                if left == 0 {
                    break;
                }
            }
            tx.conn.advance_transmit(n);
            progress = true;
        }
        // Read: a partial read into the other side.
        let to = match from {
            Which::Client => Which::Server,
            Which::Server => Which::Client,
        };
        let available = self.side(to).inbox.len();
        if available > 0 && self.side(to).read_failed.is_none() {
            let n = self.piece(available);
            let side = self.side(to);
            let piece: Vec<u8> = side.inbox.iter().take(n).copied().collect();
            match side.conn.handle_input(&piece) {
                Ok(taken) => {
                    side.inbox.drain(..taken);
                    progress |= taken > 0;
                }
                Err(e) => {
                    side.read_failed = Some(e);
                    side.inbox.clear();
                    progress = true;
                }
            }
        }
        let side = self.side(to);
        if side.inbox.is_empty() && side.eof_pending && !side.eof_delivered {
            side.eof_delivered = true;
            side.conn.handle_eof();
            progress = true;
        }
        progress
    }

    fn collect(&mut self) -> bool {
        let mut any = false;
        for which in [Which::Client, Which::Server] {
            let side = self.side(which);
            let before = side.events.len();
            let got = side.poll_events();
            let closed_now = side.events.iter().skip(before).any(|e| *e == Event::Closed);
            any |= got;
            if closed_now && self.auto_shutdown {
                self.shutdown_write(which);
            }
        }
        any
    }

    /// One round: a partial write and read in each direction, then every
    /// event is collected. Returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let a = self.step_direction(Which::Client);
        let b = self.step_direction(Which::Server);
        let c = self.collect();
        a || b || c
    }

    /// Steps until nothing more happens (time does not move).
    ///
    /// # Panics
    /// If it does not settle within a million steps.
    pub fn drive(&mut self) {
        let mut steps = 0u32;
        while self.step() {
            steps += 1;
            assert!(steps < 1_000_000, "pair did not settle");
        }
    }

    /// Moves the clock forward by `d`, fires both sides' timers, and drives.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.conn.handle_timeout(self.now);
        self.server.conn.handle_timeout(self.now);
        self.collect();
        self.drive();
    }

    /// Jumps the clock to the earliest timer of either side (if later than
    /// now), fires it, and drives. Returns whether there was a timer.
    pub fn run_timers(&mut self) -> bool {
        let next = match (
            self.client.conn.poll_timeout(),
            self.server.conn.poll_timeout(),
        ) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return false,
        };
        let d = next.saturating_duration_since(self.now);
        self.advance(d);
        true
    }
}
