//! The WebSocket-to-TCP gateway over loopback: tokio-tungstenite clients,
//! a real packet-stream server (framewire-std) and small TCP services.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use framewire::framing::{Decode, Framing, PacketFraming};
use framewire::packet::wire::{Packet, EOF_BYTES, ERQ_BYTES};
use framewire_std::packet::{Builder, PacketServer, Reply, Request};
use framewire_std::server::Server;
use framewire_tokio::gateway::{
    FrameSpec, Gateway, GatewayConfig, GatewayHandle, GatewayMode, GatewayStats,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `f` under the test deadline.
async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("test deadline passed")
}

/// A packet-stream server whose handler echoes flags and payload.
fn echo_packet_server() -> PacketServer {
    PacketServer::serve(
        Server::bind("127.0.0.1:0").unwrap(),
        Builder::new().handler(|r: Request| Reply {
            flags: r.flags,
            payload: r.payload,
        }),
    )
    .unwrap()
}

/// A TCP echo service (each connection copies its input back, then closes).
async fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A one-connection TCP service running `body`.
async fn tcp_service<F, Fut>(body: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        body(s).await;
    });
    addr
}

async fn start(target: impl std::fmt::Display, config: GatewayConfig) -> GatewayHandle {
    Gateway::bind("127.0.0.1:0", target, config)
        .await
        .unwrap()
        .spawn()
}

fn framed(spec: &str) -> GatewayConfig {
    GatewayConfig::new().with_mode(GatewayMode::Framed(spec.parse::<FrameSpec>().unwrap()))
}

async fn connect(gw: &GatewayHandle) -> Client {
    let (ws, _) = connect_async(format!("ws://{}/", gw.local_addr()))
        .await
        .unwrap();
    ws
}

fn request(tag: u64, flags: u64, payload: &[u8]) -> Vec<u8> {
    let p = Packet::request(0, tag, 0, flags, payload).unwrap();
    let mut out = vec![0; p.encoded_len()];
    p.encode(&mut out).unwrap();
    out
}

fn response(tag: u64, flags: u64, payload: &[u8]) -> Vec<u8> {
    let p = Packet::response(0, tag, true, flags, payload).unwrap();
    let mut out = vec![0; p.encoded_len()];
    p.encode(&mut out).unwrap();
    out
}

