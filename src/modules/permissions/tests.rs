use super::rules::parse;
use super::*;

const ALLOW: &str = r#"
# SER's example: the boss may call anyone, everybody may call the PSTN
# gateway except premium numbers
"^sip:boss@" : ALL
ALL : "^sip:[0-9]+@gw\.example\.com$" EXCEPT "^sip:900[0-9]*@"
"^sip:(alice|bob)@example\.com$", "^sip:carol@" : "^sip:.*@example\.com$"   # trailing comment
"#;

#[test]
fn rules_match_as_ser_describes() {
    let r = parse(ALLOW).expect("parses");
    assert_eq!(r.rules.len(), 3);
    assert!(r.matches("sip:boss@example.com", "sip:x@anywhere"));
    assert!(r.matches("sip:eve@evil", "sip:123@gw.example.com"));
    assert!(!r.matches("sip:eve@evil", "sip:900123@gw.example.com"));
    assert!(
        r.matches("sip:Alice@EXAMPLE.com", "sip:dan@example.com"),
        "case-insensitive"
    );
    assert!(r.matches("sip:carol@x", "sip:dan@example.com"));
    assert!(!r.matches("sip:dave@example.com", "sip:dan@example.com"));
}

#[test]
fn malformed_lines_are_refused_with_their_line() {
    for (text, line) in [
        ("ALL : ALL\n\"^sip:(\" : ALL\n", 2),
        ("\n\nALL ALL\n", 3),
        ("ALL : \"x\" EXCEPT\n", 1),
        ("\"a\" \"b\" : ALL\n", 1),
        ("ALL : \"unterminated\n", 1),
        ("ALL : ALL : ALL\n", 1),
        ("ANY : ALL\n", 1),
    ] {
        let (l, why) = parse(text).expect_err(text);
        assert_eq!(l, line, "{text:?}: {why}");
    }
    assert!(parse("# only a comment\n\n").unwrap().is_empty());
    assert!(parse("\"#not a comment\" : ALL")
        .unwrap()
        .matches("#not a comment", "x"));
}

#[test]
fn allow_first_then_deny_then_allowed() {
    let pair = Pair {
        allow: parse(r#""^sip:boss@" : ALL"#).unwrap(),
        deny: parse("ALL : ALL").unwrap(),
    };
    assert_eq!(pair.check("sip:boss@x", "sip:y@z"), Verdict::Allow);
    assert_eq!(pair.check("sip:eve@x", "sip:y@z"), Verdict::Deny);
    let open = Pair {
        allow: RuleSet::default(),
        deny: parse(r#"ALL : "^sip:900""#).unwrap(),
    };
    assert_eq!(open.check("sip:eve@x", "sip:123@z"), Verdict::NoRule);
}

#[test]
fn plain_uris_drop_port_and_parameters() {
    assert_eq!(
        plain_uri(b"sip:alice@example.com:5070;transport=udp").as_deref(),
        Some("sip:alice@example.com")
    );
    assert_eq!(
        plain_uri(b"sip:gw.example.com").as_deref(),
        Some("sip:gw.example.com")
    );
    assert_eq!(plain_uri(b"junk"), None);
}

#[test]
fn a_missing_file_is_empty_and_a_bad_one_names_file_and_line() {
    let dir = std::env::temp_dir().join(format!("ser-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(rules::load(&dir.join("nope.allow")).unwrap().is_none());
    let bad = dir.join("bad.deny");
    std::fs::write(&bad, "ALL : ALL\nALL : \"[\"\n").unwrap();
    let e = rules::load(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.deny:2:"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn trusted_rows_check_proto_and_from() {
    assert!(trusted_row_matches("any", "^sip:.*@gw$", "udp", "sip:a@gw"));
    assert!(trusted_row_matches("UDP", "^sip:", "udp", "sip:a@gw"));
    assert!(!trusted_row_matches("tcp", "^sip:", "udp", "sip:a@gw"));
    assert!(!trusted_row_matches("any", "^sips:", "udp", "sip:a@gw"));
    assert!(!trusted_row_matches("any", "(", "udp", "sip:a@gw"));
}

#[test]
fn parameters_and_db_mode() {
    let mut m = Permissions::default();
    assert!(m.set_param("check_all_branches", &Literal::Int(0)).is_ok());
    assert!(!m.check_all_branches);
    assert!(m.set_param("db_mode", &Literal::Int(0)).is_ok());
    assert!(m.set_param("db_mode", &Literal::Int(1)).is_err());
    assert!(m
        .set_param("allow_suffix", &Literal::Str(".ok".into()))
        .is_ok());
    assert!(m.set_param("nonsense", &Literal::Int(1)).is_err());
}
