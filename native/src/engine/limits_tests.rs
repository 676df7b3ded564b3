//! The table limits under load, driven through whole-engine in-memory runs: a full megaflow
//! cache or conntrack table refuses new entries (counted) while what is already there keeps
//! working, idle megaflows expire, and every frame is accounted for.

use super::Engine;

fn engine(flows: &[&str], extra: serde_json::Value) -> Engine {
    let flows: Vec<serde_json::Value> = flows
        .iter()
        .enumerate()
        .map(|(i, f)| serde_json::json!({"text": f, "source": "test", "line": i + 1}))
        .collect();
    let mut sc = serde_json::json!({
        "oneNode": true,
        "nodes": [{"name": "", "bridges": [{
            "name": "br0", "failMode": "secure",
            "ports": [
                {"name": "p1", "ofport": 1, "type": "dummy"},
                {"name": "p2", "ofport": 2, "type": "dummy"},
                {"name": "p3", "ofport": 3, "type": "dummy"}
            ],
            "flows": flows
        }], "routes": [], "neighbors": []}]
    });
    for (k, v) in extra.as_object().expect("an object") {
        sc[k] = v.clone();
    }
    Engine::from_json(&sc.to_string()).expect("scenario builds")
}

/// A UDP frame from MAC/IP number `src` to `dst`, ports `sport` -> `dport`.
fn udp(src: u32, dst: u32, sport: u16, dport: u16) -> Vec<u8> {
    let mac = |n: u32| [0x52, 0x54, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    let ip = |n: u32| [10, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    let mut f = Vec::new();
    f.extend_from_slice(&mac(dst));
    f.extend_from_slice(&mac(src));
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 36, 0, 1, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&ip(src));
    f.extend_from_slice(&ip(dst));
    let c = crate::wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 16, 0, 0, b'd', b'v', b'r', b'l', b'a', b'b', b'!', b'!']);
    f
}

/// Sends `frame` on `port`; true when the engine emitted it somewhere.
fn delivered(e: &mut Engine, run: &mut super::live::MemoryRun, port: &str, frame: &[u8]) -> bool {
    let before = e.memory_stats(run).delivered;
    e.inject(run, port, frame).expect("a port");
    e.memory_stats(run).delivered == before + 1
}

#[test]
fn a_full_megaflow_cache_refuses_new_flows_and_keeps_serving_the_cached_ones() {
    let mut e = engine(&["actions=NORMAL"], serde_json::json!({"megaflowLimit": 100}));
    let mut run = e.memory_run();
    // 100 hosts behind p1 talk to host 1 behind p2: 100 megaflows (NORMAL matches the MACs).
    delivered(&mut e, &mut run, "br0/p2", &udp(1, 2, 7, 7));
    for h in 0..99 {
        assert!(delivered(&mut e, &mut run, "br0/p1", &udp(1000 + h, 1, 5000, 53)));
    }
    assert_eq!(e.nodes[0].dp.megaflows.len(), 100);
    // A flood of 5000 new hosts: every frame still forwarded, none cached, each refusal
    // counted.
    for h in 0..5000 {
        assert!(delivered(&mut e, &mut run, "br0/p3", &udp(100_000 + h, 1, 5000, 53)));
    }
    let s = e.memory_stats(&run);
    assert_eq!(e.nodes[0].dp.megaflows.len(), 100);
    assert_eq!(s.limits.megaflows_refused, 5000);
    // The established hosts still hit the cache: no upcall for them.
    let upcalls = e.nodes[0].dp.stats.upcalls;
    for h in 0..99 {
        assert!(delivered(&mut e, &mut run, "br0/p1", &udp(1000 + h, 1, 5000, 53)));
    }
    assert_eq!(e.nodes[0].dp.stats.upcalls, upcalls);
    let s = e.memory_stats(&run);
    s.check_invariant().expect("accounted");
    assert_eq!(s.packets_in, 1 + 99 + 5000 + 99);
}

#[test]
fn a_full_conntrack_table_refuses_new_connections_and_keeps_the_established_ones() {
    let flows = [
        "table=0,priority=100,ip,actions=ct(table=1,zone=1)",
        "table=1,priority=100,ct_state=+new+trk,ip,in_port=1,actions=ct(commit,zone=1),output:2",
        "table=1,priority=100,ct_state=+est+trk,ip,in_port=1,actions=output:2",
        "table=1,priority=100,ct_state=+est+trk,ip,in_port=2,actions=output:1",
        "table=1,priority=10,actions=drop",
    ];
    let mut e = engine(&flows, serde_json::json!({"conntrackLimit": 50}));
    let mut run = e.memory_run();
    for c in 0..50u16 {
        assert!(delivered(&mut e, &mut run, "br0/p1", &udp(1, 2, 1000 + c, 53)));
        assert!(delivered(&mut e, &mut run, "br0/p2", &udp(2, 1, 53, 1000 + c)));
    }
    // 5000 new connections: OVS forwards a packet whose commit the full table refused (it
    // stays +new, uncommitted), so its reply is not +est and is dropped.
    for c in 0..5000u16 {
        assert!(delivered(&mut e, &mut run, "br0/p1", &udp(3, 2, 10_000 + c, 53)));
    }
    let s = e.memory_stats(&run);
    assert_eq!((s.conntrack_entries, s.limits.conntrack_refused), (50, 5000));
    assert!(!delivered(&mut e, &mut run, "br0/p2", &udp(2, 3, 53, 10_000)));
    // Every established connection still works both ways.
    for c in 0..50u16 {
        assert!(delivered(&mut e, &mut run, "br0/p1", &udp(1, 2, 1000 + c, 53)));
        assert!(delivered(&mut e, &mut run, "br0/p2", &udp(2, 1, 53, 1000 + c)));
    }
    let s = e.memory_stats(&run);
    s.check_invariant().expect("accounted");
    assert_eq!(s.dropped.get("action_drop"), Some(&1));
}

