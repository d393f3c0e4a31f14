//! Fuzz check: any bytes as a DNS query packet through the router's answer path (the
//! code the UDP workers and the TCP handler share). A response must fit the transport's limit,
//! parse with hickory-proto, echo the query id, and for refused or malformed queries be no
//! larger than the query plus a small bound (no amplification).

use std::net::SocketAddr;
use std::sync::OnceLock;

use dns_router::answer::handle;
use dns_router::config::Config;
use dns_router::metrics::{Metrics, Proto};
use dns_router::zone::Snapshot;
use hickory_proto::op::{Message, ResponseCode};

/// Bytes an error response may add to the query (header rewrite, OPT record).
const ERROR_SLACK: usize = 64;

fn state() -> &'static (Snapshot, Metrics) {
    static STATE: OnceLock<(Snapshot, Metrics)> = OnceLock::new();
    STATE.get_or_init(|| {
        let metrics = Metrics::new().expect("metrics");
        let snap = Snapshot::build(Config::local_default(), &metrics).expect("default zone");
        (snap, metrics)
    })
}

/// Runs one input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let Some((&sel, packet)) = data.split_first() else {
        return;
    };
    let (snap, metrics) = state();
    let proto = if sel & 1 == 0 { Proto::Udp } else { Proto::Tcp };
    let src: SocketAddr = if sel & 2 == 0 {
        "127.0.0.1:5353".parse().unwrap()
    } else {
        "[2001:db8::1]:5353".parse().unwrap()
    };
    let mut out = vec![0u8; 4096];
    let n = handle(snap, metrics, packet, src, proto, &mut out);
    if n == 0 {
        return;
    }
    assert!(n <= out.len());
    if proto == Proto::Udp {
        assert!(n <= 4096, "UDP response within our payload size");
    }
    assert!(packet.len() >= 2, "a response needs a query id");
    assert_eq!(out[..2], packet[..2], "response echoes the query id");
    let msg = Message::from_vec(&out[..n]).expect("the response parses with hickory-proto");
    assert_eq!(
        msg.metadata.message_type,
        hickory_proto::op::MessageType::Response
    );
    let rc = msg.metadata.response_code;
    if matches!(
        rc,
        ResponseCode::Refused | ResponseCode::FormErr | ResponseCode::NotImp
    ) {
        assert!(
            n <= packet.len().max(12) + ERROR_SLACK,
            "{rc:?} response of {n} bytes to a {}-byte query",
            packet.len()
        );
    }
}
