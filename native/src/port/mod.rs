//! Ports: where frames enter and leave the datapath.
//!
//! - `capture`: reading pcap and pcapng files (format detected from the first bytes), with
//!   located, human-readable errors, and turning cooked/raw-IP/loopback link types into
//!   Ethernet frames for replay;
//! - `pcap`: the classic pcap format, including the writer used for replay output;
//! - `pcapng`: pcapng block decoding.
//!
//! Invariant shared by all of them: no capture byte can make them panic, and memory use is
//! bounded whatever the input claims.

pub mod capture;
pub mod pcap;
pub mod pcapng;
