//! Input hardening against the built binary (issue 8, item 7): oversized bodies, deeply nested
//! JSON, huge headers, slow clients, invalid UTF-8 and traversal-like IDs each get a clear 4xx in
//! the error envelope or a closed connection, never a crash, and the process's peak memory stays
//! bounded while it is sent far more bytes than it could hold.
//!
//! Raw sockets, so that what is sent is exactly what is written here (no client normalises it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::Running;

const OWNER_KEY: &str = "hardening-owner-key-0123456789abcdefghij";

/// The status and body of a response to `head` + `body` sent on a new connection, or None when
/// the service closed the connection without answering.
fn exchange(addr: &str, head: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The service may answer (413) and close before the whole body is written: not an error.
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn request(method: &str, path: &str, extra_headers: &str, body: &[u8]) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {OWNER_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )
}

/// Asserts a 4xx in the E1 envelope with one of the given codes.
fn assert_envelope(what: &str, reply: Option<(u16, String)>, status: u16, codes: &[&str]) {
    let (got, body) = reply.unwrap_or_else(|| panic!("{what}: connection closed, no answer"));
    assert_eq!(got, status, "{what}: {body}");
    // A chunked body arrives with its chunk-size lines: take the JSON object inside.
    let json = &body[body.find('{').unwrap_or(0)..=body.rfind('}').unwrap_or(0)];
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    let code = v["error"]["code"].as_str().unwrap_or_default();
    assert!(codes.contains(&code), "{what}: {body}");
    assert!(v["request_id"].is_string(), "{what}: {body}");
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn e1_hostile_input_gets_a_clear_4xx_or_a_closed_connection_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::ready_with_owner(dir.path(), OWNER_KEY).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let pid = app.child.id();
    let start_rss = peak_rss_kib(pid);

    // Oversized bodies: 16 at once, 8 MiB each (128 MiB in all), declared and chunked.
    let big = vec![b' '; 8 * 1024 * 1024];
    std::thread::scope(|scope| {
        for i in 0..16 {
            let (addr, big) = (&addr, &big);
            scope.spawn(move || {
                let reply = if i % 2 == 0 {
                    exchange(addr, &request("POST", "/v1/vaults", "", big), big)
                } else {
                    let head = format!(
                        "POST /v1/vaults HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {OWNER_KEY}\r\n\
                         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    );
                    let mut chunked = Vec::with_capacity(big.len() + 64);
                    for part in big.chunks(64 * 1024) {
                        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                        chunked.extend_from_slice(part);
                        chunked.extend_from_slice(b"\r\n");
                    }
                    chunked.extend_from_slice(b"0\r\n\r\n");
                    exchange(addr, &head, &chunked)
                };
                assert_envelope("oversized body", reply, 413, &["too_large"]);
            });
        }
    });

    // Deeply nested JSON, under the size limit: refused (serde_json stops at depth 128).
    for depth in [200, 9_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let reply = exchange(
            &addr,
            &request("POST", "/v1/vaults", "", nested.as_bytes()),
            nested.as_bytes(),
        );
        assert_envelope(
            "nested JSON",
            reply,
            400,
            &["malformed_json", "invalid_body"],
        );
        let object = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let reply = exchange(
            &addr,
            &request("POST", "/v1/vaults", "", object.as_bytes()),
            object.as_bytes(),
        );
        assert_envelope(
            "nested JSON object",
            reply,
            400,
            &["malformed_json", "invalid_body"],
        );
    }

    // Huge headers: over our 16 KiB limit (431 in the envelope); far over hyper's buffer (431
    // or closed); too many headers (431 or closed).
    let header = format!("X-Filler: {}\r\n", "a".repeat(20 * 1024));
    let reply = exchange(&addr, &request("GET", "/v1/vaults", &header, b""), b"");
    assert_envelope("20 KiB header", reply, 431, &["headers_too_large"]);
    let header = format!("X-Filler: {}\r\n", "a".repeat(1024 * 1024));
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (what, extra) in [("1 MiB header", header), ("500 headers", many)] {
        if let Some((status, body)) =
            exchange(&addr, &request("GET", "/v1/vaults", &extra, b""), b"")
        {
            assert_eq!(status, 431, "{what}: {body}");
        }
    }

    // Invalid UTF-8: in a JSON body, in a path segment, in a query string.
    let body = b"{\"name\": \"\xff\xfe\", \"type\": \"USER_CREATED\"}";
    let reply = exchange(&addr, &request("POST", "/v1/vaults", "", body), body);
    assert_envelope("invalid UTF-8 body", reply, 400, &["malformed_json"]);
    let reply = exchange(&addr, &request("GET", "/v1/vaults/%FF%FE", "", b""), b"");
    assert_envelope("invalid UTF-8 path", reply, 400, &["invalid_path"]);
    let reply = exchange(
        &addr,
        &request("GET", "/v1/connect/tokens?server=%FF", "", b""),
        b"",
    );
    assert_envelope(
        "invalid UTF-8 query (decoded lossily, a name found nowhere)",
        reply,
        404,
        &["not_found"],
    );

    // Traversal-like and odd IDs: looked up as names, found nowhere.
    for path in [
        "/v1/vaults/..%2F..%2Fetc%2Fpasswd",
        "/v1/vaults/%2e%2e",
        "/v1/connect/servers/..%2F..%2Fv1%2Fusers",
        "/v1/connect/servers/%00",
        "/v1/groups/%252e%252e%252f",
        "/v1/users/..%5C..%5Cwindows",
    ] {
        let reply = exchange(&addr, &request("GET", path, "", b""), b"");
        assert_envelope(path, reply, 404, &["not_found"]);
    }
    for path in ["/v1/../v1/users", "/v1/vaults/../users", "//v1/users"] {
        let reply = exchange(&addr, &request("GET", path, "", b""), b"");
        assert_envelope(path, reply, 404, &["not_found"]);
    }

    // Slow clients: 256 connections trickling a request head a byte a second. Meanwhile the
    // service answers others, and it closes every slow one within its header read timeout.
    let slow: Vec<TcpStream> = (0..256)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /v1/vaults HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    let opened = Instant::now();
    for _ in 0..20 {
        let reply = exchange(&addr, &request("GET", "/healthz", "", b""), b"");
        assert_eq!(reply.map(|r| r.0), Some(200), "healthz beside slow clients");
    }
    let trickle = std::thread::spawn(move || {
        let mut closed_after = Vec::new();
        let mut open = slow;
        while !open.is_empty() && opened.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_secs(1));
            open.retain_mut(|s| {
                // A write to a closed connection fails once the reset has come back.
                if s.write_all(b"X").is_err() {
                    closed_after.push(opened.elapsed());
                    return false;
                }
                true
            });
        }
        (open.len(), closed_after)
    });
    let (still_open, closed_after) = trickle.join().unwrap();
    assert_eq!(still_open, 0, "slow connections still open after 30 s");
    let latest = closed_after.iter().max().unwrap();
    eprintln!(
        "hardening: 256 slow connections closed after {:.1}-{:.1} s",
        closed_after.iter().min().unwrap().as_secs_f64(),
        latest.as_secs_f64()
    );

    // Still alive and serving; peak memory bounded although 128 MiB of bodies were sent at it.
    let reply = exchange(&addr, &request("GET", "/v1/vaults", "", b""), b"");
    assert_eq!(reply.map(|r| r.0), Some(200));
    let peak = peak_rss_kib(pid);
    eprintln!(
        "hardening: peak RSS {} MiB at start, {} MiB after everything",
        start_rss / 1024,
        peak / 1024
    );
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
    app.stop();
}
