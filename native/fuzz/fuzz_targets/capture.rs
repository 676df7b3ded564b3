//! Feeds arbitrary bytes to the capture reader, both from memory and through a reader that
//! returns a few bytes at a time, and checks that no input panics, that both paths give the
//! same records and the same error, and that every record keeps the reader's promises.

#![no_main]

use std::io::{self, Read};

use dvrlab_native::port::capture::{CaptureReader, Record};
use libfuzzer_sys::fuzz_target;

/// A reader that returns at most `step` bytes per call, to exercise buffer refills.
struct Chunked<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// What a record says, in a comparable form that does not borrow the reader: ts_ns,
/// orig_len, linktype, interface, captured length, and a fingerprint of the data.
type Summary = (u64, u32, u32, u32, usize, u64);

fn summary(rec: &Record<'_>) -> Summary {
    // A cheap fingerprint of the data: enough to catch a wrong slice.
    let sum = rec.data.iter().fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (rec.ts_ns, rec.orig_len, rec.linktype, rec.interface, rec.data.len(), sum)
}

/// Reads to the end, checking each record; returns the summaries and the error, if any.
fn read(mut reader: CaptureReader<'_>) -> (Vec<Summary>, Option<String>) {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                assert!(rec.data.len() as u64 <= u64::from(rec.orig_len));
                assert!(rec.data.len() <= 16 * 1024 * 1024);
                out.push(summary(&rec));
                let _ = rec.to_ethernet(&mut scratch);
            }
            Ok(None) => return (out, None),
            Err(e) => {
                let message = e.to_string();
                assert!(reader.next_record().map(|r| r.is_none()).unwrap_or(false));
                return (out, Some(message));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let step = usize::from(data.first().copied().unwrap_or(1) % 13) + 1;
    let in_memory = CaptureReader::from_bytes(data).map(read).map_err(|e| e.to_string());
    let streamed = CaptureReader::new(Chunked { data, step }).map(read).map_err(|e| e.to_string());
    assert_eq!(in_memory, streamed);
});