#[test]
fn idle_megaflows_expire_and_busy_ones_stay() {
    let mut e = engine(&["actions=NORMAL"], serde_json::json!({"maxIdle": 10_000}));
    let mut run = e.memory_run();
    let t0 = e.clock_ms();
    delivered(&mut e, &mut run, "br0/p2", &udp(1, 2, 7, 7));
    for h in 0..20 {
        delivered(&mut e, &mut run, "br0/p1", &udp(100 + h, 1, 5000, 53));
    }
    let n = e.nodes[0].dp.megaflows.len();
    assert_eq!(n, 21);
    // Host 100 keeps sending every 2 s; the others fall silent.
    for s in 1..=8 {
        e.advance(&mut run, t0 + s * 2000);
        delivered(&mut e, &mut run, "br0/p1", &udp(100, 1, 5000, 53));
    }
    assert_eq!(e.nodes[0].dp.megaflows.len(), 1);
    let s = e.memory_stats(&run);
    assert_eq!(s.limits.megaflows_expired, 20);
    assert_eq!(s.limits.max_idle_ms, Some(10_000));
    // Without max-idle (a replay's default) nothing expires.
    let mut e = engine(&["actions=NORMAL"], serde_json::json!({}));
    let mut run = e.memory_run();
    delivered(&mut e, &mut run, "br0/p1", &udp(100, 1, 5000, 53));
    e.advance(&mut run, e.clock_ms() + 3_600_000);
    assert_eq!(e.nodes[0].dp.megaflows.len(), 1);
}

#[test]
fn a_flood_of_new_source_macs_through_learn_does_not_starve_established_flows() {
    // br-tun's learning, reduced: every source MAC learns a flow towards its input port.
    let flows = [
        "table=0,priority=1,actions=learn(table=1,hard_timeout=300,priority=1,\
         NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),resubmit(,1)",
        "table=1,priority=0,actions=FLOOD",
    ];
    let flood = |live: bool| {
        let mut e = engine(&flows, serde_json::json!({}));
        if live {
            e.live_defaults();
        }
        let mut run = e.memory_run();
        let t0 = e.clock_ms();
        delivered(&mut e, &mut run, "br0/p2", &udp(1, 2, 7, 7));
        for h in 0..50 {
            delivered(&mut e, &mut run, "br0/p1", &udp(100 + h, 1, 5000, 53));
        }
        let before = e.nodes[0].dp.stats;
        // 1500 new hosts in 150 ms, while the 50 established ones keep sending.
        for i in 0..1500u32 {
            e.advance(&mut run, t0 + 1 + u64::from(i / 10));
            delivered(&mut e, &mut run, "br0/p3", &udp(10_000 + i, 1, 5000, 53));
            if i % 60 == 0 {
                for h in 0..50 {
                    assert!(delivered(&mut e, &mut run, "br0/p1", &udp(100 + h, 1, 5000, 53)));
                }
            }
        }
        let s = e.memory_stats(&run);
        s.check_invariant().expect("accounted");
        e.nodes[0].dp.stats.retranslations - before.retranslations
    };
    // A replay revalidates the whole cache after every learned flow; a live run at most
    // every 10 ms, so the work per new host stays bounded.
    let replay = flood(false);
    let live = flood(true);
    assert!(replay > 500_000, "{replay} re-translations in a replay");
    assert!(live * 50 < replay, "{live} re-translations live vs {replay} in a replay");
}

/// Resident memory of this process, in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux");
    let pages: u64 = statm.split_whitespace().nth(1).expect("rss").parse().expect("a number");
    pages * 4096
}

/// How much memory a full cache of 1 M megaflows takes, as NORMAL installs them (the key of
/// the packet, the masked key, the mask, one output action, the rule they went through, the
/// MAC they looked up). Run alone: `cargo test --no-default-features megaflow_memory --
/// --ignored --nocapture --test-threads=1`.
#[test]
#[ignore = "allocates about a gigabyte; run by hand to measure"]
fn megaflow_memory_at_one_million() {
    let mut e = engine(&["actions=NORMAL"], serde_json::json!({}));
    let mut run = e.memory_run();
    delivered(&mut e, &mut run, "br0/p2", &udp(1, 2, 7, 7));
    let proto = e.nodes[0].dp.megaflows.iter().next().map(|(id, _)| id).expect("one flow");
    let m = e.nodes[0].dp.megaflows.get(proto).expect("present");
    let (mask, key) = (m.mask, m.actions.key);
    let template = || crate::dpif::DpFlow {
        actions: m.actions.actions.clone(),
        drop: None,
        rules: m.actions.rules.clone(),
        slow_path: false,
        learned: Vec::new(),
        key,
        pushed_packets: 0,
        pushed_bytes: 0,
        mac_deps: m.actions.mac_deps.clone(),
        created_ms: 0,
    };
    let mut cache = crate::dpif::megaflow::MegaflowCache::new(1 << 20);
    let before = rss();
    for i in 0..1_000_000u32 {
        let mut k = key;
        k.dl_src[2..].copy_from_slice(&i.to_be_bytes());
        let mut f = template();
        f.key = k;
        cache.insert(&k, &mask, f).expect("room");
    }
    let per = (rss() - before) / 1_000_000;
    println!("1 M megaflows: {} MiB, {per} bytes each", (rss() - before) >> 20);
    assert!(per < 2048, "{per} bytes per megaflow");
    assert_eq!(cache.len(), 1_000_000);
}
