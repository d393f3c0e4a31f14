//! Interop with real DNS clients: BIND's `dig` and Knot's `kdig` against the router, over UDP
//! and TCP, with EDNS Client Subnet (`+subnet`) and source-address binding (`-b`).

mod support;

use std::net::SocketAddr;

use support::config;

async fn run(tool: &str, server: SocketAddr, args: &[&str]) -> String {
    let path = common::tools::require(tool);
    let port = server.port().to_string();
    let mut cmd = tokio::process::Command::new(path);
    let common_args: &[&str] = match tool {
        "kdig" => &["+nordflag", "+time=3", "+retry=0"],
        _ => &["+norec", "+time=3", "+tries=1"],
    };
    cmd.args(["@127.0.0.1", "-p", &port])
        .args(common_args)
        .args(args);
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{tool} {args:?} hung"))
        .unwrap_or_else(|e| panic!("{tool} {args:?} failed to run: {e}"));
    // Whitespace normalised per line (dig separates fields with tabs).
    let text: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    assert!(
        out.status.success(),
        "{tool} {args:?} exited with {}:\n{text}",
        out.status
    );
    text
}

/// The answer-section lines, whitespace-normalised.
fn answers(text: &str) -> Vec<String> {
    section(text, "ANSWER")
}

/// The lines of one section (`ANSWER`, `AUTHORITY`, ...), whitespace-normalised.
fn section(text: &str, name: &str) -> Vec<String> {
    let header = format!("{name} SECTION");
    let mut in_answer = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.contains(&header) {
            in_answer = true;
            continue;
        }
        if in_answer {
            if line.trim().is_empty() || line.starts_with(";;") {
                break;
            }
            out.push(line.to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_sees_the_cname_chain_steering_and_ecs() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let s = router.dns_addr();
    let t = run("dig", s, &["-b", "127.0.2.10", "video.example.test", "A"]).await;
    assert!(
        t.contains("status: NOERROR") && t.contains("flags: qr aa;"),
        "{t}"
    );
    assert_eq!(
        answers(&t),
        [
            "video.example.test. 300 IN CNAME video.cdn.example.test.",
            "video.cdn.example.test. 20 IN A 127.0.2.1"
        ],
        "{t}"
    );
    let t = run(
        "dig",
        s,
        &[
            "-b",
            "127.0.2.10",
            "+subnet=127.0.3.0/24",
            "video.cdn.example.test",
        ],
    )
    .await;
    assert_eq!(
        answers(&t),
        ["video.cdn.example.test. 20 IN A 127.0.3.1"],
        "{t}"
    );
    assert!(t.contains("CLIENT-SUBNET: 127.0.3.0/24/24"), "{t}");
    let t = run(
        "dig",
        s,
        &["+tcp", "-b", "127.0.3.10", "video.cdn.example.test"],
    )
    .await;
    assert!(t.contains("(TCP)"), "{t}");
    assert_eq!(
        answers(&t),
        ["video.cdn.example.test. 20 IN A 127.0.3.1"],
        "{t}"
    );
    assert!(
        !t.contains("CLIENT-SUBNET"),
        "no ECS added to a query without one: {t}"
    );
    let t = run("dig", s, &["nothing.example.test", "A"]).await;
    assert!(
        t.contains("status: NXDOMAIN") && t.contains("example.test. 60 IN SOA"),
        "{t}"
    );
    // A CNAME chain ending in a name without the asked type: the chain in the answer and the
    // target zone's SOA in the authority section, so resolvers can cache the NODATA (RFC 2308).
    let t = run("dig", s, &["video.example.test", "AAAA"]).await;
    assert!(t.contains("status: NOERROR"), "{t}");
    assert_eq!(
        answers(&t),
        ["video.example.test. 300 IN CNAME video.cdn.example.test."],
        "{t}"
    );
    assert!(
        section(&t, "AUTHORITY")
            .iter()
            .any(|l| l.starts_with("cdn.example.test. ") && l.contains(" IN SOA ")),
        "{t}"
    );
    let t = run("dig", s, &["www.example.org", "A"]).await;
    assert!(t.contains("status: REFUSED"), "{t}");
    let t = run(
        "dig",
        s,
        &["+edns=1", "+noednsnegotiation", "example.test", "SOA"],
    )
    .await;
    assert!(t.contains("status: BADVERS"), "{t}");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_gets_tc_over_udp_without_edns_and_the_full_answer_over_tcp() {
    let mut c = config([None, None, None]);
    support::add_edges(&mut c, 40);
    c.services[0].answer_count = 43;
    let router = dns_router::spawn(c).unwrap();
    let s = router.dns_addr();
    let t = run("dig", s, &["+noedns", "+ignore", "video.cdn.example.test"]).await;
    assert!(t.contains("flags: qr aa tc;"), "{t}");
    let t = run("dig", s, &["+noedns", "video.cdn.example.test"]).await;
    assert!(
        t.contains("retrying in TCP mode"),
        "dig falls back to TCP on TC: {t}"
    );
    assert_eq!(answers(&t).len(), 43, "{t}");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_sees_the_same_over_udp_and_tcp() {
    let router = dns_router::spawn(config([None, None, None])).unwrap();
    let s = router.dns_addr();
    let t = run("kdig", s, &["-b", "127.0.1.10", "video.example.test", "A"]).await;
    assert!(
        t.contains("status: NOERROR") && t.contains("Flags: qr aa"),
        "{t}"
    );
    assert_eq!(
        answers(&t),
        [
            "video.example.test. 300 IN CNAME video.cdn.example.test.",
            "video.cdn.example.test. 20 IN A 127.0.1.1"
        ],
        "{t}"
    );
    let t = run(
        "kdig",
        s,
        &[
            "-b",
            "127.0.1.10",
            "+subnet=127.0.2.0/24",
            "video.cdn.example.test",
        ],
    )
    .await;
    assert_eq!(
        answers(&t),
        ["video.cdn.example.test. 20 IN A 127.0.2.1"],
        "{t}"
    );
    assert!(t.contains("CLIENT-SUBNET: 127.0.2.0/24/24"), "{t}");
    let t = run(
        "kdig",
        s,
        &[
            "+tcp",
            "-b",
            "127.0.3.10",
            "+subnet=127.0.1.0/24",
            "video.cdn.example.test",
        ],
    )
    .await;
    assert!(t.contains("(TCP)"), "{t}");
    assert_eq!(
        answers(&t),
        ["video.cdn.example.test. 20 IN A 127.0.1.1"],
        "{t}"
    );
    assert!(t.contains("CLIENT-SUBNET: 127.0.1.0/24/24"), "{t}");
    let t = run("kdig", s, &["video.cdn.example.test", "MX"]).await;
    assert!(
        t.contains("status: NOERROR") && t.contains("AUTHORITY SECTION"),
        "NODATA with SOA: {t}"
    );
    router.shutdown().await;
}
