//! The size image: a Cortex-M4F firmware with a smoltcp interface over a
//! loopback device and four TCP connections driven by framewire-smoltcp: a
//! server echoing length-prefixed frames and a client checking the echoes
//! (`FramedSocket<LengthPrefixed>`), and a cs.packetstream server answering
//! requests and a client checking the responses (`PacketSocket`, the core's
//! no-alloc `BorrowedConnection`). No heap: every buffer is a static. `scripts/build-firmware.sh` reports its
//! `.text`/`.data`/`.bss`.

#![no_std]
#![no_main]

use cortex_m::singleton;
use cortex_m_rt::entry;
use framewire_firmware::echo::{self, EchoBuffers};
use framewire_firmware::Loopback;
use panic_halt as _;
use smoltcp::iface::SocketStorage;

/// Largest IP packet on the loopback device.
const MTU: usize = 1500;
/// smoltcp's receive and transmit buffer per socket.
const SOCKET_BUF: usize = 1024;
/// framewire's receive and transmit buffer per connection (frames and
/// packets here are at most 68 bytes).
const FRAME_BUF: usize = 256;

macro_rules! buf {
    ($n:expr) => {
        &mut singleton!(: [u8; $n] = [0; $n]).unwrap()[..]
    };
}

#[entry]
fn main() -> ! {
    let device = singleton!(: Loopback<4, MTU> = Loopback::new()).unwrap();
    let sockets = singleton!(: [SocketStorage<'static>; 4] = Default::default()).unwrap();
    let bufs = EchoBuffers {
        sockets,
        socket_buffers: [
            [buf!(SOCKET_BUF), buf!(SOCKET_BUF)],
            [buf!(SOCKET_BUF), buf!(SOCKET_BUF)],
            [buf!(SOCKET_BUF), buf!(SOCKET_BUF)],
            [buf!(SOCKET_BUF), buf!(SOCKET_BUF)],
        ],
        frame_buffers: [
            [buf!(FRAME_BUF), buf!(FRAME_BUF)],
            [buf!(FRAME_BUF), buf!(FRAME_BUF)],
            [buf!(FRAME_BUF), buf!(FRAME_BUF)],
            [buf!(FRAME_BUF), buf!(FRAME_BUF)],
        ],
    };
    // Without a debugger attached there is nowhere to report the outcome:
    // the vectors image runs the same exchange under qemu and checks it.
    let _ = echo::run(device, bufs, 1000, 1000, 60_000);
    loop {
        cortex_m::asm::wfi();
    }
}
