//! The textbook CDN flow through the real DNS router, checked with the real `dig` and `kdig`:
//! the content name is a CNAME to the CDN name, and that name resolves to the edge of the
//! client's region, by source address or by EDNS Client Subnet, over UDP and TCP.

use std::time::{Duration, Instant};

use cdn_tests::{run_tool, TestStack};

/// The (type, data) pairs of an answer section printed with `+noall +answer`.
fn answers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5).then(|| (f[3].to_string(), f[4].to_string()))
        })
        .collect()
}

/// Repeats `query` until it returns `want` (the router needs a few health checks to see edges up).
fn eventually(want: &[(String, String)], query: impl Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = query();
        if answers(&out) == want || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pair(t: &str, d: impl ToString) -> (String, String) {
    (t.to_string(), d.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn cname_chain_and_region_steering_with_dig_and_kdig() {
    let t = TestStack::start().await.expect("stack starts");
    let dns = t.stack.dns.dns_addr();
    let server = format!("@{}", dns.ip());
    let port = dns.port().to_string();

    for region in 1..=3u8 {
        let client = t.client_in_region(region).to_string();
        let want = vec![
            pair("CNAME", "video.cdn.example.test."),
            pair("A", t.edge_ip(region)),
        ];
        let args: Vec<String> = [
            &server,
            "-p",
            &port,
            "-b",
            &client,
            "video.example.test",
            "A",
            "+noall",
            "+answer",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = tokio::task::block_in_place(|| eventually(&want, || run_tool("dig", &args)));
        assert_eq!(
            answers(&out),
            want,
            "dig from region {region} ({client}):\n{out}"
        );
    }

    // Over TCP, from region 2.
    let client2 = t.client_in_region(2).to_string();
    let args: Vec<String> = [
        &server,
        "-p",
        &port,
        "-b",
        &client2,
        "+tcp",
        "video.example.test",
        "A",
        "+noall",
        "+answer",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::block_in_place(|| run_tool("dig", &args));
    assert_eq!(
        answers(&out),
        vec![
            pair("CNAME", "video.cdn.example.test."),
            pair("A", t.edge_ip(2))
        ],
        "{out}"
    );

    // kdig with an ECS option placing the client in region 3, while its source address is in
    // region 1: the subnet wins, and the reply echoes the option with a scope.
    let subnet = format!("+subnet=127.{}.3.0/24", t.octet);
    let args: Vec<String> = [
        &server,
        "-p",
        &port,
        "-b",
        &t.client_in_region(1).to_string(),
        &subnet,
        "video.cdn.example.test",
        "A",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::block_in_place(|| run_tool("kdig", &args));
    assert!(
        out.contains(&format!("video.cdn.example.test. 20 IN A {}", t.edge_ip(3)))
            || out.lines().any(|l| l.contains("video.cdn.example.test.")
                && l.trim_end().ends_with(&t.edge_ip(3).to_string())),
        "kdig +subnet did not steer to region 3:\n{out}"
    );
    assert!(
        out.contains("CLIENT-SUBNET"),
        "kdig reply carries no ECS option:\n{out}"
    );
    assert!(
        out.contains(&format!("127.{}.3.0/24/24", t.octet)),
        "ECS not echoed with scope /24:\n{out}"
    );

    t.stack.shutdown().await;
}
