//! The router over real UDP and TCP sockets, one rule per test, with hickory's client.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use hickory_net::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_net::proto::rr::{RData, RecordType};
use support::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_name_answers_cname_chain_over_udp_and_tcp() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    for via in [udp(), tcp()] {
        let m = ask(server, "video.example.test.", RecordType::A, via).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative, "AA set");
        assert_eq!(m.answers.len(), 2, "{m:?}");
        let cname = &m.answers[0];
        assert_eq!(cname.record_type(), RecordType::CNAME);
        assert_eq!(cname.ttl, 300);
        assert!(
            matches!(&cname.data, RData::CNAME(c) if c.0.to_ascii() == "video.cdn.example.test.")
        );
        assert_eq!(m.answers[1].name.to_ascii(), "video.cdn.example.test.");
        assert_eq!(m.answers[1].ttl, 20);
        // Default location (127.0.0.1 is in region 1): the region 1 edge.
        assert_eq!(addrs(&m), vec![ip("127.0.1.1")]);
        // Asking for the CNAME itself returns only the alias.
        let m = ask(server, "video.example.test.", RecordType::CNAME, via).await;
        assert_eq!(m.answers.len(), 1);
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apex_has_soa_and_ns_with_glue() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    let m = ask(server, "example.test.", RecordType::SOA, udp()).await;
    assert!(m.metadata.authoritative);
    assert!(
        matches!(&m.answers[0].data, RData::SOA(s) if s.mname.to_ascii() == "ns1.example.test." && s.minimum == 60)
    );
    let m = ask(server, "cdn.example.test.", RecordType::NS, tcp()).await;
    assert!(
        matches!(&m.answers[0].data, RData::NS(n) if n.0.to_ascii() == "ns1.cdn.example.test.")
    );
    let glue: Vec<_> = m
        .additionals
        .iter()
        .map(|r| (r.name.to_ascii(), r.data.ip_addr()))
        .collect();
    assert_eq!(
        glue,
        vec![("ns1.cdn.example.test.".to_string(), Some(ip("127.0.0.1")))]
    );
    let m = ask(server, "ns1.example.test.", RecordType::A, udp()).await;
    assert_eq!(addrs(&m), vec![ip("127.0.0.1")]);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_answers() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    for via in [udp(), tcp()] {
        // Unknown name in a zone: NXDOMAIN with the zone's SOA (TTL = min(SOA TTL, MINIMUM)).
        let m = ask(server, "nope.example.test.", RecordType::A, via).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authoritative);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(m.authorities[0].name.to_ascii(), "example.test.");
        assert_eq!(m.authorities[0].ttl, 60);
        // Existing name, other type: NODATA with the SOA.
        let m = ask(server, "video.cdn.example.test.", RecordType::MX, via).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities[0].name.to_ascii(), "cdn.example.test.");
        // Edges without IPv6: AAAA is NODATA too.
        let m = ask(server, "video.cdn.example.test.", RecordType::AAAA, via).await;
        assert!(m.answers.is_empty() && m.authorities.len() == 1);
        // Outside every zone: REFUSED, not authoritative (not an open resolver).
        let m = ask(server, "www.example.org.", RecordType::A, via).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.authoritative);
        assert!(m.answers.is_empty() && m.authorities.is_empty());
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_gets_a_minimal_answer() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    let m = ask(server, "example.test.", RecordType::ANY, udp()).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        m.answers.len(),
        1,
        "one RRset (RFC 8482), not SOA+NS: {m:?}"
    );
    let m = ask(server, "video.example.test.", RecordType::ANY, udp()).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edns_version_above_zero_gets_badvers() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let via = Via {
        edns_version: 1,
        ..udp()
    };
    let m = ask(
        router.dns_addr(),
        "video.cdn.example.test.",
        RecordType::A,
        via,
    )
    .await;
    // 16 is BADVERS in an OPT context (hickory names the shared code BADSIG).
    assert_eq!(
        u16::from(m.metadata.response_code),
        16,
        "{:?}",
        m.metadata.response_code
    );
    assert!(m.answers.is_empty());
    assert_eq!(
        m.edns.as_ref().map(|e| e.version()),
        Some(0),
        "we speak EDNS version 0"
    );
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcode_gets_notimp_and_malformed_gets_formerr_or_nothing() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    let wait = Duration::from_secs(2);
    let mut m = message("example.test.", RecordType::SOA, udp());
    m.metadata.op_code = OpCode::Status;
    let r = raw_udp(server, &m.to_vec().unwrap(), wait)
        .await
        .expect("an answer to STATUS");
    let r = Message::from_vec(&r).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(r.metadata.id, m.metadata.id);

    // ECS with an address bit beyond its /23 source prefix: FORMERR (RFC 7871 7.1.1).
    let mut q = message(
        "video.cdn.example.test.",
        RecordType::A,
        Via {
            edns: true,
            ..Default::default()
        },
    )
    .to_vec()
    .unwrap();
    // Rewrite the empty OPT RDATA into one carrying a bad ECS option.
    let opt_rdlen = q.len() - 2;
    assert_eq!(&q[opt_rdlen..], &[0, 0]);
    q.truncate(opt_rdlen);
    q.extend_from_slice(&[0, 11, 0, 8, 0, 7, 0, 1, 23, 0, 127, 0, 3]);
    let r = Message::from_vec(&raw_udp(server, &q, wait).await.expect("FORMERR")).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);

    // Two questions: FORMERR. A response (QR=1): no answer. Garbage: FORMERR or no answer.
    let mut two = message("example.test.", RecordType::SOA, Via::default());
    two.add_query(two.queries[0].clone());
    let r =
        Message::from_vec(&raw_udp(server, &two.to_vec().unwrap(), wait).await.unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    let mut resp = message("example.test.", RecordType::SOA, Via::default());
    resp.metadata.message_type = MessageType::Response;
    assert!(
        raw_udp(server, &resp.to_vec().unwrap(), Duration::from_millis(300))
            .await
            .is_none()
    );
    let good = message("video.cdn.example.test.", RecordType::A, Via::default())
        .to_vec()
        .unwrap();
    let mut x = 0x9e37_79b9u32;
    for i in 0..300 {
        let mut p = good.clone();
        p.truncate(12 + (i % (good.len() - 12)));
        for _ in 0..(i % 4) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let at = x as usize % p.len();
            p[at] = (x >> 8) as u8;
        }
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.send_to(&p, server).await.unwrap();
    }
    // Still answering correctly afterwards.
    let m = ask(server, "video.cdn.example.test.", RecordType::A, udp()).await;
    assert_eq!(addrs(&m), vec![ip("127.0.1.1")]);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_answers_truncate_over_udp_and_are_complete_over_tcp() {
    let mut c = config([None, None, None]);
    add_edges(&mut c, 40);
    c.services[0].answer_count = 43;
    let router = dns_router::spawn(c).unwrap();
    let server = router.dns_addr();
    let plain = Via::default();
    let m = ask(server, "video.cdn.example.test.", RecordType::A, plain).await;
    assert!(
        m.metadata.truncation,
        "43 A records do not fit in 512 bytes"
    );
    assert!(m.answers.is_empty());
    assert!(m.edns.is_none(), "no OPT added to a query without one");
    let m = ask(
        server,
        "video.cdn.example.test.",
        RecordType::A,
        Via { tcp: true, ..plain },
    )
    .await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 43);
    let first = addrs(&m)[0];
    assert!(
        first == ip("127.0.1.1") || first.to_string().starts_with("127.0.10."),
        "nearest first: {first}"
    );
    // With EDNS (1232 bytes) the whole answer fits over UDP.
    let m = ask(server, "video.cdn.example.test.", RecordType::A, udp()).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 43);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_in_different_regions_get_different_edges() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    for (src, edge) in [
        ("127.0.1.10", "127.0.1.1"),
        ("127.0.2.10", "127.0.2.1"),
        ("127.0.3.10", "127.0.3.1"),
    ] {
        for via in [
            from(src),
            Via {
                tcp: true,
                ..from(src)
            },
        ] {
            let m = ask(server, "video.example.test.", RecordType::A, via).await;
            assert_eq!(addrs(&m), vec![ip(edge)], "client {src}");
            assert!(
                m.edns.as_ref().is_some_and(|e| e
                    .option(hickory_net::proto::rr::rdata::opt::EdnsCode::Subnet)
                    .is_none()),
                "no ECS in the reply to a query without one"
            );
        }
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_changes_the_answer_and_is_echoed_with_a_scope() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    let base = from("127.0.1.10");
    let m = ask(server, "video.cdn.example.test.", RecordType::A, base).await;
    assert_eq!(addrs(&m), vec![ip("127.0.1.1")]);
    for via in [
        Via {
            ecs: Some((ip("127.0.3.0"), 24)),
            ..base
        },
        Via {
            ecs: Some((ip("127.0.3.0"), 24)),
            tcp: true,
            ..base
        },
    ] {
        let m = ask(server, "video.cdn.example.test.", RecordType::A, via).await;
        assert_eq!(
            addrs(&m),
            vec![ip("127.0.3.1")],
            "ECS places the client in region 3"
        );
        assert_eq!(
            ecs_of(&m),
            Some((ip("127.0.3.0"), 24, 24)),
            "echoed with scope /24"
        );
    }
    // A /16 cannot reach the /24 coverage entries: default location, scope /16.
    let m = ask(
        server,
        "video.cdn.example.test.",
        RecordType::A,
        Via {
            ecs: Some((ip("127.0.0.0"), 16)),
            ..base
        },
    )
    .await;
    assert_eq!(addrs(&m), vec![ip("127.0.1.1")]);
    assert_eq!(ecs_of(&m), Some((ip("127.0.0.0"), 16, 16)));
    // An answer that does not depend on location carries scope 0.
    let m = ask(
        server,
        "video.example.test.",
        RecordType::CNAME,
        Via {
            ecs: Some((ip("127.0.3.0"), 24)),
            ..base
        },
    )
    .await;
    assert_eq!(ecs_of(&m), Some((ip("127.0.3.0"), 24, 0)));
    let m = ask(
        server,
        "nope.example.test.",
        RecordType::A,
        Via {
            ecs: Some((ip("127.0.3.0"), 24)),
            ..base
        },
    )
    .await;
    assert_eq!(ecs_of(&m).map(|e| e.2), Some(0));
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_and_tcp_answers_agree() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    let cases = [
        ("video.example.test.", RecordType::A),
        ("video.cdn.example.test.", RecordType::A),
        ("example.test.", RecordType::NS),
        ("example.test.", RecordType::ANY),
        ("nope.cdn.example.test.", RecordType::A),
        ("origin.example.test.", RecordType::TXT),
        ("x.example.net.", RecordType::A),
    ];
    for (name, t) in cases {
        let via = Via {
            ecs: Some((ip("127.0.2.0"), 24)),
            ..from("127.0.3.3")
        };
        let mut a = ask(server, name, t, via).await;
        let mut b = ask(server, name, t, Via { tcp: true, ..via }).await;
        a.metadata.id = 0;
        b.metadata.id = 0;
        assert_eq!(a, b, "{name} {t}");
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_edge_leaves_within_interval_times_fall_and_returns() {
    let stubs = [
        HealthStub::start().await,
        HealthStub::start().await,
        HealthStub::start().await,
    ];
    let router =
        dns_router::spawn(config([Some(&stubs[0]), Some(&stubs[1]), Some(&stubs[2])])).unwrap();
    let server = router.dns_addr();
    let region1 = from("127.0.1.10");
    let edge_of =
        || async { addrs(&ask(server, "video.cdn.example.test.", RecordType::A, region1).await) };
    assert_eq!(edge_of().await, vec![ip("127.0.1.1")]);
    stubs[0].stop();
    // Detection takes at most interval x fall (the first failing check comes within one
    // interval of the stop); the slack covers scheduling and the 20 ms polling.
    let slack = Duration::from_millis(250);
    let bound = Duration::from_millis(INTERVAL_MS * FALL as u64) + slack;
    let took = eventually(Duration::from_secs(5), async || {
        edge_of().await == vec![ip("127.0.2.1")]
    })
    .await;
    let took = took.expect("region 1 clients never moved to the next nearest edge");
    assert!(took <= bound, "removal took {took:?}, more than {bound:?}");
    stubs[0].resume().await;
    let took = eventually(Duration::from_secs(5), async || {
        edge_of().await == vec![ip("127.0.1.1")]
    })
    .await;
    let took = took.expect("edge never came back");
    let bound = Duration::from_millis(INTERVAL_MS * RISE as u64) + slack;
    assert!(took <= bound, "restore took {took:?}, more than {bound:?}");
    let metrics = common::http::get(&format!("http://{}/metrics", router.metrics_addr()))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics);
    assert!(text.contains("dns_edge_up{edge=\"region1\"} 1"), "{text}");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overloaded_edge_spills_and_all_down_falls_back() {
    let stubs = [
        HealthStub::start().await,
        HealthStub::start().await,
        HealthStub::start().await,
    ];
    let router =
        dns_router::spawn(config([Some(&stubs[0]), Some(&stubs[1]), Some(&stubs[2])])).unwrap();
    let server = router.dns_addr();
    let region1 = Via {
        ecs: Some((ip("127.0.1.0"), 24)),
        ..udp()
    };
    let edge_of = || async { ask(server, "video.cdn.example.test.", RecordType::A, region1).await };
    stubs[0].set_load(1.0);
    let took = eventually(Duration::from_secs(3), async || {
        addrs(&edge_of().await) == vec![ip("127.0.2.1")]
    })
    .await;
    assert!(
        took.is_some(),
        "load at capacity did not spill to the next nearest edge"
    );
    stubs[0].set_load(0.2);
    assert!(
        eventually(Duration::from_secs(3), async || addrs(&edge_of().await)
            == vec![ip("127.0.1.1")])
        .await
        .is_some()
    );
    for s in &stubs {
        s.stop();
    }
    let took = eventually(Duration::from_secs(3), async || {
        addrs(&edge_of().await) == vec![ip("127.0.0.1")]
    })
    .await;
    assert!(took.is_some(), "no fallback answer with every edge down");
    let m = edge_of().await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        ecs_of(&m).map(|e| e.2),
        Some(0),
        "the fallback does not depend on location"
    );
    let metrics = common::http::get(&format!("http://{}/metrics", router.metrics_addr()))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics);
    assert!(
        text.contains(r#"dns_steering_decisions_total{edge="fallback",location="region1"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"dns_steering_decisions_total{edge="region2",location="region1"}"#),
        "{text}"
    );
    assert!(text.contains("dns_edge_up{edge=\"region2\"} 0"), "{text}");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_config_without_dropping_queries() {
    let router = std::sync::Arc::new(dns_router::spawn(config([None, None, None])).unwrap());
    let server = router.dns_addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let q = message("video.example.test.", RecordType::A, Via::default())
                .to_vec()
                .unwrap();
            let (mut sent, mut answered) = (0u32, 0u32);
            let mut buf = [0u8; 1500];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 20_000 {
                sock.send_to(&q, server).await.unwrap();
                sent += 1;
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await
                {
                    answered += 1;
                }
            }
            (sent, answered)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    for ttl in [301, 302, 303, 304, 305] {
        let mut c = config([None, None, None]);
        c.content[0].ttl = ttl;
        router.reload(c).unwrap();
        let m = ask(server, "video.example.test.", RecordType::A, udp()).await;
        assert_eq!(m.answers[0].ttl, ttl, "new config in effect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut broken = config([None, None, None]);
    broken.content[0].name = "video.example.org".into();
    assert!(
        router.reload(broken).is_err(),
        "an invalid config is refused"
    );
    assert_eq!(
        ask(server, "video.example.test.", RecordType::A, udp())
            .await
            .answers[0]
            .ttl,
        305,
        "and the old one stays"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, answered) = load.await.unwrap();
    assert!(sent > 50, "load loop ran ({sent})");
    assert_eq!(sent, answered, "every query during reloads was answered");
    match std::sync::Arc::try_unwrap(router) {
        Ok(r) => r.shutdown().await,
        Err(_) => panic!("router still shared"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_queries_latency_and_health() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let server = router.dns_addr();
    ask(
        server,
        "video.cdn.example.test.",
        RecordType::A,
        from("127.0.2.10"),
    )
    .await;
    ask(server, "nope.example.test.", RecordType::AAAA, tcp()).await;
    let body = common::http::get(&format!("http://{}/metrics", router.metrics_addr()))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    for needle in [
        r#"dns_queries_total{protocol="udp",qtype="A",rcode="NOERROR"} 1"#,
        r#"dns_queries_total{protocol="tcp",qtype="AAAA",rcode="NXDOMAIN"} 1"#,
        r#"dns_steering_decisions_total{edge="region2",location="region2"} 1"#,
        r#"dns_answer_seconds_count{protocol="udp"} 1"#,
        r#"dns_edge_up{edge="region3"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equally_near_edges_are_chosen_by_subnet_hash() {
    let mut c = config([None, None, None]);
    add_edges(&mut c, 3); // three more edges at region 1's coordinates
    let router = dns_router::spawn(c).unwrap();
    let server = router.dns_addr();
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..40u8 {
        let subnet = IpAddr::from([10, 0, n, 0]);
        let via = Via {
            ecs: Some((subnet, 24)),
            ..udp()
        };
        let a = ask(server, "video.cdn.example.test.", RecordType::A, via).await;
        let b = ask(server, "video.cdn.example.test.", RecordType::A, via).await;
        assert_eq!(addrs(&a), addrs(&b), "one subnet keeps its edge");
        assert_eq!(addrs(&a).len(), 1);
        assert_eq!(
            ecs_of(&a).map(|e| e.2),
            Some(24),
            "the answer depends on the /24"
        );
        seen.insert(addrs(&a)[0]);
    }
    assert!(
        seen.len() >= 3,
        "subnets spread over the four equal edges: {seen:?}"
    );
    assert!(seen
        .iter()
        .all(|a| a.to_string().starts_with("127.0.1.") || a.to_string().starts_with("127.0.10.")));
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_ecs_is_echoed_and_located() {
    let mut c = config([None, None, None]);
    c.geo
        .coverage_zones
        .get_mut("region3")
        .unwrap()
        .network6
        .push("2001:db8:3::/48".into());
    let router = dns_router::spawn(c).unwrap();
    let server = router.dns_addr();
    let via = Via {
        ecs: Some((ip("2001:db8:3:1::"), 64)),
        ..udp()
    };
    let m = ask(server, "video.cdn.example.test.", RecordType::A, via).await;
    assert_eq!(addrs(&m), vec![ip("127.0.3.1")]);
    assert_eq!(
        ecs_of(&m),
        Some((ip("2001:db8:3:1::"), 64, 48)),
        "scope is the matched /48"
    );
    let via = Via {
        ecs: Some((ip("2001:db8:9::"), 56)),
        ..udp()
    };
    let m = ask(server, "video.cdn.example.test.", RecordType::A, via).await;
    assert_eq!(
        addrs(&m),
        vec![ip("127.0.1.1")],
        "unmatched: default location"
    );
    assert_eq!(ecs_of(&m).map(|e| (e.1, e.2)), Some((56, 56)));
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_layout_answers() {
    // One shared socket (the default), one socket per worker, and two sockets for three workers.
    for sockets in [1, 0, 2] {
        let mut c = config([None, None, None]);
        c.server.udp_workers = 3;
        c.server.udp_sockets = sockets;
        let router = dns_router::spawn(c).unwrap();
        let server = router.dns_addr();
        for (src, edge) in [("127.0.2.20", "127.0.2.1"), ("127.0.3.20", "127.0.3.1")] {
            for _ in 0..5 {
                let m = ask(server, "video.cdn.example.test.", RecordType::A, from(src)).await;
                assert_eq!(addrs(&m), vec![ip(edge)], "udp_sockets = {sockets}");
            }
        }
        router.shutdown().await;
    }
}
