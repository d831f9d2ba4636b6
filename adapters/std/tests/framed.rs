//! `Framed` over in-memory and socket streams: partial reads and writes,
//! clean versus truncated close, BSON objects, the bounded server.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use bson::{doc, Document};
use framewire::framing::{BsonDocument, Delimited, LengthPrefixed, OversizePolicy};
use framewire::stream::{Event, ProtocolError};
use framewire_std::server::Server;
use framewire_std::{Error, Framed};
use proptest::prelude::*;

/// An in-memory stream that reads from `input` and writes to `output` at
/// most `step[i]` bytes per call (cycling), like a congested socket.
struct Choppy {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
    steps: Vec<usize>,
    call: usize,
    interrupt_every: usize,
}

impl Choppy {
    fn new(input: Vec<u8>, steps: Vec<usize>) -> Self {
        Choppy {
            input,
            pos: 0,
            output: Vec::new(),
            steps,
            call: 0,
            interrupt_every: 0,
        }
    }

    fn next_step(&mut self) -> io::Result<usize> {
        self.call += 1;
        if self.interrupt_every > 0 && self.call.is_multiple_of(self.interrupt_every) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        Ok(self.steps[self.call % self.steps.len()].max(1))
    }
}

impl Read for Choppy {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let step = self.next_step()?;
        let n = step.min(buf.len()).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Choppy {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let step = self.next_step()?;
        let n = step.min(buf.len());
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn length_prefixed(frames: &[&[u8]]) -> Vec<u8> {
    let mut wire = Vec::new();
    for f in frames {
        wire.extend_from_slice(&u32::try_from(f.len()).unwrap().to_be_bytes());
        wire.extend_from_slice(f);
    }
    wire
}

#[test]
fn one_byte_reads_and_writes() {
    let frames: [&[u8]; 3] = [b"alpha", b"", &[7u8; 3000]];
    let mut conn = Framed::new(
        Choppy::new(length_prefixed(&frames), vec![1]),
        LengthPrefixed::default(),
    );
    for f in frames {
        assert_eq!(conn.recv().unwrap().as_deref(), Some(f));
        conn.send(f).unwrap();
    }
    assert_eq!(conn.recv().unwrap(), None);
    assert_eq!(conn.get_ref().output, length_prefixed(&frames));
}

#[test]
fn interrupted_calls_are_retried() {
    let frames: [&[u8]; 2] = [b"one", b"two"];
    let mut io = Choppy::new(length_prefixed(&frames), vec![2, 5, 1]);
    io.interrupt_every = 3;
    let mut conn = Framed::new(io, LengthPrefixed::default());
    conn.queue(b"one").unwrap();
    conn.queue(b"two").unwrap();
    conn.flush().unwrap();
    assert_eq!(conn.recv().unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(conn.recv().unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(conn.get_ref().output, length_prefixed(&frames));
}

proptest! {
    #[test]
    fn any_read_and_write_chunking_gives_the_same_frames(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..12),
        steps in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let mut conn = Framed::new(Choppy::new(length_prefixed(&refs), steps), LengthPrefixed::default());
        for f in &frames {
            let got = conn.recv().unwrap();
            prop_assert_eq!(got.as_deref(), Some(f.as_slice()));
            conn.queue(f).unwrap();
        }
        conn.flush().unwrap();
        prop_assert_eq!(conn.recv().unwrap(), None);
        prop_assert_eq!(&conn.get_ref().output, &length_prefixed(&refs));
    }
}

#[test]
fn close_inside_a_frame_is_truncated_not_a_clean_close() {
    let mut wire = length_prefixed(&[b"whole"]);
    wire.extend_from_slice(&[0, 0, 0, 10, b'p', b'a', b'r']);
    let mut conn = Framed::new(Choppy::new(wire, vec![4]), LengthPrefixed::default());
    assert_eq!(conn.recv().unwrap().as_deref(), Some(&b"whole"[..]));
    match conn.recv() {
        Err(Error::Protocol(ProtocolError::Truncated { have, need })) => {
            assert_eq!((have, need), (7, Some(14)));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    // Terminal: the same error again.
    assert!(matches!(
        conn.recv(),
        Err(Error::Protocol(ProtocolError::Truncated { .. }))
    ));
}

#[test]
fn clean_close_is_none_every_time() {
    let mut conn = Framed::new(Choppy::new(Vec::new(), vec![8]), LengthPrefixed::default());
    assert_eq!(conn.recv().unwrap(), None);
    assert_eq!(conn.recv().unwrap(), None);
}

#[test]
fn oversize_skip_policy_passes_over_frames_and_counts_them() {
    let big = vec![1u8; 100];
    let wire = length_prefixed(&[b"a", &big, b"b"]);
    let framing = LengthPrefixed::new()
        .with_max_frame_len(50)
        .with_oversize(OversizePolicy::Skip);
    let mut conn = Framed::new(Choppy::new(wire, vec![3]), framing);
    assert_eq!(conn.recv().unwrap().as_deref(), Some(&b"a"[..]));
    assert_eq!(conn.recv().unwrap().as_deref(), Some(&b"b"[..]));
    assert_eq!(conn.recv().unwrap(), None);
    assert_eq!(conn.stats().frames_skipped, 1);
}

#[test]
fn huge_length_header_fails_fast() {
    let mut conn = Framed::new(
        Choppy::new(vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3], vec![64]),
        LengthPrefixed::default(),
    );
    match conn.recv() {
        Err(Error::Protocol(ProtocolError::Frame(e))) => {
            assert!(e.to_string().contains("over the limit"), "{e}");
        }
        other => panic!("expected FrameTooLong, got {other:?}"),
    }
}

#[test]
fn recv_event_reports_the_skip() {
    let wire = b"short\nthis line is far too long\nok\n".to_vec();
    let framing = Delimited::new()
        .with_max_line_len(10)
        .with_oversize(OversizePolicy::Skip);
    let mut conn = Framed::new(Choppy::new(wire, vec![5]), framing);
    assert_eq!(
        conn.recv_event().unwrap(),
        Event::Frame(bytes::Bytes::from_static(b"short"))
    );
    assert!(matches!(conn.recv_event().unwrap(), Event::Skipped(_)));
    assert_eq!(
        conn.recv_event().unwrap(),
        Event::Frame(bytes::Bytes::from_static(b"ok"))
    );
    assert_eq!(conn.recv_event().unwrap(), Event::Closed);
}

#[test]
fn bson_objects_over_a_unix_socket_pair() {
    let (a, b) = UnixStream::pair().unwrap();
    let peer = thread::spawn(move || {
        let mut conn = Framed::new(b, BsonDocument::default());
        let mut n = 0;
        while let Some(doc) = conn.recv_obj::<Document>().unwrap() {
            conn.send_obj(&doc).unwrap();
            n += 1;
        }
        n
    });
    let mut conn = Framed::new(a, BsonDocument::default());
    for i in 0..100_i32 {
        let doc = doc! { "i": i, "s": "x".repeat(usize::try_from(i).unwrap() * 50) };
        conn.send_obj(&doc).unwrap();
        assert_eq!(conn.recv_obj::<Document>().unwrap(), Some(doc));
    }
    conn.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(peer.join().unwrap(), 100);
    assert_eq!(conn.recv_obj::<Document>().unwrap(), None);
}

#[test]
fn recv_obj_close_inside_a_document_is_an_error() {
    let wire = vec![0x16, 0, 0, 0, 0x02, b'h'];
    let mut conn = Framed::new(Choppy::new(wire, vec![2]), BsonDocument::default());
    assert!(matches!(
        conn.recv_obj::<Document>(),
        Err(Error::Protocol(ProtocolError::Truncated {
            have: 6,
            need: Some(22)
        }))
    ));
}

#[test]
fn server_bounds_concurrent_connections() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (Arc::clone(&running), Arc::clone(&peak));
    let server = Server::bind("127.0.0.1:0")
        .unwrap()
        .max_connections(2)
        .serve(move |stream, _| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            let mut conn = Framed::new(stream, LengthPrefixed::default());
            while let Ok(Some(f)) = conn.recv() {
                if conn.send_bytes(f).is_err() {
                    break;
                }
            }
            r.fetch_sub(1, Ordering::SeqCst);
        })
        .unwrap();
    let addr = server.local_addr();
    let start = Arc::new(Barrier::new(6));
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut conn =
                    Framed::new(TcpStream::connect(addr).unwrap(), LengthPrefixed::default());
                conn.get_ref()
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let msg = format!("client {i}");
                conn.send(msg.as_bytes()).unwrap();
                thread::sleep(Duration::from_millis(30));
                assert_eq!(conn.recv().unwrap().as_deref(), Some(msg.as_bytes()));
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.shutdown();
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(running.load(Ordering::SeqCst), 0);
}

/// Counts the write calls that reach the stream (a vectored write is one).
struct CountingWriter {
    out: Vec<u8>,
    writes: usize,
}

impl Read for CountingWriter {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.writes += 1;
        let mut n = 0;
        for b in bufs {
            self.out.extend_from_slice(b);
            n += b.len();
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn queue_obj_batches_documents_into_one_write_with_send_obj_bytes() {
    let docs: Vec<Document> = (0..50_i32)
        .map(|i| doc! { "seq": i, "pad": "x".repeat(usize::try_from(i).unwrap() * 7) })
        .collect();
    let mut one_by_one = Framed::new(
        CountingWriter {
            out: Vec::new(),
            writes: 0,
        },
        BsonDocument::default(),
    );
    for d in &docs {
        one_by_one.send_obj(d).unwrap();
    }
    assert_eq!(one_by_one.get_ref().writes, docs.len());
    let mut batched = Framed::new(
        CountingWriter {
            out: Vec::new(),
            writes: 0,
        },
        BsonDocument::default(),
    );
    for d in &docs {
        batched.queue_obj(d).unwrap();
    }
    assert_eq!(batched.get_ref().writes, 0, "queue_obj does not write");
    batched.flush().unwrap();
    assert_eq!(batched.get_ref().writes, 1);
    let expected: Vec<u8> = docs
        .iter()
        .flat_map(|d| framewire::message::bson::to_vec(d).unwrap())
        .collect();
    assert_eq!(batched.get_ref().out, expected);
    assert_eq!(one_by_one.get_ref().out, expected);
}

#[test]
fn queue_obj_that_cannot_encode_queues_nothing() {
    let mut conn = Framed::new(
        CountingWriter {
            out: Vec::new(),
            writes: 0,
        },
        BsonDocument::default(),
    );
    conn.queue_obj(&doc! { "a": 1_i32 }).unwrap();
    let queued = conn.stream().queued_len();
    // A bare integer is not a document.
    assert!(matches!(conn.queue_obj(&5_i32), Err(Error::Bson(_))));
    assert_eq!(conn.stream().queued_len(), queued);
    conn.flush().unwrap();
    assert_eq!(
        conn.get_ref().out,
        framewire::message::bson::to_vec(&doc! { "a": 1_i32 }).unwrap()
    );
}

#[test]
fn large_and_small_objects_in_any_chunking() {
    // Documents on both sides of the copy threshold of queue_obj (16 KiB),
    // written and read back through 1..7-byte and 1000-byte chunks.
    let docs: Vec<Document> = [10, 16 * 1024 - 30, 16 * 1024 + 100, 200_000, 3]
        .iter()
        .enumerate()
        .map(|(i, &n)| doc! { "i": i32::try_from(i).unwrap(), "s": "y".repeat(n) })
        .collect();
    for steps in [vec![1, 7, 3], vec![1000]] {
        let mut out = Framed::new(
            Choppy::new(Vec::new(), steps.clone()),
            BsonDocument::default(),
        );
        for d in &docs[..2] {
            out.send_obj(d).unwrap();
        }
        for d in &docs[2..] {
            out.queue_obj(d).unwrap();
        }
        out.flush().unwrap();
        let wire = out.into_inner().output;
        let mut back = Framed::new(Choppy::new(wire, steps), BsonDocument::default());
        for d in &docs {
            assert_eq!(back.recv_obj::<Document>().unwrap().as_ref(), Some(d));
        }
        assert_eq!(back.recv_obj::<Document>().unwrap(), None);
    }
}

#[test]
fn recv_obj_decode_error_consumes_that_document_only() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct N {
        n: i32,
    }
    let mut wire = framewire::message::bson::to_vec(&doc! { "n": "not a number" }).unwrap();
    wire.extend(framewire::message::bson::to_vec(&doc! { "n": 7_i32 }).unwrap());
    let mut conn = Framed::new(Choppy::new(wire, vec![5]), BsonDocument::default());
    assert!(matches!(conn.recv_obj::<N>(), Err(Error::Bson(_))));
    assert_eq!(conn.recv_obj::<N>().unwrap(), Some(N { n: 7 }));
    assert_eq!(conn.recv_obj::<N>().unwrap(), None);
}

#[test]
fn recv_obj_passes_over_skipped_documents() {
    let long = framewire::message::bson::to_vec(&doc! { "s": "z".repeat(100) }).unwrap();
    let short = framewire::message::bson::to_vec(&doc! { "ok": true }).unwrap();
    let wire = [long.clone(), short, long].concat();
    let framing = BsonDocument::default()
        .with_max_len(64)
        .with_oversize(OversizePolicy::Skip);
    let mut conn = Framed::new(Choppy::new(wire, vec![9]), framing);
    assert_eq!(
        conn.recv_obj::<Document>().unwrap(),
        Some(doc! { "ok": true })
    );
    assert_eq!(conn.recv_obj::<Document>().unwrap(), None);
    assert_eq!(conn.stats().frames_skipped, 2);
}
