use super::edits::*;
use super::*;

#[test]
fn rfc_1918_blocks_and_nothing_else() {
    for a in ["10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.5"] {
        assert!(is_1918(a.as_bytes()), "{a}");
    }
    for a in [
        "172.32.0.1",
        "172.15.0.1",
        "192.169.0.1",
        "127.0.0.2",
        "8.8.8.8",
        "host.example",
        "[::1]",
        "",
    ] {
        assert!(!is_1918(a.as_bytes()), "{a}");
    }
}

#[test]
fn the_contact_takes_the_source_address_and_keeps_the_rest() {
    let src: SocketAddr = "127.0.0.2:40000".parse().unwrap();
    let f = |u: &str| String::from_utf8(contact_to_source(u.as_bytes(), src).unwrap()).unwrap();
    assert_eq!(f("sip:alice@192.168.1.5:5062"), "sip:alice@127.0.0.2:40000");
    assert_eq!(
        f("sip:alice@192.168.1.5;transport=udp?x=y"),
        "sip:alice@127.0.0.2:40000;transport=udp?x=y"
    );
    assert_eq!(f("sip:10.1.1.1"), "sip:127.0.0.2:40000");
    let v6: SocketAddr = "[::1]:5070".parse().unwrap();
    assert_eq!(
        contact_to_source(b"sip:a@10.0.0.1", v6).unwrap(),
        b"sip:a@[::1]:5070"
    );
    assert!(contact_to_source(b"not a uri", src).is_none());
}

const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.168.1.5\r\ns=-\r\nc=IN IP4 192.168.1.5\r\n\
t=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.7/127\r\nm=video 0 RTP/AVP 31\r\nc=IN IP6 ::1\r\n";

#[test]
fn media_addresses_are_the_c_lines() {
    let m = media_addrs(SDP);
    let got: Vec<(&[u8], bool)> = m.iter().map(|m| (m.span.get(SDP), m.ip4)).collect();
    assert_eq!(
        got,
        vec![
            (&b"192.168.1.5"[..], true),
            (&b"10.0.0.7"[..], true),
            (&b"::1"[..], false)
        ]
    );
    assert!(sdp_1918(SDP));
    assert!(!sdp_1918(b"v=0\r\nc=IN IP4 0.0.0.0\r\n"));
    assert!(!sdp_1918(b"v=0\r\nc=IN IP4 1.2.3.4\r\n"));
    assert!(media_addrs(b"c=IN\r\nc=\r\n").is_empty());
}

#[test]
fn an_sdp_line_is_appended_as_a_line() {
    assert_eq!(sdp_line(b"v=0\r\n", "a=x"), b"a=x\r\n");
    assert_eq!(sdp_line(b"v=0", "a=x"), b"\r\na=x");
}

#[test]
fn pings_go_to_received_else_the_contact_over_udp_only() {
    let t = |c: &str, r: &str| ping_target(c.as_bytes(), r.as_bytes());
    assert_eq!(
        t("sip:a@127.0.0.2:4000", ""),
        Some("127.0.0.2:4000".parse().unwrap())
    );
    assert_eq!(
        t("sip:a@192.168.1.5", "sip:127.0.0.3:5099"),
        Some("127.0.0.3:5099".parse().unwrap())
    );
    assert_eq!(
        t("sip:a@10.0.0.1", ""),
        Some("10.0.0.1:5060".parse().unwrap())
    );
    assert_eq!(t("sip:a@10.0.0.1;transport=tcp", ""), None);
    assert_eq!(t("sips:a@10.0.0.1", ""), None);
    assert_eq!(t("sip:a@phone.example", ""), None);
}

#[test]
fn parameters_as_ser_writes_them() {
    let mut m = NatHelper::default();
    assert!(m.set_param("natping_interval", &Literal::Int(30)).is_ok());
    assert_eq!(m.ping.interval_s, 30);
    assert!(m.set_param("ping_nated_only", &Literal::Int(1)).is_ok());
    assert!(m.ping.nated_only);
    assert!(m.set_param("rtpproxy_disable", &Literal::Int(1)).is_ok());
    assert!(m
        .set_param("sipping_from", &Literal::Str("sip:pinger@x".into()))
        .is_ok());
    assert!(m
        .set_param("sipping_method", &Literal::Str("info".into()))
        .is_ok());
    assert_eq!(m.ping.sip_method, "INFO");
    assert!(m
        .set_param("sipping_method", &Literal::Str("OPT IONS".into()))
        .is_err());
    assert!(m
        .set_param("natping_interval", &Literal::Int(100_000))
        .is_err());
    assert!(m.set_param("bogus", &Literal::Int(1)).is_err());
    let mut m2 = NatHelper::default();
    assert!(m2
        .set_param("natping_method", &Literal::Str("OPTIONS".into()))
        .is_ok());
    assert_eq!(m2.ping.sip_from.as_deref(), Some("sip:registrar"));
}

#[test]
fn rtp_proxy_functions_are_refused_at_load_naming_rtpproxy() {
    let names = std::collections::HashMap::new();
    let core = crate::route::globals::CoreCfg::default();
    let env = FixupEnv {
        core: &core,
        routes: &names,
        cfg_file: "ser.cfg",
    };
    let m = NatHelper::default();
    for name in ["force_rtp_proxy", "unforce_rtp_proxy"] {
        let f = FUNCS.iter().find(|f| f.name == name).unwrap();
        let e = m.fixup(f, &[], &env).err().expect("refused");
        assert!(e.to_string().contains("rtpproxy"), "{e}");
    }
    let f = FUNCS.iter().find(|f| f.name == "nat_uac_test").unwrap();
    assert!(m.fixup(f, &[Literal::Str("19".into())], &env).is_ok());
    assert!(m.fixup(f, &[Literal::Str("x".into())], &env).is_err());
    let f = FUNCS.iter().find(|f| f.name == "fix_nated_sdp").unwrap();
    assert!(m
        .fixup(
            f,
            &[Literal::Str("3".into()), Literal::Str("1.2.3.4".into())],
            &env
        )
        .is_ok());
    assert!(m
        .fixup(
            f,
            &[Literal::Str("3".into()), Literal::Str("nope".into())],
            &env
        )
        .is_err());
}
