//! The TCP state machine of OVS's userspace conntrack (`lib/conntrack-tcp.c`, itself from
//! OpenBSD pf): two peers, each with a state and a sequence window, updated by every segment.
//!
//! Invariants: sequence arithmetic is modulo 2^32 (`seq_*` helpers); nothing here reads the
//! packet — the caller passes a parsed [`TcpSeg`]. The timeout a segment selects is returned,
//! not applied, so the caller owns the clock.

use super::key::TcpSeg;
use super::Timeout;

pub(crate) const TCP_FIN: u16 = 0x001;
pub(crate) const TCP_SYN: u16 = 0x002;
pub(crate) const TCP_RST: u16 = 0x004;
pub(crate) const TCP_PSH: u16 = 0x008;
pub(crate) const TCP_ACK: u16 = 0x010;
pub(crate) const TCP_URG: u16 = 0x020;

/// TCP states as `ct-dpif.h` numbers them (`CT_DPIF_TCPS_*`).
pub mod state {
    pub const CLOSED: u8 = 0;
    pub const LISTEN: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const ESTABLISHED: u8 = 4;
    pub const CLOSE_WAIT: u8 = 5;
    pub const FIN_WAIT_1: u8 = 6;
    pub const CLOSING: u8 = 7;
    pub const LAST_ACK: u8 = 8;
    pub const FIN_WAIT_2: u8 = 9;
    pub const TIME_WAIT: u8 = 10;
}

/// Names of the states, indexed by value (`ct_dpif_tcp_state_string`).
pub const STATE_NAMES: [&str; 12] = [
    "CLOSED",
    "LISTEN",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "CLOSE_WAIT",
    "FIN_WAIT_1",
    "CLOSING",
    "LAST_ACK",
    "FIN_WAIT_2",
    "TIME_WAIT",
    "MAX_NUM",
];

const TCP_MAX_WSCALE: u8 = 14;
const CT_WSCALE_FLAG: u8 = 0x80;
const CT_WSCALE_UNKNOWN: u8 = 0x40;
const CT_WSCALE_MASK: u8 = 0x0f;
/// pf's MAXACKWINDOW: 0xffff plus "1500, an arbitrary fudge factor".
const MAXACKWINDOW: i64 = 0xffff + 1500;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Peer {
    pub seqlo: u32,   // max sequence number sent
    pub seqhi: u32,   // max the other end acked + window
    pub max_win: u16, // largest window (before scaling)
    pub wscale: u8,
    pub state: u8,
}

/// One TCP connection's tracking state: `peer[0]` is the originator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpConn {
    pub peer: [Peer; 2],
}

/// Result of a segment on an existing connection (`enum ct_update_res`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Update {
    Invalid,
    Valid,
    /// Both sides closed and a new SYN arrived: the old entry goes, a new one may start.
    New,
    ValidNew,
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
fn seq_geq(a: u32, b: u32) -> bool {
    !seq_lt(a, b)
}
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// `tcp_invalid_flags`.
pub(crate) fn invalid_flags(flags: u16) -> bool {
    if flags & TCP_SYN != 0 {
        if flags & (TCP_RST | TCP_FIN) != 0 {
            return true;
        }
    } else if flags & (TCP_ACK | TCP_RST) == 0 {
        return true;
    }
    flags & TCP_ACK == 0 && flags & (TCP_FIN | TCP_PSH | TCP_URG) != 0
}

/// `tcp_valid_new`: any valid flag combination may start a connection (OVS picks up
/// established streams), except SYN+ACK, which would be a half-open one.
pub(crate) fn valid_new(seg: &TcpSeg) -> bool {
    !invalid_flags(seg.flags) && seg.flags & (TCP_SYN | TCP_ACK) != TCP_SYN | TCP_ACK
}

