//! Counts of live wasm objects and the size of the wasm memory, so tests
//! (and curious users) can check that closed connections leave nothing
//! behind.

use std::sync::atomic::{AtomicUsize, Ordering};

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::error::n;

/// Live `PacketCore` objects.
pub(crate) static PACKET_CORES: AtomicUsize = AtomicUsize::new(0);
/// Live `RawCodec` objects.
pub(crate) static CODECS: AtomicUsize = AtomicUsize::new(0);

/// Counts one more object of a kind; the guard counts it off when dropped.
#[derive(Debug)]
pub(crate) struct Live(&'static AtomicUsize);

impl Live {
    pub(crate) fn new(counter: &'static AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Live(counter)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `{ packetCores, codecs, memoryBytes }`: the wasm objects alive now (each
/// connection holds one) and the size of the wasm linear memory (it grows in
/// 64 KiB pages and never shrinks).
#[wasm_bindgen(js_name = memoryStats)]
pub fn memory_stats() -> Object {
    let o = Object::new();
    let set = |k: &str, v: f64| {
        let _ = Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_f64(v));
    };
    set(
        "packetCores",
        n(PACKET_CORES.load(Ordering::Relaxed) as u64),
    );
    set("codecs", n(CODECS.load(Ordering::Relaxed) as u64));
    let bytes = Reflect::get(&wasm_bindgen::memory(), &JsValue::from_str("buffer"))
        .and_then(|b| Reflect::get(&b, &JsValue::from_str("byteLength")))
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    set("memoryBytes", bytes);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_on_and_off() {
        static C: AtomicUsize = AtomicUsize::new(0);
        let a = Live::new(&C);
        let b = Live::new(&C);
        assert_eq!(C.load(Ordering::Relaxed), 2);
        drop(a);
        drop(b);
        assert_eq!(C.load(Ordering::Relaxed), 0);
    }
}
