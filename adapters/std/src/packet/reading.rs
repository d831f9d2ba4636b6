//! The read side: one thread at a time holds the *read role* (the read half
//! of the stream, its buffer and the bytes read but not yet taken by the
//! core) and feeds the core.
//!
//! Three kinds of thread take the role:
//!
//! * a **caller** waiting for its own response reads itself, with the
//!   socket's read timeout set from its deadline, and returns as soon as its
//!   response is in: no hand-over from another thread, no wakeup. What it
//!   reads for others (their responses, the peer's requests, ERQ/EOF) is
//!   dispatched exactly as any reader does;
//! * an **idle worker** (a connection with a handler) reads while it has
//!   nothing to run: the request it reads it runs itself, after handing the
//!   role to another idle worker if there is one;
//! * the **background reader** thread reads when nobody else does. It takes
//!   the role only once it has been free for [`READ_LINGER`] (or at once at
//!   the start, when the connection is closing, or after a failure), and
//!   gives it back after each read while callers or workers are around to
//!   read. Without this grace it would be blocked in `read` every time the
//!   next call comes, and every response would again go through it.
//!
//! Guarantees: whenever the role is free and reading has not ended, the
//! background reader is not parked (it waits at most until the grace ends),
//! so bytes from the peer never wait longer than [`READ_LINGER`] while no
//! thread reads; a caller waiting for its response while another thread
//! holds the role is offered the role when it is released.
//!
//! A caller or worker blocks in `read` only when the next event it waits
//! for can only come from new bytes: never while the core holds whole
//! packets back for lack of room
//! ([`input_stalled`](framewire::packet::Connection::input_stalled)), since
//! whoever makes room (a worker answering, the writer) dispatches them, and
//! they may be the very response or request it waits for. It then reserves
//! the role for the background reader, which keeps the core's receive
//! budget filled as the reader thread always did, and waits like any
//! other thread; the background reader hands the role on once nothing is
//! held back.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::client::Slot;
use super::connection::{Shared, State};
use super::error::EndCause;
use super::Split;

/// How long the read role stays free before the background reader takes
/// it: a caller or worker that just stopped reading usually comes back
/// sooner (its next call, its next request). Also the longest that bytes
/// from the peer wait unread while no thread reads.
pub const READ_LINGER: Duration = Duration::from_millis(1);

/// The read half of a stream, type-erased.
pub(super) trait ReadHalf: Read + Send {
    fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl<S: Split> ReadHalf for S {
    fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        Split::set_read_timeout(self, timeout)
    }
}

/// What the holder of the read role owns.
pub(super) struct ReadSide {
    io: Box<dyn ReadHalf>,
    buf: Vec<u8>,
    /// Bytes read but not yet taken by the core: `buf[start..end]`.
    start: usize,
    end: usize,
    /// The read timeout currently set on the stream.
    timeout: Option<Duration>,
}

impl ReadSide {
    /// The read side over `io`, with a `buf_size` buffer. Also returns
    /// whether the stream takes read timeouts (then callers with a
    /// deadline may read too).
    pub(super) fn new(io: Box<dyn ReadHalf>, buf_size: usize) -> (Box<ReadSide>, bool) {
        let timeouts = io.set_timeout(None).is_ok();
        let side = ReadSide {
            io,
            buf: vec![0; buf_size],
            start: 0,
            end: 0,
            timeout: None,
        };
        (Box::new(side), timeouts)
    }

    /// Sets the stream's read timeout unless the one set already ends the
    /// read in time and not much too early.
    fn set_timeout(&mut self, wanted: Option<Duration>) -> io::Result<()> {
        let keep = match (self.timeout, wanted) {
            (None, None) => true,
            (Some(set), Some(want)) => set <= want && set >= want / 2,
            _ => false,
        };
        if !keep {
            self.io.set_timeout(wanted)?;
            self.timeout = wanted;
        }
        Ok(())
    }
}

