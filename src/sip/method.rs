//! Request methods (RFC 3261 §7.1, §27.4 and extensions).

/// A request method. Methods are case-sensitive (RFC 3261 §7.1): `invite`
/// is an extension method, not INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Invite,
    Ack,
    Cancel,
    Bye,
    Register,
    Options,
    Info,
    Message,
    Subscribe,
    Notify,
    Prack,
    Update,
    Refer,
    Publish,
    /// Any other token; compare the raw bytes to tell two apart.
    Other,
}

impl Method {
    /// Every method, the extension bucket `Other` last.
    pub const ALL: [Method; 15] = [
        Method::Invite,
        Method::Ack,
        Method::Cancel,
        Method::Bye,
        Method::Register,
        Method::Options,
        Method::Info,
        Method::Message,
        Method::Subscribe,
        Method::Notify,
        Method::Prack,
        Method::Update,
        Method::Refer,
        Method::Publish,
        Method::Other,
    ];

    pub fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"CANCEL" => Method::Cancel,
            b"BYE" => Method::Bye,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"MESSAGE" => Method::Message,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"REFER" => Method::Refer,
            b"PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }

    /// The canonical name; `""` for `Other` (use the message's bytes).
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Cancel => "CANCEL",
            Method::Bye => "BYE",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Message => "MESSAGE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Other => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_case() {
        for m in Method::ALL.into_iter().filter(|m| *m != Method::Other) {
            assert_eq!(Method::from_bytes(m.as_str().as_bytes()), m);
        }
        assert_eq!(Method::from_bytes(b"invite"), Method::Other);
        assert_eq!(Method::from_bytes(b"RE%47IST%45R"), Method::Other);
        assert_eq!(Method::Other.as_str(), "");
    }
}
