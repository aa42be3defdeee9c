//! Resource limits: core dumps (`disable_core_dump`) and open files
//! (`open_files_limit`).
use nix::errno::Errno;

use super::OsError;

fn get(resource: libc::__rlimit_resource_t, what: &'static str) -> Result<libc::rlimit, OsError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    if rc != 0 {
        return Err(OsError::Rlimit {
            what,
            source: Errno::last(),
        });
    }
    Ok(lim)
}

fn set(
    resource: libc::__rlimit_resource_t,
    lim: libc::rlimit,
    what: &'static str,
) -> Result<(), OsError> {
    // SAFETY: `lim` is a valid rlimit read by the kernel during the call only.
    let rc = unsafe { libc::setrlimit(resource, &lim) };
    if rc != 0 {
        return Err(OsError::Rlimit {
            what,
            source: Errno::last(),
        });
    }
    Ok(())
}

/// Enables core dumps (soft limit raised to the hard limit) or disables
/// them (both limits 0).
pub fn set_core_dump(enabled: bool) -> Result<(), OsError> {
    let cur = get(libc::RLIMIT_CORE, "RLIMIT_CORE")?;
    let new = if enabled {
        libc::rlimit {
            rlim_cur: cur.rlim_max,
            rlim_max: cur.rlim_max,
        }
    } else {
        libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        }
    };
    set(libc::RLIMIT_CORE, new, "RLIMIT_CORE")
}

/// Raises the open-files limit to at least `n` (never lowers it). Raising
/// the hard limit needs privileges; the error then says so.
pub fn set_open_files_limit(n: u64) -> Result<(), OsError> {
    let cur = get(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE")?;
    if cur.rlim_cur >= n {
        return Ok(());
    }
    let new = libc::rlimit {
        rlim_cur: n,
        rlim_max: cur.rlim_max.max(n),
    };
    set(libc::RLIMIT_NOFILE, new, "RLIMIT_NOFILE")
}

/// The current soft open-files limit (for logging and tests).
pub fn open_files_limit() -> Result<u64, OsError> {
    get(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE").map(|l| l.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_files_limit_never_lowers() {
        let before = open_files_limit().unwrap();
        set_open_files_limit(1).unwrap();
        assert_eq!(open_files_limit().unwrap(), before);
    }

    #[test]
    fn core_dump_enable_raises_soft_to_hard() {
        // Only enabling is exercised: disabling sets the hard limit to 0,
        // which an unprivileged test process could not undo.
        let cur = get(libc::RLIMIT_CORE, "RLIMIT_CORE").unwrap();
        set_core_dump(true).unwrap();
        assert_eq!(get(libc::RLIMIT_CORE, "t").unwrap().rlim_cur, cur.rlim_max);
    }
}
