//! dvrlab's datapath: packet parsing, flow keys, OpenFlow tables with a tuple-space
//! classifier, translation of OpenFlow pipelines into datapath actions, a megaflow cache,
//! connection tracking with NAT, VXLAN, and pcap replay. The napi-rs binding layer lives in
//! `node/` and is the only part that knows about JavaScript (feature `node`).

pub mod conntrack;
pub mod dpif;
pub mod engine;
pub mod flow;
pub(crate) mod fmt;
pub mod netns;
pub mod ofproto;
pub mod port;
pub mod wire;
pub mod xlate;

#[cfg(feature = "node")]
pub mod node;
