//! The size image: a Cortex-M4F firmware with a smoltcp interface over a
//! loopback device, a TCP server that echoes length-prefixed frames through
//! framewire and a TCP client that sends frames and checks the echoes. No
//! heap: every buffer is a static. `scripts/build-firmware.sh` reports its
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
/// framewire's receive and transmit buffer per connection.
const FRAME_BUF: usize = 256;

macro_rules! buf {
    ($n:expr) => {
        &mut singleton!(: [u8; $n] = [0; $n]).unwrap()[..]
    };
}

#[entry]
fn main() -> ! {
    let device = singleton!(: Loopback<4, MTU> = Loopback::new()).unwrap();
    let sockets = singleton!(: [SocketStorage<'static>; 2] = Default::default()).unwrap();
    let bufs = EchoBuffers {
        sockets,
        server_socket: [buf!(SOCKET_BUF), buf!(SOCKET_BUF)],
        client_socket: [buf!(SOCKET_BUF), buf!(SOCKET_BUF)],
        server_frames: [buf!(FRAME_BUF), buf!(FRAME_BUF)],
        client_frames: [buf!(FRAME_BUF), buf!(FRAME_BUF)],
    };
    // Without a debugger attached there is nowhere to report the outcome:
    // the vectors image runs the same echo under qemu and checks it.
    let _ = echo::run(device, bufs, 1000, 60_000);
    loop {
        cortex_m::asm::wfi();
    }
}
