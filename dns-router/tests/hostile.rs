//! Hostile DNS input against a running router over real UDP and TCP sockets: random and
//! truncated packets, compression-pointer loops, bad Client Subnet options, unknown opcodes and
//! classes, wrong question counts, stalled TCP connections, and the amplification bound. After
//! every attack a normal query must still be answered.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_net::proto::op::{Message, ResponseCode};
use hickory_net::proto::rr::RecordType;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes an error or refusal may add to the query it answers.
const AMPLIFICATION_SLACK: usize = 64;
/// Bytes a negative answer inside our zones may add: the zone's SOA record, which RFC 2308
/// requires in the authority section.
const NEGATIVE_SLACK: usize = 128;

/// A deterministic xorshift generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A query in wire format: header with the given id, flags and counts, then `body`.
fn packet(id: u16, flags: u16, qd: u16, ar: u16, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + body.len());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&qd.to_be_bytes());
    p.extend_from_slice(&0u16.to_be_bytes());
    p.extend_from_slice(&0u16.to_be_bytes());
    p.extend_from_slice(&ar.to_be_bytes());
    p.extend_from_slice(body);
    p
}

/// A question section: `name` (dotted, no trailing dot), type and class.
fn question(name: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let mut q = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    q
}

/// An OPT record (payload 1232) carrying the given option bytes.
fn opt(options: &[u8]) -> Vec<u8> {
    let mut o = vec![0u8];
    o.extend_from_slice(&41u16.to_be_bytes());
    o.extend_from_slice(&1232u16.to_be_bytes());
    o.extend_from_slice(&0u32.to_be_bytes());
    o.extend_from_slice(&(options.len() as u16).to_be_bytes());
    o.extend_from_slice(options);
    o
}

/// A Client Subnet option with an explicit family, source prefix and address octets.
fn ecs(family: u16, source: u8, addr: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&8u16.to_be_bytes());
    b.extend_from_slice(&((4 + addr.len()) as u16).to_be_bytes());
    b.extend_from_slice(&family.to_be_bytes());
    b.push(source);
    b.push(0);
    b.extend_from_slice(addr);
    b
}

/// Sends `p` over UDP and returns the parsed response (None when the router drops it).
async fn exchange(server: SocketAddr, p: &[u8]) -> Option<(Message, usize)> {
    let bytes = raw_udp(server, p, Duration::from_millis(500)).await?;
    let m = Message::from_vec(&bytes).expect("every response parses");
    assert_eq!(bytes[..2], p[..2], "the response echoes the query id");
    Some((m, bytes.len()))
}

/// Asserts the rcode of the response to `p` and that it is no larger than the query plus the
/// amplification slack; returns the response size.
async fn expect_rcode(server: SocketAddr, p: &[u8], want: ResponseCode, what: &str) -> usize {
    let slack = if want == ResponseCode::NXDomain {
        NEGATIVE_SLACK
    } else {
        AMPLIFICATION_SLACK
    };
    let (m, n) = exchange(server, p)
        .await
        .unwrap_or_else(|| panic!("{what}: no response"));
    assert_eq!(m.metadata.response_code, want, "{what}");
    assert!(
        n <= p.len() + slack,
        "{what}: {n}-byte response to a {}-byte query",
        p.len()
    );
    n
}

