//! Lexer edge cases (spec §1.1).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ast::Pos;
use super::lexer::{Lexer, Punct, Tok};

fn toks(src: &str) -> Vec<Tok> {
    let mut l = Lexer::new(src, "t.cfg");
    let mut out = Vec::new();
    loop {
        match l.next_token() {
            Ok(t) if t.tok == Tok::Eof => return out,
            Ok(t) => out.push(t.tok),
            Err(e) => panic!("{src:?}: {e}"),
        }
    }
}

fn one_str(src: &str) -> String {
    match toks(src).as_slice() {
        [Tok::Str(s)] => s.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn nested_comments_and_hash_comments() {
    assert_eq!(
        toks("a /* x /* y */ z */ b # c\n d"),
        vec![
            Tok::Ident("a".into()),
            Tok::Ident("b".into()),
            Tok::Ident("d".into())
        ]
    );
    // `#` inside a string is text, `/*` inside a string is text.
    assert_eq!(one_str("\"a#b/*c\""), "a#b/*c");
}

#[test]
fn string_escapes() {
    assert_eq!(one_str(r#""\n\r\a\t\"\\""#), "\n\r\u{7}\t\"\\");
    assert_eq!(one_str(r#""\x41\x4a\x9z""#), "AJ\tz");
    assert_eq!(one_str(r#""\101\60x""#), "A0x");
    // `\1` (one octal digit) and unknown escapes keep the backslash.
    assert_eq!(one_str(r#""\1 \. \d""#), "\\1 \\. \\d");
    // Backslash-newline inside a string is dropped; a plain newline is kept.
    assert_eq!(one_str("\"a\\\nb\nc\""), "ab\nc");
    assert_eq!(one_str(r"'raw \n \x41'"), r"raw \n \x41");
    assert_eq!(one_str("'multi\nline'"), "multi\nline");
}

#[test]
fn numbers() {
    assert_eq!(
        toks("0 10 0x1F 0X10 0660 017 101b"),
        vec![
            Tok::Int(0),
            Tok::Int(10),
            Tok::Int(31),
            Tok::Int(16),
            Tok::Int(0o660),
            Tok::Int(15),
            Tok::Int(5)
        ]
    );
    assert_eq!(toks("-5"), vec![Tok::Punct(Punct::Minus), Tok::Int(5)]);
}

#[test]
fn ipv4_and_ipv6() {
    assert_eq!(
        toks("192.168.0.1"),
        vec![Tok::Ip4(Ipv4Addr::new(192, 168, 0, 1))]
    );
    let v6 = |s: &str| Tok::Ip6(s.parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::UNSPECIFIED));
    assert_eq!(
        toks("::1 [fe80::1] 2001:db8::a:b ::ffff:1.2.3.4"),
        vec![
            v6("::1"),
            v6("fe80::1"),
            v6("2001:db8::a:b"),
            v6("::ffff:1.2.3.4")
        ]
    );
    // `uri:host`, `udp:1.2.3.4:5060`, `route[1]` are not IPv6.
    assert_eq!(toks("uri:host").len(), 3);
    assert_eq!(
        toks("udp:1.2.3.4:5060"),
        vec![
            Tok::Ident("udp".into()),
            Tok::Punct(Punct::Colon),
            Tok::Ip4(Ipv4Addr::new(1, 2, 3, 4)),
            Tok::Punct(Punct::Colon),
            Tok::Int(5060)
        ]
    );
    assert_eq!(
        toks("[1]"),
        vec![
            Tok::Punct(Punct::LBracket),
            Tok::Int(1),
            Tok::Punct(Punct::RBracket)
        ]
    );
    assert_eq!(toks("[::1]:5060").len(), 3);
}

#[test]
fn operators_longest_match() {
    use Punct::*;
    let p = |v: &[Punct]| v.iter().map(|p| Tok::Punct(*p)).collect::<Vec<_>>();
    assert_eq!(
        toks("= == != =~ > < >= <= ! + - += && & || | ( ) { } [ ] , ; : . / *"),
        p(&[
            Assign, Eq, Ne, Match, Gt, Lt, Ge, Le, Not, Plus, Minus, PlusAssign, AndAnd, And, OrOr,
            Or, LParen, RParen, LBrace, RBrace, LBracket, RBracket, Comma, Semi, Colon, Dot, Slash,
            Star
        ])
    );
}

#[test]
fn variables() {
    assert_eq!(
        toks("$? $retcode $f.x[2] %avp @to.uri"),
        vec![
            Tok::Var("$?".into()),
            Tok::Var("$retcode".into()),
            Tok::Var("$f.x[2]".into()),
            Tok::Var("%avp".into()),
            Tok::Var("@to.uri".into())
        ]
    );
}

#[test]
fn positions_count_lines_and_columns() {
    let mut l = Lexer::new("a\n  /* x\n */ b\\\n c", "t.cfg");
    let mut pos = Vec::new();
    while let Ok(t) = l.next_token() {
        if t.tok == Tok::Eof {
            break;
        }
        pos.push(t.pos);
    }
    assert_eq!(
        pos,
        vec![
            Pos { line: 1, col: 1 },
            Pos { line: 3, col: 5 },
            Pos { line: 4, col: 2 }
        ]
    );
}
