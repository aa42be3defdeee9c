//! Our own test messages, modelled on the cases of RFC 4475 (§3.1.1 valid,
//! §3.1.2 and §3.3 invalid) — written for this project, not copied.

/// A plain INVITE of the usual shape (12 headers, SDP body).
pub(super) const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/TCP proxy.atlanta.example.com;branch=z9hG4bK9a8b7c, SIP/2.0/UDP [2001:db8::5]:5062;branch=z9hG4bKold\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice A.\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Record-Route: <sip:proxy.atlanta.example.com;lr>\r\n\
Route: <sip:edge.biloxi.example.com;lr>\r\n\
User-Agent: test-ua/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 149\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// Folding everywhere, odd spacing, compact names, unknown headers with
/// strange values, LWS inside the Via sent-protocol (cf. RFC 4475 §3.1.1.1).
pub(super) const TORTUOUS: &[u8] = b"INVITE sip:carol@chicago.example.org;odd-param SIP/2.0\r\n\
TO :\r\n sip:carol@chicago.example.org ;   tag    = 7a1b2c3d\r\n\
from   : \"Dave \\\"the Folder\\\"\"       <sip:dave@example.net>\r\n  ;\r\n  tag = f00d\r\n\
MaX-fOrWaRdS: 0068\r\n\
Call-ID: fold-test.0ha0isndaksdj@192.0.2.7\r\n\
Content-Length   : 13\r\n\
cseq: 0009\r\n  INVITE\r\n\
Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.7;branch=z9hG4bKtortuous1\r\n\
s :\r\n\
NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\
Content-Type: text/plain\r\n\
Route:\r\n <sip:services.example.net;lr;unknownwith=value;unknown-no-value>\r\n\
v:  SIP  / 2.0  / TCP     spindle.example.net   ;\r\n  branch  =   z9hG4bKtortuous2\r\n\
m:\"Quoted string \\\"\\\"\" <sip:dave@192.0.2.7:5060> ; newparam =\r\n newvalue ;\r\n  secondparam ; q = 0.33\r\n\
\r\n\
folded body\r\n";

/// Every token character in the method and in a header name, and an
/// unusual but legal R-URI user part (cf. RFC 4475 §3.1.1.2).
pub(super) const TOKEN_CHARS: &[u8] = b"!odd-Method0123456789_*+`.%really'~ sip:odd_user.name~(really!)&isn't+it$/strange?,/;;*:&pass+word=1,odd!*pa$s~_too.(yes-it-is)@example.org SIP/2.0\r\n\
Via: SIP/2.0/UDP host1.example.org;branch=z9hG4bK-.!%66*_+`'~\r\n\
To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:odd_user.name~(really!)&isn't+it$/strange?,/;;*@example.org>\r\n\
From: token1~` token2'+_ token3*%!.- <sip:mallory@example.org>;fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9\";tag=_token~1'+`*%!-.\r\n\
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n\
CSeq: 139122385 !odd-Method0123456789_*+`.%really'~\r\n\
Max-Forwards: 255\r\n\
extensionHeader-!.%*+_`'~:\xef\xbb\xbfbig extension value\r\n\
Content-Length: 0\r\n\
\r\n";

/// Percent escapes in URIs, `%00` included (cf. RFC 4475 §3.1.1.3-4).
pub(super) const ESCAPED: &[u8] = b"INVITE sip:sips%3Amary%40example.com@example.net SIP/2.0\r\n\
To: sip:%6Dary@example.com\r\n\
From: <sip:n%75ll-%00-null@example.com>;tag=esc01\r\n\
Call-ID: esc01.239409asdfakjkn23onasd0-3234\r\n\
CSeq: 234234 INVITE\r\n\
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\n\
Content-Length: 0\r\n\
\r\n";

/// Escapes in the method and a header name that is NOT Contact:
/// `C%6Fntact` is an extension header (cf. RFC 4475 §3.1.1.5).
pub(super) const ESCAPED_METHOD: &[u8] = b"RE%47IST%45R sip:registrar.example.com SIP/2.0\r\n\
To: \"Mary\" <sip:mary@example.com>\r\n\
From: <sip:mary@example.com>;tag=esc02\r\n\
Max-Forwards: 70\r\n\
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\r\n\
Via: SIP/2.0/TCP host.example.com;rport;branch=z9hG4bK209323\r\n\
CSeq: 29344 RE%47IST%45R\r\n\
C%6Fntact: <sip:mary@host.example.com>\r\n\
Contact: <sip:mary@host.example.com>\r\n\
l: 0\r\n\
\r\n";