/// `tcp_new_conn`: the state after the first segment, and its timeout.
pub(crate) fn new_conn(seg: &TcpSeg) -> TcpConn {
    let mut c = TcpConn::default();
    let (src, dst) = c.peer.split_at_mut(1);
    let (src, dst) = (&mut src[0], &mut dst[0]);
    src.seqlo = seg.seq;
    src.seqhi = src.seqlo.wrapping_add(seg.payload_len).wrapping_add(1);
    if seg.flags & TCP_SYN != 0 {
        src.seqhi = src.seqhi.wrapping_add(1);
        src.wscale = seg.wscale;
    } else {
        src.wscale = CT_WSCALE_UNKNOWN;
        dst.wscale = CT_WSCALE_UNKNOWN;
    }
    src.max_win = seg.win.max(1);
    if src.wscale & CT_WSCALE_MASK != 0 {
        // Remove the scale factor from the initial window.
        let sws = src.wscale & CT_WSCALE_MASK;
        src.max_win = u32::from(src.max_win).div_ceil(1u32 << sws) as u16;
    }
    if seg.flags & TCP_FIN != 0 {
        src.seqhi = src.seqhi.wrapping_add(1);
    }
    dst.seqhi = 1;
    dst.max_win = 1;
    src.state = state::SYN_SENT;
    dst.state = state::CLOSED;
    c
}

impl TcpConn {
    /// `tcp_conn_update`: applies a segment sent by the originator (`reply == false`) or the
    /// responder. Returns the verdict and the timeout to arm, if the segment selects one.
    pub(crate) fn update(
        &mut self,
        seg: &TcpSeg,
        reply: bool,
        seq_check: bool,
    ) -> (Update, Option<Timeout>) {
        let (s, d) = if reply { (1, 0) } else { (0, 1) };
        let mut src = self.peer[s];
        let mut dst = self.peer[d];
        let flags = seg.flags;
        let mut win = seg.win;
        let mut sws: u8 = 0;
        let mut dws: u8 = 0;

        if invalid_flags(flags) {
            return (Update::Invalid, None);
        }

        if flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            if dst.state >= state::FIN_WAIT_2 && src.state >= state::FIN_WAIT_2 {
                self.peer[s].state = state::CLOSED;
                self.peer[d].state = state::CLOSED;
                return (Update::New, None);
            } else if src.state <= state::SYN_SENT {
                self.peer[s].state = state::SYN_SENT;
                return (Update::ValidNew, Some(Timeout::TcpFirstPacket));
            }
        }

        if src.wscale & CT_WSCALE_FLAG != 0
            && dst.wscale & CT_WSCALE_FLAG != 0
            && flags & TCP_SYN == 0
        {
            sws = src.wscale & CT_WSCALE_MASK;
            dws = dst.wscale & CT_WSCALE_MASK;
        } else if src.wscale & CT_WSCALE_UNKNOWN != 0
            && dst.wscale & CT_WSCALE_UNKNOWN != 0
            && flags & TCP_SYN == 0
        {
            sws = TCP_MAX_WSCALE;
            dws = TCP_MAX_WSCALE;
        }

        // Sequence tracking, after Guido van Rooij's "Real Stateful TCP Packet Filtering".
        let orig_seq = seg.seq;
        let mut seq = seg.seq;
        let mut ack = seg.ack;
        let mut end;
        let mut check_ackskew = true;
        if src.state < state::SYN_SENT {
            // First segment from this side.
            end = seq.wrapping_add(seg.payload_len);
            if flags & TCP_SYN != 0 {
                end = end.wrapping_add(1);
                if dst.wscale & CT_WSCALE_FLAG != 0 {
                    src.wscale = seg.wscale;
                    if src.wscale & CT_WSCALE_FLAG != 0 {
                        sws = src.wscale & CT_WSCALE_MASK;
                        win = u32::from(win).div_ceil(1u32 << sws) as u16;
                        dws = dst.wscale & CT_WSCALE_MASK;
                    } else {
                        // Fix up the other window; in case of a retransmitted SYN|ACK.
                        dst.max_win =
                            ((u32::from(dst.max_win)) << (dst.wscale & CT_WSCALE_MASK)) as u16;
                        dst.wscale = 0;
                    }
                }
            }
            if flags & TCP_FIN != 0 {
                end = end.wrapping_add(1);
            }
            src.seqlo = seq;
            src.state = state::SYN_SENT;
            let dwin = (u32::from(dst.max_win) << dws).max(1);
            if src.seqhi == 1 || seq_geq(end.wrapping_add(dwin), src.seqhi) {
                src.seqhi = end.wrapping_add(dwin);
                // A new connection, or one picked up mid-stream: be lenient on ack skew.
                check_ackskew = false;
            }
            if win > src.max_win {
                src.max_win = win;
            }
        } else {
            end = seq.wrapping_add(seg.payload_len);
            if flags & TCP_SYN != 0 {
                end = end.wrapping_add(1);
            }
            if flags & TCP_FIN != 0 {
                end = end.wrapping_add(1);
            }
        }

