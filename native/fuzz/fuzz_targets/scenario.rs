//! Fuzzes the scenario loader (the JSON the control plane hands the engine: nodes, bridges,
//! ports, flows, namespaces, underlays, limits) with arbitrary bytes: it must never panic,
//! and a scenario it accepts must answer the questions the CLI asks of every scenario
//! (ports, dump-flows, megaflows, a trace) without panicking either.
#![no_main]

use dvrlab_native::engine::Engine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut engine) = Engine::from_json(text) else { return };
    let ports = engine.input_ports();
    let mut run = engine.memory_run();
    // A broadcast ARP request and an IPv4 UDP packet on every port: enough to walk every
    // table the scenario's flows reach from there.
    let arp: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa, 0x16, 0x3e, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6,
        4, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 1, 10, 0, 0, 5, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1,
    ];
    let mut udp = vec![
        0xfa, 0x16, 0x3e, 0, 0, 2, 0xfa, 0x16, 0x3e, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 28, 0, 1, 0,
        0, 64, 17, 0, 0, 10, 0, 0, 5, 8, 8, 8, 8, 0x30, 0x39, 0, 53, 0, 8, 0, 0,
    ];
    let sum = dvrlab_native::wire::checksum::checksum(&udp[14..34]);
    udp[24..26].copy_from_slice(&sum.to_be_bytes());
    for p in ports.iter().take(64) {
        let _ = engine.inject(&mut run, p, &arp);
        let _ = engine.inject(&mut run, p, &udp);
    }
    engine.advance(&mut run, 5_000);
    let stats = engine.memory_stats(&run);
    if let Err(e) = stats.check_invariant() {
        panic!("{e}");
    }
});