/// No LWS between display name and `<` (cf. RFC 4475 §3.1.1.6).
pub(super) const LWS_DISPLAY: &[u8] = b"OPTIONS sip:user@example.com SIP/2.0\r\n\
To: sip:user@example.com\r\n\
From: caller<sip:caller@example.com>;tag=323\r\n\
Max-Forwards: 70\r\n\
Call-ID: lwsdisp.1234abcd@funky.example.com\r\n\
CSeq: 60 OPTIONS\r\n\
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\r\n\
l: 0\r\n\
\r\n";

/// A REGISTER followed in the same datagram by octets that look like an
/// INVITE: Content-Length 0 cuts them off (cf. RFC 4475 §3.1.1.8).
pub(super) const DOUBLE: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
To: sip:j.user@example.com\r\n\
From: sip:j.user@example.com;tag=43251j3j324\r\n\
Max-Forwards: 8\r\n\
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\r\n\
Contact: sip:j.user@host.example.com\r\n\
CSeq: 8 REGISTER\r\n\
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\r\n\
Content-Length: 0\r\n\
\r\n\
INVITE sip:joe@example.com SIP/2.0\r\n\
t: sip:joe@example.com\r\n\
\r\n";

/// `;` in the user part of the R-URI (cf. RFC 4475 §3.1.1.9).
pub(super) const SEMI_URI: &[u8] = b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\n\
To: sip:j_user@example.com\r\n\
From: sip:caller@example.org;tag=33242\r\n\
Max-Forwards: 3\r\n\
Call-ID: semiuri.0ha0isndaksdj\r\n\
CSeq: 8 OPTIONS\r\n\
Accept: application/sdp, application/pkcs7-mime,\r\n multipart/mixed, multipart/signed,\r\n message/sipfrag\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\r\n\
l: 0\r\n\
\r\n";

/// Unusual transports in Via (cf. RFC 4475 §3.1.1.10), IPv6 and bare LF.
pub(super) const TRANSPORTS: &[u8] = b"OPTIONS sip:user@[2001:db8::10]:5070 SIP/2.0\n\
To: sip:user@example.com\n\
From: <sip:caller@example.com>;tag=323\n\
Max-Forwards: 70\n\
Call-ID: transports.kijh4akdnaqjkwendsasfdj\n\
Accept: application/sdp\n\
CSeq: 60 OPTIONS\n\
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\n\
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\n\
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\n\
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\n\
Via: SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bK0a9idfnee\n\
l: 0\n\
\n";

/// Unknown R-URI scheme: valid to parse (a proxy answers 416; RFC 4475 §3.3.2).
pub(super) const UNKNOWN_SCHEME: &[u8] =
    b"OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\r\n\
To: sip:user@example.com\r\n\
From: sip:caller@example.net;tag=384\r\n\
Max-Forwards: 3\r\n\
Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34\r\n\
CSeq: 3923423 OPTIONS\r\n\
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\r\n\
Content-Length: 0\r\n\
\r\n";

/// RFC 2543 style: no branch, no tags, no Max-Forwards, no Content-Length
/// (cf. RFC 4475 §3.4.1).
pub(super) const RFC2543: &[u8] = b"INVITE sip:UserB@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP iftgw.example.com\r\n\
From: <sip:+13035551111@ift.client.example.net;user=phone>\r\n\
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\r\n\
To: sip:+16505552222@ss1.example.net;user=phone\r\n\
Call-ID: inv2543.1717@ift.client.example.com\r\n\
CSeq: 56 INVITE\r\n\
\r\n";

/// Max-Forwards of zero is valid to parse (cf. RFC 4475 §3.3.11).
pub(super) const ZERO_MF: &[u8] = b"OPTIONS sip:user@example.com SIP/2.0\r\n\
To: sip:user@example.com\r\n\
From: sip:caller@example.net;tag=3ghsd41\r\n\
Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas\r\n\
CSeq: 39234321 OPTIONS\r\n\
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i\r\n\
Max-Forwards: 0\r\n\
Content-Length: 0\r\n\
\r\n";

