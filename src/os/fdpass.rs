//! A datagram with a file descriptor attached (SCM_RIGHTS), both ways:
//! how the TCP main process hands a connection's socket to a process
//! that writes to it directly (`net::stream::direct`).
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};

/// Sends `parts` as one datagram on `sock`, with `fd` attached when
/// given; never blocks.
pub fn send_with_fd(
    sock: BorrowedFd<'_>,
    parts: &[&[u8]],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let fds: [RawFd; 1] = [fd.map_or(-1, |f| f.as_raw_fd())];
    let rights = [ControlMessage::ScmRights(&fds)];
    let cmsgs: &[ControlMessage<'_>] = if fd.is_some() { &rights } else { &[] };
    loop {
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_DONTWAIT, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

/// Receives one datagram into `buf` without blocking: its length and the
/// descriptor attached to it, if any (any further ones are closed).
/// `WouldBlock` when nothing waits.
pub fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 4]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        };
        let n = msg.bytes;
        let mut first = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for raw in fds {
                        // SAFETY: the kernel just installed `raw` in our
                        // table for this message; nothing else owns it.
                        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                        if first.is_none() {
                            first = Some(owned);
                        }
                        // Others drop here, closing them.
                    }
                }
            }
        }
        return Ok((n, first));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::{UnixDatagram, UnixStream};

    #[test]
    fn a_descriptor_crosses_with_its_datagram() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let (mut s1, s2) = UnixStream::pair().unwrap();
        send_with_fd(a.as_fd(), &[b"he", b"llo"], Some(s2.as_fd())).unwrap();
        drop(s2);
        let mut buf = [0u8; 16];
        let (n, fd) = recv_with_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let mut got = UnixStream::from(fd.expect("fd attached"));
        got.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        s1.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        send_with_fd(a.as_fd(), &[b"plain"], None).unwrap();
        let (n, fd) = recv_with_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fd.is_none()), (&b"plain"[..], true));
        let e = recv_with_fd(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