        if flags & TCP_ACK == 0 {
            // Let it pass the ack skew check.
            ack = dst.seqlo;
        } else if ack == 0 && flags & (TCP_ACK | TCP_RST) == (TCP_ACK | TCP_RST) {
            // Broken stacks send RST|ACK with a zero ack.
            ack = dst.seqlo;
        }

        if seq == end {
            // Ease sequencing restrictions on segments without data.
            seq = src.seqlo;
            end = seq;
        }

        let ackskew: i64 =
            if check_ackskew { i64::from(dst.seqlo.wrapping_sub(ack) as i32) } else { 0 };
        let dst_win = u32::from(dst.max_win) << dws;
        let in_window = seq_geq(src.seqhi, end)
            && seq_geq(seq, src.seqlo.wrapping_sub(dst_win))
            && ackskew >= -MAXACKWINDOW
            && ackskew <= (MAXACKWINDOW << sws)
            && (flags & TCP_RST == 0
                || orig_seq == src.seqlo
                || orig_seq == src.seqlo.wrapping_add(1)
                || orig_seq.wrapping_add(1) == src.seqlo);

        let timeout;
        if in_window || !seq_check {
            if src.max_win < win {
                src.max_win = win;
            }
            if seq_gt(end, src.seqlo) {
                src.seqlo = end;
            }
            let swin = u32::from(win) << sws;
            if seq_geq(ack.wrapping_add(swin), dst.seqhi) {
                dst.seqhi = ack.wrapping_add(swin.max(1));
            }
            if flags & TCP_SYN != 0 && src.state < state::SYN_SENT {
                src.state = state::SYN_SENT;
            }
            if flags & TCP_FIN != 0 && src.state < state::CLOSING {
                src.state = state::CLOSING;
            }
            if flags & TCP_ACK != 0 {
                if dst.state == state::SYN_SENT {
                    dst.state = state::ESTABLISHED;
                } else if dst.state == state::CLOSING {
                    dst.state = state::FIN_WAIT_2;
                }
            }
            if flags & TCP_RST != 0 {
                src.state = state::TIME_WAIT;
                dst.state = state::TIME_WAIT;
            }
            timeout = Some(if src.state >= state::FIN_WAIT_2 && dst.state >= state::FIN_WAIT_2 {
                Timeout::TcpClosed
            } else if src.state >= state::CLOSING && dst.state >= state::CLOSING {
                Timeout::TcpFinWait
            } else if src.state < state::ESTABLISHED || dst.state < state::ESTABLISHED {
                Timeout::TcpOpening
            } else if src.state >= state::CLOSING || dst.state >= state::CLOSING {
                Timeout::TcpClosing
            } else {
                Timeout::TcpEstablished
            });
        } else if (dst.state < state::SYN_SENT
            || dst.state >= state::FIN_WAIT_2
            || src.state >= state::FIN_WAIT_2)
            && seq_geq(src.seqhi.wrapping_add(MAXACKWINDOW as u32), end)
            && seq_geq(seq, src.seqlo.wrapping_sub(MAXACKWINDOW as u32))
        {
            // Shotgunned SYNs, a stream picked up after establishment, or stray segments
            // right after a close: accepted, but the timeout is not refreshed.
            if src.max_win < win {
                src.max_win = win;
            }
            if seq_gt(end, src.seqlo) {
                src.seqlo = end;
            }
            let swin = u32::from(win) << sws;
            if seq_geq(ack.wrapping_add(swin), dst.seqhi) {
                dst.seqhi = ack.wrapping_add(swin.max(1));
            }
            if flags & TCP_FIN != 0 && src.state < state::CLOSING {
                src.state = state::CLOSING;
            }
            if flags & TCP_RST != 0 {
                src.state = state::TIME_WAIT;
                dst.state = state::TIME_WAIT;
            }
            timeout = None;
        } else {
            // Out of window. What the first-segment branch above learnt is kept, as in OVS,
            // where it wrote through to the connection.
            self.peer[s] = src;
            self.peer[d] = dst;
            return (Update::Invalid, None);
        }
        self.peer[s] = src;
        self.peer[d] = dst;
        (Update::Valid, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u16, seq: u32, ack: u32, len: u32) -> TcpSeg {
        TcpSeg { flags, seq, ack, win: 29200, payload_len: len, wscale: 0x87 }
    }

