//! framewire for JavaScript, through wasm-bindgen.

#![forbid(unsafe_code)]