/// How one turn of reading ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Turn {
    /// The core took every byte read (and its events were dispatched).
    Progress,
    /// Nothing was read (a read timeout or an interrupted read).
    Idle,
    /// The core takes no more for now (its limits): bytes are kept for the
    /// next turn, after others made progress.
    Blocked,
    /// Not read: the core holds whole packets back for lack of room (see
    /// [`Connection::input_stalled`](framewire::packet::Connection::input_stalled));
    /// whoever makes room will dispatch them, so only the background reader
    /// blocks in a read now.
    Stalled,
    /// Reading is over (the peer's stream ended, an I/O error, a failure).
    Ended,
}

/// Who holds (or gives back) the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Holder {
    Caller,
    Worker,
    Background,
}

/// Where the read role is.
pub(super) enum Role {
    /// Nobody reads: the next reader takes this.
    Free(Box<ReadSide>),
    /// Nobody reads, and the background reader takes it at once: the core
    /// holds packets back (a caller or worker must not block in a read
    /// then: the packets may be its response or request, dispatched by
    /// whoever makes room, while it waits for bytes that may never come).
    Reserved(Box<ReadSide>),
    /// A thread reads.
    Held(Holder),
    /// Nothing more will be read.
    Done,
}

/// The read role and the threads around it (part of the state, under its
/// lock).
pub(super) struct ReadRole {
    pub(super) role: Role,
    /// The stream takes read timeouts: callers with a deadline may read.
    pub(super) timeouts: bool,
    /// Callers waiting for their response while another thread reads, in
    /// the order they came: offered the role when it is given back.
    pub(super) waiters: VecDeque<Arc<Slot>>,
    /// A caller waited for the role since the background reader took it.
    pub(super) caller_waited: bool,
    /// When the role was last given back (`None`: never held yet).
    pub(super) released_at: Option<Instant>,
    /// The background reader waits for the role to be given back.
    pub(super) reader_parked: bool,
}

impl ReadRole {
    pub(super) fn new(side: Box<ReadSide>, timeouts: bool) -> Self {
        ReadRole {
            role: Role::Free(side),
            timeouts,
            waiters: VecDeque::new(),
            caller_waited: false,
            released_at: None,
            reader_parked: false,
        }
    }

    /// Takes the role for `holder` if it is free (reserved: only for the
    /// background reader).
    pub(super) fn take(&mut self, holder: Holder) -> Option<Box<ReadSide>> {
        match std::mem::replace(&mut self.role, Role::Held(holder)) {
            Role::Free(side) => Some(side),
            Role::Reserved(side) if holder == Holder::Background => Some(side),
            other => {
                self.role = other;
                None
            }
        }
    }

    /// Nobody holds the role (free or reserved).
    fn is_unheld(&self) -> bool {
        matches!(self.role, Role::Free(_) | Role::Reserved(_))
    }

    pub(super) fn is_done(&self) -> bool {
        matches!(self.role, Role::Done)
    }

    /// Who reads, for `Debug`.
    pub(super) fn describe(&self) -> &'static str {
        match self.role {
            Role::Free(_) => "nobody",
            Role::Reserved(_) => "nobody (reserved for the background reader)",
            Role::Held(Holder::Caller) => "a caller",
            Role::Held(Holder::Worker) => "a worker",
            Role::Held(Holder::Background) => "the background reader",
            Role::Done => "nobody (reading ended)",
        }
    }
}