/// A normal query is still answered with an address.
async fn still_answers(server: SocketAddr) {
    for via in [udp(), tcp()] {
        let m = ask(server, "video.cdn.example.test.", RecordType::A, via).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addrs(&m).len(), 1, "{m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_truncated_packets_never_crash_and_stay_small() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sent = std::collections::HashMap::new();

    // Every prefix of a valid EDNS query with Client Subnet, then 3,000 random packets (half
    // of them starting with a plausible header so they reach the question parser).
    let mut valid = packet(0, 0x0100, 1, 1, &question("video.cdn.example.test", 1, 1));
    valid.extend(opt(&ecs(1, 24, &[192, 0, 2])));
    let mut packets: Vec<Vec<u8>> = (0..valid.len()).map(|n| valid[..n].to_vec()).collect();
    for i in 0..3_000u64 {
        let len = rng.below(300) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && p.len() >= 12 {
            p[2] &= 0x07; // query, opcode 0
            p[4..6].copy_from_slice(&1u16.to_be_bytes());
            p[6..10].fill(0);
            p[10..12].copy_from_slice(&(rng.below(2) as u16).to_be_bytes());
        }
        packets.push(p);
    }
    let mut answered = 0;
    let mut biggest_excess = 0i64;
    for (i, mut p) in packets.into_iter().enumerate() {
        let id = i as u16;
        if p.len() >= 2 {
            p[..2].copy_from_slice(&id.to_be_bytes());
        }
        sock.send_to(&p, server).await.unwrap();
        sent.insert(id, p.len());
        // Drain what came back so far, in small batches so the socket buffer never overflows.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut buf = vec![0u8; 65_535];
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Ok(Ok((n, _))) =
        tokio::time::timeout_at(deadline.into(), sock.recv_from(&mut buf)).await
    {
        answered += 1;
        let m = Message::from_vec(&buf[..n]).expect("every response parses");
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        let qlen = *sent
            .get(&id)
            .expect("the response echoes a query id we sent");
        assert!(
            matches!(
                m.metadata.response_code,
                ResponseCode::FormErr | ResponseCode::NotImp | ResponseCode::Refused
            ),
            "garbage gets an error rcode, got {:?}",
            m.metadata.response_code
        );
        biggest_excess = biggest_excess.max(n as i64 - qlen as i64);
        assert!(
            n <= qlen.max(12) + AMPLIFICATION_SLACK,
            "{n}-byte response to a {qlen}-byte packet"
        );
    }
    assert!(
        answered > 100,
        "malformed queries get FORMERR, not silence ({answered})"
    );
    eprintln!("random packets: {answered} answered, largest excess {biggest_excess} bytes");
    still_answers(server).await;
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_pointers_in_the_question_are_formerr() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    let tail = [0u8, 1, 0, 1];
    // A pointer to itself (offset 12).
    let mut selfloop = vec![0xc0, 12];
    selfloop.extend_from_slice(&tail);
    // A pointer forward, past the question.
    let mut forward = vec![0xc0, 40];
    forward.extend_from_slice(&tail);
    forward.extend_from_slice(&[3, b'c', b'o', b'm', 0]);
    // Two labels pointing at each other.
    let mut mutual = vec![1, b'a', 0xc0, 16, 1, b'b', 0xc0, 12];
    mutual.extend_from_slice(&tail);
    // A pointer out of the packet, and a label running past the end.
    let mut outside = vec![0xff, 0xff];
    outside.extend_from_slice(&tail);
    let overrun = vec![63, b'a', b'b'];
    // Reserved label types 0x40 and 0x80.
    let mut reserved = vec![0x41, b'a', 0];
    reserved.extend_from_slice(&tail);
    for (what, body) in [
        ("self pointer", selfloop),
        ("forward pointer", forward),
        ("pointer loop", mutual),
        ("pointer outside", outside),
        ("label overrun", overrun),
        ("reserved label type", reserved),
    ] {
        let p = packet(0x1234, 0x0100, 1, 0, &body);
        expect_rcode(server, &p, ResponseCode::FormErr, what).await;
        still_answers(server).await;
    }
    // A name longer than 255 octets.
    let long = vec!["a".repeat(63); 5].join(".");
    let p = packet(7, 0x0100, 1, 0, &question(&long, 1, 1));
    expect_rcode(server, &p, ResponseCode::FormErr, "name over 255 octets").await;
    still_answers(server).await;
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_subnet_options_are_formerr() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    let q = question("video.cdn.example.test", 1, 1);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("IPv4 prefix 255", ecs(1, 255, &[10, 0, 0, 0])),
        ("IPv4 prefix 33", ecs(1, 33, &[10, 0, 0, 0, 0])),
        ("IPv6 prefix 129", ecs(2, 129, &[0x20; 17])),
        ("address bits beyond the prefix", ecs(1, 8, &[10, 1])),
        (
            "host bit set inside the last octet",
            ecs(1, 12, &[10, 0x1f]),
        ),
        ("too few address octets", ecs(1, 24, &[10])),
        ("unknown family", ecs(3, 8, &[10])),
        ("option shorter than its header", vec![0, 8, 0, 2, 0, 1]),
        (
            "option length past the record",
            vec![0, 8, 0, 200, 0, 1, 24, 0],
        ),
        (
            "two subnet options",
            [ecs(1, 8, &[10]), ecs(1, 8, &[10])].concat(),
        ),
    ];
    for (what, option) in cases {
        let mut p = packet(0x4242, 0x0100, 1, 1, &q);
        p.extend(opt(&option));
        expect_rcode(server, &p, ResponseCode::FormErr, what).await;
    }
    // Prefix 0 is valid (the client asks not to be located by subnet).
    let mut p = packet(0x4243, 0x0100, 1, 1, &q);
    p.extend(opt(&ecs(1, 0, &[])));
    let (m, _) = exchange(server, &p).await.expect("answered");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    still_answers(server).await;
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcodes_classes_and_question_counts() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    let q = question("video.cdn.example.test", 1, 1);
    // Opcodes other than QUERY (IQUERY 1, STATUS 2, NOTIFY 4, UPDATE 5, unassigned 15): NOTIMP.
    for opcode in [1u16, 2, 4, 5, 15] {
        let p = packet(0x5000 + opcode, (opcode << 11) | 0x0100, 1, 0, &q);
        expect_rcode(
            server,
            &p,
            ResponseCode::NotImp,
            &format!("opcode {opcode}"),
        )
        .await;
    }
    // Classes other than IN (CH, HS, NONE, unassigned 42) in our zone: REFUSED.
    for class in [3u16, 4, 254, 42] {
        let p = packet(
            0x6000 + class,
            0x0100,
            1,
            0,
            &question("video.cdn.example.test", 1, class),
        );
        expect_rcode(server, &p, ResponseCode::Refused, &format!("class {class}")).await;
    }
    // QDCOUNT 0, 2 and 65535: FORMERR.
    expect_rcode(
        server,
        &packet(1, 0x0100, 0, 0, &[]),
        ResponseCode::FormErr,
        "QDCOUNT 0",
    )
    .await;
    let two = [q.clone(), q.clone()].concat();
    expect_rcode(
        server,
        &packet(2, 0x0100, 2, 0, &two),
        ResponseCode::FormErr,
        "QDCOUNT 2",
    )
    .await;
    expect_rcode(
        server,
        &packet(3, 0x0100, 0xffff, 0, &q),
        ResponseCode::FormErr,
        "QDCOUNT 65535",
    )
    .await;
    // Trailing garbage after the question, and ARCOUNT promising records that are not there.
    let mut trailing = packet(4, 0x0100, 1, 0, &q);
    trailing.extend_from_slice(&[0xde, 0xad]);
    expect_rcode(server, &trailing, ResponseCode::FormErr, "trailing bytes").await;
    expect_rcode(
        server,
        &packet(5, 0x0100, 1, 3, &q),
        ResponseCode::FormErr,
        "missing additional records",
    )
    .await;
    // Zone transfers are refused, never served.
    for qtype in [252u16, 251] {
        let p = packet(
            0x7000 + qtype,
            0x0100,
            1,
            0,
            &question("cdn.example.test", qtype, 1),
        );
        let (m, _) = exchange(server, &p).await.expect("answered");
        assert!(
            matches!(
                m.metadata.response_code,
                ResponseCode::Refused | ResponseCode::NotImp
            ),
            "transfer type {qtype}: {:?}",
            m.metadata.response_code
        );
        assert!(m.answers.is_empty());
    }
    // A response packet (QR set) is dropped, so the router cannot be used to reflect.
    let p = packet(9, 0x8100, 1, 0, &q);
    assert!(raw_udp(server, &p, Duration::from_millis(300))
        .await
        .is_none());
    still_answers(server).await;
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_unknown_names_are_not_amplified() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    let mut worst = [0i64; 2];
    for (name, want) in [
        ("www.example.org", ResponseCode::Refused),
        ("a.b.c.d.e.f.g.h.example.net", ResponseCode::Refused),
        ("x", ResponseCode::Refused),
        ("", ResponseCode::Refused),
        ("nope.example.test", ResponseCode::NXDomain),
        ("nope.cdn.example.test", ResponseCode::NXDomain),
    ] {
        for qtype in [1u16, 28, 255, 16] {
            for with_opt in [false, true] {
                let ar = u16::from(with_opt);
                let mut p = packet(0x0a0a, 0x0100, 1, ar, &question(name, qtype, 1));
                if with_opt {
                    p.extend(opt(&[]));
                }
                let n = expect_rcode(server, &p, want, &format!("{name} type {qtype}")).await;
                let w = &mut worst[usize::from(want == ResponseCode::NXDomain)];
                *w = (*w).max(n as i64 - p.len() as i64);
            }
        }
    }
    eprintln!(
        "largest response excess over the query: REFUSED {} bytes, NXDOMAIN (with SOA) {} bytes",
        worst[0], worst[1]
    );
    still_answers(server).await;
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tcp_connections_are_closed_and_others_served() {
    let mut cfg = config([None, None, None]);
    cfg.server.tcp_idle_timeout_ms = 500;
    let router = dns_router::spawn(cfg).unwrap();
    let server = router.dns_addr();
    let q = packet(
        0x3333,
        0x0100,
        1,
        0,
        &question("video.cdn.example.test", 1, 1),
    );
    // 20 connections: some send nothing, some half a length prefix, some a length and half the
    // message.
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut s = tokio::net::TcpStream::connect(server).await.unwrap();
        match i % 3 {
            0 => {}
            1 => s.write_all(&[0]).await.unwrap(),
            _ => {
                s.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
                s.write_all(&q[..q.len() / 2]).await.unwrap();
            }
        }
        stalled.push(s);
    }
    let start = Instant::now();
    // Others are answered meanwhile, over both transports.
    still_answers(server).await;
    // Every stalled connection is closed by the server within the idle timeout plus slack.
    for mut s in stalled {
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        match r {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("a stalled connection got {n} bytes instead of a close"),
            Err(_) => panic!("a stalled connection was still open after 5 s"),
        }
    }
    let closed_after = start.elapsed();
    eprintln!("20 stalled TCP connections closed within {closed_after:?} (idle timeout 500 ms)");
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
    // A complete query on a fresh connection still works, including two pipelined ones.
    let mut s = tokio::net::TcpStream::connect(server).await.unwrap();
    for _ in 0..2 {
        s.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
        s.write_all(&q).await.unwrap();
    }
    for _ in 0..2 {
        let len = s.read_u16().await.unwrap() as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        let m = Message::from_vec(&body).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    still_answers(server).await;
    router.shutdown().await;
}
