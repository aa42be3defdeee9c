//! `tw_append` parsing and `split_action`.

use super::*;
use crate::route::ctx::AvpName;

#[test]
fn documentation_example() {
    let l = parse_tw_append("params:avp[callee_fr_timer];hdr[Subject];body=msg[body]").unwrap();
    assert_eq!(l.name, "params");
    assert_eq!(
        l.items,
        vec![
            TwItem {
                title: "callee_fr_timer".into(),
                source: TwSource::Avp(AvpName::Str(b"callee_fr_timer".to_vec())),
            },
            TwItem {
                title: "Subject".into(),
                source: TwSource::Hdr("Subject".into()),
            },
            TwItem {
                title: "body".into(),
                source: TwSource::Body,
            },
        ]
    );
    assert!(l.wants_body());
}

#[test]
fn titles_ids_and_spacing() {
    let l = parse_tw_append(" x : T1 = AVP[ i:12 ] ; avp[i:13]; Id=avp[s:id]").unwrap();
    assert_eq!(l.name, "x");
    assert_eq!(l.items[0].title, "T1");
    assert_eq!(l.items[0].source, TwSource::Avp(AvpName::Int(12)));
    // a numeric id's default title is the number
    assert_eq!(l.items[1].title, "13");
    assert_eq!(
        l.items[2].source,
        TwSource::Avp(AvpName::Str(b"id".to_vec()))
    );
    assert!(!l.wants_body());
    // msg[body] without a title is accepted
    assert!(parse_tw_append("b:msg[BODY]").unwrap().wants_body());
}

#[test]
fn errors_say_what_and_where() {
    use TwAppendError::*;
    let cases: &[(&str, TwAppendError)] = &[
        (
            "params",
            MissingColon {
                text: "params".into(),
            },
        ),
        (
            ":hdr[X]",
            BadName {
                text: ":hdr[X]".into(),
            },
        ),
        (
            "a/b:hdr[X]",
            BadName {
                text: "a/b:hdr[X]".into(),
            },
        ),
        (
            "l:",
            EmptyElement {
                list: "l".into(),
                element: 1,
            },
        ),
        (
            "l:hdr[X];",
            EmptyElement {
                list: "l".into(),
                element: 2,
            },
        ),
        (
            "l:hdr[X];a b=hdr[Y]",
            BadTitle {
                list: "l".into(),
                element: 2,
                found: "a b".into(),
            },
        ),
        (
            "l:=hdr[Y]",
            BadTitle {
                list: "l".into(),
                element: 1,
                found: "".into(),
            },
        ),
        (
            "l:hdr",
            UnknownSource {
                list: "l".into(),
                element: 1,
                found: "hdr".into(),
            },
        ),
        (
            "l:var[x]",
            UnknownSource {
                list: "l".into(),
                element: 1,
                found: "var[x]".into(),
            },
        ),
        (
            "l:hdr[X",
            MissingBracket {
                list: "l".into(),
                element: 1,
                found: "hdr[X".into(),
            },
        ),
        (
            "l:avp[]",
            BadArgument {
                list: "l".into(),
                element: 1,
                found: "avp[]".into(),
            },
        ),
        (
            "l:hdr[a:b]",
            BadArgument {
                list: "l".into(),
                element: 1,
                found: "hdr[a:b]".into(),
            },
        ),
        (
            "l:msg[hdrs]",
            UnknownMsgPart {
                list: "l".into(),
                element: 1,
                found: "hdrs".into(),
            },
        ),
        // a default title must be a token too
        (
            "l:avp[i:x y]",
            BadTitle {
                list: "l".into(),
                element: 1,
                found: "i:x y".into(),
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_tw_append(text).as_ref(), Err(want), "{text}");
    }
    // the message names the list and the element
    let e = parse_tw_append("l:hdr[X];var[x]").unwrap_err().to_string();
    assert!(e.contains("`l`") && e.contains("element 2"), "{e}");
}

#[test]
fn several_lists() {
    let mut all = TwAppends::new();
    assert!(all.is_empty());
    all.add("a:hdr[Subject]").unwrap();
    all.add("b:avp[x];msg[body]").unwrap();
    assert_eq!(all.get("a").unwrap().items.len(), 1);
    assert!(all.get("b").unwrap().wants_body());
    assert!(all.get("c").is_none());
    assert_eq!(
        all.add("a:hdr[To]"),
        Err(TwAppendError::Duplicate { name: "a".into() })
    );
    assert_eq!(all.get("a").unwrap().items[0].title, "Subject");
    assert!(all.add("c:bad").is_err());
    assert!(all.get("c").is_none());
}

#[test]
fn split_action_forms() {
    assert_eq!(split_action("voicemail"), ("voicemail", None));
    assert_eq!(
        split_action("voicemail/params"),
        ("voicemail", Some("params"))
    );
    assert_eq!(split_action("voicemail/"), ("voicemail", None));
    assert_eq!(split_action("a/b/c"), ("a", Some("b/c")));
    assert_eq!(split_action(""), ("", None));
}
