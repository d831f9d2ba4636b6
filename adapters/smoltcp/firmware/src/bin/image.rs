//! The size image: a Cortex-M4F firmware with a smoltcp interface over a
//! loopback device, a TCP server that echoes length-prefixed frames through
//! framewire and a TCP client that sends frames and checks the echoes. No
//! heap: every buffer is a static. `scripts/build-firmware.sh` reports its
//! `.text`/`.data`/`.bss`.

#![no_std]
#![no_main]

use cortex_m::singleton;
use cortex_m_rt::entry;
use framewire_firmware::echo::{Client, Server};
use framewire_firmware::Loopback;
use panic_halt as _;
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

/// Largest IP packet on the loopback device.
const MTU: usize = 1500;
/// smoltcp's receive and transmit buffer per socket.
const SOCKET_BUF: usize = 1024;
/// framewire's receive and transmit buffer per connection.
const FRAME_BUF: usize = 256;
/// Frames the client sends.
const FRAMES: u32 = 1000;
const PORT: u16 = 7000;

#[entry]
fn main() -> ! {
    let device = singleton!(: Loopback<4, MTU> = Loopback::new()).unwrap();
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), device, Instant::ZERO);
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8))
            .unwrap();
    });

    let storage = singleton!(: [SocketStorage<'static>; 2] = Default::default()).unwrap();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let server_socket = {
        let rx = singleton!(: [u8; SOCKET_BUF] = [0; SOCKET_BUF]).unwrap();
        let tx = singleton!(: [u8; SOCKET_BUF] = [0; SOCKET_BUF]).unwrap();
        tcp::Socket::new(tcp::SocketBuffer::new(&mut rx[..]), tcp::SocketBuffer::new(&mut tx[..]))
    };
    let client_socket = {
        let rx = singleton!(: [u8; SOCKET_BUF] = [0; SOCKET_BUF]).unwrap();
        let tx = singleton!(: [u8; SOCKET_BUF] = [0; SOCKET_BUF]).unwrap();
        tcp::Socket::new(tcp::SocketBuffer::new(&mut rx[..]), tcp::SocketBuffer::new(&mut tx[..]))
    };
    let server_handle = sockets.add(server_socket);
    let client_handle = sockets.add(client_socket);

    let mut server = {
        let rx = singleton!(: [u8; FRAME_BUF] = [0; FRAME_BUF]).unwrap();
        let tx = singleton!(: [u8; FRAME_BUF] = [0; FRAME_BUF]).unwrap();
        Server::new(rx, tx)
    };
    let mut client = {
        let rx = singleton!(: [u8; FRAME_BUF] = [0; FRAME_BUF]).unwrap();
        let tx = singleton!(: [u8; FRAME_BUF] = [0; FRAME_BUF]).unwrap();
        Client::new(rx, tx, FRAMES)
    };

    sockets
        .get_mut::<tcp::Socket>(server_handle)
        .listen(PORT)
        .unwrap();
    sockets
        .get_mut::<tcp::Socket>(client_handle)
        .connect(iface.context(), (IpAddress::v4(127, 0, 0, 1), PORT), 49152)
        .unwrap();

    // The firmware's own clock: a millisecond per round (a real board would
    // read a timer here).
    let mut now = Instant::ZERO;
    let mut done = false;
    loop {
        iface.poll(now, device, &mut sockets);
        if !done {
            let served = server
                .poll(sockets.get_mut::<tcp::Socket>(server_handle))
                .unwrap();
            let checked = client
                .poll(sockets.get_mut::<tcp::Socket>(client_handle))
                .unwrap();
            done = served && checked;
        }
        if done && device.queued() == 0 {
            cortex_m::asm::wfi();
        }
        now += Duration::from_millis(1);
    }
}
