//! Framing decode throughput, criterion edition (DESIGN.md section 6):
//! the same prebuilt `u32` BE length-prefixed input, fed in 64 KiB chunks, to
//! tokio-util's `LengthDelimitedCodec`, a bare hand-written decoder (borrowed
//! slices and `Bytes`), framewire's `LengthPrefixed::decode`, and framewire's
//! `BorrowedFramedStream` and `FramedStream`.
//!
//! ```text
//! cargo bench -p framewire-tests --bench framing
//! ```
//!
//! Targets (checked by `benches/ratios.rs`, which prints PASS/MISS): framewire
//! at least 3x tokio-util on 16-byte frames and at least half the bare
//! decoder; 64 KiB frames at memory bandwidth (no second copy).

mod common;

use std::time::Duration;

use common::{
    bare_borrowed, borrowed_stream, build_input, framing_decode, owned_stream, BareBytes,
    BareBytesSlice, OneCopy, SliceBuf, Tally, TokioUtil, BORROWED_RX,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use framewire::framing::LengthPrefixed;
use framewire::stream::{BorrowedFramedStream, FramedStream};

/// Small frames: 16-byte payloads, 65,536 of them (1.25 MiB of input).
const SMALL_PAYLOAD: usize = 16;
const SMALL_FRAMES: usize = 64 * 1024;

/// Large frames: 64 KiB payloads, 64 of them (4 MiB of input).
const LARGE_PAYLOAD: usize = 64 * 1024;
const LARGE_FRAMES: usize = 64;

fn small_frames(c: &mut Criterion) {
    let input = build_input(SMALL_FRAMES, SMALL_PAYLOAD);
    let want = Tally::expected(SMALL_FRAMES, SMALL_PAYLOAD);
    let mut g = c.benchmark_group("decode_16B_frames");
    g.throughput(Throughput::Elements(SMALL_FRAMES as u64));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    let mut tokio = TokioUtil::new();
    assert_eq!(tokio.run(&input), want);
    g.bench_function("tokio_util_codec", |b| b.iter(|| tokio.run(&input)));

    let mut rx = SliceBuf::new(SMALL_PAYLOAD + 4);
    assert_eq!(bare_borrowed(&mut rx, &input), want);
    g.bench_function("bare_borrowed", |b| {
        b.iter(|| bare_borrowed(&mut rx, &input));
    });

    let mut bare = BareBytes::new();
    assert_eq!(bare.run(&input), want);
    g.bench_function("bare_bytes", |b| b.iter(|| bare.run(&input)));

    let mut bare_slice = BareBytesSlice::new();
    assert_eq!(bare_slice.run(&input), want);
    g.bench_function("bare_bytes_slice", |b| b.iter(|| bare_slice.run(&input)));

    let mut framing = LengthPrefixed::new();
    assert_eq!(framing_decode(&mut framing, &mut rx, &input), want);
    g.bench_function("framewire_length_prefixed_decode", |b| {
        b.iter(|| framing_decode(&mut framing, &mut rx, &input));
    });

    let (mut rxb, mut txb) = (vec![0u8; BORROWED_RX], vec![0u8; 64]);
    let mut borrowed = BorrowedFramedStream::new(LengthPrefixed::new(), &mut rxb, &mut txb);
    assert_eq!(borrowed_stream(&mut borrowed, &input), want);
    g.bench_function("framewire_borrowed_stream", |b| {
        b.iter(|| borrowed_stream(&mut borrowed, &input));
    });

    let mut owned = FramedStream::new(LengthPrefixed::new());
    assert_eq!(owned_stream(&mut owned, &input), want);
    g.bench_function("framewire_framed_stream", |b| {
        b.iter(|| owned_stream(&mut owned, &input));
    });
    g.finish();
}

fn large_frames(c: &mut Criterion) {
    let input = build_input(LARGE_FRAMES, LARGE_PAYLOAD);
    let want = Tally::expected(LARGE_FRAMES, LARGE_PAYLOAD);
    let mut g = c.benchmark_group("decode_64KiB_frames");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    let mut copy = OneCopy::new(input.len());
    g.bench_function("one_memcpy_reference", |b| {
        b.iter(|| copy.run(&input));
    });

    let mut tokio = TokioUtil::new();
    assert_eq!(tokio.run(&input), want);
    g.bench_function("tokio_util_codec", |b| b.iter(|| tokio.run(&input)));

    let mut owned = FramedStream::new(LengthPrefixed::new());
    assert_eq!(owned_stream(&mut owned, &input), want);
    g.bench_function("framewire_framed_stream", |b| {
        b.iter(|| owned_stream(&mut owned, &input));
    });
    g.finish();
}

criterion_group!(benches, small_frames, large_frames);
criterion_main!(benches);