impl Shared {
    /// One read (unless bytes are left from the last) and feeding the core,
    /// by the holder of the role; the state lock is released during the
    /// read. `until` bounds the read (the holder's deadline).
    pub(super) fn read_step<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, State>,
        rs: &mut ReadSide,
        until: Option<Instant>,
        holder: Holder,
    ) -> (MutexGuard<'a, State>, Turn) {
        if st.read.is_done() {
            return (st, Turn::Ended);
        }
        if st.failed() {
            self.end_reading(&mut st, None);
            return (st, Turn::Ended);
        }
        if rs.start == rs.end && holder != Holder::Background && st.conn.input_stalled() {
            return (st, Turn::Stalled);
        }
        if rs.start == rs.end {
            let timeout = match until {
                None => None,
                Some(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return (st, Turn::Idle);
                    }
                    Some(left)
                }
            };
            drop(st);
            let result = rs
                .set_timeout(timeout)
                .and_then(|()| rs.io.read(&mut rs.buf));
            st = self.lock();
            match result {
                Ok(0) => {
                    self.end_reading(&mut st, None);
                    return (st, Turn::Ended);
                }
                Ok(n) => {
                    rs.start = 0;
                    rs.end = n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return (st, Turn::Idle),
                Err(e)
                    if until.is_some()
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    return (st, Turn::Idle);
                }
                Err(e) => {
                    self.end_reading(&mut st, Some(e.kind()));
                    return (st, Turn::Ended);
                }
            }
        }
        loop {
            if st.failed() {
                self.end_reading(&mut st, None);
                return (st, Turn::Ended);
            }
            // An error means the receive side ended already (a protocol error).
            let Ok(taken) = st.conn.handle_input(&rs.buf[rs.start..rs.end]) else {
                self.end_reading(&mut st, None);
                return (st, Turn::Ended);
            };
            rs.start += taken;
            let now = self.now();
            if st.conn.poll_timeout().is_some_and(|d| d <= now) {
                st.conn.handle_timeout(now);
            }
            let events = self.dispatch_for(&mut st, holder == Holder::Worker);
            self.kick_writer(&mut st);
            if st.rx_over() {
                self.end_reading(&mut st, None);
                return (st, Turn::Ended);
            }
            if rs.start == rs.end {
                return (st, Turn::Progress);
            }
            if taken == 0 && events == 0 {
                return (st, Turn::Blocked);
            }
        }
    }

    /// Nothing more will be read: tells the core (which cancels our calls
    /// still waiting) and wakes the background reader so it can end. A
    /// read error or a failed connection is a lost transport (nothing
    /// queued will go out either); the end of the peer's stream is an EOF.
    fn end_reading(self: &Arc<Self>, st: &mut State, io_error: Option<io::ErrorKind>) {
        if st.read.is_done() {
            return;
        }
        st.read.role = Role::Done;
        if let Some(kind) = io_error {
            st.end.get_or_insert(EndCause::Io(kind));
        }
        if io_error.is_some() || st.failed() {
            st.conn.handle_transport_lost();
        } else {
            st.conn.handle_eof();
        }
        self.dispatch(st);
        self.kick_writer(st);
        if let Some(kind) = io_error {
            // Nothing will be written either: the connection has failed.
            self.fail(st, EndCause::Io(kind));
        }
        self.reader_wake.notify_all();
    }

    /// Gives the role back and offers it: to a caller waiting for its
    /// response, else (after a worker or the background reader) to an idle
    /// worker; the background reader is woken to start its grace. With
    /// `stalled` (the core holds packets back) it is reserved for the
    /// background reader instead, which takes it at once.
    pub(super) fn release_read_role(
        &self,
        st: &mut State,
        rs: Box<ReadSide>,
        by: Holder,
        stalled: bool,
    ) {
        debug_assert!(matches!(st.read.role, Role::Held(_) | Role::Done));
        if st.read.is_done() {
            return;
        }
        st.read.released_at = Some(Instant::now());
        if stalled {
            st.read.role = Role::Reserved(rs);
            self.reader_wake.notify_all();
            return;
        }
        st.read.role = Role::Free(rs);
        self.offer_read_role(st, by);
    }

    /// Offers the free role to the next candidate (see
    /// [`release_read_role`](Self::release_read_role)).
    pub(super) fn offer_read_role(&self, st: &mut State, by: Holder) {
        if !matches!(st.read.role, Role::Free(_)) {
            return;
        }
        while let Some(slot) = st.read.waiters.pop_front() {
            // A caller offered the role either takes it or passes the offer
            // on (`caller_read`).
            if slot.offer() {
                return;
            }
        }
        if by != Holder::Caller && st.idle_workers > 0 {
            self.jobs_ready.notify_one();
        }
        if st.read.reader_parked {
            self.reader_wake.notify_one();
        }
    }

    /// One turn of a caller waiting for `slot` until `wake`: it reads
    /// itself if the role is free, else waits for its outcome or the role.
    pub(super) fn caller_read(self: &Arc<Self>, slot: &Arc<Slot>, wake: Option<Instant>) {
        let passed = || wake.is_some_and(|w| Instant::now() >= w);
        let mut st = self.lock();
        let can_read = wake.is_none() || st.read.timeouts;
        loop {
            if slot.is_done() || passed() {
                return;
            }
            if can_read {
                if let Some(mut rs) = st.read.take(Holder::Caller) {
                    let mut stalled = false;
                    while !slot.is_done() && !passed() {
                        let turn;
                        (st, turn) = self.read_step(st, &mut rs, wake, Holder::Caller);
                        match turn {
                            Turn::Ended => break,
                            Turn::Blocked | Turn::Stalled => {
                                stalled = true;
                                break;
                            }
                            Turn::Progress | Turn::Idle => {}
                        }
                    }
                    self.release_read_role(&mut st, rs, Holder::Caller, stalled);
                    if !stalled {
                        return;
                    }
                    // The background reader reads now; wait as others do.
                    continue;
                }
            }
            if !can_read || st.read.is_done() {
                // Others read (or nothing more will be): just wait.
                drop(st);
                slot.wait_for_outcome_or_offer(wake);
                return;
            }
            st.read.waiters.push_back(Arc::clone(slot));
            st.read.caller_waited = true;
            drop(st);
            slot.wait_for_outcome_or_offer(wake);
            st = self.lock();
            st.read.waiters.retain(|s| !Arc::ptr_eq(s, slot));
            // An offer is settled here, under the lock: taken at the top of
            // the loop if the role is still free, else (outcome in, or wake
            // time passed) passed on, so the role is never left free with
            // nobody told.
            if slot.take_offer() && (slot.is_done() || passed()) {
                self.offer_read_role(&mut st, Holder::Caller);
            }
        }
    }

    /// An idle worker holding the role: reads until there is a request to
    /// run (or nothing more to read), then gives the role back.
    pub(super) fn worker_read<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, State>,
        mut rs: Box<ReadSide>,
    ) -> MutexGuard<'a, State> {
        let mut stalled = false;
        while st.jobs.is_empty() && !st.finished() {
            let turn;
            (st, turn) = self.read_step(st, &mut rs, None, Holder::Worker);
            match turn {
                Turn::Ended => break,
                Turn::Blocked | Turn::Stalled => {
                    stalled = true;
                    break;
                }
                Turn::Progress | Turn::Idle => {}
            }
        }
        self.release_read_role(&mut st, rs, Holder::Worker, stalled);
        st
    }
}

