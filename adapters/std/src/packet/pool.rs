//! The worker pool: runs the handler on the peer's requests, at most
//! `max_workers` at once, and answers them in completion order.
//!
//! Workers are started as requests arrive and live as long as the
//! connection. The queue of requests waiting for a worker needs no bound of
//! its own: requests queued or running are exactly the core's in-flight
//! peer requests, bounded by `Config::max_inflight_inbound`, beyond which the
//! core stops reading.

use std::sync::{Arc, PoisonError};
use std::thread;

use framewire::packet::reason;

use super::connection::{Shared, State};
use super::handler::{run_handler, Handler, HandlerOutcome};
use super::reading::Holder;

impl Shared {
    /// New requests were queued: wake idle workers, start more if allowed.
    /// `own_job`: the caller is a worker that will run the first request.
    pub(super) fn start_workers(self: &Arc<Self>, st: &mut State, own_job: bool) {
        let Some(handler) = &self.handler else {
            // Unreachable in practice: without a handler the core refuses
            // every request itself.
            st.jobs.clear();
            return;
        };
        // A worker reading runs the first request itself (`worker_read`).
        let own = usize::from(own_job);
        for _ in 0..st.jobs.len().saturating_sub(own).min(st.idle_workers) {
            self.jobs_ready.notify_one();
        }
        while st.jobs.len() > st.idle_workers + own && st.workers < self.max_workers {
            let shared = Arc::clone(self);
            let handler = Arc::clone(handler);
            let spawned = thread::Builder::new()
                .name("framewire-packet-worker".into())
                .spawn(move || worker_loop(&shared, &*handler));
            match spawned {
                Ok(_) => {
                    st.workers += 1;
                    // Counted idle until it takes a job, so that this loop
                    // starts one worker per queued request.
                    st.idle_workers += 1;
                }
                Err(e) => {
                    if st.workers == 0 {
                        // Nobody could ever answer: give up on the connection.
                        self.fail(st, super::EndCause::Io(e.kind()));
                    }
                    return;
                }
            }
        }
    }
}

fn worker_loop(shared: &Arc<Shared>, handler: &dyn Handler) {
    let mut st = shared.lock();
    // Started counted as idle (see `start_workers`).
    st.idle_workers -= 1;
    loop {
        if let Some(request) = st.jobs.pop_front() {
            drop(st);
            let (channel, tag) = (request.channel, request.tag);
            let outcome = run_handler(handler, request);
            st = shared.lock();
            if !st.failed() {
                // A reply the core cannot send (flags or payload over the
                // limits) is answered as a failed handler by the core.
                let _ = match outcome {
                    HandlerOutcome::Reply(reply) => {
                        st.conn
                            .respond_or_fail(channel, tag, reply.flags, reply.payload)
                    }
                    HandlerOutcome::Failed => {
                        st.conn
                            .reject_or_fail(channel, tag, reason::EXCEPTION_DURING_HANDLER)
                    }
                };
                shared.dispatch(&mut st);
                if st.jobs.is_empty() {
                    // Nothing else to do: write the response now.
                    st = shared.write_out(st);
                } else {
                    // More requests wait: let the writer thread send this
                    // response (with the next ones) while we run them.
                    shared.kick_writer(&mut st);
                }
            }
            continue;
        }
        if st.finished() {
            break;
        }
        // Nothing to run: read the next request ourselves if nobody reads.
        if let Some(rs) = st.read.take(Holder::Worker) {
            st = shared.worker_read(st, rs);
            continue;
        }
        st.idle_workers += 1;
        st = shared
            .jobs_ready
            .wait(st)
            .unwrap_or_else(PoisonError::into_inner);
        st.idle_workers -= 1;
    }
    st.workers -= 1;
}
