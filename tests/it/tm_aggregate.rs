//! Challenge aggregation (SER 2.1 tm's `aggregate_challenges`, RFC 3261
//! 16.7 step 7): a call forked to two callees, one answering 401 and the
//! other 407. By default the caller gets one 401 carrying both
//! challenges, so it can answer both at once; with the parameter at 0 it
//! gets the first 401 as that callee sent it.

use crate::common::sip::header_values;
use crate::common::tmkit::*;
use crate::common::*;

const WWW_A: &str = "WWW-Authenticate: Digest realm=\"a\", nonce=\"na\"\r\n";
const PROXY_B: &str = "Proxy-Authenticate: Digest realm=\"b\", nonce=\"nb\"\r\n";

/// The finals the caller got when forking to `callees`, and what was heard.
fn call(modparams: &str, callees: &[Callee]) -> ForkCall {
    let _g = serial();
    let cfg = |port, ports: &[u16]| tm_cfg(port, 2, modparams, &fork_route(ports, ""));
    fork_call(cfg, callees, false)
}

/// The one final the caller got, which must be a 401.
fn the_401(c: &ForkCall) -> &[u8] {
    assert_eq!(c.finals, [401], "want exactly one 401:\n{}", c.text);
    &c.replies[0]
}

#[test]
fn a_401_and_a_407_reach_the_caller_as_one_401_with_both_challenges() {
    let c = call(
        "",
        &[
            Callee::AnswersWith(401, WWW_A),
            Callee::AnswersWith(407, PROXY_B),
        ],
    );
    let r = the_401(&c);
    assert_eq!(
        header_values(r, "WWW-Authenticate"),
        ["Digest realm=\"a\", nonce=\"na\""],
        "{}",
        c.text
    );
    assert_eq!(
        header_values(r, "Proxy-Authenticate"),
        ["Digest realm=\"b\", nonce=\"nb\""],
        "the 407's challenge is missing:\n{}\n{}",
        String::from_utf8_lossy(r),
        c.text
    );
}

#[test]
fn the_407_first_in_the_fork_still_gives_a_401_with_both() {
    // The 401 is picked whichever branch it came on; the other branch's
    // challenge follows it.
    let c = call(
        "",
        &[
            Callee::AnswersWith(407, PROXY_B),
            Callee::AnswersWith(401, WWW_A),
        ],
    );
    let r = the_401(&c);
    assert_eq!(header_values(r, "WWW-Authenticate").len(), 1, "{}", c.text);
    assert_eq!(
        header_values(r, "Proxy-Authenticate").len(),
        1,
        "{}",
        c.text
    );
}

#[test]
fn with_aggregate_challenges_0_the_caller_gets_the_401_alone() {
    let c = call(
        "modparam(\"tm\", \"aggregate_challenges\", 0)",
        &[
            Callee::AnswersWith(401, WWW_A),
            Callee::AnswersWith(407, PROXY_B),
        ],
    );
    let r = the_401(&c);
    assert_eq!(
        header_values(r, "WWW-Authenticate"),
        ["Digest realm=\"a\", nonce=\"na\""],
        "{}",
        c.text
    );
    assert!(
        header_values(r, "Proxy-Authenticate").is_empty(),
        "merged although aggregate_challenges=0:\n{}",
        String::from_utf8_lossy(r)
    );
}

#[test]
fn a_lone_401_goes_as_the_callee_sent_it() {
    // One challenged branch, one 486: nothing to merge, and nothing is
    // taken from the 486.
    let c = call(
        "",
        &[
            Callee::AnswersWith(486, "WWW-Authenticate: Digest realm=\"busy\"\r\n"),
            Callee::AnswersWith(401, WWW_A),
        ],
    );
    let r = the_401(&c);
    assert_eq!(
        header_values(r, "WWW-Authenticate"),
        ["Digest realm=\"a\", nonce=\"na\""],
        "{}",
        c.text
    );
}
