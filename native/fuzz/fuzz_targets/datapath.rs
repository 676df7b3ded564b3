//! Fuzzes the whole datapath of the seed devstack (three nodes: br-int, br-tun, br-ex, the
//! qrouter, snat and fip namespaces, conntrack with SNAT and floating-IP DNAT, VXLAN between
//! the nodes) with arbitrary frames on any of its ports.
//!
//! Input: records of [port selector][length: 2 bytes, big endian][frame], up to 16 per
//! input; a selector byte with the top bit set also moves the clock on by its low bits in
//! seconds (expiry, ARP retries). The engine lives across inputs, as a running instance
//! does: MAC learning, conntrack, NAT bindings and megaflows accumulate (building it takes
//! tens of milliseconds, which would cap the run at a few dozen inputs a second). Each
//! input's frames are accounted on their own. Checked: no panic, and the accounting
//! invariant (every frame delivered, queued or dropped under exactly one reason).
//!
//! The scenario is the JSON `DVRLAB_FUZZ_SCENARIO` names (default
//! `fuzz/corpus/devstack-dvr.json`, which `fuzz/seeds.mjs` writes).
#![no_main]

use dvrlab_native::engine::Engine;
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;

static ENGINE: Mutex<Option<(Engine, Vec<String>)>> = Mutex::new(None);

fn load() -> (Engine, Vec<String>) {
    let path = std::env::var("DVRLAB_FUZZ_SCENARIO")
        .unwrap_or_else(|_| "fuzz/corpus/devstack-dvr.json".into());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run `node fuzz/seeds.mjs` first)"));
    let mut e = Engine::from_json(&text).unwrap_or_else(|e| panic!("{path}: {}", e.0));
    // As a live instance runs: megaflows idle for 10 s go (each input moves the clock on by
    // 10 s at its end), so the cache holds what recent inputs made.
    e.live_defaults();
    let ports = e.input_ports();
    (e, ports)
}

fuzz_target!(|data: &[u8]| {
    let mut guard = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let (engine, ports) = guard.get_or_insert_with(load);
    let mut run = engine.memory_run();
    let mut now = engine.clock_ms();
    let mut rest = data;
    for _ in 0..16 {
        if rest.len() < 3 {
            break;
        }
        let sel = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let frame = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[3 + frame.len()..];
        if sel & 0x80 != 0 {
            now += u64::from(sel & 0x0f) * 1000;
            engine.advance(&mut run, now);
        }
        let port = &ports[usize::from(sel & 0x7f) % ports.len()];
        engine.inject(&mut run, port, frame).expect("a port of the scenario");
    }
    engine.advance(&mut run, now + 10_000);
    let stats = engine.memory_stats(&run);
    if let Err(e) = stats.check_invariant() {
        panic!("{e}");
    }
});