/// Replies: UTF-8 reason phrase, empty reason phrase (cf. RFC 4475
/// §3.1.1.12-13), leading CRLFs before the status line (RFC 3261 §7.5).
pub(super) const REPLY_UTF8: &[u8] =
    b"\r\n\r\nSIP/2.0 200 = 2**3 * 5**2 \xd0\xbd\xd0\xbe \xd1\x81\xd1\x82\xd0\xbe\r\n\
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n\
Call-ID: unreason.1234ksdfak3j2erwedfsASdf\r\n\
CSeq: 35 INVITE\r\n\
From: sip:user@example.com;tag=11141343\r\n\
To: sip:user@example.edu;tag=2229\r\n\
Content-Length: 0\r\n\
\r\n";

pub(super) const REPLY_NO_REASON: &[u8] = b"SIP/2.0 100 \r\n\
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n\
Call-ID: noreason.asndj203insdf99223ndf\r\n\
CSeq: 35 INVITE\r\n\
From: <sip:user@example.com>;tag=39ansfi3\r\n\
To: <sip:user@example.edu>;tag=902jndnke3\r\n\
Content-Length: 0\r\n\
\r\n";

/// Valid fixtures: each must parse and validate.
pub(super) const VALID: &[(&str, &[u8])] = &[
    ("invite", INVITE),
    ("tortuous", TORTUOUS),
    ("token_chars", TOKEN_CHARS),
    ("escaped", ESCAPED),
    ("escaped_method", ESCAPED_METHOD),
    ("lws_display", LWS_DISPLAY),
    ("double", DOUBLE),
    ("semi_uri", SEMI_URI),
    ("transports", TRANSPORTS),
    ("unknown_scheme", UNKNOWN_SCHEME),
    ("rfc2543", RFC2543),
    ("zero_mf", ZERO_MF),
    ("reply_utf8", REPLY_UTF8),
    ("reply_no_reason", REPLY_NO_REASON),
];

/// Common headers for the invalid requests below (each test changes one thing).
macro_rules! req {
    ($first:literal, $($h:literal),* ; $body:literal) => {
        concat!($first, "\r\n", $($h, "\r\n",)* "\r\n", $body).as_bytes()
    };
}

/// Invalid messages: name, bytes, and what must happen.
pub(super) enum Expect {
    /// `Msg::parse` fails (dropped).
    Parse,
    /// `validate` fails with this reply code (`None` = drop).
    Validate(Option<u16>),
}

