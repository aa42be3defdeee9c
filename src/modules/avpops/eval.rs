//! The avpops operations on a request's AVP list, as plain functions.
//!
//! The list is `MsgCtx::avps`, newest last; SER kept its list newest
//! first, so "the first AVP found" there is the newest one here.

use std::cmp::Ordering;

use regex::bytes::Regex;

use super::spec::{NameSpec, Op, Selector};
use crate::route::ctx::{AvpName, AvpValue};

/// A value as text (integers in decimal).
pub fn text(v: &AvpValue) -> Vec<u8> {
    match v {
        AvpValue::Int(n) => n.to_string().into_bytes(),
        AvpValue::Str(s) => s.clone(),
    }
}

/// Values selected by `spec`, newest first; only the newest without `/g`.
pub fn selected<'a>(avps: &'a [(AvpName, AvpValue)], spec: &NameSpec) -> Vec<&'a AvpValue> {
    let it = avps
        .iter()
        .rev()
        .filter(|(n, _)| spec.sel.matches(n))
        .map(|(_, v)| v);
    if spec.all {
        it.collect()
    } else {
        it.take(1).collect()
    }
}

/// `avp_delete`: the newest matching AVP, or all of them with `/g`
/// (`""` with `/g` empties the list). Returns how many went.
pub fn delete(avps: &mut Vec<(AvpName, AvpValue)>, spec: &NameSpec) -> usize {
    let before = avps.len();
    if spec.all {
        avps.retain(|(n, _)| !spec.sel.matches(n));
    } else if let Some(i) = avps.iter().rposition(|(n, _)| spec.sel.matches(n)) {
        avps.remove(i);
    }
    before - avps.len()
}

/// `avp_copy(from, to[/g][/d])`: copies keep their relative order (the
/// newest source stays the newest copy). Returns how many were copied.
pub fn copy(
    avps: &mut Vec<(AvpName, AvpValue)>,
    from: &AvpName,
    to: &AvpName,
    all: bool,
    mv: bool,
) -> usize {
    let sel = NameSpec {
        sel: Selector::Name(from.clone()),
        all,
        delete: false,
    };
    let vals: Vec<AvpValue> = selected(avps, &sel).into_iter().cloned().collect();
    if mv {
        delete(avps, &sel);
    }
    let n = vals.len();
    for v in vals.into_iter().rev() {
        avps.push((to.clone(), v));
    }
    n
}

/// Shell-style pattern match (`*`, `?`, `[a-z]`, `[!x]`), as fnmatch(3).
pub fn glob(pat: &[u8], s: &[u8], nocase: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        let c = s.get(i).copied().unwrap_or(0);
        let step = match pat.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pat, p, c, nocase),
            Some(&pc) if eq(pc, c) => Some(p + 1),
            _ => None,
        };
        match (step, star) {
            (Some(np), _) => {
                p = np;
                i += 1;
            }
            (None, Some((sp, si))) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            (None, None) => return false,
        }
    }
    pat.get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Match `c` against the bracket expression at `pat[p]`; the index after
/// it on success. An unterminated `[` matches itself literally.
fn class(pat: &[u8], p: usize, c: u8, nocase: bool) -> Option<usize> {
    let norm = |x: u8| if nocase { x.to_ascii_lowercase() } else { x };
    let mut j = p + 1;
    let neg = matches!(pat.get(j), Some(b'!') | Some(b'^'));
    if neg {
        j += 1;
    }
    let start = j;
    let mut hit = false;
    loop {
        let a = *pat.get(j)?;
        if a == b']' && j > start {
            break;
        }
        if pat.get(j + 1) == Some(&b'-') && pat.get(j + 2).is_some_and(|&b| b != b']') {
            let b = *pat.get(j + 2)?;
            if (norm(a)..=norm(b)).contains(&norm(c)) {
                hit = true;
            }
            j += 3;
        } else {
            if norm(a) == norm(c) {
                hit = true;
            }
            j += 1;
        }
    }
    (hit != neg).then_some(j + 1)
}

fn cmp_bytes(a: &[u8], b: &[u8], nocase: bool) -> Ordering {
    if nocase {
        a.iter()
            .map(u8::to_ascii_lowercase)
            .cmp(b.iter().map(u8::to_ascii_lowercase))
    } else {
        a.cmp(b)
    }
}

