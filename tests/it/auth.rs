//! Digest authentication (issue 16): the challenges auth sends and what
//! it refuses at load. The checks against a subscriber table are with
//! the database tests.

use crate::common::server::{check_config, Ser};
use crate::common::{free_udp_port, header_value, serial, status_of, Request, TestDir, UdpPeer};
use std::time::Duration;

fn cfg(port: u16, route: &str) -> String {
    format!(
        r#"
debug=2
log_stderror=yes
listen=udp:127.0.0.1:{port}
children=2
fifo=""
loadmodule "/usr/local/lib/ser/modules/sl.so"
loadmodule "/usr/local/lib/ser/modules/auth.so"
modparam("auth", "nonce_expire", 60)
route {{
{route}
}}
"#
    )
}

/// The WWW-Authenticate / Proxy-Authenticate value of a challenge.
fn challenge_of(m: &[u8], header: &str) -> String {
    header_value(m, header).unwrap_or_else(|| panic!("no {header}: {}", String::from_utf8_lossy(m)))
}

fn nonce_of(ch: &str) -> String {
    let at = ch.find("nonce=\"").expect("a nonce") + 7;
    ch[at..].split('"').next().unwrap_or_default().to_string()
}

/// REGISTER gets 401 with `WWW-Authenticate` (qop offered when asked),
/// other requests 407 with `Proxy-Authenticate` in the From domain when
/// the realm is left empty; each challenge has its own 48-hex nonce.
#[test]
fn challenges_carry_a_fresh_nonce_each() {
    let _g = serial();
    let port = free_udp_port();
    let ser = Ser::start(&cfg(
        port,
        r#"    if (method == "REGISTER") {
        www_challenge("example.com", "1");
        break;
    };
    proxy_challenge("", "0");"#,
    ));
    let ua = UdpPeer::bind();
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let reg = Request::new("REGISTER", "sip:example.com", ua.port());
        ua.send_to_port(&reg.build(), port);
        let (m, _) = ua
            .recv_final(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no answer\n{}", ser.log()));
        assert_eq!(status_of(&m), Some(401), "{}", String::from_utf8_lossy(&m));
        let ch = challenge_of(&m, "WWW-Authenticate");
        assert!(
            ch.starts_with("Digest realm=\"example.com\", nonce=\""),
            "{ch}"
        );
        assert!(
            ch.contains("qop=\"auth\"") && ch.contains("algorithm=MD5"),
            "{ch}"
        );
        assert!(!ch.contains("stale"), "{ch}");
        let n = nonce_of(&ch);
        assert_eq!(n.len(), 48, "{n}");
        assert!(n.bytes().all(|b| b.is_ascii_hexdigit()), "{n}");
        nonces.push(n);
    }
    assert_ne!(nonces[0], nonces[1]);
    let msg = Request::new("MESSAGE", "sip:bob@127.0.0.1", ua.port());
    ua.send_to_port(&msg.build(), port);
    let (m, _) = ua.recv_final(Duration::from_secs(5)).expect("an answer");
    assert_eq!(status_of(&m), Some(407), "{}", String::from_utf8_lossy(&m));
    let ch = challenge_of(&m, "Proxy-Authenticate");
    let from_host = header_value(&msg.build(), "From")
        .and_then(|f| {
            f.split('@')
                .nth(1)
                .map(|h| h.split(['>', ';', ':']).next().unwrap_or("").to_string())
        })
        .unwrap_or_default();
    assert!(
        ch.starts_with(&format!("Digest realm=\"{from_host}\", nonce=\"")),
        "{ch}"
    );
    assert!(!ch.contains("qop"), "{ch}");
}

/// What auth does not honour is refused by `ser -c` with file:line.
#[test]
fn unknown_settings_and_bad_arguments_are_refused_at_load() {
    let dir = TestDir::new();
    for (route, extra, what) in [
        (r#"    www_challenge("x", "2");"#, "", "qop"),
        (r#"    append_rpid_hf();"#, "", "append_rpid_hf"),
        (
            r#"    www_challenge("x", "0");"#,
            r#"modparam("auth", "rpid_prefix", "<")"#,
            "rpid_prefix",
        ),
        (
            r#"    www_challenge("x", "0");"#,
            r#"modparam("auth", "nonce_expire", 0)"#,
            "nonce_expire",
        ),
    ] {
        let text = cfg(5060, route).replace("route {", &format!("{extra}\nroute {{"));
        let file = dir.write("ser.cfg", text.as_bytes());
        let r = check_config(&file);
        assert_ne!(r.code(), Some(0), "{what}: {r:?}");
        assert!(r.stderr.contains(what), "{what}: {}", r.stderr);
        assert!(
            r.stderr.contains("ser.cfg:"),
            "{what}: no file:line in {}",
            r.stderr
        );
    }
    let ok = dir.write(
        "ok.cfg",
        cfg(5060, r#"    www_challenge("x", "1");"#).as_bytes(),
    );
    let r = check_config(&ok);
    assert_eq!(r.code(), Some(0), "{r:?}");
}
