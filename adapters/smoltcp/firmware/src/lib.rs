//! Pieces shared by the firmware images: a loopback network device over
//! fixed buffers (smoltcp's own `phy::Loopback` needs a heap) and a clock the
//! firmware advances itself.

#![no_std]

pub mod echo;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The queue of frames in flight: `SLOTS` frames of up to `MTU` bytes.
struct Queue<const SLOTS: usize, const MTU: usize> {
    frames: [[u8; MTU]; SLOTS],
    lens: [usize; SLOTS],
    head: usize,
    count: usize,
}

/// A loopback IP device over fixed buffers: every packet transmitted is
/// received again, in order. Holds at most `SLOTS` packets of at most `MTU`
/// bytes; `transmit` reports no room when they are all taken (smoltcp retries
/// on the next poll).
pub struct Loopback<const SLOTS: usize, const MTU: usize> {
    queue: Queue<SLOTS, MTU>,
    rx: [u8; MTU],
}

impl<const SLOTS: usize, const MTU: usize> Loopback<SLOTS, MTU> {
    /// An empty loopback device.
    pub const fn new() -> Self {
        Loopback {
            queue: Queue {
                frames: [[0; MTU]; SLOTS],
                lens: [0; SLOTS],
                head: 0,
                count: 0,
            },
            rx: [0; MTU],
        }
    }

    /// Packets waiting to be received.
    pub fn queued(&self) -> usize {
        self.queue.count
    }
}

impl<const SLOTS: usize, const MTU: usize> Default for Loopback<SLOTS, MTU> {
    fn default() -> Self {
        Self::new()
    }
}

/// A received packet (a copy taken out of the queue).
pub struct RxToken<'a> {
    packet: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.packet)
    }
}

/// Room for one packet in the queue (only handed out when there is a free
/// slot).
pub struct TxToken<'a, const SLOTS: usize, const MTU: usize> {
    queue: &'a mut Queue<SLOTS, MTU>,
}

impl<const SLOTS: usize, const MTU: usize> phy::TxToken for TxToken<'_, SLOTS, MTU> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let q = self.queue;
        // A token exists only while a slot is free; smoltcp never asks for
        // more than the MTU it was given.
        let slot = (q.head + q.count) % SLOTS;
        let len = len.min(MTU);
        q.lens[slot] = len;
        q.count += 1;
        f(&mut q.frames[slot][..len])
    }
}

impl<const SLOTS: usize, const MTU: usize> Device for Loopback<SLOTS, MTU> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, SLOTS, MTU>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_, SLOTS, MTU>)> {
        let q = &mut self.queue;
        if q.count == 0 {
            return None;
        }
        // Copy the packet out so that its slot is free for the reply.
        let len = q.lens[q.head];
        self.rx[..len].copy_from_slice(&q.frames[q.head][..len]);
        q.head = (q.head + 1) % SLOTS;
        q.count -= 1;
        Some((
            RxToken {
                packet: &self.rx[..len],
            },
            TxToken { queue: q },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_, SLOTS, MTU>> {
        (self.queue.count < SLOTS).then_some(TxToken {
            queue: &mut self.queue,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        caps
    }
}