/// One `avp_check` comparison: `avp <op> rhs`. Two integers (or a string
/// holding a number against an integer) compare as numbers, anything
/// else as text; `re` uses the regex compiled at load (or built here from
/// a run-time value), `fm` is fnmatch; `and`/`or`/`xor` are bitwise and
/// true when the result is non-zero.
pub fn check_one(avp: &AvpValue, op: Op, rhs: &AvpValue, nocase: bool, re: Option<&Regex>) -> bool {
    let ints = match (avp, rhs) {
        (AvpValue::Int(_), _) | (_, AvpValue::Int(_)) => avp.as_int().zip(rhs.as_int()),
        _ => None,
    };
    match op {
        Op::Re => {
            let t = text(avp);
            match re {
                Some(r) => r.is_match(&t),
                None => regex::bytes::RegexBuilder::new(&String::from_utf8_lossy(&text(rhs)))
                    .case_insensitive(true)
                    .build()
                    .is_ok_and(|r| r.is_match(&t)),
            }
        }
        Op::Fm => glob(&text(rhs), &text(avp), nocase),
        Op::And | Op::Or | Op::Xor => match ints {
            Some((a, b)) => match op {
                Op::And => a & b != 0,
                Op::Or => a | b != 0,
                _ => a ^ b != 0,
            },
            None => false,
        },
        _ => {
            let ord = match ints {
                Some((a, b)) => a.cmp(&b),
                None => cmp_bytes(&text(avp), &text(rhs), nocase),
            };
            match op {
                Op::Eq => ord == Ordering::Equal,
                Op::Ne => ord != Ordering::Equal,
                Op::Lt => ord == Ordering::Less,
                Op::Le => ord != Ordering::Greater,
                Op::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> AvpValue {
        AvpValue::Str(x.as_bytes().to_vec())
    }
    fn name(x: &str) -> AvpName {
        AvpName::Str(x.as_bytes().to_vec())
    }
    fn sel(n: AvpName, all: bool) -> NameSpec {
        NameSpec {
            sel: Selector::Name(n),
            all,
            delete: false,
        }
    }

    fn list() -> Vec<(AvpName, AvpValue)> {
        vec![
            (name("a"), AvpValue::Int(1)),
            (AvpName::Int(5), s("x")),
            (name("a"), AvpValue::Int(2)),
        ]
    }

    #[test]
    fn select_and_delete_newest_or_all() {
        let l = list();
        assert_eq!(
            selected(&l, &sel(name("a"), false)),
            vec![&AvpValue::Int(2)]
        );
        assert_eq!(
            selected(&l, &sel(name("a"), true)),
            vec![&AvpValue::Int(2), &AvpValue::Int(1)]
        );
        let mut l = list();
        assert_eq!(delete(&mut l, &sel(name("a"), false)), 1);
        assert_eq!(l.len(), 2);
        assert_eq!(l.first().map(|x| &x.1), Some(&AvpValue::Int(1)));
        let mut l = list();
        assert_eq!(delete(&mut l, &sel(name("a"), true)), 2);
        assert_eq!(l, vec![(AvpName::Int(5), s("x"))]);
        let mut l = list();
        let ints = NameSpec {
            sel: Selector::AnyInt,
            all: true,
            delete: false,
        };
        assert_eq!(delete(&mut l, &ints), 1);
        let mut l = list();
        let every = NameSpec {
            sel: Selector::All,
            all: true,
            delete: false,
        };
        assert_eq!(delete(&mut l, &every), 3);
        assert!(l.is_empty());
        assert_eq!(delete(&mut l, &every), 0);
    }

    #[test]
    fn copy_and_move() {
        let mut l = list();
        assert_eq!(copy(&mut l, &name("a"), &name("b"), true, false), 2);
        let b = sel(name("b"), true);
        assert_eq!(selected(&l, &b), vec![&AvpValue::Int(2), &AvpValue::Int(1)]);
        let mut l = list();
        assert_eq!(copy(&mut l, &name("a"), &name("b"), false, true), 1);
        assert_eq!(selected(&l, &sel(name("a"), true)), vec![&AvpValue::Int(1)]);
        assert_eq!(selected(&l, &sel(name("b"), true)), vec![&AvpValue::Int(2)]);
    }

    #[test]
    fn glob_matches_like_fnmatch() {
        assert!(glob(b"sip:*@bar.net", b"sip:alice@bar.net", false));
        assert!(!glob(b"sip:*@bar.net", b"sip:alice@bar.org", false));
        assert!(glob(b"a?c", b"abc", false));
        assert!(glob(b"[a-c]x*", b"bxyz", false));
        assert!(!glob(b"[!a-c]x", b"bx", false));
        assert!(glob(b"*a*b*", b"xxaxxbxx", false));
        assert!(glob(b"ABC", b"abc", true));
        assert!(!glob(b"ABC", b"abc", false));
        assert!(glob(b"", b"", false));
        assert!(!glob(b"", b"a", false));
    }

    #[test]
    fn comparisons() {
        let i = AvpValue::Int;
        assert!(check_one(&i(2), Op::Eq, &i(2), false, None));
        assert!(check_one(&i(2), Op::Lt, &i(345), false, None));
        assert!(!check_one(&i(2), Op::Gt, &i(345), false, None));
        assert!(check_one(&i(3), Op::Ge, &i(3), false, None));
        assert!(check_one(&i(3), Op::Ne, &i(4), false, None));
        // A numeric string against an integer compares as numbers.
        assert!(check_one(&s("10"), Op::Gt, &i(9), false, None));
        assert!(check_one(&s("Alice"), Op::Eq, &s("alice"), true, None));
        assert!(!check_one(&s("Alice"), Op::Eq, &s("alice"), false, None));
        assert!(check_one(&s("abc"), Op::Lt, &s("abd"), false, None));
        assert!(check_one(&i(6), Op::And, &i(2), false, None));
        assert!(!check_one(&i(4), Op::And, &i(2), false, None));
        assert!(!check_one(&i(3), Op::Xor, &i(3), false, None));
        assert!(!check_one(&s("x"), Op::Or, &s("y"), false, None));
        let re = Regex::new("^sip:.*@bar\\.net$").unwrap();
        assert!(check_one(
            &s("sip:a@bar.net"),
            Op::Re,
            &s(""),
            false,
            Some(&re)
        ));
        assert!(!check_one(
            &s("sip:a@foo.net"),
            Op::Re,
            &s(""),
            false,
            Some(&re)
        ));
        assert!(check_one(
            &s("sip:a@foo.net"),
            Op::Re,
            &s("FOO"),
            false,
            None
        ));
        assert!(check_one(
            &s("sip:a@foo.net"),
            Op::Fm,
            &s("sip:*@foo.*"),
            false,
            None
        ));
    }
}
