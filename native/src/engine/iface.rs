//! Existing interfaces (a veth, a NIC) attached to ports through libpcap: frames the
//! interface receives enter the port, and what the port sends is injected on the interface.
//! The handle is non-blocking and in immediate mode, polled with the live loop's other
//! devices; it captures the inbound direction only, so frames dvrlab injects do not come back
//! as input.

use std::ffi::{c_char, c_int, c_uchar, c_void, CStr, CString};
use std::os::fd::RawFd;

#[repr(C)]
struct PcapPkthdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

type Handler = extern "C" fn(*mut c_uchar, *const PcapPkthdr, *const c_uchar);

#[link(name = "pcap")]
extern "C" {
    fn pcap_create(source: *const c_char, errbuf: *mut c_char) -> *mut c_void;
    fn pcap_set_snaplen(p: *mut c_void, snaplen: c_int) -> c_int;
    fn pcap_set_promisc(p: *mut c_void, promisc: c_int) -> c_int;
    fn pcap_set_immediate_mode(p: *mut c_void, on: c_int) -> c_int;
    fn pcap_set_buffer_size(p: *mut c_void, size: c_int) -> c_int;
    fn pcap_activate(p: *mut c_void) -> c_int;
    fn pcap_setdirection(p: *mut c_void, d: c_int) -> c_int;
    fn pcap_setnonblock(p: *mut c_void, nonblock: c_int, errbuf: *mut c_char) -> c_int;
    fn pcap_get_selectable_fd(p: *mut c_void) -> c_int;
    fn pcap_datalink(p: *mut c_void) -> c_int;
    fn pcap_dispatch(p: *mut c_void, cnt: c_int, cb: Handler, user: *mut c_uchar) -> c_int;
    fn pcap_inject(p: *mut c_void, buf: *const c_void, size: usize) -> c_int;
    fn pcap_geterr(p: *mut c_void) -> *const c_char;
    fn pcap_statustostr(status: c_int) -> *const c_char;
    fn pcap_close(p: *mut c_void);
}

const ERRBUF: usize = 256;
const PCAP_D_IN: c_int = 1;
const DLT_EN10MB: c_int = 1;
/// Large enough for a GSO frame a veth may deliver whole.
const SNAPLEN: c_int = 262_144;

/// One attached interface.
pub struct Iface {
    pub name: String,
    p: *mut c_void,
}

// SAFETY: the handle is used by one thread at a time (the live loop's), never shared.
unsafe impl Send for Iface {}

/// One frame of a dispatch: its bytes and its length on the wire.
struct Batch<'a> {
    f: &'a mut dyn FnMut(&[u8], usize),
}

extern "C" fn on_packet(user: *mut c_uchar, h: *const PcapPkthdr, bytes: *const c_uchar) {
    // SAFETY: `user` is the `Batch` passed to pcap_dispatch below, alive for the call; `h`
    // and `bytes` are the header and `caplen` bytes libpcap hands the callback.
    unsafe {
        let b = &mut *(user as *mut Batch);
        let h = &*h;
        let data = std::slice::from_raw_parts(bytes, h.caplen as usize);
        (b.f)(data, h.len as usize);
    }
}

fn err_text(p: *mut c_void) -> String {
    // SAFETY: pcap_geterr returns a NUL-terminated string owned by the handle.
    unsafe { CStr::from_ptr(pcap_geterr(p)).to_string_lossy().into_owned() }
}

impl Iface {
    /// Opens `name` for capture (inbound, promiscuous, immediate, non-blocking) and
    /// injection.
    pub fn open(name: &str) -> Result<Iface, String> {
        let c = CString::new(name).map_err(|_| format!("--iface {name}: bad interface name"))?;
        let mut errbuf = [0 as c_char; ERRBUF];
        // SAFETY: valid C strings and an error buffer of PCAP_ERRBUF_SIZE.
        let p = unsafe { pcap_create(c.as_ptr(), errbuf.as_mut_ptr()) };
        if p.is_null() {
            // SAFETY: libpcap wrote a NUL-terminated message into errbuf.
            let e = unsafe { CStr::from_ptr(errbuf.as_ptr()) }.to_string_lossy().into_owned();
            return Err(format!("--iface {name}: {e}"));
        }
        let iface = Iface { name: name.to_string(), p };
        // SAFETY: `p` is a created, not yet activated handle.
        unsafe {
            pcap_set_snaplen(p, SNAPLEN);
            pcap_set_promisc(p, 1);
            pcap_set_immediate_mode(p, 1);
            pcap_set_buffer_size(p, 8 << 20);
        }
        // SAFETY: as above.
        let r = unsafe { pcap_activate(p) };
        if r < 0 {
            let detail = err_text(p);
            // SAFETY: pcap_statustostr returns a static string.
            let status = unsafe { CStr::from_ptr(pcap_statustostr(r)) }.to_string_lossy();
            let detail = if detail.is_empty() { status.into_owned() } else { detail };
            return Err(format!("--iface {name}: {detail}"));
        }
        // SAFETY: an activated handle.
        if unsafe { pcap_datalink(p) } != DLT_EN10MB {
            return Err(format!("--iface {name}: not an Ethernet interface"));
        }
        // SAFETY: as above.
        if unsafe { pcap_setdirection(p, PCAP_D_IN) } < 0 {
            return Err(format!("--iface {name}: {}", err_text(p)));
        }
        // SAFETY: as above, with an error buffer of the right size.
        if unsafe { pcap_setnonblock(p, 1, errbuf.as_mut_ptr()) } < 0 {
            return Err(format!("--iface {name}: cannot be made non-blocking"));
        }
        Ok(iface)
    }

    pub fn raw_fd(&self) -> RawFd {
        // SAFETY: an activated handle.
        unsafe { pcap_get_selectable_fd(self.p) }
    }

    /// Reads up to `max` waiting frames, handing each (bytes, length on the wire) to `f`.
    /// Returns how many were read.
    pub fn recv(&self, max: usize, f: &mut dyn FnMut(&[u8], usize)) -> Result<usize, String> {
        let mut b = Batch { f };
        // SAFETY: `b` outlives the call; the callback only touches it and libpcap's buffers.
        let r = unsafe {
            pcap_dispatch(self.p, max as c_int, on_packet, (&mut b as *mut Batch).cast())
        };
        if r < 0 {
            return Err(format!("{}: {}", self.name, err_text(self.p)));
        }
        Ok(r as usize)
    }

    /// Injects one frame on the interface.
    pub fn send(&self, frame: &[u8]) -> Result<(), String> {
        // SAFETY: `frame` is valid for its length.
        let r = unsafe { pcap_inject(self.p, frame.as_ptr().cast(), frame.len()) };
        if r < 0 {
            return Err(format!("{}: {}", self.name, err_text(self.p)));
        }
        Ok(())
    }
}

impl Drop for Iface {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and closed once.
        unsafe { pcap_close(self.p) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interface_is_one_clear_error() {
        let e = Iface::open("dl-no-such-if").err().expect("fails");
        assert!(e.starts_with("--iface dl-no-such-if: "), "{e}");
        assert!(!e.contains('\n'));
    }
}
