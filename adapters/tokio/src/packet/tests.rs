//! Tests of the driver's fast paths: inline handlers (answered at once,
//! moved to a task when they wait, panicking, bounded by the handler slots,
//! the default on a current-thread runtime only)
//! and the `Call` state machine (waiting for a slot, timing out there,
//! dropped there, calls on a finished connection).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use framewire::packet::{reason, Config};

use super::{Builder, CallError, PacketConnection, Reply, Request};

const DEADLINE: Duration = Duration::from_secs(60);

async fn deadline<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("test deadline passed")
}

/// rq_type 0: echo at once; 1: echo after a sleep; 2: panic; 3: call the
/// peer back (type 0) and answer with its answer.
async fn mixed(rq: Request) -> Reply {
    match rq.rq_type {
        0 => Reply::with_flags(rq.flags, rq.payload),
        1 => {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Reply::with_flags(rq.flags, rq.payload)
        }
        2 => panic!("handler panics on purpose"),
        _ => match rq.connection().call(0, 0, 0, rq.payload.clone()).await {
            Ok(r) => Reply::ok(r.payload),
            Err(e) => Reply::fail(e.to_string()),
        },
    }
}

async fn mixed_calls(server: &Builder) {
    let (a, b) = tokio::io::duplex(4096);
    let server = server.clone().start(b).unwrap();
    let client = Builder::new().handler(mixed).start(a).unwrap();
    let calls: Vec<_> = (0..400u64)
        .map(|i| {
            let rq_type = i % 4;
            client.call(0, rq_type, i, Bytes::from(i.to_be_bytes().to_vec()))
        })
        .collect();
    let results = futures_util::future::join_all(calls).await;
    for (i, r) in (0u64..).zip(results) {
        let r = r.unwrap();
        match i % 4 {
            0 | 1 => {
                assert!(r.ok);
                assert_eq!((r.flags, &r.payload[..]), (i, &i.to_be_bytes()[..]));
            }
            2 => assert_eq!(
                r.failure_reason().as_deref(),
                Some(reason::EXCEPTION_DURING_HANDLER)
            ),
            _ => assert_eq!((r.ok, &r.payload[..]), (true, &i.to_be_bytes()[..])),
        }
    }
    client.close().await.unwrap();
    server.wait().await.unwrap();
}

