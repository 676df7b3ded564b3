//! Datapath micro-benchmark for profiling (`perf record`, callgrind) without Node:
//!   cargo run --release --no-default-features --example dpbench -- WORKLOAD FLOWS SIZE
//! WORKLOAD: `l2` (one rule for all flows: EMC and megaflow hits), `nwdst` (one rule per
//! destination address: one megaflow per flow), `vxlan` (encapsulation into a VXLAN tunnel).
//! MODE (4th argument, optional): `forward` (default) or `setup`.
use dvrlab_native::engine::bench::{BenchMode, Workload};
use dvrlab_native::engine::Engine;

fn udp_frame(size: usize, src_ip: u32, dst_ip: u32, sport: u16, dport: u16) -> Vec<u8> {
    let size = size.max(60);
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (size - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src_ip.to_be_bytes());
    ip[16..20].copy_from_slice(&dst_ip.to_be_bytes());
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: dpbench ENGINE.json PORT ports|dsts [FLOWS [SIZE [setup]]]");
        std::process::exit(2);
    }
    let traffic = args[3].as_str();
    let flows: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(10);
    let size: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(64);
    let mode = if args.get(6).map(String::as_str) == Some("setup") {
        BenchMode::Setup
    } else {
        BenchMode::Forward
    };
    let text = std::fs::read_to_string(&args[1]).expect("scenario file");
    let t = std::time::Instant::now();
    let mut e = Engine::from_json(&text).expect("scenario");
    eprintln!("loaded in {:.2} s", t.elapsed().as_secs_f64());
    let (node, port) = e.resolve(&args[2]).expect("port");
    let base = 0x0a00_0000u32;
    let mut w = Workload::new(node);
    for i in 0..flows {
        let f = if traffic == "dsts" {
            udp_frame(size, base + 0x100_0000, base + 1 + i, 1000, 2000)
        } else {
            udp_frame(
                size,
                base + 0x100_0000 + (i >> 16),
                base + 1,
                1024 + (i & 0xffff) as u16,
                2000,
            )
        };
        w.push(port, &f);
    }
    let secs = std::env::var("DPBENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let passes = std::env::var("DPBENCH_PASSES").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let fig = e.bench_workload(&w, mode, passes, secs).expect("bench");
    println!("{}", serde_json::to_string_pretty(&fig.to_json()).unwrap());
}
