//! Kill points: named places inside the shared structures' updates where
//! a test can stop (park) a process with a lock held, to kill it there and
//! check that the next user of the lock repairs the structure.
//!
//! In the server no hook is installed and a kill point costs one relaxed
//! load and a branch.

use core::sync::atomic::{AtomicPtr, Ordering};

static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs `hook`, called with the name of every kill point passed (for
/// this process and the children it forks afterwards).
pub fn install(hook: fn(&'static str)) {
    HOOK.store(hook as *mut (), Ordering::Release);
}

/// Removes the hook.
pub fn clear() {
    HOOK.store(core::ptr::null_mut(), Ordering::Release);
}

/// A kill point.
#[inline]
pub fn hit(name: &'static str) {
    let p = HOOK.load(Ordering::Relaxed);
    if !p.is_null() {
        // SAFETY: HOOK only ever holds null or a `fn(&'static str)` stored
        // by `install`; function pointers and data pointers have the same
        // size on the platforms we build for.
        let f: fn(&'static str) = unsafe { core::mem::transmute::<*mut (), fn(&'static str)>(p) };
        f(name);
    }
}
