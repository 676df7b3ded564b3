//! The UDP underlay: one node of a scenario per process, its tunnel traffic carried as real
//! VXLAN over UDP to the processes (or kernel VTEPs, or hosts) that run the other nodes.
//!
//! The datapath builds whole outer frames (Ethernet, IPv4, UDP, VXLAN) on the node's underlay
//! port. Going out, the outer Ethernet, IPv4 and UDP headers are handed to the kernel: the
//! VXLAN header and the inner frame are sent as one datagram to the peer that owns the outer
//! destination address. Coming in, a datagram is given back the outer headers a NIC would
//! have delivered (from the peer's tunnel address to this node's, UDP to the VXLAN port) and
//! enters the underlay port like any frame.
//!
//! Peers that do not answer are reported: ICMP errors for datagrams sent to them are read
//! from the socket's error queue (IP_RECVERR), and a peer that has sent nothing back for
//! `SILENT_MS` while datagrams went to it is named once, until it is heard from again.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// A peer that has sent nothing back for this long while datagrams went to it is reported.
pub const SILENT_MS: u64 = 5_000;
/// ... when at least this many went to it unanswered (one-way traffic, such as multicast
/// noise no VM answers, is not a silent peer); one is enough for a peer never heard from.
pub const SILENT_DATAGRAMS: u64 = 10;
/// Peers remembered (those of the scenario and the first strangers heard from or sent to).
const PEERS_MAX: usize = 4096;
/// Outer Ethernet + IPv4 + UDP headers, rebuilt on receive.
const OUTER: usize = 14 + 20 + 8;

/// One remote VTEP.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The scenario node, or the address when the peer is not a node of the scenario.
    pub name: String,
    pub tunnel_ip: u32,
    pub addr: SocketAddrV4,
    pub mac: [u8; 6],
    pub sent: u64,
    pub received: u64,
    /// Since when datagrams have gone to the peer without one coming back, and how many.
    waiting_since: Option<u64>,
    unanswered: u64,
    silent_reported: bool,
    unreachable: Option<String>,
    /// Why the kernel refuses datagrams to the peer (reported when it starts and ends).
    send_error: Option<String>,
}

impl Peer {
    pub fn new(name: &str, tunnel_ip: u32, addr: SocketAddrV4, mac: [u8; 6]) -> Peer {
        Peer {
            name: name.to_string(),
            tunnel_ip,
            addr,
            mac,
            sent: 0,
            received: 0,
            waiting_since: None,
            unanswered: 0,
            silent_reported: false,
            unreachable: None,
            send_error: None,
        }
    }

    fn label(&self) -> String {
        let ip = Ipv4Addr::from(self.tunnel_ip);
        if self.name == ip.to_string() && self.addr.ip() == &ip {
            format!("{}", self.addr)
        } else {
            format!("{} ({ip} at {})", self.name, self.addr)
        }
    }
}

/// Counters of the UDP underlay.
#[derive(Debug, Default, Clone)]
pub struct UdpStats {
    pub datagrams_out: u64,
    pub datagrams_in: u64,
    /// Frames the node sent out of its underlay port that are not IPv4/UDP (nothing to carry).
    pub not_udp: u64,
    /// Datagrams the kernel would not take (socket buffer full, no route).
    pub send_failed: u64,
}

/// The node's UDP socket and its peers.
pub struct UdpUnderlay {
    /// The node this process runs, and its underlay datapath port.
    pub node: usize,
    pub port: u32,
    pub bind: SocketAddrV4,
    sock: UdpSocket,
    /// This node's tunnel address and MAC (the rebuilt frames' destination).
    ip: u32,
    mac: [u8; 6],
    /// The UDP port the node's VXLAN ports expect (rebuilt frames' destination port).
    vxlan_port: u16,
    pub peers: Vec<Peer>,
    by_ip: HashMap<u32, usize>,
    by_addr: HashMap<SocketAddrV4, usize>,
    pub stats: UdpStats,
    /// Reports for the user (peers silent, unreachable, heard again), drained by the caller.
    pub events: Vec<String>,
}