/// The next message that is not a ping or pong.
async fn next(ws: &mut Client) -> Message {
    loop {
        match ws.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(m)) => return m,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

async fn next_binary(ws: &mut Client) -> Vec<u8> {
    match next(ws).await {
        Message::Binary(b) => b.to_vec(),
        other => panic!("expected a binary message, got {other:?}"),
    }
}

/// Reads until the gateway's close frame; returns it and the binary
/// messages before it.
async fn until_close(ws: &mut Client) -> (Vec<Vec<u8>>, CloseFrame) {
    let mut before = Vec::new();
    loop {
        match next(ws).await {
            Message::Binary(b) => before.push(b.to_vec()),
            Message::Close(Some(frame)) => {
                // Reading on sends tungstenite's close reply; the gateway
                // then ends the connection.
                while ws.next().await.is_some() {}
                return (before, frame);
            }
            other => panic!("expected binary or close, got {other:?}"),
        }
    }
}

/// Cuts whole packets off the front of `buf`.
fn cut_packets(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut f = PacketFraming::new();
    let mut out = Vec::new();
    while let Decode::Frame { len, .. } = f.decode(buf).unwrap() {
        out.push(buf.drain(..len).collect());
    }
    out
}

/// Closes from the client side and reads until the connection ends.
async fn finish(mut ws: Client) {
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
}

/// Waits until the gateway has no connection open.
async fn idle(gw: &GatewayHandle) -> GatewayStats {
    loop {
        let s = gw.stats();
        if s.active == 0 {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_mode_packets_split_across_messages() {
    within(async {
        let server = echo_packet_server();
        let gw = start(server.local_addr(), GatewayConfig::new()).await;
        let mut ws = connect(&gw).await;
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (i, tag) in (2..12u64).enumerate() {
            let payload = vec![i as u8; i * 37];
            stream.extend(request(tag, i as u64, &payload));
            expected.push(response(tag, i as u64, &payload));
        }
        // Arbitrary chunks, one WebSocket message each (an empty one too).
        let mut rest = &stream[..];
        for size in [1usize, 0, 3, 7, 2, 64, 5, 300].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*size).min(rest.len()));
            ws.send(Message::binary(chunk.to_vec())).await.unwrap();
            rest = tail;
        }
        let mut got = Vec::new();
        let mut buf = Vec::new();
        while got.len() < expected.len() {
            buf.extend(next_binary(&mut ws).await);
            got.extend(cut_packets(&mut buf));
        }
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        // The client's EOF packet makes the server end (ERQ, EOF, close):
        // the gateway forwards both and closes with 1000.
        ws.send(Message::binary(EOF_BYTES.to_vec())).await.unwrap();
        let (before, close) = until_close(&mut ws).await;
        let mut tail: Vec<u8> = before.concat();
        assert_eq!(
            cut_packets(&mut tail),
            [ERQ_BYTES.to_vec(), EOF_BYTES.to_vec()]
        );
        assert!(tail.is_empty());
        assert_eq!(close.code, CloseCode::Normal);
        assert_eq!(close.reason.as_str(), "service closed the connection");
        let stats = idle(&gw).await;
        assert_eq!((stats.served, stats.refused), (1, 0));
        gw.shutdown().await.unwrap();
        server.shutdown();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_packet_mode_one_packet_per_message() {
    within(async {
        let server = echo_packet_server();
        let gw = start(server.local_addr(), framed("packet")).await;
        let mut ws = connect(&gw).await;
        for tag in 2..6u64 {
            let payload = format!("packet {tag}").into_bytes();
            ws.send(Message::binary(request(tag, tag, &payload)))
                .await
                .unwrap();
            // Exactly one whole packet per message.
            assert_eq!(next_binary(&mut ws).await, response(tag, tag, &payload));
        }
        ws.send(Message::binary(EOF_BYTES.to_vec())).await.unwrap();
        let (before, close) = until_close(&mut ws).await;
        assert_eq!(before, [ERQ_BYTES.to_vec(), EOF_BYTES.to_vec()]);
        assert_eq!(close.code, CloseCode::Normal);
        gw.shutdown().await.unwrap();
        server.shutdown();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mebibyte_packet_through_framed_and_raw_modes() {
    within(async {
        let server = echo_packet_server();
        let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        let rq = request(2, 0, &payload);
        let rs = response(2, 0, &payload);

        let gw = start(server.local_addr(), framed("packet")).await;
        let mut ws = connect(&gw).await;
        ws.send(Message::binary(rq.clone())).await.unwrap();
        assert_eq!(next_binary(&mut ws).await, rs);
        finish(ws).await;
        gw.shutdown().await.unwrap();

        let gw = start(server.local_addr(), GatewayConfig::new()).await;
        let mut ws = connect(&gw).await;
        ws.send(Message::binary(rq)).await.unwrap();
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while got.is_empty() {
            buf.extend(next_binary(&mut ws).await);
            got = cut_packets(&mut buf);
        }
        assert_eq!(got, [rs]);
        finish(ws).await;
        gw.shutdown().await.unwrap();
        server.shutdown();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_prefixed_mode_against_a_tcp_echo() {
    within(async {
        let echo = tcp_echo().await;
        let gw = start(echo, framed("length:2:le")).await;
        let mut ws = connect(&gw).await;
        for m in [&b"hello"[..], b"", b"world", &[7u8; 1000][..]] {
            ws.send(Message::binary(m.to_vec())).await.unwrap();
            assert_eq!(next_binary(&mut ws).await, m);
        }
        // A payload over the u16 length field's reach is refused (1009).
        ws.send(Message::binary(vec![0u8; 70_000])).await.unwrap();
        let (before, close) = until_close(&mut ws).await;
        assert!(before.is_empty());
        assert_eq!(close.code, CloseCode::Size, "{close:?}");
        assert!(close.reason.contains("70000"), "{close:?}");

        // Lines: the gateway adds and strips the '\n'.
        let gw2 = start(echo, framed("lines")).await;
        let mut ws = connect(&gw2).await;
        ws.send(Message::binary(&b"one line"[..])).await.unwrap();
        assert_eq!(next_binary(&mut ws).await, b"one line");
        finish(ws).await;
        gw.shutdown().await.unwrap();
        gw2.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_shuts_tcp_and_forwards_what_the_service_still_says() {
    within(async {
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        let svc = tcp_service(|mut s| async move {
            // Read everything up to the gateway's EOF, then answer and close.
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(b"bye after your close").await.unwrap();
            s.shutdown().await.unwrap();
            let _ = seen_tx.send(got);
        })
        .await;
        let gw = start(svc, GatewayConfig::new()).await;
        let mut ws = connect(&gw).await;
        ws.send(Message::binary(&b"abc"[..])).await.unwrap();
        ws.send(Message::binary(&b"def"[..])).await.unwrap();
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        })))
        .await
        .unwrap();
        let (before, close) = until_close(&mut ws).await;
        assert_eq!(before.concat(), b"bye after your close");
        assert_eq!(close.code, CloseCode::Normal);
        assert_eq!(seen_rx.await.unwrap(), b"abcdef");
        let stats = idle(&gw).await;
        assert_eq!(stats.served, 1);
        gw.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_right_after_a_ping_still_ends_cleanly() {
    // A ping's automatic pong may still be half-written when the close
    // arrives: the gateway then replies at once and drops the service's
    // later bytes (documented corner). The data before the close still
    // reaches the service, which sees its EOF.
    within(async {
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        let svc = tcp_service(|mut s| async move {
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            let _ = s.write_all(b"late").await;
            let _ = s.shutdown().await;
            let _ = seen_tx.send(got);
        })
        .await;
        let gw = start(svc, GatewayConfig::new()).await;
        let mut ws = connect(&gw).await;
        ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
        ws.send(Message::binary(&b"abc"[..])).await.unwrap();
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await
        .unwrap();
        let (before, close) = until_close(&mut ws).await;
        assert!(before.is_empty(), "{before:?}");
        assert_eq!(close.code, CloseCode::Normal);
        assert_eq!(seen_rx.await.unwrap(), b"abc");
        assert_eq!(idle(&gw).await.served, 1);
        gw.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_in_packet_mode_still_gets_the_answer() {
    within(async {
        let server = echo_packet_server();
        let gw = start(server.local_addr(), framed("packet")).await;
        let mut ws = connect(&gw).await;
        ws.send(Message::binary(request(2, 0, b"last words")))
            .await
            .unwrap();
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await
        .unwrap();
        // The server sees the request, then EOF: it answers, sends ERQ and
        // EOF, and closes; all of it reaches the client before the reply.
        let (mut before, close) = until_close(&mut ws).await;
        assert_eq!(close.code, CloseCode::Normal);
        before.sort();
        let mut expected = vec![
            response(2, 0, b"last words"),
            ERQ_BYTES.to_vec(),
            EOF_BYTES.to_vec(),
        ];
        expected.sort();
        assert_eq!(before, expected);
        gw.shutdown().await.unwrap();
        server.shutdown();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_close_flushes_frames_then_closes_1000() {
    within(async {
        let svc = tcp_service(|mut s| async move {
            // Two packets and an immediate close, in one write.
            let mut out = response(2, 0, b"first");
            out.extend(response(3, 0, b"second"));
            s.write_all(&out).await.unwrap();
            s.shutdown().await.unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        })
        .await;
        let gw = start(svc, framed("packet")).await;
        let mut ws = connect(&gw).await;
        let (before, close) = until_close(&mut ws).await;
        assert_eq!(
            before,
            [response(2, 0, b"first"), response(3, 0, b"second")]
        );
        assert_eq!(close.code, CloseCode::Normal);
        gw.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_framing_error_closes_1007_after_the_good_frames() {
    within(async {
        let svc = tcp_service(|mut s| async move {
            let mut out = response(2, 0, b"good");
            // A body of one byte cannot hold tag and flags.
            out.extend([0x01, 0x02]);
            s.write_all(&out).await.unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        })
        .await;
        let gw = start(svc, framed("packet")).await;
        let mut ws = connect(&gw).await;
        let (before, close) = until_close(&mut ws).await;
        assert_eq!(before, [response(2, 0, b"good")]);
        assert_eq!(close.code, CloseCode::Invalid, "{close:?}");
        assert!(close.reason.contains("bad packet"), "{close:?}");
        gw.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_message_refused_1009() {
    within(async {
        let echo = tcp_echo().await;
        let gw = start(echo, GatewayConfig::new().with_max_message_size(1024)).await;
        let mut ws = connect(&gw).await;
        ws.send(Message::binary(vec![1u8; 1024])).await.unwrap();
        assert_eq!(next_binary(&mut ws).await.len(), 1024);
        ws.send(Message::binary(vec![2u8; 2000])).await.unwrap();
        let (before, close) = until_close(&mut ws).await;
        assert!(before.iter().all(|m| m.iter().all(|&b| b == 1)));
        assert_eq!(close.code, CloseCode::Size, "{close:?}");
        assert!(close.reason.contains("2000"), "{close:?}");
        gw.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_refused_1007_and_never_reach_tcp() {
    within(async {
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let svc = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let seen_tx = seen_tx.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let _ = s.read_to_end(&mut got).await;
                    let _ = seen_tx.send(got);
                });
            }
        });
        let cases: [(&str, Vec<u8>, &str); 5] = [
            ("packet", request(2, 0, b"hello")[..7].to_vec(), "truncated"),
            ("packet", [EOF_BYTES, ERQ_BYTES].concat(), "4 more"),
            ("packet", vec![0x01, 0x02], "bad packet"),
            ("lines", b"two\nlines".to_vec(), "delimiter"),
            ("bson", b"\x06\0\0\0\0\x01".to_vec(), "BSON"),
        ];
        for (spec, message, why) in cases {
            let gw = start(svc, framed(spec)).await;
            let mut ws = connect(&gw).await;
            // A good frame first: it gets through.
            let good = match spec {
                "packet" => EOF_BYTES.to_vec(),
                "lines" => b"fine".to_vec(),
                _ => b"\x05\0\0\0\0".to_vec(),
            };
            ws.send(Message::binary(good.clone())).await.unwrap();
            ws.send(Message::binary(message)).await.unwrap();
            let (before, close) = until_close(&mut ws).await;
            assert!(before.is_empty());
            assert_eq!(close.code, CloseCode::Invalid, "{spec}: {close:?}");
            assert!(close.reason.contains(why), "{spec}: {close:?}");
            assert!(close.reason.contains(spec), "{spec}: {close:?}");
            // The service got the good frame and then its EOF, nothing else.
            let wire = if spec == "lines" {
                b"fine\n".to_vec()
            } else {
                good
            };
            assert_eq!(seen_rx.recv().await.unwrap(), wire, "{spec}");
            gw.shutdown().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_message_refused_1003() {
    within(async {
        let echo = tcp_echo().await;
        let gw = start(echo, GatewayConfig::new()).await;
        let mut ws = connect(&gw).await;
        ws.send(Message::text("hello")).await.unwrap();
        let (before, close) = until_close(&mut ws).await;
        assert!(before.is_empty());
        assert_eq!(close.code, CloseCode::Unsupported);
        assert!(close.reason.contains("text"), "{close:?}");
        gw.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_a_close_1011_with_the_reason() {
    within(async {
        // A port nobody listens on.
        let unused = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let gw = start(unused, GatewayConfig::new()).await;
        let mut ws = connect(&gw).await;
        let (before, close) = until_close(&mut ws).await;
        assert!(before.is_empty());
        assert_eq!(close.code, CloseCode::Error);
        assert!(close.reason.contains("cannot connect"), "{close:?}");
        assert!(close.reason.contains(&unused.to_string()), "{close:?}");
        let stats = idle(&gw).await;
        assert_eq!(stats.served, 1);
        gw.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_with_503() {
    within(async {
        let echo = tcp_echo().await;
        let gw = start(echo, GatewayConfig::new().with_max_connections(1)).await;
        let mut first = connect(&gw).await;
        first.send(Message::binary(&b"x"[..])).await.unwrap();
        assert_eq!(next_binary(&mut first).await, b"x");
        match connect_async(format!("ws://{}/", gw.local_addr())).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status().as_u16(), 503),
            other => panic!("expected HTTP 503, got {other:?}"),
        }
        assert_eq!(gw.stats().refused, 1);
        finish(first).await;
        idle(&gw).await;
        // Room again.
        let mut again = connect(&gw).await;
        again.send(Message::binary(&b"y"[..])).await.unwrap();
        assert_eq!(next_binary(&mut again).await, b"y");
        finish(again).await;
        let stats = gw.shutdown().await.unwrap();
        assert_eq!((stats.served, stats.refused, stats.active), (2, 1, 0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_clients_1001() {
    within(async {
        let echo = tcp_echo().await;
        let gw = start(echo, GatewayConfig::new()).await;
        let mut ws = connect(&gw).await;
        ws.send(Message::binary(&b"ping"[..])).await.unwrap();
        assert_eq!(next_binary(&mut ws).await, b"ping");
        let reader = tokio::spawn(async move { until_close(&mut ws).await });
        let stats = gw.shutdown().await.unwrap();
        assert_eq!(stats.served, 1);
        let (_, close) = reader.await.unwrap();
        assert_eq!(close.code, CloseCode::Away);
    })
    .await;
}
