//! Broken configs: each must be rejected at the offending token's
//! line:column with a message saying what was expected.

use super::parse_str;

/// Parses `src`, expects an error, returns its message.
fn err(src: &str) -> String {
    match parse_str(src, "ser.cfg") {
        Ok(s) => panic!("accepted broken config:\n{src}\n{s:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_err(src: &str, prefix: &str, needle: &str) {
    let m = err(src);
    assert!(
        m.starts_with(prefix),
        "wrong position: {m:?}, wanted prefix {prefix:?}"
    );
    assert!(m.contains(needle), "message {m:?} lacks {needle:?}");
}

#[test]
fn unterminated_string_points_at_opening_quote() {
    assert_err(
        "fifo=\"/tmp/x\nroute{}\n",
        "ser.cfg:1:6: unterminated string",
        "expected a closing \"",
    );
    assert_err(
        "route {\n  log('abc);\n}",
        "ser.cfg:2:7: unterminated string",
        "expected a closing '",
    );
}

#[test]
fn unterminated_comment_points_at_outer_opening() {
    assert_err(
        "debug=1\n/* a /* b */ c\nroute{}",
        "ser.cfg:2:1: unterminated comment",
        "expected '*/'",
    );
}

#[test]
fn missing_semicolon() {
    assert_err(
        "route {\n\tt_relay()\n\tbreak;\n}",
        "ser.cfg:3:2: unexpected 'break'",
        "expected ';' after 't_relay(...)'",
    );
    assert_err(
        "route { drop }",
        "ser.cfg:1:14: unexpected '}'",
        "expected ';' after 'drop'",
    );
}

#[test]
fn unbalanced_braces() {
    assert_err(
        "route {\n  if (a()) {\n    b();\n}\n",
        "ser.cfg:5:1: unexpected end of file",
        "'}' closing the block opened at 1:7",
    );
    assert_err(
        "route { a(); }\n}\n",
        "ser.cfg:2:1: unexpected '}'",
        "expected a global parameter, loadmodule, modparam or route block",
    );
    assert_err(
        "route { a(); } } ",
        "ser.cfg:1:16: unexpected '}'",
        "expected a global parameter",
    );
}

#[test]
fn bad_ip_octet_and_shape() {
    assert_err(
        "route { if (src_ip==10.0.256.1) drop; }",
        "ser.cfg:1:26: bad IP address '10.0.256.1'",
        "expected 0-255",
    );
    assert_err(
        "listen=1.2.3\n",
        "ser.cfg:1:8: bad IP address '1.2.3'",
        "four numbers",
    );
    assert_err(
        "route { if (src_ip==10.0.0.0/33) drop; }",
        "ser.cfg:1:30: bad IP address",
        "prefix length 0-32",
    );
    assert_err(
        "route { if (src_ip==10.0.0.0/255.0.255.0) drop; }",
        "ser.cfg:1:30: bad IP address",
        "contiguous netmask",
    );
}

#[test]
fn bad_route_index() {
    assert_err(
        "route[-1] { }",
        "ser.cfg:1:7: unexpected '-'",
        "expected a route number or name inside route[ ]",
    );
    assert_err(
        "failure_route[] { }",
        "ser.cfg:1:15: unexpected ']'",
        "route number or name",
    );
    assert_err(
        "route[1 2] { }",
        "ser.cfg:1:9: unexpected number 2",
        "expected ']' closing the route index",
    );
    assert_err(
        "route[99999999999] { }",
        "ser.cfg:1:7: unexpected number",
        "route number or name",
    );
    assert_err(
        "route[1] drop;",
        "ser.cfg:1:10: unexpected 'drop'",
        "expected '{' opening the route block",
    );
}

#[test]
fn if_without_condition() {
    assert_err(
        "route {\n if { drop; }\n}",
        "ser.cfg:2:5: unexpected '{'",
        "expected a condition after 'if'",
    );
    assert_err(
        "route { if ; }",
        "ser.cfg:1:12: unexpected ';'",
        "a condition after 'if'",
    );
    assert_err(
        "route { if (a()) }",
        "ser.cfg:1:18: unexpected '}'",
        "a statement or '{' block after the if condition",
    );
    assert_err(
        "route { else drop; }",
        "ser.cfg:1:9: unexpected 'else'",
        "without a matching 'if'",
    );
}

#[test]
fn junk_at_top_level() {
    assert_err(
        "debug=3\nfoo bar\n",
        "ser.cfg:2:5: unexpected 'bar'",
        "expected '=' after global parameter name 'foo'",
    );
    assert_err(
        "\"str\"",
        "ser.cfg:1:1: unexpected string",
        "expected a global parameter, loadmodule, modparam or route block",
    );
    assert_err(
        "debug=3 ~",
        "ser.cfg:1:9: unexpected character '~'",
        "expected a name, number",
    );
    assert_err(
        "loadmodule tm.so",
        "ser.cfg:1:12: unexpected 'tm'",
        "a quoted path after 'loadmodule'",
    );
    assert_err(
        "debug=",
        "ser.cfg:1:7: unexpected end of file",
        "value of 'debug'",
    );
}

#[test]
fn modparam_arity_and_types() {
    assert_err(
        "modparam(\"tm\", \"fr_timer\")",
        "ser.cfg:1:26: unexpected ')'",
        "modparam takes 3 arguments",
    );
    assert_err(
        "modparam(\"tm\", \"a\", 1, 2)",
        "ser.cfg:1:22: unexpected ','",
        "')' closing modparam",
    );
    assert_err(
        "modparam(tm, \"a\", 1)",
        "ser.cfg:1:10: unexpected 'tm'",
        "module name",
    );
    assert_err(
        "modparam(\"tm\", \"a\", foo)",
        "ser.cfg:1:21: unexpected 'foo'",
        "a string or number as modparam value",
    );
}

#[test]
fn expression_errors() {
    assert_err(
        "route { if (method) drop; }",
        "ser.cfg:1:19: unexpected ')'",
        "a comparison operator after 'method'",
    );
    assert_err(
        "route { if (uri == ) drop; }",
        "ser.cfg:1:20: unexpected ')'",
        "after '=='",
    );
    assert_err(
        "route { if (a() && ) drop; }",
        "ser.cfg:1:20: unexpected ')'",
        "expected a condition",
    );
    assert_err(
        "route { if (a() drop; }",
        "ser.cfg:1:17: unexpected 'drop'",
        "')' closing the parenthesised condition",
    );
    assert_err(
        "route { if (myself == foo) drop; }",
        "ser.cfg:1:23: unexpected 'foo'",
        "message operand",
    );
}

#[test]
fn call_errors() {
    assert_err(
        "route { f(\"a\" \"b\"); }",
        "ser.cfg:1:15: unexpected string",
        "',' or ')' in the arguments of 'f'",
    );
    assert_err(
        "route { f(,); }",
        "ser.cfg:1:11: unexpected ','",
        "an argument of 'f'",
    );
    assert_err(
        "route { 5; }",
        "ser.cfg:1:9: unexpected number 5",
        "expected a statement",
    );
}

#[test]
fn socket_errors() {
    assert_err(
        "listen=udp:1.2.3.4:70000",
        "ser.cfg:1:20: bad port 70000",
        "0-65535",
    );
    assert_err(
        "listen=udp:1.2.3.4:x",
        "ser.cfg:1:20: unexpected 'x'",
        "port number",
    );
    assert_err(
        "listen=;",
        "ser.cfg:1:8: unexpected ';'",
        "an address, host or interface name",
    );
}

#[test]
fn number_errors() {
    assert_err("debug=09", "ser.cfg:1:7: bad number '09'", "octal digits");
    assert_err(
        "debug=0x",
        "ser.cfg:1:7: bad number '0x'",
        "hexadecimal digits",
    );
    assert_err(
        "debug=99999999999999999999",
        "ser.cfg:1:7: bad number",
        "fits",
    );
}

#[test]
fn string_assignment_is_reported_unsupported() {
    assert_err(
        "route { $a = \"x\"; }",
        "ser.cfg:1:14: unsupported string value",
        "expected a number",
    );
}

#[test]
fn first_error_wins_over_later_lexical_error() {
    // The syntax error on line 1 is reported, not the unterminated string on line 2.
    assert_err(
        "route { a() }\nfifo=\"x",
        "ser.cfg:1:13: unexpected '}'",
        "';'",
    );
}