impl UdpUnderlay {
    /// Binds `bind` (non-blocking, with IP_RECVERR) for node `node`, whose tunnel address is
    /// `ip` and underlay port `port`.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        node: usize,
        port: u32,
        bind: SocketAddrV4,
        ip: u32,
        mac: [u8; 6],
        vxlan_port: u16,
        peers: Vec<Peer>,
    ) -> Result<UdpUnderlay, String> {
        let sock = UdpSocket::bind(bind).map_err(|e| {
            if e.kind() == io::ErrorKind::AddrNotAvailable {
                format!(
                    "--underlay {bind}: not an address of this host (give the address this \
                     node listens on with --underlay IP:PORT)"
                )
            } else {
                format!("--underlay {bind}: {e}")
            }
        })?;
        sock.set_nonblocking(true).map_err(|e| format!("--underlay {bind}: {e}"))?;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option of the right size.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_IP,
                libc::IP_RECVERR,
                &on as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(format!("--underlay {bind}: IP_RECVERR: {}", io::Error::last_os_error()));
        }
        let bind = match sock.local_addr() {
            Ok(std::net::SocketAddr::V4(a)) => a,
            _ => bind,
        };
        let mut u = UdpUnderlay {
            node,
            port,
            bind,
            sock,
            ip,
            mac,
            vxlan_port,
            peers: Vec::new(),
            by_ip: HashMap::new(),
            by_addr: HashMap::new(),
            stats: UdpStats::default(),
            events: Vec::new(),
        };
        for p in peers {
            u.add_peer(p);
        }
        Ok(u)
    }

    fn add_peer(&mut self, p: Peer) -> usize {
        let i = self.peers.len();
        self.by_ip.entry(p.tunnel_ip).or_insert(i);
        self.by_addr.entry(p.addr).or_insert(i);
        self.peers.push(p);
        i
    }

    pub fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Sends a frame the node put out of its underlay port. Returns false when it is not an
    /// IPv4/UDP frame (there is nothing the UDP underlay can carry).
    pub fn send(&mut self, frame: &[u8], now_ms: u64) -> Result<bool, String> {
        let Some((dst, dport, payload)) = outer_udp(frame) else {
            self.stats.not_udp += 1;
            return Ok(false);
        };
        let i = match self.by_ip.get(&dst) {
            Some(&i) => Some(i),
            None if self.peers.len() < PEERS_MAX => {
                let addr = SocketAddrV4::new(Ipv4Addr::from(dst), dport);
                Some(self.add_peer(Peer::new(&Ipv4Addr::from(dst).to_string(), dst, addr, [0; 6])))
            }
            None => None,
        };
        let addr = match i {
            Some(i) => self.peers[i].addr,
            None => SocketAddrV4::new(Ipv4Addr::from(dst), dport),
        };
        let mut r = self.sock.send_to(payload, addr);
        if matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused) {
            // An earlier ICMP error surfaced on this call; the datagram was not sent.
            r = self.sock.send_to(payload, addr);
        }
        match r {
            Ok(_) => {
                self.stats.datagrams_out += 1;
                if let Some(i) = i {
                    let p = &mut self.peers[i];
                    p.sent += 1;
                    p.unanswered += 1;
                    p.waiting_since.get_or_insert(now_ms);
                    if p.send_error.take().is_some() {
                        let l = p.label();
                        self.events.push(format!("tunnel peer {l}: datagrams are sent again"));
                    }
                }
                Ok(true)
            }
            Err(e) => {
                self.stats.send_failed += 1;
                let e = format!("underlay {} -> {addr}: {e}", self.bind);
                if let Some(p) = i.map(|i| &mut self.peers[i]) {
                    if p.send_error.as_deref() != Some(e.as_str()) {
                        p.send_error = Some(e.clone());
                        let l = p.label();
                        self.events.push(format!(
                            "tunnel peer {l}: the kernel refuses datagrams to it ({e}); \
                             they are dropped"
                        ));
                    }
                }
                Err(e)
            }
        }
    }

    /// Reads one datagram into `buf` as a whole underlay frame; returns its length, or None
    /// when nothing is waiting.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            let (n, src) = match self.sock.recv_from(&mut buf[OUTER..]) {
                Ok((n, std::net::SocketAddr::V4(a))) => (n, a),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.stats.datagrams_in += 1;
            let ip = u32::from(*src.ip());
            let i = match self.by_addr.get(&src).or_else(|| self.by_ip.get(&ip)) {
                Some(&i) => i,
                None if self.peers.len() < PEERS_MAX => {
                    self.add_peer(Peer::new(&src.ip().to_string(), ip, src, [0; 6]))
                }
                None => {
                    // A flood of strangers is not remembered one by one.
                    self.outer_headers(&mut buf[..OUTER], ip, [0; 6], src.port(), n);
                    return Ok(Some(OUTER + n));
                }
            };
            let p = &mut self.peers[i];
            p.received += 1;
            p.waiting_since = None;
            p.unanswered = 0;
            if p.silent_reported || p.unreachable.is_some() {
                p.silent_reported = false;
                p.unreachable = None;
                let l = p.label();
                self.events.push(format!("tunnel peer {l} answers again"));
            }
            let (peer_ip, peer_mac) = (p.tunnel_ip, p.mac);
            self.outer_headers(&mut buf[..OUTER], peer_ip, peer_mac, src.port(), n);
            return Ok(Some(OUTER + n));
        }
    }

    fn outer_headers(&self, h: &mut [u8], src: u32, src_mac: [u8; 6], sport: u16, n: usize) {
        h[0..6].copy_from_slice(&self.mac);
        h[6..12].copy_from_slice(&src_mac);
        h[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut h[14..34];
        ip[0] = 0x45;
        ip[1] = 0;
        ip[2..4].copy_from_slice(&((20 + 8 + n) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&[0, 0]);
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[10..12].copy_from_slice(&[0, 0]);
        ip[12..16].copy_from_slice(&src.to_be_bytes());
        ip[16..20].copy_from_slice(&self.ip.to_be_bytes());
        let c = crate::wire::checksum::checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let udp = &mut h[34..42];
        udp[0..2].copy_from_slice(&sport.to_be_bytes());
        udp[2..4].copy_from_slice(&self.vxlan_port.to_be_bytes());
        udp[4..6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
        udp[6..8].copy_from_slice(&[0, 0]);
    }

    /// Reads the ICMP errors queued on the socket (POLLERR) and reports the peers they name.
    pub fn read_errors(&mut self) {
        loop {
            let mut name: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            let mut data = [0u8; 64];
            let mut control = [0u8; 256];
            let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
            // SAFETY: msghdr is plain data; zeroed is a valid value, the pointers set below
            // refer to live buffers of the given lengths.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut name as *mut libc::sockaddr_in).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = control.len() as _;
            // SAFETY: `msg` describes valid buffers; MSG_ERRQUEUE never blocks.
            let r = unsafe {
                libc::recvmsg(
                    self.sock.as_raw_fd(),
                    &mut msg,
                    libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                return;
            }
            let dst = SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr)),
                u16::from_be(name.sin_port),
            );
            let mut what = None;
            // SAFETY: walking the control messages the kernel wrote into `control`.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_IP && (*c).cmsg_type == libc::IP_RECVERR {
                        let ee = libc::CMSG_DATA(c) as *const libc::sock_extended_err;
                        let ee = std::ptr::read_unaligned(ee);
                        what = Some(describe_error(&ee));
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            let Some(what) = what else { continue };
            let i = match self.by_addr.get(&dst) {
                Some(&i) => i,
                None => continue,
            };
            let p = &mut self.peers[i];
            if p.unreachable.as_deref() != Some(what.as_str()) {
                p.unreachable = Some(what.clone());
                let l = p.label();
                self.events.push(format!("tunnel peer {l} is unreachable: {what}"));
            }
        }
    }

    /// Names the peers that have sent nothing back for `SILENT_MS` while datagrams went to
    /// them.
    pub fn check_silent(&mut self, now_ms: u64) {
        for p in &mut self.peers {
            let Some(t) = p.waiting_since else { continue };
            let enough = if p.received == 0 { 1 } else { SILENT_DATAGRAMS };
            if p.silent_reported || now_ms < t + SILENT_MS || p.unanswered < enough {
                continue;
            }
            p.silent_reported = true;
            let l = p.label();
            let secs = (now_ms - t) / 1000;
            self.events.push(format!(
                "tunnel peer {l} does not answer: nothing received for {secs} s \
                 while {} datagrams went to it ({} received in all)",
                p.unanswered, p.received
            ));
        }
    }

    /// The peers and their counters, for stats.json.
    pub fn to_json(&self) -> serde_json::Value {
        let peers: Vec<serde_json::Value> = self
            .peers
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "tunnel_ip": Ipv4Addr::from(p.tunnel_ip).to_string(),
                    "address": p.addr.to_string(),
                    "sent": p.sent,
                    "received": p.received,
                    "answering": !p.silent_reported && p.unreachable.is_none(),
                })
            })
            .collect();
        serde_json::json!({
            "bind": self.bind.to_string(),
            "datagrams_out": self.stats.datagrams_out,
            "datagrams_in": self.stats.datagrams_in,
            "not_udp": self.stats.not_udp,
            "send_failed": self.stats.send_failed,
            "peers": peers,
        })
    }
}

