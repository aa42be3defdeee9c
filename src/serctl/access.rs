//! Who may answer us. serctl's reply endpoint (a FIFO or a bound socket
//! in `/tmp`) is made 0600, ours alone. When ser has dropped privileges
//! (`-u`/`-g`) it cannot write there, so the endpoint is opened to the
//! identity the server's own FIFO or socket belongs to — by default the
//! user ser runs as — and to no one else:
//!
//! - server endpoint ours, or root's (root writes anywhere): stay 0600;
//! - we are root: hand the endpoint to the server endpoint's owner and
//!   group, mode 0620 (root reads it regardless);
//! - we are in the server endpoint's group: give the endpoint that
//!   group, mode 0620 (the group may write, only we read);
//! - otherwise nothing can be done by us; stay 0600.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Gid, Uid};

use super::transport::{io_err, TransportError};

/// What to allow on our reply endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// 0600, ours alone.
    Private,
    /// Owner and group given to the server's identity, 0620.
    Handover { uid: u32, gid: u32 },
    /// Group given to the server's group, 0620.
    Group { gid: u32 },
}

/// The decision, from the server endpoint's owner and who we are.
pub fn plan(server_uid: u32, server_gid: u32, me: u32, in_group: impl Fn(u32) -> bool) -> Grant {
    if server_uid == me || server_uid == 0 {
        Grant::Private
    } else if me == 0 {
        Grant::Handover {
            uid: server_uid,
            gid: server_gid,
        }
    } else if in_group(server_gid) {
        Grant::Group { gid: server_gid }
    } else {
        Grant::Private
    }
}

/// Opens `reply` (created 0600 by us) to the identity owning `server`.
pub fn grant(server: &Path, reply: &Path) -> Result<(), TransportError> {
    let m = std::fs::metadata(server).map_err(io_err("stat", server))?;
    let me = nix::unistd::geteuid().as_raw();
    let in_group = |gid: u32| {
        nix::unistd::getegid().as_raw() == gid
            || nix::unistd::getgroups().is_ok_and(|g| g.contains(&Gid::from_raw(gid)))
    };
    let (owner, group) = match plan(m.uid(), m.gid(), me, in_group) {
        Grant::Private => return Ok(()),
        Grant::Handover { uid, gid } => (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))),
        Grant::Group { gid } => (None, Some(Gid::from_raw(gid))),
    };
    nix::unistd::chown(reply, owner, group)
        .map_err(|e| io_err("chown", reply)(std::io::Error::from(e)))?;
    // chown may clear mode bits; set the mode after it.
    std::fs::set_permissions(reply, std::fs::Permissions::from_mode(0o620))
        .map_err(io_err("chmod", reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_answer() {
        let none = |_| false;
        let member = |g| g == 65534;
        // ser runs as us, or as root: nothing to open.
        assert_eq!(plan(1000, 1000, 1000, none), Grant::Private);
        assert_eq!(plan(0, 0, 1000, member), Grant::Private);
        assert_eq!(plan(0, 0, 0, none), Grant::Private);
        // root asking a ser that runs as nobody.
        assert_eq!(
            plan(65534, 65534, 0, none),
            Grant::Handover {
                uid: 65534,
                gid: 65534
            }
        );
        // A member of ser's group, or a stranger.
        assert_eq!(
            plan(65534, 65534, 1000, member),
            Grant::Group { gid: 65534 }
        );
        assert_eq!(plan(65534, 65534, 1000, none), Grant::Private);
    }
}
