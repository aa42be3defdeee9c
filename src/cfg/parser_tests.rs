//! Parser acceptance tests: the 0.9 reference config, every example script
//! of the three tm docs, and the shape of the tree for each construct.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::ast::*;
use super::{parse_file, parse_str, CfgError};

fn parse(src: &str) -> Script {
    match parse_str(src, "t.cfg") {
        Ok(s) => s,
        Err(e) => panic!("parse failed: {e}\n--- source ---\n{src}"),
    }
}

/// The statements of the single route block in `src`.
fn body(src: &str) -> Vec<Stmt> {
    match parse(src).items.into_iter().next() {
        Some(Item::Route(b)) => b.body,
        other => panic!("expected a route, got {other:?}"),
    }
}

fn cond(src_cond: &str) -> Expr {
    match body(&format!("route {{ if {src_cond} drop; }}"))
        .into_iter()
        .next()
    {
        Some(Stmt::If { cond, .. }) => cond,
        other => panic!("expected if, got {other:?}"),
    }
}

/// A compat file: the verbatim copy under `tests/data/`, so that a bare
/// clone tests too; where `../shared/compat` exists, the copy must match.
fn shared(rel: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = Path::new(rel).file_name().unwrap_or_default();
    let copy = root.join("tests/data").join(name);
    if let Ok(orig) = std::fs::read(root.join("../shared").join(rel)) {
        assert_eq!(
            std::fs::read(&copy).ok(),
            Some(orig),
            "{} drifted from ../shared/{rel}",
            copy.display()
        );
    }
    copy
}

#[test]
fn reference_09_cfg_parses() {
    let s = parse_file(&shared("compat/ser-0.9.cfg")).unwrap_or_else(|e| panic!("{e}"));
    let globals: Vec<_> = s
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Global { name, value, .. } => Some((name.as_str(), value.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        globals,
        vec![
            ("check_via", GlobalValue::Int(0)),
            ("dns", GlobalValue::Int(0)),
            ("rev_dns", GlobalValue::Int(0)),
            ("fifo", GlobalValue::Str("/tmp/ser_fifo".into())),
        ]
    );
    let mods = s
        .items
        .iter()
        .filter(|i| matches!(i, Item::LoadModule { .. }))
        .count();
    assert_eq!(mods, 7);
    assert!(s.items.iter().any(|i| matches!(i,
        Item::ModParam { module, param, value: Literal::Int(0), .. } if module == "usrloc" && param == "db_mode")));
    let routes: Vec<_> = s
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Route(b) => Some((b.kind, b.name.clone(), b.body.len())),
            _ => None,
        })
        .collect();
    assert_eq!(
        routes,
        vec![
            (RouteKind::Request, RouteName::Num(0), 8),
            (RouteKind::Request, RouteName::Num(1), 1)
        ]
    );
}

/// Splits a fixture into (kind, label, text) blocks at `#### kind label` lines.
fn fixture_blocks(text: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#### ") {
            let (kind, label) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push((kind.to_string(), label.to_string(), String::new()));
        } else if let Some(last) = out.last_mut() {
            if line.trim() != "..." {
                last.2.push_str(line);
                last.2.push('\n');
            }
        }
    }
    out
}

fn check_fixture(name: &str, min_blocks: usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/cfg/testdata")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let blocks = fixture_blocks(&text);
    assert!(
        blocks.len() >= min_blocks,
        "{name}: only {} examples",
        blocks.len()
    );
    for (kind, label, src) in blocks {
        let src = match kind.as_str() {
            "top" => src,
            "stmts" => format!("route {{\n{src}\n}}\n"),
            k => panic!("{name}: bad block kind {k}"),
        };
        if let Err(e) = parse_str(&src, name) {
            panic!("{name}: {label}: {e}\n{src}");
        }
    }
}

#[test]
fn tm_doc_08_examples_parse() {
    check_fixture("tm-doc-0.8-examples.cfg", 20);
}

#[test]
fn tm_doc_09_examples_parse() {
    check_fixture("tm-doc-0.9-examples.cfg", 25);
}

#[test]
fn tm_doc_21_examples_parse() {
    check_fixture("tm-doc-2.1-examples.cfg", 41);
}

