//! TAP devices (`/dev/net/tun`, IFF_TAP | IFF_NO_PI): Ethernet frames in and out of the
//! kernel. The device exists while its file descriptor is open (or for good when it was made
//! persistent, as `ip tuntap add` makes it); it may be moved to another network namespace and
//! keeps working. A device named `NETNS/IFNAME` is created in (or attached to, when it exists
//! there) the network namespace `/run/netns/NETNS`, so that a process can attach again to the
//! TAP a namespace keeps after the previous process died.
//!
//! A device deleted under us (`ip link del`) leaves the descriptor detached: poll reports
//! POLLERR and reads and writes fail with EBADFD. A namespace deleted (`ip netns del`) is
//! different: the descriptor, opened inside it, keeps it alive with the device in it, out of
//! everyone's reach. `netns_deleted` tells, and `close` lets the namespace and the device go.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// One TAP device, non-blocking.
pub struct Tap {
    /// As given: `IFNAME` or `NETNS/IFNAME`.
    pub name: String,
    fd: Option<OwnedFd>, // None once closed
    /// The namespace's name file and its inode when the device was opened in one.
    netns: Option<(String, u64)>,
}

/// Why a frame was not written to a TAP device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxFail {
    /// The device's queue is full (the reader is slow): dropped, as a NIC drops it.
    Full,
    /// The interface is administratively down (EIO).
    Down,
    /// The device was deleted under us (EBADFD), or another error that will not pass.
    Gone,
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty() && name.len() < libc::IFNAMSIZ && !name.contains(['/', ' ', ':', '\0'])
}

/// What makes TUNSETIFF or opening /dev/net/tun fail for an unprivileged user.
fn needs_privilege(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

impl Tap {
    /// Creates (or attaches to) the TAP device `name`: `IFNAME`, or `NETNS/IFNAME` for one in
    /// the network namespace NETNS. The error says what failed, not for which port.
    pub fn open(name: &str) -> Result<Tap, String> {
        let (netns, ifname) = match name.split_once('/') {
            Some((ns, i)) => (Some(ns), i),
            None => (None, name),
        };
        if !valid_ifname(ifname)
            || netns.is_some_and(|ns| ns.is_empty() || ns.contains(['/', '\0']) || ns == "..")
        {
            return Err(format!(
                "TAP name \"{name}\": expected IFNAME or NETNS/IFNAME, IFNAME 1 to {} \
                 characters, no '/', ':' or spaces",
                libc::IFNAMSIZ - 1
            ));
        }
        let ns_file = |ns: &str| format!("/run/netns/{ns}");
        let ns_ino = netns.and_then(|ns| std::fs::metadata(ns_file(ns)).ok()).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.ino()
        });
        let fd = match netns {
            None => open_tap(ifname),
            Some(ns) => {
                let (ns, ifname) = (ns.to_string(), ifname.to_string());
                // A thread of its own enters the namespace: the others stay where they are.
                std::thread::spawn(move || enter_netns(&ns).and_then(|()| open_tap(&ifname)))
                    .join()
                    .unwrap_or_else(|_| Err(("TAP".into(), io::Error::other("thread failed"))))
            }
        };
        let fd = fd.map_err(|(what, e)| {
            if needs_privilege(&e) {
                format!("TAP devices need root or CAP_NET_ADMIN ({what}: {e})")
            } else {
                format!("{what}: {e}")
            }
        })?;
        let netns = netns.zip(ns_ino).map(|(ns, ino)| (ns_file(ns), ino));
        Ok(Tap { name: name.to_string(), fd: Some(fd), netns })
    }

    /// The descriptor; -1 once closed (poll ignores it, reads and writes fail with EBADF).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// True when the device was opened in a network namespace whose name is gone (or now
    /// names another namespace).
    pub fn netns_deleted(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.netns
            .as_ref()
            .is_some_and(|(file, ino)| std::fs::metadata(file).map_or(true, |m| m.ino() != *ino))
    }

    /// Closes the descriptor: a device that is not persistent goes, and so does a namespace
    /// it alone kept alive.
    pub fn close(&mut self) {
        self.fd = None;
    }

    /// Reads one frame into `buf`; None when nothing is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::read(self.raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }

    /// Writes one frame; on failure says why (the frame is dropped either way).
    pub fn send(&self, frame: &[u8]) -> Result<(), (TxFail, io::Error)> {
        // SAFETY: `frame` is valid for `frame.len()` bytes.
        let n = unsafe { libc::write(self.raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        let why = match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR) => TxFail::Full,
            Some(libc::EIO) => TxFail::Down,
            _ => TxFail::Gone,
        };
        Err((why, e))
    }
}

/// Opens /dev/net/tun and attaches it to the TAP `ifname` of the calling thread's network
/// namespace; the error says which step failed.
fn open_tap(ifname: &str) -> Result<OwnedFd, (String, io::Error)> {
    let path = CString::new("/dev/net/tun").expect("no NUL");
    // SAFETY: a valid C string; the result is checked.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) };
    if raw < 0 {
        return Err(("/dev/net/tun".into(), io::Error::last_os_error()));
    }
    // SAFETY: `raw` is an open descriptor we own from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: IFF_TAP | IFF_NO_PI, _pad: [0; 22] };
    req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is laid out as.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
    if r < 0 {
        return Err(("TUNSETIFF".into(), io::Error::last_os_error()));
    }
    Ok(fd)
}

/// Moves the calling thread into the network namespace `/run/netns/NS` (as `ip netns exec`
/// names them).
fn enter_netns(ns: &str) -> Result<(), (String, io::Error)> {
    let shown = format!("/run/netns/{ns}");
    let path = CString::new(shown.clone()).map_err(|_| (shown.clone(), io::Error::other("NUL")))?;
    // SAFETY: a valid C string; the result is checked.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err((shown, io::Error::last_os_error()));
    }
    // SAFETY: `raw` is an open descriptor we own from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: setns on a namespace descriptor changes only the calling thread's namespace.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err((format!("setns {shown}"), io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_anything_is_opened() {
        for bad in ["", "a/", "/eth0", "ns/eth0/x", "much-too-long-name", "a b", "eth0:1"] {
            let e = Tap::open(bad).err().expect("refused");
            assert!(e.starts_with(&format!("TAP name \"{bad}\": expected")), "{e}");
        }
    }
}