#[tokio::test]
async fn inline_handlers_answer_wait_panic_and_call_back() {
    deadline(mixed_calls(
        &Builder::new().handler(mixed).inline_handlers(true),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_handlers_on_a_multi_threaded_runtime() {
    deadline(mixed_calls(
        &Builder::new().handler(mixed).inline_handlers(true),
    ))
    .await;
}

#[tokio::test]
async fn spawned_handlers_answer_wait_panic_and_call_back() {
    deadline(mixed_calls(
        &Builder::new().handler(mixed).inline_handlers(false),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_handlers_on_a_multi_threaded_runtime() {
    deadline(mixed_calls(&Builder::new().handler(mixed))).await;
}

/// The Tokio task each of `n` requests' handlers ran in, on a server built
/// by `builder` (one call at a time).
async fn handler_tasks(builder: Builder, n: u8) -> Vec<tokio::task::Id> {
    let tasks = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&tasks);
    let (a, b) = tokio::io::duplex(4096);
    let server = builder
        .handler(move |rq: Request| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(tokio::task::id());
                Reply::ok(rq.payload)
            }
        })
        .start(b)
        .unwrap();
    let client = PacketConnection::new(a).unwrap();
    for i in 0..n {
        assert_eq!(
            client.call(0, 0, 0, vec![i]).await.unwrap().payload[..],
            [i]
        );
    }
    client.close().await.unwrap();
    server.wait().await.unwrap();
    let tasks = tasks.lock().unwrap().clone();
    assert_eq!(tasks.len(), usize::from(n), "every handler ran once");
    tasks
}

fn all_same(tasks: &[tokio::task::Id]) -> bool {
    tasks.iter().all(|&t| t == tasks[0])
}

fn all_distinct(tasks: &[tokio::task::Id]) -> bool {
    let set: std::collections::HashSet<_> = tasks.iter().collect();
    set.len() == tasks.len()
}

#[tokio::test]
async fn by_default_handlers_run_in_the_driver_on_a_current_thread_runtime() {
    let tasks = deadline(handler_tasks(Builder::new(), 4)).await;
    assert!(
        all_same(&tasks),
        "one task, the connection's driver: {tasks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_handlers_get_a_task_each_on_a_multi_threaded_runtime() {
    let tasks = deadline(handler_tasks(Builder::new(), 4)).await;
    assert!(all_distinct(&tasks), "a task per request: {tasks:?}");
}

#[tokio::test]
async fn handlers_can_get_a_task_each_on_a_current_thread_runtime() {
    let tasks = deadline(handler_tasks(Builder::new().inline_handlers(false), 4)).await;
    assert!(all_distinct(&tasks), "a task per request: {tasks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_can_run_in_the_driver_on_a_multi_threaded_runtime() {
    let tasks = deadline(handler_tasks(Builder::new().inline_handlers(true), 4)).await;
    assert!(
        all_same(&tasks),
        "one task, the connection's driver: {tasks:?}"
    );
}

#[tokio::test]
async fn inline_handlers_respect_the_concurrency_bound() {
    deadline(async {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (Arc::clone(&running), Arc::clone(&most));
        let (a, b) = tokio::io::duplex(4096);
        let server = Builder::new()
            .handler(move |rq: Request| {
                let (running, most) = (Arc::clone(&r), Arc::clone(&m));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    if rq.rq_type == 1 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    Reply::ok(rq.payload)
                }
            })
            .max_concurrent_handlers(2)
            .inline_handlers(true)
            .start(b)
            .unwrap();
        let client = PacketConnection::new(a).unwrap();
        let calls: Vec<_> = (0..200u8)
            .map(|i| client.call(0, u64::from(i % 2), 0, vec![i]))
            .collect();
        for (i, r) in (0u8..).zip(futures_util::future::join_all(calls).await) {
            assert_eq!(r.unwrap().payload[..], [i]);
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} handlers ran at once");
        client.close().await.unwrap();
        server.wait().await.unwrap();
    })
    .await;
}

/// A server whose handler never answers before `release` is notified.
fn stalled() -> (Builder, Arc<tokio::sync::Notify>) {
    let release = Arc::new(tokio::sync::Notify::new());
    let r = Arc::clone(&release);
    let builder = Builder::new().handler(move |rq: Request| {
        let r = Arc::clone(&r);
        async move {
            r.notified().await;
            Reply::ok(rq.payload)
        }
    });
    (builder, release)
}

#[tokio::test]
async fn a_call_waiting_for_a_slot_times_out_or_is_dropped() {
    deadline(async {
        let (server, release) = stalled();
        let (a, b) = tokio::io::duplex(4096);
        let server = server.start(b).unwrap();
        let client = Builder::new()
            .config(Config {
                max_pending_outbound: 1,
                ..Config::default()
            })
            .start(a)
            .unwrap();
        let mut first = client.call(0, 0, 0, &b"first"[..]);
        // Sent: it holds the only slot.
        assert!(futures_util::poll!(&mut first).is_pending());
        // Waits for the slot until its timeout.
        let second = client
            .request(0, &b"second"[..])
            .timeout(Duration::from_millis(30))
            .await;
        assert_eq!(second, Err(CallError::TimedOut));
        // Dropped while waiting for the slot: nothing is sent.
        let mut third = client.call(0, 0, 0, &b"third"[..]);
        assert!(futures_util::poll!(&mut third).is_pending());
        drop(third);
        let fourth = client.call(0, 0, 0, &b"fourth"[..]);
        release.notify_one();
        assert_eq!(&first.await.unwrap().payload[..], b"first");
        release.notify_one();
        assert_eq!(&fourth.await.unwrap().payload[..], b"fourth");
        assert_eq!(client.stats().requests_sent, 2);
        client.close().await.unwrap();
        server.wait().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn calls_on_a_finished_connection_fail_at_once() {
    deadline(async {
        let (a, b) = tokio::io::duplex(4096);
        let server = Builder::new()
            .handler(|rq: Request| async move { Reply::ok(rq.payload) })
            .start(b)
            .unwrap();
        let client = PacketConnection::new(a).unwrap();
        assert!(client.call(0, 0, 0, &b"x"[..]).await.unwrap().ok);
        client.abort();
        client.wait().await.unwrap_err();
        let after = client.call(0, 0, 0, &b"y"[..]).await;
        assert!(matches!(after, Err(CallError::Failed { .. })), "{after:?}");
        drop(server);
    })
    .await;
}

/// The in-place answerer of the tests: type 0 echoes (flags and payload),
/// 5 panics, 6 is refused; every other type is left to the handler.
fn in_place(rq: framewire::packet::LentRequest<'_>, answer: &mut framewire::packet::Answerer<'_>) {
    match rq.rq_type {
        0 => {
            answer.respond(rq.flags, rq.payload).unwrap();
        }
        5 => panic!("in-place answerer panics on purpose"),
        6 => answer.reject("refused in place").unwrap(),
        _ => {}
    }
}

/// A payload of `len` bytes that says which request it belongs to.
fn numbered(i: u64, len: usize) -> Bytes {
    let seed = i.to_be_bytes();
    (0..len).map(|k| seed[k % 8] ^ (k as u8)).collect()
}

#[tokio::test]
async fn answered_in_place_or_by_the_handler() {
    deadline(async {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = Builder::new()
            .answer_in_place(in_place)
            .handler(mixed)
            .inline_handlers(true)
            .start(b)
            .unwrap();
        let client = Builder::new().handler(mixed).start(a).unwrap();
        // Types 0 (in place), 1 (handler, after a sleep), 3 (handler, calls
        // back), 5 (in place, panics), 6 (in place, refused); payloads on
        // both sides of the batch's copy limit.
        let types = [0u64, 1, 3, 5, 6];
        let sizes = [0usize, 1, 16, 4096, 4097, 20_000];
        let batch = (0..300u64).map(|i| {
            let (ty, len) = (types[i as usize % 5], sizes[i as usize % 6]);
            super::BatchRequest::new(0, ty, i, numbered(i, len))
        });
        let results = client.call_batch(batch).await;
        assert_eq!(results.len(), 300);
        for (i, r) in (0u64..).zip(results) {
            let (ty, len) = (types[i as usize % 5], sizes[i as usize % 6]);
            let r = r.unwrap();
            match ty {
                0 | 1 => {
                    assert!(r.ok, "request {i}");
                    assert_eq!(r.flags, i);
                    assert_eq!(r.payload, numbered(i, len), "request {i}");
                }
                3 => assert_eq!((r.ok, r.payload), (true, numbered(i, len))),
                5 => assert_eq!(
                    r.failure_reason().as_deref(),
                    Some(reason::EXCEPTION_DURING_HANDLER)
                ),
                _ => assert_eq!(r.failure_reason().as_deref(), Some("refused in place")),
            }
        }
        // Single calls take the same paths.
        let r = client.call(0, 0, 7, &b"single"[..]).await.unwrap();
        assert_eq!((r.ok, r.flags, &r.payload[..]), (true, 7, &b"single"[..]));
        client.close().await.unwrap();
        server.wait().await.unwrap();
        // The final counters, published when the driver ended.
        assert_eq!(server.stats().responses_sent, 301);
        assert_eq!(server.inflight_requests(), 0);
    })
    .await;
}

#[tokio::test]
async fn answer_in_place_without_a_handler() {
    deadline(async {
        let (a, b) = tokio::io::duplex(4096);
        let server = Builder::new().answer_in_place(in_place).start(b).unwrap();
        let client = PacketConnection::new(a).unwrap();
        let echoed = client.call(0, 0, 3, &b"echo"[..]).await.unwrap();
        assert_eq!(
            (echoed.ok, echoed.flags, &echoed.payload[..]),
            (true, 3, &b"echo"[..])
        );
        let left = client.call(0, 1, 0, &b"nobody"[..]).await.unwrap();
        assert_eq!(
            left.failure_reason().as_deref(),
            Some(reason::NO_REQUEST_HANDLER)
        );
        client.close().await.unwrap();
        server.wait().await.unwrap();
    })
    .await;
}

/// Counts the polls of the future it wraps.
struct CountPolls<'a, F> {
    inner: F,
    polls: &'a AtomicUsize,
}

impl<F: Future + Unpin> Future for CountPolls<'_, F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        std::pin::Pin::new(&mut self.inner).poll(cx)
    }
}

#[tokio::test]
async fn many_calls_answered_together_are_polled_about_twice_each() {
    deadline(async {
        const CALLS: usize = 1000;
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = Builder::new()
            .handler(|rq: Request| async move { Reply::ok(rq.payload) })
            .start(b)
            .unwrap();
        let client = PacketConnection::new(a).unwrap();
        let polls = AtomicUsize::new(0);
        let calls = (0..CALLS).map(|i| CountPolls {
            inner: client.call(0, 0, 0, i.to_be_bytes().to_vec()),
            polls: &polls,
        });
        for (i, r) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(r.unwrap().payload[..], i.to_be_bytes());
        }
        // One poll hands a call to the driver, one takes its outcome. A call
        // inside Tokio's cooperative budget was polled about five times here:
        // each poll of `join_all` could take only 128 outcomes, and every
        // call after those was told to yield and polled again.
        let polls = polls.load(Ordering::Relaxed);
        assert!(
            polls <= CALLS * 2 + CALLS / 10,
            "{polls} polls for {CALLS} calls"
        );
        client.close().await.unwrap();
        server.wait().await.unwrap();
    })
    .await;
}
