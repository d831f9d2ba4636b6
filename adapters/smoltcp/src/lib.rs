//! framewire over smoltcp's TCP sockets, with no heap.

#![no_std]
#![forbid(unsafe_code)]