#[test]
fn route_kinds_and_names() {
    let s = parse(
        "route {} route[2] {} route[foo] {} route[\"bar\"] {} route[\"7\"] {}
         failure_route[1] {} reply_route[3] {} onreply_route[4] {} onreply_route {}
         branch_route[1] {} onsend_route {}",
    );
    let got: Vec<_> = s
        .items
        .iter()
        .map(|i| match i {
            Item::Route(b) => (b.kind, b.name.clone(), b.legacy_name),
            _ => panic!("not a route"),
        })
        .collect();
    use RouteKind::*;
    assert_eq!(
        got,
        vec![
            (Request, RouteName::Num(0), false),
            (Request, RouteName::Num(2), false),
            (Request, RouteName::Name("foo".into()), false),
            (Request, RouteName::Name("bar".into()), false),
            (Request, RouteName::Num(7), false),
            (Failure, RouteName::Num(1), false),
            (Failure, RouteName::Num(3), true),
            (OnReply, RouteName::Num(4), false),
            (CoreReply, RouteName::Num(0), false),
            (Branch, RouteName::Num(1), false),
            (OnSend, RouteName::Num(0), false),
        ]
    );
}

#[test]
fn global_values() {
    let s = parse(
        "debug=3 fork=yes log_stderror=off log_facility=LOG_LOCAL0 mcast_ttl=-1 fifo_mode=0660
         user=ser advertised_address=1.2.3.4 workdir=\"/var/run\" alias=sip.example.com
         listen=udp:10.0.0.1:5060 tcp:[::1]:5061 eth0 *:* tls:host-1.example.com:5061
         port=5060; children = 4",
    );
    let g: Vec<_> = s
        .items
        .iter()
        .map(|i| match i {
            Item::Global { name, value, .. } => (name.as_str(), value.clone()),
            _ => panic!("not a global"),
        })
        .collect();
    let sock = |proto, host: &str, port| SocketSpec {
        proto,
        host: host.into(),
        port,
    };
    assert_eq!(
        g,
        vec![
            ("debug", GlobalValue::Int(3)),
            ("fork", GlobalValue::Int(1)),
            ("log_stderror", GlobalValue::Int(0)),
            ("log_facility", GlobalValue::Ident("LOG_LOCAL0".into())),
            ("mcast_ttl", GlobalValue::Int(-1)),
            ("fifo_mode", GlobalValue::Int(0o660)),
            ("user", GlobalValue::Ident("ser".into())),
            ("advertised_address", GlobalValue::Ident("1.2.3.4".into())),
            ("workdir", GlobalValue::Str("/var/run".into())),
            (
                "alias",
                GlobalValue::Sockets(vec![sock(None, "sip.example.com", None)])
            ),
            (
                "listen",
                GlobalValue::Sockets(vec![
                    sock(Some(Proto::Udp), "10.0.0.1", Some(5060)),
                    sock(Some(Proto::Tcp), "::1", Some(5061)),
                    sock(None, "eth0", None),
                    sock(Some(Proto::Any), "*", None),
                    sock(Some(Proto::Tls), "host-1.example.com", Some(5061)),
                ])
            ),
            ("port", GlobalValue::Int(5060)),
            ("children", GlobalValue::Int(4)),
        ]
    );
}

#[test]
fn listen_host_with_any_port() {
    let s = parse("listen=*:5060 alias=udp:example.com:*");
    let Some(Item::Global {
        value: GlobalValue::Sockets(v),
        ..
    }) = s.items.first()
    else {
        panic!()
    };
    assert_eq!(
        v,
        &vec![SocketSpec {
            proto: None,
            host: "*".into(),
            port: Some(5060)
        }]
    );
    let Some(Item::Global {
        value: GlobalValue::Sockets(v),
        ..
    }) = s.items.get(1)
    else {
        panic!()
    };
    assert_eq!(
        v,
        &vec![SocketSpec {
            proto: Some(Proto::Udp),
            host: "example.com".into(),
            port: Some(0)
        }]
    );
}

#[test]
fn modparam_values_and_loadpath() {
    let s = parse("loadpath \"/usr/lib/ser\" modparam(\"auth_db\", \"calculate_ha1\", yes) modparam(\"a|b\",\"p\",\"v\");");
    assert!(matches!(&s.items[0], Item::LoadPath { path, .. } if path == "/usr/lib/ser"));
    assert!(matches!(
        &s.items[1],
        Item::ModParam {
            value: Literal::Int(1),
            ..
        }
    ));
    assert!(
        matches!(&s.items[2], Item::ModParam { module, value: Literal::Str(v), .. } if module == "a|b" && v == "v")
    );
}