/// The background reader thread: reads when nobody else does, until
/// reading is over.
pub(super) fn reader_loop(shared: &Arc<Shared>) {
    let mut st = shared.lock();
    while !st.read.is_done() {
        if !st.read.is_unheld() {
            // Someone else reads: wait until the role is given back.
            st.read.reader_parked = true;
            st = shared
                .reader_wake
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
            st.read.reader_parked = false;
            continue;
        }
        let hurry =
            st.failed() || st.close_deadline.is_some() || matches!(st.read.role, Role::Reserved(_));
        if let Some(due) = st.read.released_at.and_then(|t| t.checked_add(READ_LINGER)) {
            let now = Instant::now();
            if !hurry && now < due {
                st = shared
                    .reader_wake
                    .wait_timeout(st, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
        }
        let Some(mut rs) = st.read.take(Holder::Background) else {
            continue;
        };
        st.read.caller_waited = false;
        loop {
            let turn;
            (st, turn) = shared.read_step(st, &mut rs, None, Holder::Background);
            match turn {
                Turn::Ended => break,
                // The core holds packets back: keep its budget filled (as
                // much as it takes) until room is made, as the only
                // thread that may block in a read meanwhile.
                Turn::Blocked => {
                    st = shared.wait_progress(st, None);
                    continue;
                }
                _ if st.conn.input_stalled() => continue,
                _ => {}
            }
            // Callers or workers read for themselves without a hand-over:
            // leave the role to them.
            if !st.read.waiters.is_empty()
                || st.idle_workers > 0
                || st.read.caller_waited
                || st.workers > 0
            {
                break;
            }
        }
        shared.release_read_role(&mut st, rs, Holder::Background, false);
    }
}
