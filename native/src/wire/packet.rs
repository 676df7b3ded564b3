//! A packet buffer with headroom, so that VLAN and tunnel headers can be pushed in front of
//! a frame without moving it (the role of OVS's `dp_packet`).
//!
//! Invariant: `start <= buf.len()`; the frame is `buf[start..]`.

/// Bytes kept free in front of a frame: room for a VXLAN-over-IPv4 header (50 bytes) and
/// two VLAN tags, rounded up.
pub const HEADROOM: usize = 64;

/// One frame and the buffer around it.
#[derive(Clone, Debug, Default)]
pub struct Packet {
    buf: Vec<u8>,
    start: usize,
}

impl Packet {
    /// An empty packet with the default headroom and room for `capacity` bytes of frame.
    pub fn with_capacity(capacity: usize) -> Packet {
        let mut buf = Vec::with_capacity(HEADROOM + capacity);
        buf.resize(HEADROOM, 0);
        Packet { buf, start: HEADROOM }
    }

    /// A packet holding a copy of `frame`.
    pub fn from_slice(frame: &[u8]) -> Packet {
        let mut p = Packet::with_capacity(frame.len());
        p.buf.extend_from_slice(frame);
        p
    }

    /// Replaces the contents with a copy of `frame`, reusing the allocation.
    pub fn set_from_slice(&mut self, frame: &[u8]) {
        self.buf.clear();
        self.buf.resize(HEADROOM, 0);
        self.start = HEADROOM;
        self.buf.extend_from_slice(frame);
    }

    /// Bytes the buffer holds without growing.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The frame.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The frame, mutable.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    /// Frame length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True for a zero-length frame.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens `n` bytes at offset `at` of the frame (moving the bytes before `at` forward
    /// into the headroom) and returns them, zeroed. `at` must be `<= len()`.
    pub fn insert(&mut self, at: usize, n: usize) -> &mut [u8] {
        let at = at.min(self.len());
        if self.start < n {
            // Grow the headroom: move the whole frame back.
            let grow = n - self.start + HEADROOM;
            self.buf.splice(0..0, core::iter::repeat_n(0u8, grow));
            self.start += grow;
        }
        let s = self.start;
        self.buf.copy_within(s..s + at, s - n);
        self.start -= n;
        let region = &mut self.buf[self.start + at..self.start + at + n];
        region.fill(0);
        region
    }

    /// Opens 4 bytes after the 12 bytes of MAC addresses (a VLAN tag's place) and writes
    /// `tag` there: `insert(12, 4)` for frames of at least 12 bytes with headroom, in a few
    /// fixed-size moves instead of a general copy.
    #[inline]
    pub fn insert_tag(&mut self, tag: [u8; 4]) {
        let s = self.start;
        if s < 4 || self.len() < 12 {
            self.insert(12, 4).copy_from_slice(&tag);
            return;
        }
        let macs: [u8; 12] = self.buf[s..s + 12].try_into().expect("12 bytes");
        self.buf[s - 4..s + 8].copy_from_slice(&macs);
        self.buf[s + 8..s + 12].copy_from_slice(&tag);
        self.start = s - 4;
    }

    /// Removes the 4 bytes after the 12 bytes of MAC addresses (`remove(12, 4)`).
    #[inline]
    pub fn remove_tag(&mut self) {
        if self.len() < 16 {
            return self.remove(12, 4);
        }
        let s = self.start;
        let macs: [u8; 12] = self.buf[s..s + 12].try_into().expect("12 bytes");
        self.buf[s + 4..s + 16].copy_from_slice(&macs);
        self.start = s + 4;
    }

    /// Removes `n` bytes at offset `at` of the frame (moving the bytes before `at` back).
    /// Does nothing when the range is out of the frame.
    pub fn remove(&mut self, at: usize, n: usize) {
        if at + n > self.len() {
            return;
        }
        let s = self.start;
        self.buf.copy_within(s..s + at, s + n);
        self.start += n;
    }

    /// Prepends `n` zeroed bytes and returns them.
    pub fn push_front(&mut self, n: usize) -> &mut [u8] {
        if self.start < n {
            return self.insert(0, n);
        }
        // Room in the headroom: nothing moves.
        self.start -= n;
        let region = &mut self.buf[self.start..self.start + n];
        region.fill(0);
        region
    }

    /// Drops the first `n` bytes (no-op when shorter).
    pub fn pull_front(&mut self, n: usize) {
        if n <= self.len() {
            self.start += n;
        }
    }

    /// Truncates the frame to `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.buf.truncate(self.start + len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_insert_and_remove_are_insert_and_remove_at_12() {
        let tag = [0x81, 0x00, 0x20, 0x07];
        for len in [0usize, 5, 11, 12, 13, 16, 60, 1500] {
            let frame: Vec<u8> = (0..len).map(|i| i as u8).collect();
            // With the default headroom, with none left, and with less than a tag's.
            for pulled in [0usize, HEADROOM, HEADROOM - 2] {
                let mut a = Packet::with_capacity(len);
                a.buf.truncate(HEADROOM - pulled);
                a.start = HEADROOM - pulled;
                a.buf.extend_from_slice(&frame);
                let mut b = a.clone();
                a.insert_tag(tag);
                b.insert(12, 4).copy_from_slice(&tag);
                assert_eq!(a.data(), b.data(), "insert, len {len}, headroom {}", a.start);
                a.remove_tag();
                b.remove(12, 4);
                assert_eq!(a.data(), b.data(), "remove, len {len}");
                if len >= 12 {
                    assert_eq!(a.data(), &frame[..], "round trip, len {len}");
                }
            }
        }
    }

    #[test]
    fn insert_and_remove_round_trip() {
        let frame: Vec<u8> = (0u8..20).collect();
        let mut p = Packet::from_slice(&frame);
        p.insert(12, 4).copy_from_slice(&[0x81, 0, 0, 5]);
        assert_eq!(p.len(), 24);
        assert_eq!(&p.data()[12..16], &[0x81, 0, 0, 5]);
        assert_eq!(&p.data()[..12], &frame[..12]);
        assert_eq!(&p.data()[16..], &frame[12..]);
        p.remove(12, 4);
        assert_eq!(p.data(), &frame[..]);
        for _ in 0..5 {
            p.push_front(50);
        }
        assert_eq!(p.len(), 270);
        assert_eq!(&p.data()[250..], &frame[..]);
        assert!(p.data()[..250].iter().all(|&b| b == 0), "pushed bytes are zeroed");
    }
}
