//! Test driver shared by every framing's tests: feeds input in a given
//! chunking through [`Framing::decode`] with a growing buffer (what a stream
//! does) and records what comes out, so each decoder is checked whole, one
//! byte at a time and in random splits against the same expectations.

use super::{Decode, FrameError, Framing, Oversize};
use std::vec;
use std::vec::Vec;

/// One thing a decoder produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Out {
    Frame(Vec<u8>),
    Skipped(Oversize),
    Error(FrameError),
}

/// The result of running a whole input through a framing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) out: Vec<Out>,
    /// Bytes buffered but not part of any frame when the input ended.
    pub(crate) leftover: Vec<u8>,
}

/// Feeds `input` cut at the given chunk lengths (the rest goes in one last
/// chunk) and decodes greedily after every chunk. Stops at the first error.
pub(crate) fn run_chunked<F: Framing>(framing: &mut F, input: &[u8], cuts: &[usize]) -> Run {
    let mut buf: Vec<u8> = Vec::new();
    let mut skip_remaining: u64 = 0;
    let mut out = Vec::new();
    let chunks = crate::testutil::split_at_cuts(input, cuts);
    for chunk in chunks {
        let mut chunk = chunk;
        if skip_remaining > 0 {
            let n = usize::try_from(skip_remaining)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            chunk = &chunk[n..];
            skip_remaining -= n as u64;
        }
        buf.extend_from_slice(chunk);
        loop {
            if skip_remaining > 0 {
                break;
            }
            match framing.decode(&buf) {
                Ok(Decode::Incomplete { need }) => {
                    if let Some(need) = need {
                        assert!(
                            need > buf.len(),
                            "Incomplete with need {need} <= buffered {}",
                            buf.len()
                        );
                    }
                    break;
                }
                Ok(Decode::Frame { len, payload }) => {
                    assert!(len > 0 && len <= buf.len() && payload.end <= len);
                    out.push(Out::Frame(buf[payload].to_vec()));
                    buf.drain(..len);
                }
                Ok(Decode::Skip { len, oversize }) => {
                    if let Some(o) = oversize {
                        out.push(Out::Skipped(o));
                    }
                    assert!(len > 0, "Skip of zero bytes");
                    let here = usize::try_from(len).unwrap_or(usize::MAX).min(buf.len());
                    buf.drain(..here);
                    skip_remaining = len - here as u64;
                }
                Err(e) => {
                    out.push(Out::Error(e));
                    return Run { out, leftover: buf };
                }
            }
        }
    }
    Run { out, leftover: buf }
}

/// Runs `input` whole, byte by byte, and in every two-way split, asserting the
/// same result each time, and returns it.
pub(crate) fn run_all_ways<F: Framing + Clone>(framing: &F, input: &[u8]) -> Run {
    let whole = run_chunked(&mut framing.clone(), input, &[]);
    let bytewise = run_chunked(&mut framing.clone(), input, &vec![1; input.len()]);
    assert_eq!(whole, bytewise, "byte-by-byte differs from whole input");
    for cut in 0..=input.len().min(512) {
        let split = run_chunked(&mut framing.clone(), input, &[cut]);
        assert_eq!(whole, split, "split at {cut} differs from whole input");
    }
    whole
}

/// Frames only, asserting no error and no skips.
pub(crate) fn frames(run: &Run) -> Vec<Vec<u8>> {
    run.out
        .iter()
        .map(|o| match o {
            Out::Frame(f) => f.clone(),
            other => panic!("expected only frames, got {other:?}"),
        })
        .collect()
}

/// A proptest strategy for chunk lengths (0..=max each).
pub(crate) fn cuts(max: usize) -> impl proptest::strategy::Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..=max, 0..64)
}

/// `run` with its leftover cleared if it ended in an error: what is buffered
/// when an error is found depends on the chunking, what was produced must not.
pub(crate) fn settled(mut run: Run) -> Run {
    if matches!(run.out.last(), Some(Out::Error(_))) {
        run.leftover.clear();
    }
    run
}

/// [`run_all_ways`] for input that may end in an error: asserts the same
/// output (frames, skips, the error) for every chunking and returns it.
pub(crate) fn outs_all_ways<F: Framing + Clone>(framing: &F, input: &[u8]) -> Vec<Out> {
    let whole = settled(run_chunked(&mut framing.clone(), input, &[]));
    let bytewise = settled(run_chunked(
        &mut framing.clone(),
        input,
        &vec![1; input.len()],
    ));
    assert_eq!(whole, bytewise, "byte-by-byte differs from whole input");
    for cut in 0..=input.len().min(512) {
        let split = settled(run_chunked(&mut framing.clone(), input, &[cut]));
        assert_eq!(whole, split, "split at {cut} differs from whole input");
    }
    whole.out
}
