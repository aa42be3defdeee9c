//! Delivery over a real FIFO and real unix datagram sockets in a private
//! temporary directory; the "application" is the test itself reading the
//! other end without blocking.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::stat::Mode;
use nix::unistd::mkfifo;

use super::*;

/// A fresh directory per test (tests run concurrently in one process).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("ser-twrite-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn reader(path: &std::path::Path) -> File {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

#[test]
fn fifo_with_reader_gets_everything() {
    let d = TempDir::new("fifo-ok");
    let p = d.0.join("app_fifo");
    mkfifo(&p, Mode::from_bits_truncate(0o600)).unwrap();
    let mut r = reader(&p);
    let text = b"0.2\nsip_request.vm\nINVITE\n.\n.\n";
    write_fifo(&p, text).unwrap();
    write_fifo(&p, b"second\n").unwrap();
    let mut got = Vec::new();
    let _ = r.read_to_end(&mut got); // ends with WouldBlock once drained
    assert_eq!(got, b"0.2\nsip_request.vm\nINVITE\n.\n.\nsecond\n");
}

#[test]
fn fifo_without_reader_fails_at_once() {
    let d = TempDir::new("fifo-noreader");
    let p = d.0.join("app_fifo");
    mkfifo(&p, Mode::from_bits_truncate(0o600)).unwrap();
    assert!(matches!(write_fifo(&p, b"x\n"), Err(TwriteError::NoReader)));
    // a reader that went away counts the same
    drop(reader(&p));
    assert!(matches!(write_fifo(&p, b"x\n"), Err(TwriteError::NoReader)));
    assert!(matches!(
        write_fifo(&d.0.join("absent"), b"x\n"),
        Err(TwriteError::Missing)
    ));
    let plain = d.0.join("plain");
    fs::write(&plain, b"").unwrap();
    assert!(matches!(
        write_fifo(&plain, b"x\n"),
        Err(TwriteError::NotFifo)
    ));
    assert_eq!(fs::read(&plain).unwrap(), b"");
}

#[test]
fn fifo_full_never_blocks() {
    let d = TempDir::new("fifo-full");
    let p = d.0.join("app_fifo");
    mkfifo(&p, Mode::from_bits_truncate(0o600)).unwrap();
    let _r = reader(&p);
    // bigger than a default pipe (64 KiB): part goes in, which is an error
    let big = vec![b'a'; 200_000];
    assert!(matches!(
        write_fifo(&p, &big),
        Err(TwriteError::Short { len: 200_000, .. } | TwriteError::Full)
    ));
    assert!(matches!(write_fifo(&p, b"more\n"), Err(TwriteError::Full)));
}

#[test]
fn unix_datagram_arrives_whole() {
    let d = TempDir::new("unix-ok");
    let p = d.0.join("app.sock");
    let app = UnixDatagram::bind(&p).unwrap();
    app.set_nonblocking(true).unwrap();
    let text = b"0.2\nsip_request.conf\nINVITE\nv=0\r\n.\n";
    write_unix(&p, text, Duration::from_secs(2)).unwrap();
    write_unix(&p, b"two\n", Duration::ZERO).unwrap();
    let mut buf = [0u8; 256];
    let n = app.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], text);
    let n = app.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"two\n");
}

#[test]
fn unix_missing_refused_too_large() {
    let d = TempDir::new("unix-err");
    let t = Duration::from_millis(100);
    assert!(matches!(
        write_unix(&d.0.join("absent.sock"), b"x", t),
        Err(TwriteError::Missing)
    ));
    // the socket file outlives the application that bound it
    let p = d.0.join("stale.sock");
    drop(UnixDatagram::bind(&p).unwrap());
    assert!(matches!(write_unix(&p, b"x", t), Err(TwriteError::Refused)));
    let p = d.0.join("app.sock");
    let _app = UnixDatagram::bind(&p).unwrap();
    let huge = vec![b'x'; 16 << 20];
    assert!(matches!(
        write_unix(&p, &huge, t),
        Err(TwriteError::TooLarge)
    ));
}

#[test]
fn unix_queue_full_times_out() {
    let d = TempDir::new("unix-full");
    let p = d.0.join("app.sock");
    let _app = UnixDatagram::bind(&p).unwrap(); // never reads
    let chunk = vec![b'x'; 1024];
    let mut outcome = None;
    for _ in 0..100_000 {
        if let Err(e) = write_unix(&p, &chunk, Duration::from_millis(20)) {
            outcome = Some(e);
            break;
        }
    }
    assert!(matches!(outcome, Some(TwriteError::Timeout)), "{outcome:?}");
    // and without waiting at all
    assert!(matches!(
        write_unix(&p, &chunk, Duration::ZERO),
        Err(TwriteError::Timeout)
    ));
}