#[test]
fn flags_declarations_are_skipped() {
    let s =
        parse("flags FLAG_ACC:1, NAT , X:3\navpflags dialog_cookie;\nroute { setflag(FLAG_ACC); }");
    assert_eq!(s.items.len(), 1);
}

#[test]
fn call_arguments() {
    let b = body(
        "route { forward(uri:host, uri:port); forward(10.0.0.1, 5060); t_set_fr(-1, yes);
                 force_send_socket(udp:10.0.0.1:5060); send([2001:db8::1]); len_gt(max_len);
                 return; return 2; exit $?; drop; drop(); route(1); route(name); log(1, \"x\"); }",
    );
    let calls: Vec<_> = b
        .into_iter()
        .map(|s| match s {
            Stmt::Call(c) => (c.name, c.args, c.parens),
            other => panic!("not a call: {other:?}"),
        })
        .collect();
    let id = |s: &str| Literal::Ident(s.into());
    let v4 = Literal::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    let v6 = Literal::Ip(IpAddr::V6(
        "2001:db8::1"
            .parse::<Ipv6Addr>()
            .unwrap_or(Ipv6Addr::LOCALHOST),
    ));
    let expect: Vec<(String, Vec<Literal>, bool)> = vec![
        ("forward".into(), vec![id("uri:host"), id("uri:port")], true),
        ("forward".into(), vec![v4, Literal::Int(5060)], true),
        (
            "t_set_fr".into(),
            vec![Literal::Int(-1), Literal::Int(1)],
            true,
        ),
        (
            "force_send_socket".into(),
            vec![id("udp:10.0.0.1:5060")],
            true,
        ),
        ("send".into(), vec![v6], true),
        ("len_gt".into(), vec![id("max_len")], true),
        ("return".into(), vec![], false),
        ("return".into(), vec![Literal::Int(2)], false),
        ("exit".into(), vec![id("$?")], false),
        ("drop".into(), vec![], false),
        ("drop".into(), vec![], true),
        ("route".into(), vec![Literal::Int(1)], true),
        ("route".into(), vec![id("name")], true),
        (
            "log".into(),
            vec![Literal::Int(1), Literal::Str("x".into())],
            true,
        ),
    ];
    assert_eq!(calls, expect);
}

#[test]
fn if_forms() {
    // 0.9: bare command bodies without ';', and 2.x: with ';' before else.
    let b = body("route { if false log(\"a\") else log(\"b\"); if (x) a(); else b(); if (y) {c();}; else {d();}; }");
    assert_eq!(b.len(), 3);
    for s in &b {
        let Stmt::If {
            then,
            otherwise: Some(o),
            ..
        } = s
        else {
            panic!("{s:?}")
        };
        assert_eq!((then.len(), o.len()), (1, 1));
    }
    let Stmt::If {
        cond: Expr::Int(0), ..
    } = &b[0]
    else {
        panic!()
    };
    // else-if chains and nested blocks, stray `;` everywhere
    let b = body("route { ;; if (a()) { ; } else if (b()) c(); else { { d(); }; }; };");
    let Some(Stmt::If {
        otherwise: Some(o), ..
    }) = b.first()
    else {
        panic!()
    };
    assert!(matches!(
        o.first(),
        Some(Stmt::If {
            otherwise: Some(_),
            ..
        })
    ));
}

#[test]
fn expressions_precedence_and_operands() {
    // `!` binds to the comparison; `&&` binds tighter than `||`.
    let e = cond("(!method==\"REGISTER\" || uri=~\"^sip:\" && src_port>=5060)");
    let Expr::Or(l, r) = e else { panic!() };
    let Expr::Not(n) = *l else { panic!() };
    assert!(matches!(
        *n,
        Expr::Cmp {
            lhs: Operand::Method,
            op: CmpOp::Eq,
            rhs: Rhs::Str(_),
            ..
        }
    ));
    let Expr::And(a, b) = *r else { panic!() };
    assert!(matches!(
        *a,
        Expr::Cmp {
            lhs: Operand::Uri,
            op: CmpOp::Match,
            ..
        }
    ));
    assert!(matches!(
        *b,
        Expr::Cmp {
            lhs: Operand::SrcPort,
            op: CmpOp::Ge,
            rhs: Rhs::Int(5060),
            ..
        }
    ));
    assert!(matches!(cond("(a() and not b() or c)"), Expr::Or(_, _)));
    assert!(matches!(cond("(a() & b() | c())"), Expr::Or(_, _)));
}

#[test]
fn comparison_right_sides() {
    let rhs = |c: &str| match cond(c) {
        Expr::Cmp { lhs, rhs, op, .. } => (lhs, op, rhs),
        other => panic!("{other:?}"),
    };
    assert_eq!(rhs("(uri==myself)"), (Operand::Uri, CmpOp::Eq, Rhs::Myself));
    assert_eq!(
        rhs("(myself!=from_uri)"),
        (Operand::FromUri, CmpOp::Ne, Rhs::Myself)
    );
    assert_eq!(
        rhs("(msg:len >= max_len)"),
        (Operand::MsgLen, CmpOp::Ge, Rhs::MaxLen)
    );
    let net = |a: [u8; 4], p| Rhs::Net {
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        prefix: p,
    };
    assert_eq!(rhs("(src_ip==10.0.0.0/8)").2, net([10, 0, 0, 0], 8));
    assert_eq!(
        rhs("(src_ip==10.1.0.0/255.255.0.0)").2,
        net([10, 1, 0, 0], 16)
    );
    assert_eq!(rhs("(dst_ip==1.2.3.4)").2, net([1, 2, 3, 4], 32));
    assert!(matches!(
        rhs("(src_ip==::1)").2,
        Rhs::Net { prefix: 128, .. }
    ));
    assert_eq!(rhs("(proto==UDP)").2, Rhs::Proto(Proto::Udp));
    assert_eq!(rhs("(snd_proto==*)").2, Rhs::Proto(Proto::Any));
    assert_eq!(rhs("(af==inet6)").2, Rhs::Af(6));
    assert_eq!(rhs("(method==CANCEL)").2, Rhs::Ident("CANCEL".into()));
    assert_eq!(
        rhs("(uri==sip.example-1.com)").2,
        Rhs::Ident("sip.example-1.com".into())
    );
    assert_eq!(
        rhs("($retcode == -1)"),
        (Operand::RetCode, CmpOp::Eq, Rhs::Int(-1))
    );
    assert_eq!(rhs("(status=~\"^2\")").0, Operand::Status);
}

#[test]
fn calls_and_values_as_conditions() {
    assert!(matches!(
        cond("(t_relay())"),
        Expr::Call(Call { parens: true, .. })
    ));
    assert!(matches!(
        cond("loose_route"),
        Expr::Call(Call { parens: false, .. })
    ));
    assert!(
        matches!(cond("(mf_process_maxfwd_header(\"10\"))"), Expr::Call(c) if c.args.len() == 1)
    );
    assert!(matches!(cond("1"), Expr::Int(1)));
    assert!(matches!(cond("$avp"), Expr::Var(v) if v == "$avp"));
    assert!(matches!(cond("({ a(); })"), Expr::Block(b) if b.len() == 1));
}

#[test]
fn assignments() {
    let b = body("route { $x = 1; $f.y += $x; $z = t_relay(); }");
    assert!(
        matches!(&b[0], Stmt::Assign { target, op: AssignOp::Set, value: Expr::Int(1), .. } if target == "$x")
    );
    assert!(matches!(
        &b[1],
        Stmt::Assign {
            op: AssignOp::Append,
            value: Expr::Var(_),
            ..
        }
    ));
    assert!(matches!(
        &b[2],
        Stmt::Assign {
            value: Expr::Call(_),
            ..
        }
    ));
}

#[test]
fn positions_are_recorded() {
    let s = parse("\n  route[1] {\n\tif (uri==myself) t_relay();\n}");
    let Some(Item::Route(r)) = s.items.first() else {
        panic!()
    };
    assert_eq!(r.pos, Pos { line: 2, col: 3 });
    let Some(Stmt::If { pos, then, .. }) = r.body.first() else {
        panic!()
    };
    assert_eq!(*pos, Pos { line: 3, col: 2 });
    let Some(Stmt::Call(c)) = then.first() else {
        panic!()
    };
    assert_eq!(c.pos, Pos { line: 3, col: 19 });
}

#[test]
fn unreadable_file_is_an_io_error() {
    let e = parse_file(Path::new("/nonexistent/ser.cfg")).err();
    assert!(matches!(e, Some(CfgError::Io { .. })));
    let msg = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.starts_with("/nonexistent/ser.cfg: cannot read"),
        "{msg}"
    );
}