fn describe_error(ee: &libc::sock_extended_err) -> String {
    const ORIGIN_ICMP: u8 = 2;
    if ee.ee_origin == ORIGIN_ICMP && ee.ee_type == 3 {
        let what = match ee.ee_code {
            0 => "network unreachable",
            1 => "host unreachable",
            3 => "port unreachable (nothing listens there)",
            4 => "fragmentation needed",
            9 | 10 | 13 => "administratively prohibited",
            _ => "destination unreachable",
        };
        return format!("ICMP {what} (type 3 code {})", ee.ee_code);
    }
    if ee.ee_origin == ORIGIN_ICMP {
        return format!("ICMP type {} code {}", ee.ee_type, ee.ee_code);
    }
    io::Error::from_raw_os_error(ee.ee_errno as i32).to_string()
}

/// The outer IPv4 destination, UDP destination port and UDP payload of an underlay frame.
fn outer_udp(frame: &[u8]) -> Option<(u32, u16, &[u8])> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[14] >> 4 != 4 {
        return None;
    }
    let ihl = (frame[14] & 0x0f) as usize * 4;
    if ihl < 20 || frame[23] != 17 || frame.len() < 14 + ihl + 8 {
        return None;
    }
    let total = u16::from_be_bytes([frame[16], frame[17]]) as usize;
    let end = (14 + total).min(frame.len());
    let dst = u32::from_be_bytes([frame[30], frame[31], frame[32], frame[33]]);
    let u = 14 + ihl;
    let dport = u16::from_be_bytes([frame[u + 2], frame[u + 3]]);
    if end < u + 8 {
        return None;
    }
    Some((dst, dport, &frame[u + 8..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ip: [u8; 4], peers: Vec<Peer>) -> UdpUnderlay {
        let bind = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        UdpUnderlay::open(
            0,
            7,
            bind,
            u32::from(Ipv4Addr::from(ip)),
            [2, 0, 0, 0, 0, 1],
            4789,
            peers,
        )
        .expect("bind")
    }

    fn frame(dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 42];
        f[12..14].copy_from_slice(&[8, 0]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((28 + payload.len()) as u16).to_be_bytes());
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&5555u16.to_be_bytes());
        f[36..38].copy_from_slice(&4789u16.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_datagram_crosses_and_gets_its_outer_headers_back() {
        let mut b = node([10, 0, 0, 2], vec![]);
        let a_peer =
            Peer::new("b", u32::from(Ipv4Addr::new(10, 0, 0, 2)), b.bind, [2, 0, 0, 0, 0, 2]);
        let mut a = node([10, 0, 0, 1], vec![a_peer]);
        b.add_peer(Peer::new(
            "a",
            u32::from(Ipv4Addr::new(10, 0, 0, 1)),
            a.bind,
            [2, 0, 0, 0, 0, 9],
        ));
        let payload = [8u8, 0, 0, 0, 0, 0, 5, 0, 0xaa, 0xbb];
        assert!(a.send(&frame([10, 0, 0, 2], &payload), 0).unwrap());
        let mut buf = vec![0u8; 2048];
        let mut got = None;
        for _ in 0..100 {
            if let Some(n) = b.recv(&mut buf).unwrap() {
                got = Some(n);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let n = got.expect("the datagram arrives");
        let f = &buf[..n];
        assert_eq!(&f[42..], &payload);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 1], "to this node's MAC");
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 9], "from the peer's MAC");
        assert_eq!(&f[26..30], &[10, 0, 0, 1], "from the peer's tunnel address");
        assert_eq!(&f[30..34], &[10, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 4789);
        assert_eq!(crate::wire::checksum::checksum(&f[14..34]), 0, "a valid IPv4 header checksum");
        assert_eq!(b.peers[0].received, 1);
        assert_eq!(a.peers[0].sent, 1);
    }

    #[test]
    fn a_closed_port_and_a_silent_peer_are_reported() {
        // A port nobody listens on: bind, learn the port, close.
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(addr) = closed.local_addr().unwrap() else { panic!() };
        drop(closed);
        let peer = Peer::new("node2", u32::from(Ipv4Addr::new(10, 0, 0, 2)), addr, [0; 6]);
        let mut a = node([10, 0, 0, 1], vec![peer]);
        a.send(&frame([10, 0, 0, 2], &[0u8; 16]), 1000).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        a.read_errors();
        assert_eq!(a.events.len(), 1, "{:?}", a.events);
        assert!(a.events[0].contains("node2") && a.events[0].contains("port unreachable"));
        a.check_silent(1000 + SILENT_MS - 1);
        assert_eq!(a.events.len(), 1);
        a.check_silent(1000 + SILENT_MS);
        assert_eq!(a.events.len(), 2);
        assert!(a.events[1].contains("does not answer"), "{}", a.events[1]);
        a.check_silent(1000 + 3 * SILENT_MS);
        assert_eq!(a.events.len(), 2, "reported once");
    }

    #[test]
    fn frames_that_are_not_udp_are_counted_not_sent() {
        let mut a = node([10, 0, 0, 1], vec![]);
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[8, 6]);
        assert!(!a.send(&arp, 0).unwrap());
        assert_eq!(a.stats.not_udp, 1);
        assert_eq!(a.stats.datagrams_out, 0);
    }
}
