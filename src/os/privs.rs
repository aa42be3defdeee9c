//! Dropping root privileges to the configured `user`/`group` (`-u`, `-g`).
use std::ffi::CString;

use nix::unistd::{self, Gid, Group, Uid, User};

use super::OsError;

/// Looks a user up by name, or by number as SER also accepts (`-u 1000`).
/// Returns its uid and primary gid.
pub fn resolve_user(name: &str) -> Result<(Uid, Gid), OsError> {
    let found = match name.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)).map_err(OsError::Lookup)?,
        Err(_) => User::from_name(name).map_err(OsError::Lookup)?,
    };
    found
        .map(|u| (u.uid, u.gid))
        .ok_or_else(|| OsError::UnknownUser(name.to_owned()))
}

/// Looks a group up by name or number.
pub fn resolve_group(name: &str) -> Result<Gid, OsError> {
    let found = match name.parse::<u32>() {
        Ok(n) => Group::from_gid(Gid::from_raw(n)).map_err(OsError::Lookup)?,
        Err(_) => Group::from_name(name).map_err(OsError::Lookup)?,
    };
    found
        .map(|g| g.gid)
        .ok_or_else(|| OsError::UnknownGroup(name.to_owned()))
}

/// Switches to `group` and then `user` (group first: once the uid is
/// dropped, changing the gid is no longer permitted). With a user but no
/// group, the user's primary group is used; the supplementary groups become
/// the user's (initgroups) or, with only a group, just that group.
pub fn drop_privileges(user: Option<&str>, group: Option<&str>) -> Result<(), OsError> {
    let user_ids = user.map(resolve_user).transpose()?;
    let gid = match group {
        Some(g) => Some(resolve_group(g)?),
        None => user_ids.map(|(_, gid)| gid),
    };
    if let Some(gid) = gid {
        match (user, user_ids) {
            (Some(name), Some(_)) if name.parse::<u32>().is_err() => {
                let cname = CString::new(name).map_err(|_| OsError::BadName)?;
                unistd::initgroups(&cname, gid).map_err(OsError::SetGid)?;
            }
            _ => unistd::setgroups(&[gid]).map_err(OsError::SetGid)?,
        }
        unistd::setgid(gid).map_err(OsError::SetGid)?;
    }
    if let Some((uid, _)) = user_ids {
        unistd::setuid(uid).map_err(OsError::SetUid)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_by_name_and_number() {
        let (uid, gid) = resolve_user("root").unwrap();
        assert_eq!(uid.as_raw(), 0);
        assert_eq!(gid.as_raw(), 0);
        assert_eq!(resolve_user("0").unwrap().0.as_raw(), 0);
        assert_eq!(resolve_group("0").unwrap().as_raw(), 0);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(matches!(
            resolve_user("no-such-user-ser-test"),
            Err(OsError::UnknownUser(_))
        ));
        assert!(matches!(
            resolve_group("no-such-group-ser-test"),
            Err(OsError::UnknownGroup(_))
        ));
    }

    #[test]
    fn no_user_no_group_is_a_no_op() {
        drop_privileges(None, None).unwrap();
    }
}