    #[test]
    fn flag_validity_matches_ovs() {
        assert!(!invalid_flags(TCP_SYN));
        assert!(invalid_flags(TCP_SYN | TCP_FIN));
        assert!(invalid_flags(TCP_SYN | TCP_RST));
        assert!(invalid_flags(0));
        assert!(invalid_flags(TCP_FIN));
        assert!(!invalid_flags(TCP_FIN | TCP_ACK));
        assert!(!invalid_flags(TCP_RST));
        assert!(!valid_new(&seg(TCP_SYN | TCP_ACK, 1, 1, 0)));
        assert!(valid_new(&seg(TCP_ACK, 1, 1, 0)));
    }

    #[test]
    fn three_way_handshake_then_close() {
        let mut c = new_conn(&seg(TCP_SYN, 1000, 0, 0));
        assert_eq!((c.peer[0].state, c.peer[1].state), (state::SYN_SENT, state::CLOSED));
        let (u, t) = c.update(&seg(TCP_SYN | TCP_ACK, 5000, 1001, 0), true, true);
        assert_eq!(u, Update::Valid);
        assert_eq!(t, Some(Timeout::TcpOpening));
        assert_eq!((c.peer[0].state, c.peer[1].state), (state::ESTABLISHED, state::SYN_SENT));
        let (u, t) = c.update(&seg(TCP_ACK, 1001, 5001, 0), false, true);
        assert_eq!((u, t), (Update::Valid, Some(Timeout::TcpEstablished)));
        assert_eq!(c.peer[1].state, state::ESTABLISHED);
        // Data, then FIN from the client.
        let (u, _) = c.update(&seg(TCP_ACK | TCP_PSH, 1001, 5001, 100), false, true);
        assert_eq!(u, Update::Valid);
        let (u, t) = c.update(&seg(TCP_FIN | TCP_ACK, 1101, 5001, 0), false, true);
        assert_eq!((u, t), (Update::Valid, Some(Timeout::TcpClosing)));
        assert_eq!(c.peer[0].state, state::CLOSING);
        let (_, t) = c.update(&seg(TCP_FIN | TCP_ACK, 5001, 1102, 0), true, true);
        assert_eq!(t, Some(Timeout::TcpFinWait));
        let (_, t) = c.update(&seg(TCP_ACK, 1102, 5002, 0), false, true);
        assert_eq!(t, Some(Timeout::TcpClosed));
        assert_eq!((c.peer[0].state, c.peer[1].state), (state::FIN_WAIT_2, state::FIN_WAIT_2));
        // A new SYN on the closed tuple asks for a new connection.
        assert_eq!(c.update(&seg(TCP_SYN, 9000, 0, 0), false, true).0, Update::New);
    }

    #[test]
    fn out_of_window_is_invalid_unless_unchecked() {
        let mut c = new_conn(&seg(TCP_SYN, 1000, 0, 0));
        c.update(&seg(TCP_SYN | TCP_ACK, 5000, 1001, 0), true, true);
        c.update(&seg(TCP_ACK, 1001, 5001, 0), false, true);
        let before = c;
        let far = seg(TCP_ACK, 1001 + 0x4000_0000, 5001, 10);
        assert_eq!(c.update(&far, false, true).0, Update::Invalid);
        assert_eq!(c, before);
        assert_eq!(c.update(&far, false, false).0, Update::Valid);
    }
}