pub(super) const INVALID: &[(&str, &[u8], Expect)] = &[
    (
        "content_length_too_large",
        req!("INVITE sip:user@example.com SIP/2.0",
        "Max-Forwards: 80", "To: sip:j.user@example.com", "From: sip:caller@example.net;tag=93942939o2",
        "Contact: <sip:caller@hungry.example.net>", "Call-ID: clerr.0ha0isndaksdjweiafasdk3",
        "CSeq: 8 INVITE", "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523",
        "Content-Type: application/sdp", "Content-Length: 9999"; "v=0\r\n"),
        Expect::Validate(Some(400)),
    ),
    (
        "negative_content_length",
        req!("INVITE sip:user@example.com SIP/2.0",
        "Max-Forwards: 254", "To: sip:j.user@example.com", "From: sip:caller@example.net;tag=32394234",
        "Call-ID: ncl.0ha0isndaksdj2193423r542w35", "CSeq: 0 INVITE",
        "Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw", "Content-Length: -999"; "v=0\r\n"),
        Expect::Validate(Some(400)),
    ),
    (
        "overlarge_scalars",
        req!("REGISTER sip:example.com SIP/2.0",
        "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3", "To: <sip:user@example.com>",
        "From: <sip:user@example.com>;tag=239232jh3", "CSeq: 36893488147419103232 REGISTER",
        "Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32", "Max-Forwards: 300",
        "Expires: 1000000000000000000000000000", "Contact: <sip:user@host129.example.com>;expires=280297596632815",
        "Content-Length: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "max_forwards_300",
        req!("OPTIONS sip:example.com SIP/2.0",
        "Via: SIP/2.0/TCP h.example.com;branch=z9hG4bK1", "To: <sip:user@example.com>",
        "From: <sip:user@example.com>;tag=1", "CSeq: 1 OPTIONS", "Call-ID: mf300", "Max-Forwards: 300"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "unterminated_quote",
        req!("INVITE sip:user@example.com SIP/2.0",
        "To: \"Mr. J. User <sip:j.user@example.com>", "From: sip:caller@example.net;tag=93334",
        "Max-Forwards: 10", "Call-ID: quotbal.aksdj", "Contact: <sip:caller@host59.example.net>",
        "CSeq: 8 INVITE", "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234",
        "Content-Length: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "angle_ruri",
        req!("INVITE <sip:user@example.com> SIP/2.0",
        "To: sip:user@example.com", "From: sip:caller@example.net;tag=39291", "Max-Forwards: 23",
        "Call-ID: ltgtruri.1@192.0.2.5", "CSeq: 1 INVITE", "Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKkdjuw",
        "Content-Length: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "lws_in_ruri",
        req!("INVITE sip:user@example.com; lr SIP/2.0",
        "To: sip:user@example.com;tag=3xfe-9921883-z9f", "From: sip:caller@example.net;tag=231413434",
        "Max-Forwards: 5", "Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423",
        "CSeq: 2130706432 INVITE", "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395",
        "Content-Length: 0"; ""),
        Expect::Parse,
    ),
    (
        "double_sp_request_line",
        req!("INVITE  sip:user@example.com  SIP/2.0",
        "Max-Forwards: 8", "To: sip:user@example.com", "From: sip:caller@example.net;tag=8814",
        "Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com", "CSeq: 1893884 INVITE",
        "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923", "Content-Length: 0"; ""),
        Expect::Parse,
    ),
    (
        "trailing_sp_request_line",
        req!("OPTIONS sip:remote-target@example.com SIP/2.0 ",
        "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093", "To: <sip:remote-target@example.com>",
        "From: <sip:local-resource@example.com>;tag=329429089", "Call-ID: trws.oicu34958239neffasdhr2345r",
        "Accept: application/sdp", "CSeq: 238923 OPTIONS", "Max-Forwards: 70", "Content-Length: 0"; ""),
        Expect::Parse,
    ),
    (
        "spaced_version",
        req!("OPTIONS sip:t@example.com SIP / 2.0",
        "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK1", "To: <sip:t@example.com>",
        "From: <sip:l@example.com>;tag=3", "Call-ID: sv", "CSeq: 1 OPTIONS", "Content-Length: 0"; ""),
        Expect::Parse,
    ),
    (
        "headers_in_ruri",
        req!("INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
        "To: sip:user@example.com", "From: sip:caller@example.net;tag=341518", "Max-Forwards: 7",
        "Contact: <sip:caller@host39923.example.net>", "Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5",
        "CSeq: 149209342 INVITE", "Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw",
        "Content-Length: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "spaces_in_addr_spec",
        req!("OPTIONS sip:user@example.org SIP/2.0",
        "Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234", "Max-Forwards: 70",
        "From: \"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423",
        "To: \"Watson, Thomas\" < sip:t.watson@example.org >", "Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3",
        "Accept: application/sdp", "CSeq: 3923239 OPTIONS", "l: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "non_token_display_name",
        req!("OPTIONS sip:t.watson@example.org SIP/2.0",
        "Via: SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw", "Max-Forwards: 70",
        "From: Bell, Alexander <sip:a.g.bell@example.com>;tag=43", "To: Watson, Thomas <sip:t.watson@example.org>",
        "Call-ID: baddn.31415@c.example.com", "Accept: application/sdp", "CSeq: 3923239 OPTIONS", "l: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "unknown_version",
        req!("OPTIONS sip:t.watson@example.org SIP/7.0",
        "Via: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw", "Max-Forwards: 70",
        "From: A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe", "To: T. Watson <sip:t.watson@example.org>",
        "Call-ID: badvers.31417@c.example.com", "CSeq: 1 OPTIONS", "l: 0"; ""),
        Expect::Validate(Some(505)),
    ),
    (
        "cseq_method_mismatch",
        req!("OPTIONS sip:user@example.com SIP/2.0",
        "To: sip:j.user@example.com", "From: sip:caller@example.net;tag=34525", "Max-Forwards: 6",
        "Call-ID: mismatch01.dj0234sxdfl3", "CSeq: 8 INVITE", "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw",
        "l: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "unknown_method_cseq_mismatch",
        req!("NEWMETHOD sip:user@example.com SIP/2.0",
        "To: sip:j.user@example.com", "From: sip:caller@example.net;tag=34525", "Max-Forwards: 6",
        "Call-ID: mismatch02.dj0234sxdfl3", "CSeq: 8 INVITE", "Contact: <sip:caller@host.example.net>",
        "Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw", "Content-Type: application/sdp", "l: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "overlarge_status_code",
        req!("SIP/2.0 4294967301 better not break the receiver",
        "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe", "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3",
        "CSeq: 353494 INVITE", "From: <sip:user@example.com>;tag=39ansfi3", "To: <sip:user@example.edu>;tag=902jndnke3",
        "Content-Length: 0"; ""),
        Expect::Parse,
    ),
    (
        "missing_mandatory",
        req!("INVITE sip:user@example.com SIP/2.0",
        "CSeq: 193942 INVITE", "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf", "Content-Type: application/sdp",
        "l: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "duplicate_single_valued",
        req!("INVITE sip:user@company.com SIP/2.0",
        "Contact: <sip:caller@host25.example.net>", "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw",
        "Max-Forwards: 70", "CSeq: 5 INVITE", "Call-ID: multi01.98asdh@192.0.2.1", "CSeq: 59 INVITE",
        "Call-ID: multi01.98asdh@192.0.2.2", "From: sip:caller@example.com;tag=3413415",
        "To: sip:user@example.com", "To: sip:other@example.net", "From: sip:caller@example.net;tag=2923420123",
        "Content-Length: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    (
        "two_content_lengths",
        req!("OPTIONS sip:user@example.com SIP/2.0",
        "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423", "To: sip:user@example.com",
        "From: sip:other@example.net;tag=3923942", "Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf",
        "CSeq: 15932 OPTIONS", "Content-Length: 13", "Max-Forwards: 60", "Content-Length: 5"; "123456789012\r\n"),
        Expect::Validate(Some(400)),
    ),
    (
        "junk_in_via",
        req!("INVITE sip:user@example.com SIP/2.0",
        "To: sip:user@example.com", "From: sip:caller@example.net;tag=134161461246",
        "Max-Forwards: 7", "Call-ID: badinv01.0ha0isndaksdjasdf3234nas", "CSeq: 8 INVITE",
        "Via: SIP/2.0/UDP 192.0.2.15;;,;,,", "Contact: \"Joe\" <sip:joe@example.org>;;;;", "Content-Length: 0"; ""),
        Expect::Validate(None),
    ),
    (
        "header_without_colon",
        req!("OPTIONS sip:u@example.com SIP/2.0",
        "Via SIP/2.0/UDP h.example.com;branch=z9hG4bK1"; ""),
        Expect::Parse,
    ),
    (
        "no_end_of_headers",
        b"OPTIONS sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n",
        Expect::Parse,
    ),
    (
        "leading_continuation",
        req!("OPTIONS sip:u@example.com SIP/2.0", " Via: SIP/2.0/UDP h"; ""),
        Expect::Parse,
    ),
    (
        "bad_call_id",
        req!("OPTIONS sip:u@example.com SIP/2.0",
        "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1", "To: <sip:u@example.com>", "From: <sip:l@example.com>;tag=3",
        "Call-ID: has space", "CSeq: 1 OPTIONS", "Content-Length: 0"; ""),
        Expect::Validate(Some(400)),
    ),
    ("empty", b"\r\n\r\n", Expect::Parse),
];

/// A request with very long values and many Vias (cf. RFC 4475 §3.1.1.7),
/// built at test time.
pub(super) fn long_request() -> Vec<u8> {
    let long = "very".repeat(2500);
    let mut m = format!("INVITE sip:{long}user@example.com SIP/2.0\r\n");
    m += &format!(
        "To: \"I have a user name of {long} proportion\" <sip:{long}user@example.com>\r\n"
    );
    m += &format!("From: sip:caller@example.net;tag={long}\r\n");
    m += &format!("Call-ID: longreq.{long}\r\n");
    m += "CSeq: 1 INVITE\r\n";
    m += &format!("Unknown-{long}-Name: unknown-{long}-value; unknown-{long}-parameter-name = unknown-{long}-parameter-value\r\n");
    for i in 0..40 {
        m += &format!("Via: SIP/2.0/TCP sip{i}.example.com;branch=z9hG4bK{long}{i}, SIP/2.0/UDP x{i}.example.com\r\n");
    }
    m += "Max-Forwards: 70\r\n";
    m += &format!("Contact: <sip:amazinglylongcallername{long}@host5.example.net>\r\n");
    m += "Content-Length: 4\r\n\r\nabcd";
    m.into_bytes()
}
