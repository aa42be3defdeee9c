//! The parts of a SIP URI the database modules look up by: the user, and
//! the host lower-cased (domains compare case-blind).

/// The lower-cased host of `uri`, if it has one.
pub fn host_of(uri: &[u8]) -> Option<String> {
    let u = crate::sip::uri::parse_uri(uri).ok()?;
    let h = std::str::from_utf8(u.host.get(uri)).ok()?;
    (!h.is_empty()).then(|| h.to_ascii_lowercase())
}

/// The user and the lower-cased host of `uri`; `None` without a user.
pub fn user_host(uri: &[u8]) -> Option<(String, String)> {
    let u = crate::sip::uri::parse_uri(uri).ok()?;
    let user = std::str::from_utf8(u.user?.get(uri)).ok()?.to_string();
    let host = std::str::from_utf8(u.host.get(uri))
        .ok()?
        .to_ascii_lowercase();
    Some((user, host))
}
