//! Fixed-size buffer pairs for the drivers.

/// A receive and a transmit buffer of fixed sizes, `RX` and `TX` bytes, for
/// one connection: declare it where the RAM should come from (a `static`
/// cell, `main`'s stack frame, a field of the application's state) and lend
/// both halves to a driver with [`split`](Self::split). The sizes are the
/// connection's RAM, stated at compile time.
///
/// ```
/// use framewire::framing::LengthPrefixed;
/// use framewire_smoltcp::{Buffers, FramedSocket};
///
/// let mut buffers = Buffers::<512, 256>::new();
/// let (rx, tx) = buffers.split();
/// let framed = FramedSocket::new(LengthPrefixed::new(), rx, tx);
/// assert_eq!(framed.stream().max_buffered(), 512);
/// assert_eq!(framed.stream().max_queued(), 256);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buffers<const RX: usize, const TX: usize> {
    /// The receive buffer (frames are reassembled here).
    pub rx: [u8; RX],
    /// The transmit buffer (output is queued here).
    pub tx: [u8; TX],
}

impl<const RX: usize, const TX: usize> Buffers<RX, TX> {
    /// Zeroed buffers (usable in a `static` initialiser).
    pub const fn new() -> Self {
        Buffers {
            rx: [0; RX],
            tx: [0; TX],
        }
    }

    /// Both buffers, to lend to a driver.
    pub fn split(&mut self) -> (&mut [u8], &mut [u8]) {
        (&mut self.rx, &mut self.tx)
    }
}

impl<const RX: usize, const TX: usize> Default for Buffers<RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}
