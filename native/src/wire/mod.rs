//! Typed, zero-copy views over protocol headers, and the packet buffer.

pub mod packet;

pub use packet::Packet;
