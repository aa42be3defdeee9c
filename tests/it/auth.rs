//! Digest authentication (issue 16): the challenges auth sends and what
//! it refuses at load. The checks against a subscriber table are with
//! the database tests.

use crate::common::server::{check_config, Ser};
use crate::common::{free_udp_port, header_value, serial, status_of, Request, TestDir, UdpPeer};
use std::time::Duration;

/// ser on UDP at `port` with sl and `modules` loaded (names without
/// `.so`), then `extra` lines and `routes`.
fn ser_cfg(port: u16, modules: &[&str], extra: &str, routes: &str) -> String {
    let loads: String = modules
        .iter()
        .map(|m| format!("loadmodule \"/usr/local/lib/ser/modules/{m}.so\"\n"))
        .collect();
    format!(
        "debug=2\nlog_stderror=yes\nlisten=udp:127.0.0.1:{port}\nchildren=2\nfifo=\"\"\n\
         loadmodule \"/usr/local/lib/ser/modules/sl.so\"\n{loads}{extra}\n{routes}\n"
    )
}

fn cfg(port: u16, route: &str) -> String {
    ser_cfg(
        port,
        &["auth"],
        "modparam(\"auth\", \"nonce_expire\", 60)",
        &format!("route {{\n{route}\n}}"),
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

/// The functions stay in the route types SER exported them for: the
/// challenges, authorize and consume_credentials in request routes only
/// (refused with file:line in a failure route), the RPID helpers in
/// failure routes too.
#[test]
fn auth_functions_load_only_in_their_route_types() {
    let dir = TestDir::new();
    let with_failure = |body: &str| {
        ser_cfg(
            5060,
            &["tm", "db_sqlite", "auth", "auth_db"],
            "modparam(\"auth_db\", \"db_url\", \"sqlite:///tmp/none.db\")",
            &format!(
                "route {{\n    t_on_failure(\"1\");\n    t_relay();\n}}\n\
                 failure_route[1] {{\n{body}\n}}"
            ),
        )
    };
    for f in [
        r#"    www_challenge("x", "0");"#,
        r#"    proxy_challenge("x", "0");"#,
        r#"    consume_credentials();"#,
        r#"    www_authorize("x", "subscriber");"#,
        r#"    proxy_authorize("x", "subscriber");"#,
    ] {
        let file = dir.write("ser.cfg", with_failure(f).as_bytes());
        let r = check_config(&file);
        assert_ne!(r.code(), Some(0), "{f} accepted in a failure route");
        assert!(
            r.stderr.contains("ser.cfg:"),
            "{f}: no file:line in {}",
            r.stderr
        );
    }
    for f in [r#"    append_rpid_hf();"#, r#"    is_rpid_user_e164();"#] {
        let file = dir.write("ok.cfg", with_failure(f).as_bytes());
        let r = check_config(&file);
        assert_eq!(
            r.code(),
            Some(0),
            "{f} refused in a failure route: {}",
            r.stderr
        );
    }
}

/// What auth does not honour is refused by `ser -c` with file:line.
#[test]
fn unknown_settings_and_bad_arguments_are_refused_at_load() {
    let dir = TestDir::new();
    for (route, extra, what) in [
        (r#"    www_challenge("x", "2");"#, "", "qop"),
        (r#"    append_rpid_hf("x");"#, "", "append_rpid_hf"),
        (
            r#"    www_challenge("x", "0");"#,
            r#"modparam("auth", "realm_prefix", "x")"#,
            "realm_prefix",
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

// --- against the subscriber table, on each backend ----------------------

use crate::common::db::{DbKind, DbServer};
use crate::common::sipp::Sipp;
use crate::common::tests_path;
use ser::db::{schema, Db, Stmt, Value};

const USER: &str = "alice";
const DOMAIN: &str = "example.com";
const PASSWORD: &str = "s3cret pass";
const CALLEE: &str = "bob";

fn md5_hex(s: &str) -> String {
    ser::modules::auth::digest::hex_md5(&[s.as_bytes()])
}

/// alice's digest credentials for `method` to `uri` under `nonce`, with
/// qop=auth and nonce count `nc` when given (RFC 2617 3.2.2), computed
/// here rather than by ser's own code.
fn credentials(method: &str, uri: &str, nonce: &str, nc: Option<u32>) -> String {
    let ha1 = md5_hex(&format!("{USER}:{DOMAIN}:{PASSWORD}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let head =
        format!("Digest username=\"{USER}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\"");
    match nc {
        Some(nc) => {
            let nc = format!("{nc:08x}");
            let resp = md5_hex(&format!("{ha1}:{nonce}:{nc}:c0ffee:auth:{ha2}"));
            format!("{head}, qop=auth, nc={nc}, cnonce=\"c0ffee\", response=\"{resp}\"")
        }
        None => {
            let resp = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
            format!("{head}, response=\"{resp}\"")
        }
    }
}

/// SER's schema and two subscribers (alice, bob), as `serctl add` makes
/// them: the plain
/// password, `ha1` and `ha1b`.
fn provision(url: &str) {
    let mut db = Db::from_url(url).expect("url");
    schema::create(&mut db).expect("schema");
    let ins = Stmt::insert(
        "subscriber",
        &[
            "username",
            "domain",
            "password",
            "ha1",
            "ha1b",
            "email_address",
            "phplib_id",
        ],
    )
    .unwrap();
    for (i, user) in [USER, CALLEE].into_iter().enumerate() {
        db.exec(
            &ins,
            &[
                Value::Str(user.into()),
                Value::Str(DOMAIN.into()),
                Value::Str(PASSWORD.into()),
                Value::Str(md5_hex(&format!("{user}:{DOMAIN}:{PASSWORD}"))),
                Value::Str(md5_hex(&format!("{user}@{DOMAIN}:{DOMAIN}:{PASSWORD}"))),
                Value::Str(format!("{user}@example.com")),
                Value::Str(format!("id{i}")),
            ],
        )
        .expect("subscriber");
    }
    db.close();
}

/// SER 0.9's ser.cfg with authentication enabled: REGISTERs checked
/// with www_authorize, INVITEs with proxy_authorize, then the callee
/// found by its registration.
fn proxy_cfg(port: u16, url: &str) -> String {
    registrar_cfg(port, url, "").replace(
        r#"    sl_send_reply("403", "Registrations only");"#,
        &format!(
            r#"    if (method == "INVITE") {{
        if (!proxy_authorize("{DOMAIN}", "subscriber")) {{
            proxy_challenge("{DOMAIN}", "0");
            break;
        }};
        consume_credentials();
    }};
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        break;
    }};
    t_relay();"#
        ),
    )
}

/// A caller challenged with 407 answers it and reaches the callee, who
/// registered with digest too and is found by that registration.
#[test]
fn an_authenticated_call_reaches_the_registered_callee() {
    let _g = serial();
    let dir = TestDir::new();
    let url = format!("sqlite://{}", dir.join("ser.db").display());
    provision(&url);
    let port = free_udp_port();
    let cfg = proxy_cfg(port, &url);
    assert!(cfg.contains("proxy_authorize"), "{cfg}");
    let ser = Ser::start(&cfg);
    let uas = Sipp::builtin("uas")
        .timeout(Duration::from_secs(20))
        .spawn(&dir);
    register_contact(port, CALLEE, CALLEE, PASSWORD, uas.port(), 200)
        .unwrap_or_else(|e| panic!("{e}\n{}", ser.log()));
    let r = Sipp::scenario(&tests_path("scenarios/uac_auth.xml"))
        .to(port)
        .calls(3)
        .arg("-au")
        .arg(USER)
        .arg("-ap")
        .arg(PASSWORD)
        .arg("-s")
        .arg(CALLEE)
        .timeout(Duration::from_secs(15))
        .run(&dir);
    let s = uas.stop();
    assert!(
        r.exit_code == Some(0) && r.successful == 3,
        "uac: {r:#?}\nuas: {s:#?}\n{}",
        ser.log()
    );
    // With a wrong password the second INVITE is challenged again: the
    // scenario, expecting the call, fails.
    let bad = Sipp::scenario(&tests_path("scenarios/uac_auth.xml"))
        .to(port)
        .calls(1)
        .arg("-au")
        .arg(USER)
        .arg("-ap")
        .arg("wrong")
        .arg("-s")
        .arg(CALLEE)
        .timeout(Duration::from_secs(5))
        .run(&dir);
    assert_eq!(bad.successful, 0, "{bad:#?}");
}

/// SER 0.9's ser.cfg registration block with authentication enabled.
fn registrar_cfg(port: u16, url: &str, extra: &str) -> String {
    let driver = match url.split(':').next() {
        Some("mysql") => "mysql",
        Some("postgres") => "postgres",
        _ => "db_sqlite",
    };
    ser_cfg(
        port,
        &["tm", driver, "usrloc", "registrar", "auth", "auth_db"],
        &format!("modparam(\"auth_db\", \"db_url\", \"{url}\")\n{extra}"),
        &format!(
            r#"route {{
    if (method == "REGISTER") {{
        if (!www_authorize("{DOMAIN}", "subscriber")) {{
            www_challenge("{DOMAIN}", "1");
            break;
        }};
        consume_credentials();
        save("location");
        break;
    }};
    sl_send_reply("403", "Registrations only");
}}
"#
        ),
    )
}

/// A REGISTER with digest as `user`/`password`, ending with `want`.
fn register(port: u16, user: &str, password: &str, want: u16) -> Result<(), String> {
    register_contact(port, USER, user, password, 9, want)
}

/// A REGISTER of `aor_user` with its contact at `contact_port`, digest
/// as `user`/`password`, ending with `want`.
fn register_contact(
    port: u16,
    aor_user: &str,
    user: &str,
    password: &str,
    contact_port: u16,
    want: u16,
) -> Result<(), String> {
    let dir = TestDir::new();
    let r = Sipp::scenario(&tests_path(&format!("scenarios/register_auth_{want}.xml")))
        .to(port)
        .calls(1)
        .key("contact_port", &contact_port.to_string())
        .arg("-au")
        .arg(user)
        .arg("-ap")
        .arg(password)
        .arg("-s")
        .arg(aor_user)
        .timeout(Duration::from_secs(10))
        .run(&dir);
    if r.exit_code == Some(0) && r.successful == 1 {
        Ok(())
    } else {
        Err(format!("{user}/{password} wanting {want}: {r:#?}"))
    }
}

/// The registration suite on one database: the right password is let in
/// (HA1 from the `ha1` column, then computed from the plain password with
/// `calculate_ha1`), a wrong one and an unknown user are challenged
/// again, and an SQL injection in the username matches nobody.
fn digest_registrations_on(url: &str) {
    provision(url);
    for extra in [
        "",
        "modparam(\"auth_db\", \"calculate_ha1\", yes)\nmodparam(\"auth_db\", \"password_column\", \"password\")",
    ] {
        let port = free_udp_port();
        let ser = Ser::start(&registrar_cfg(port, url, extra));
        let check = |r: Result<(), String>| {
            if let Err(e) = r {
                panic!("{url} {extra:?}: {e}\n{}", ser.log());
            }
        };
        check(register(port, USER, PASSWORD, 200));
        check(register(port, USER, "wrong", 401));
        check(register(port, "mallory", PASSWORD, 401));
        check(register(port, "' OR '1'='1", "x", 401));
        check(register(port, "alice' --", PASSWORD, 401));
    }
}

#[test]
fn digest_registrations_on_sqlite() {
    let _g = serial();
    let dir = TestDir::new();
    let url = format!("sqlite://{}", dir.join("ser.db").display());
    digest_registrations_on(&url);
}

#[test]
fn digest_registrations_on_mariadb_and_postgres() {
    let _g = serial();
    for kind in [DbKind::Mariadb, DbKind::Postgres] {
        let dir = TestDir::new();
        let mut server = DbServer::start(kind, dir.path());
        digest_registrations_on(&server.url());
        a_database_that_goes_away_gives_500_then_comes_back(&mut server);
    }
}

/// The database stops under a running ser: a REGISTER that needs it is
/// answered 500 at once (no hang, no crash, the challenge itself needs no
/// database), and once it is back registrations succeed again.
fn a_database_that_goes_away_gives_500_then_comes_back(server: &mut DbServer) {
    let url = server.url();
    let port = free_udp_port();
    let mut ser = Ser::start(&registrar_cfg(port, &url, ""));
    register(port, USER, PASSWORD, 200).unwrap_or_else(|e| panic!("{e}\n{}", ser.log()));
    server.stop();
    let t0 = std::time::Instant::now();
    register(port, USER, PASSWORD, 500).unwrap_or_else(|e| panic!("{e}\n{}", ser.log()));
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    server.restart();
    // The layer retries after its back-off (at most 5 s).
    let end = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        match register(port, USER, PASSWORD, 200) {
            Ok(()) => break,
            Err(e) if std::time::Instant::now() > end => panic!("{e}\n{}", ser.log()),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    assert!(ser.is_running(), "ser died\n{}", ser.log());
}

/// domain's is_from_local/is_uri_host_local against the `domain` table,
/// and group's is_user_in for From and for the credentials that
/// authorized a REGISTER, on SQLite.
#[test]
fn local_domains_and_group_membership_from_the_database() {
    let _g = serial();
    let dir = TestDir::new();
    let url = format!("sqlite://{}", dir.join("ser.db").display());
    provision(&url);
    let mut db = Db::from_url(&url).unwrap();
    db.exec(
        &Stmt::insert("domain", &["domain"]).unwrap(),
        &[Value::Str(DOMAIN.into())],
    )
    .unwrap();
    let grp = Stmt::insert("grp", &["username", "domain", "grp"]).unwrap();
    db.exec(
        &grp,
        &[
            Value::Str(USER.into()),
            Value::Str(DOMAIN.into()),
            Value::Str("ld".into()),
        ],
    )
    .unwrap();
    db.close();
    let port = free_udp_port();
    let cfg = registrar_cfg(port, &url, &format!(
        "loadmodule \"/usr/local/lib/ser/modules/domain.so\"\n\
         loadmodule \"/usr/local/lib/ser/modules/group.so\"\n\
         modparam(\"domain\", \"db_url\", \"{url}\")\n\
         modparam(\"group\", \"db_url\", \"{url}\")"
    ))
    .replace(
        "        consume_credentials();\n        save(\"location\");",
        "        consume_credentials();\n        if (!is_user_in(\"Credentials\", \"ld\")) {\n            \
         sl_send_reply(\"403\", \"Not in ld\");\n            break;\n        };\n        save(\"location\");",
    )
    .replace(
        r#"    sl_send_reply("403", "Registrations only");"#,
        r#"    if (is_from_local()) {
        if (is_uri_host_local()) {
            sl_send_reply("200", "Both local");
            break;
        };
        if (is_user_in("From", "ld")) {
            sl_send_reply("202", "From local and in ld");
            break;
        };
        sl_send_reply("203", "From local");
        break;
    };
    if (is_uri_host_local()) {
        sl_send_reply("204", "URI local");
        break;
    };
    sl_send_reply("404", "Nothing local");"#,
    );
    assert!(cfg.contains("is_user_in(\"Credentials\""), "{cfg}");
    let ser = Ser::start(&cfg);
    let ua = UdpPeer::bind();
    for (from, uri, want) in [
        ("alice@EXAMPLE.com", "sip:bob@example.com", 200),
        ("alice@example.com", "sip:bob@elsewhere.org", 202),
        ("carol@example.com", "sip:bob@elsewhere.org", 203),
        ("alice@elsewhere.org", "sip:bob@example.com", 204),
        ("alice@elsewhere.org", "sip:bob@elsewhere.org", 404),
    ] {
        let mut m = Request::new("MESSAGE", uri, ua.port());
        m.from = format!("<sip:{from}>;tag=x1");
        ua.send_to_port(&m.build(), port);
        let (r, _) = ua
            .recv_final(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no answer\n{}", ser.log()));
        assert_eq!(
            status_of(&r),
            Some(want),
            "{from} -> {uri}: {}",
            String::from_utf8_lossy(&r)
        );
    }
    // alice (in ld) registers; bob (not in ld) is authenticated but refused.
    register_contact(port, USER, USER, PASSWORD, 9, 200)
        .unwrap_or_else(|e| panic!("{e}\n{}", ser.log()));
    assert!(
        register_contact(port, CALLEE, CALLEE, PASSWORD, 9, 200).is_err(),
        "bob is not in ld\n{}",
        ser.log()
    );
}

/// uri_db: check_to() lets an authenticated user register only its own
/// address; does_uri_exist() knows the subscribers.
#[test]
fn check_to_and_does_uri_exist() {
    let _g = serial();
    let dir = TestDir::new();
    let url = format!("sqlite://{}", dir.join("ser.db").display());
    provision(&url);
    let port = free_udp_port();
    let cfg = registrar_cfg(
        port,
        &url,
        &format!(
            "loadmodule \"/usr/local/lib/ser/modules/uri_db.so\"\n\
             modparam(\"uri_db\", \"db_url\", \"{url}\")"
        ),
    )
    .replace(
        "        consume_credentials();",
        "        if (!check_to()) {\n            sl_send_reply(\"403\", \"Not your address\");\n            \
         break;\n        };\n        consume_credentials();",
    )
    .replace(
        r#"    sl_send_reply("403", "Registrations only");"#,
        r#"    if (does_uri_exist()) {
        sl_send_reply("200", "A subscriber");
        break;
    };
    sl_send_reply("404", "No such user");"#,
    );
    assert!(cfg.contains("check_to()"), "{cfg}");
    let ser = Ser::start(&cfg);
    register_contact(port, USER, USER, PASSWORD, 9, 200)
        .unwrap_or_else(|e| panic!("{e}\n{}", ser.log()));
    // alice's credentials, bob's address of record: refused.
    let e = register_contact(port, CALLEE, USER, PASSWORD, 9, 200);
    assert!(e.is_err(), "alice registered bob's address\n{}", ser.log());
    let ua = UdpPeer::bind();
    for (uri, want) in [
        ("sip:alice@example.com", 200),
        ("sip:nobody@example.com", 404),
    ] {
        ua.send_to_port(&Request::new("MESSAGE", uri, ua.port()).build(), port);
        let (r, _) = ua.recv_final(Duration::from_secs(5)).expect("an answer");
        assert_eq!(status_of(&r), Some(want), "{uri}");
    }
}

/// Nonce rules end to end, with the digest computed here: an answer to
/// our challenge is accepted once per nonce count; the same count again
/// (a replay) and a nonce we never issued are challenged afresh without
/// `stale`; an expired nonce is challenged with `stale=true`.
#[test]
fn replayed_foreign_and_expired_nonces() {
    let _g = serial();
    let dir = TestDir::new();
    let url = format!("sqlite://{}", dir.join("ser.db").display());
    provision(&url);
    let port = free_udp_port();
    let ser = Ser::start(
        &registrar_cfg(port, &url, "modparam(\"auth\", \"nonce_expire\", 2)").replace(
            "save(\"location\");",
            "sl_send_reply(\"200\", \"Authenticated\");",
        ),
    );
    let ua = UdpPeer::bind();
    let ask = |auth: Option<String>| -> (u16, String) {
        let mut r = Request::new("REGISTER", "sip:example.com", ua.port());
        r.to = "<sip:alice@example.com>".into();
        if let Some(a) = auth {
            r = r.header("Authorization", &a);
        }
        ua.send_to_port(&r.build(), port);
        let (m, _) = ua
            .recv_final(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no answer\n{}", ser.log()));
        (
            status_of(&m).unwrap_or(0),
            header_value(&m, "WWW-Authenticate").unwrap_or_default(),
        )
    };
    let answer = |nonce: &str, nc: u32| credentials("REGISTER", "sip:example.com", nonce, Some(nc));
    let (code, ch) = ask(None);
    assert_eq!(code, 401, "{ch}");
    let nonce = nonce_of(&ch);
    assert_eq!(ask(Some(answer(&nonce, 1))).0, 200);
    assert_eq!(
        ask(Some(answer(&nonce, 2))).0,
        200,
        "a higher count is fine"
    );
    let (code, ch) = ask(Some(answer(&nonce, 2)));
    assert_eq!(code, 401, "a replayed count is refused");
    assert!(!ch.contains("stale"), "{ch}");
    let forged = "0".repeat(48);
    let (code, ch) = ask(Some(answer(&forged, 1)));
    assert_eq!(code, 401, "a nonce we never issued is refused");
    assert!(!ch.contains("stale"), "{ch}");
    std::thread::sleep(Duration::from_millis(3100));
    let (code, ch) = ask(Some(answer(&nonce, 3)));
    assert_eq!(code, 401, "an expired nonce is refused");
    assert!(ch.contains("stale=true"), "{ch}");
    let fresh = nonce_of(&ch);
    assert_ne!(fresh, nonce);
    assert_eq!(ask(Some(answer(&fresh, 1))).0, 200, "the fresh nonce works");
}

/// A request authorized by proxy_authorize carries the subscriber's
/// Remote-Party-ID (auth_db's rpid column) once append_rpid_hf() adds it,
/// here only when is_rpid_user_e164() says it is a number.
#[test]
fn append_rpid_hf_adds_the_subscribers_rpid() {
    let _g = serial();
    let dir = TestDir::new();
    let url = format!("sqlite://{}", dir.join("ser.db").display());
    provision(&url);
    let rpid = "<sip:+4930123456@example.com>";
    let mut db = Db::from_url(&url).unwrap();
    let set = Stmt::update("subscriber", &["rpid"])
        .where_eq(&["username"])
        .build()
        .unwrap();
    db.exec(&set, &[Value::Str(rpid.into()), Value::Str(USER.into())])
        .unwrap();
    db.close();
    let callee = UdpPeer::bind();
    let port = free_udp_port();
    let ser = Ser::start(&ser_cfg(
        port,
        &["tm", "db_sqlite", "auth", "auth_db"],
        &format!("modparam(\"auth_db\", \"db_url\", \"{url}\")"),
        &format!(
            r#"route {{
    if (!proxy_authorize("{DOMAIN}", "subscriber")) {{
        proxy_challenge("{DOMAIN}", "0");
        break;
    }};
    consume_credentials();
    if (is_rpid_user_e164()) {{
        append_rpid_hf();
    }};
    t_relay_to_udp("127.0.0.1", "{}");
}}"#,
            callee.port()
        ),
    ));
    let ua = UdpPeer::bind();
    let msg = |auth: Option<String>| {
        let mut r = Request::new("MESSAGE", "sip:bob@example.com", ua.port());
        r.from = "<sip:alice@example.com>;tag=r1".into();
        if let Some(a) = auth {
            r = r.header("Proxy-Authorization", &a);
        }
        r.build()
    };
    ua.send_to_port(&msg(None), port);
    let (m, _) = ua
        .recv_final(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}", ser.log()));
    assert_eq!(status_of(&m), Some(407));
    let nonce = nonce_of(&header_value(&m, "Proxy-Authenticate").unwrap_or_default());
    let auth = credentials("MESSAGE", "sip:bob@example.com", &nonce, None);
    ua.send_to_port(&msg(Some(auth)), port);
    let (got, _) = callee
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the callee got nothing\n{}", ser.log()));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains(&format!(
            "\r\nRemote-Party-ID: {rpid};party=calling;id-type=subscriber;screen=yes\r\n"
        )),
        "{text}"
    );
    assert!(
        !text.contains("Proxy-Authorization"),
        "credentials consumed: {text}"
    );
}
