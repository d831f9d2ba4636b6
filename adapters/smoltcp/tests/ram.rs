//! RAM per connection, computed with `core::mem::size_of`: printed, and on
//! x86_64 checked against the figures stated in the crate documentation (so
//! the documentation cannot drift from the code unnoticed). The thumbv7em
//! figures in the documentation were measured the same way on that target.

use core::mem::size_of;

use framewire::framing::LengthPrefixed;
use framewire::packet::BorrowedConnection;
use framewire::stream::BorrowedFramedStream;
use framewire_smoltcp::{FramedSocket, PacketSocket};
use smoltcp::socket::tcp;

struct Row {
    what: &'static str,
    bytes: usize,
    documented_x86_64: usize,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            what: "FramedSocket<LengthPrefixed> (driver value)",
            bytes: size_of::<FramedSocket<'static, LengthPrefixed>>(),
            documented_x86_64: 328,
        },
        Row {
            what: "  of which core BorrowedFramedStream<LengthPrefixed>",
            bytes: size_of::<BorrowedFramedStream<'static, LengthPrefixed>>(),
            documented_x86_64: 248,
        },
        Row {
            what: "PacketSocket<4, 4> (driver value)",
            bytes: size_of::<PacketSocket<'static, 4, 4>>(),
            documented_x86_64: 1400,
        },
        Row {
            what: "  of which core BorrowedConnection<4, 4>",
            bytes: size_of::<BorrowedConnection<'static, 4, 4>>(),
            documented_x86_64: 1312,
        },
        Row {
            what: "PacketSocket<8, 8> (driver value)",
            bytes: size_of::<PacketSocket<'static, 8, 8>>(),
            documented_x86_64: 1848,
        },
        Row {
            what: "PacketSocket<16, 16> (driver value)",
            bytes: size_of::<PacketSocket<'static, 16, 16>>(),
            documented_x86_64: 2744,
        },
    ]
}

#[test]
fn ram_per_connection() {
    let rows = rows();
    println!("RAM per connection on {}:", std::env::consts::ARCH);
    for row in &rows {
        println!("  {:<55} {:>6} B", row.what, row.bytes);
    }
    // smoltcp's own socket depends on smoltcp's features (the tests enable
    // `std`; firmware builds do not), so it is printed, not checked.
    println!(
        "  {:<55} {:>6} B",
        "smoltcp tcp::Socket (without its ring buffers)",
        size_of::<tcp::Socket<'static>>()
    );
    let framed = FramedSocket::<LengthPrefixed>::ram_bytes(1024, 1024);
    let packet = PacketSocket::<4, 4>::ram_bytes(512, 512);
    println!("  FramedSocket with 1 KiB + 1 KiB buffers: {framed} B (+ the smoltcp socket)");
    println!("  PacketSocket<4, 4> with 512 B + 512 B buffers: {packet} B (+ the smoltcp socket)");
    assert_eq!(framed, 2048 + rows[0].bytes);
    assert_eq!(packet, 1024 + rows[2].bytes);
    // The driver adds a fixed, small amount to the core's state.
    let framed_overhead = rows[0].bytes - rows[1].bytes;
    let packet_overhead = rows[2].bytes - rows[3].bytes;
    println!(
        "  driver state beyond the core: framed {framed_overhead} B, packet {packet_overhead} B"
    );
    assert!(framed_overhead <= 96 && packet_overhead <= 96);
    if cfg!(target_arch = "x86_64") {
        for row in &rows {
            assert_eq!(
                row.bytes, row.documented_x86_64,
                "{}: the crate documentation states {} B; update it",
                row.what, row.documented_x86_64
            );
        }
    }
}
