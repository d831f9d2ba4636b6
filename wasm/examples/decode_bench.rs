//! The native half of the wasm-versus-native decode benchmark
//! (`scripts/bench-wasm.sh`): runs [`decode_stream`], the same Rust function
//! the wasm half runs, on a stream file fed in fixed-size chunks, and prints
//! one JSON line with the best of several runs.
//!
//! ```sh
//! cargo run --release -p framewire-wasm --example decode_bench -- SPEC CHUNK FILE RUNS
//! ```

use std::time::Instant;

use framewire_wasm::codec::{decode_stream, CodecCore, CodecOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, spec, chunk, file, runs] = &args[..] else {
        eprintln!("usage: decode_bench SPEC CHUNK FILE RUNS");
        std::process::exit(2);
    };
    let chunk: usize = chunk.parse().expect("CHUNK is a number");
    let runs: usize = runs.parse().expect("RUNS is a number");
    let input = std::fs::read(file).expect("FILE is readable");
    let mut best = f64::INFINITY;
    let mut frames = 0;
    for _ in 0..runs {
        let mut codec = CodecCore::new(spec, &CodecOptions::default()).expect("a valid spec");
        let start = Instant::now();
        frames = decode_stream(&mut codec, &input, chunk).expect("a valid stream");
        best = best.min(start.elapsed().as_secs_f64());
        // Dropped outside the timed part, as in the wasm half.
        drop(codec);
    }
    println!(
        "{{\"frames\":{frames},\"bytes\":{},\"seconds\":{best}}}",
        input.len()
    );
}
