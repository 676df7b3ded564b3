//! Fuzzes the burst path of the datapath against its one-packet path, on the seed devstack:
//! two engines built from the same scenario, one given each input's frames in bursts
//! (`receive_batch`, consecutive frames of one port together), the other one frame at a
//! time (`receive`). Checked: no panic, and the same outcome for every frame (outputs, drop
//! reason, frames queued or carried) and the same frames out of the same ports, in the same
//! order, on both. The burst path's staged lookups, the EMC left out of bursts while it
//! does not pay, and the fall-back to one packet at a time must never change what happens.
//!
//! Input: records of [port selector][length: 2 bytes, big endian][frame], up to 64 per
//! input. The engines live across inputs, so caches, MAC tables and conntrack accumulate.
//! The scenario is the one of the `datapath` target (`DVRLAB_FUZZ_SCENARIO`, default
//! `fuzz/corpus/devstack-dvr.json`).
#![no_main]

use dvrlab_native::dpif::{Origin, Outcome, Sink};
use dvrlab_native::engine::Engine;
use dvrlab_native::wire::packet::Packet;
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;

type Ports = Vec<(usize, u32)>;

static ENGINES: Mutex<Option<(Engine, Engine, Ports)>> = Mutex::new(None);

fn load() -> (Engine, Engine, Ports) {
    let path = std::env::var("DVRLAB_FUZZ_SCENARIO")
        .unwrap_or_else(|_| "fuzz/corpus/devstack-dvr.json".into());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run `node fuzz/seeds.mjs` first)"));
    let build = || Engine::from_json(&text).unwrap_or_else(|e| panic!("{path}: {}", e.0));
    let (a, b) = (build(), build());
    let ports = a.input_ports().iter().filter_map(|p| a.resolve(p)).collect();
    (a, b, ports)
}

/// Every frame a datapath sent, with its port.
#[derive(Default)]
struct Rec(Vec<(u32, Vec<u8>)>);

impl Sink for Rec {
    fn output(&mut self, port: u32, pkt: &Packet, _origin: Origin) -> bool {
        self.0.push((port, pkt.data().to_vec()));
        false
    }
}

fuzz_target!(|data: &[u8]| {
    let mut guard = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    let (burst, single, ports) = guard.get_or_insert_with(load);
    if ports.is_empty() {
        return;
    }
    let mut frames: Vec<((usize, u32), &[u8])> = Vec::new();
    let mut rest = data;
    while frames.len() < 64 && rest.len() >= 3 {
        let sel = usize::from(rest[0]);
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let frame = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[3 + frame.len()..];
        frames.push((ports[sel % ports.len()], frame));
    }
    let mut i = 0;
    while i < frames.len() {
        let at = frames[i].0;
        let n = frames[i..].iter().take_while(|f| f.0 == at).count();
        let (node, port) = at;
        let mut pkts: Vec<Packet> =
            frames[i..i + n].iter().map(|f| Packet::from_slice(f.1)).collect();
        let mut outcomes = vec![Outcome::default(); n];
        let mut sent_burst = Rec::default();
        burst.nodes[node].dp.receive_batch(&mut pkts, port, &mut sent_burst, &mut outcomes);
        let mut sent_single = Rec::default();
        for (k, f) in frames[i..i + n].iter().enumerate() {
            let mut pkt = Packet::from_slice(f.1);
            let o = single.nodes[node].dp.receive(&mut pkt, port, &mut sent_single);
            assert!(
                o == outcomes[k],
                "frame {} of a burst of {n}: {:?} alone, {:?} in the burst",
                k,
                o,
                outcomes[k]
            );
        }
        assert!(sent_burst.0 == sent_single.0, "a burst of {n} sent other frames than one by one");
        i += n;
    }
});
