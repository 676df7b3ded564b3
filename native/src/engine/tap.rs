//! TAP devices (`/dev/net/tun`, IFF_TAP | IFF_NO_PI): Ethernet frames in and out of the
//! kernel. The device exists while its file descriptor is open; it may be moved to another
//! network namespace and keeps working.

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
    pub name: String,
    fd: OwnedFd,
}

impl Tap {
    /// Creates (or attaches to) the TAP device `name`.
    pub fn open(name: &str) -> Result<Tap, String> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '\0']) {
            return Err(format!(
                "TAP name \"{name}\": expected 1 to {} characters, no '/' or spaces",
                libc::IFNAMSIZ - 1
            ));
        }
        let path = CString::new("/dev/net/tun").expect("no NUL");
        // SAFETY: a valid C string; the result is checked.
        let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(format!("/dev/net/tun: {e} (TAP devices need root or CAP_NET_ADMIN)"));
        }
        // SAFETY: `raw` is an open descriptor we own from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req =
            IfReq { name: [0; libc::IFNAMSIZ], flags: IFF_TAP | IFF_NO_PI, _pad: [0; 22] };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is laid out as.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(format!("TAP {name}: {e}"));
        }
        Ok(Tap { name: name.to_string(), fd })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
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

    /// Writes one frame. A full queue or a device that is down drops it (as a NIC would).
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        // SAFETY: `frame` is valid for `frame.len()` bytes.
        let n = unsafe { libc::write(self.raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EIO) | Some(libc::ENOBUFS) => Ok(false),
                _ => Err(e),
            };
        }
        Ok(true)
    }
}
