//! The exact-match cache (EMC): a small cache in front of the megaflow cache, keyed by the
//! whole flow key, as in OVS's userspace datapath.
//!
//! Invariants:
//! - `EMC_ENTRIES` entries (8192); a key hashes to two candidate entries (two 13-bit segments
//!   of its hash, OVS's `EM_FLOW_HASH_SEGS`). An entry stores the key's hash, a full copy of
//!   the key, and the id and generation of the megaflow it resolved to.
//! - The entries are kept in two arrays: the tags (hash, validity, megaflow id and
//!   generation; 16 bytes, 128 KiB in all, which stay in the core's cache) and the keys
//!   (184 bytes each, 1.5 MiB). A probe reads the two tags and reads a key only when its
//!   tag's hash is the key's, so a miss costs no line of the keys: with many more flows
//!   than entries, most probes are misses.
//! - A hit requires the same hash, the same key (compared in full, so a hash collision never
//!   returns a wrong flow) and a megaflow slot whose generation is unchanged: removing a
//!   megaflow invalidates every entry that points to it, with no scan of the cache.
//! - Insertion is probabilistic, as OVS's `emc-insert-inv-prob`: with `inv_prob = N` a
//!   megaflow hit is copied into the EMC with probability 1/N (default 100; 1 = always;
//!   0 = the EMC is disabled). The random numbers come from a seeded xorshift generator, so a
//!   run is reproducible.
//! - Replacement follows OVS's `emc_insert`: an entry with the same key is updated in place;
//!   otherwise an invalid entry is preferred, then the one with the lower hash.
//! - A burst probes the EMC only while it pays (`probe_burst`): with many more flows than
//!   entries most probes miss, and a miss costs its probe and saves nothing. When fewer
//!   than half of the recent probes hit, the EMC is left out of the next `BYPASS_BURSTS`
//!   bursts, then probed for one burst, which decides again. Insertion goes on meanwhile,
//!   so the probed bursts measure what the EMC would give. Which tier a packet hits changes;
//!   what happens to it does not. `set_adaptive(false)` probes every burst, as OVS does.
//! - Lookups allocate nothing and never panic.

use crate::dpif::megaflow::MegaflowCache;
use crate::flow::key::{words_equal, FlowKey};

/// Number of entries (OVS's `EM_FLOW_HASH_ENTRIES`).
pub const EMC_ENTRIES: usize = 1 << EMC_SHIFT;
const EMC_SHIFT: u32 = 13;
const EMC_MASK: u32 = (EMC_ENTRIES - 1) as u32;

/// Default `emc-insert-inv-prob` (OVS's `DEFAULT_EM_FLOW_INSERT_INV_PROB`).
pub const DEFAULT_INSERT_INV_PROB: u32 = 100;

/// What a probe reads of an entry before its key: four to a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Tag {
    hash: u32,
    flow: u32,   // megaflow id
    gen: u32,    // megaflow slot generation when written
    valid: bool, // false until first written, and after `clear`
}

const EMPTY: Tag = Tag { hash: 0, valid: false, flow: 0, gen: 0 };

/// Bursts left out of the EMC after a probed burst found that it does not pay.
const BYPASS_BURSTS: u32 = 15;

/// Recent probes (decayed by a quarter at each decision) needed before a decision.
const DECIDE_MIN_PROBES: u64 = 96;

/// EMC counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmcStats {
    pub hits: u64,
    pub misses: u64,
    pub inserted: u64,
}

/// The exact-match cache. See the module documentation.
pub struct Emc {
    tags: Box<[Tag]>,
    keys: Box<[FlowKey]>, // the key of the entry whose tag has the same index
    insert_min: u32,      // insert when a random u32 is <= this; 0 = never (EMC disabled)
    /// Megaflow hits to let pass before the next insertion: the gaps between insertions
    /// drawn at once (geometrically distributed), the same process as a draw per hit.
    until_insert: u32,
    inv_prob: u32,
    rng: u64,
    stats: EmcStats,
    gate: Gate,
}

/// What decides whether a burst probes the EMC (see `Emc::probe_burst`).
#[derive(Clone, Copy, Default)]
struct Gate {
    adaptive: bool,
    skip: u32,          // bursts still to leave the EMC out
    seen: (u64, u64),   // probes and hits counted at the last decision
    recent: (u64, u64), // probes and hits since, decayed by a quarter at each decision
}

impl Default for Emc {
    fn default() -> Self {
        Self::new(DEFAULT_INSERT_INV_PROB, 0x5eed)
    }
}

/// The hash the EMC is keyed by on a packet's first pass: as OVS's userspace datapath keys
/// its EMC, the packet's RSS hash (the 5-tuple hash it computes for a packet that arrives
/// without one). Keys that differ elsewhere share their two places (a probe compares the
/// whole key), and the hash reads a few narrow fields of a key just written instead of all
/// its words.
#[inline(always)]
pub fn hash_key(key: &FlowKey) -> u32 {
    crate::dpif::exec::rss_hash_5tuple(key)
}

/// The hash the EMC is keyed by on a pass at recirculation depth `depth`, as OVS's
/// `dpif_netdev_packet_get_rss_hash`: the RSS hash the packet got on its first pass (kept
/// through recirculation, even when NAT has changed its 5-tuple since), mixed with the depth.
#[inline(always)]
pub fn hash_at(rss: u32, depth: u32) -> u32 {
    if depth == 0 {
        rss
    } else {
        crate::dpif::exec::mhash_finish(rss, depth)
    }
}

impl Emc {
    /// An empty EMC inserting with probability `1 / inv_prob`, its random numbers seeded by
    /// `seed`.
    pub fn new(inv_prob: u32, seed: u64) -> Emc {
        let mut emc = Emc {
            tags: vec![EMPTY; EMC_ENTRIES].into_boxed_slice(),
            keys: vec![FlowKey::ZERO; EMC_ENTRIES].into_boxed_slice(),
            insert_min: 0,
            until_insert: 0,
            inv_prob: 0,
            rng: seed | 1,
            stats: EmcStats::default(),
            gate: Gate { adaptive: true, ..Gate::default() },
        };
        emc.set_insert_inv_prob(inv_prob);
        emc
    }

    /// Sets `emc-insert-inv-prob`: 0 disables the EMC (and empties it), 1 inserts always.
    pub fn set_insert_inv_prob(&mut self, inv_prob: u32) {
        self.inv_prob = inv_prob;
        self.insert_min = u32::MAX.checked_div(inv_prob).unwrap_or(0);
        self.until_insert = self.next_gap();
        if inv_prob == 0 {
            self.clear();
        }
    }

    pub fn insert_inv_prob(&self) -> u32 {
        self.inv_prob
    }

    /// Whether bursts leave the EMC out while it does not pay (the default); false probes
    /// every burst, as OVS does.
    pub fn set_adaptive(&mut self, adaptive: bool) {
        self.gate = Gate { adaptive, ..Gate::default() };
        self.gate.seen = (self.stats.hits + self.stats.misses, self.stats.hits);
    }

    /// Whether the next burst probes the EMC. After a burst that probed, the
    /// probes and hits counted since the last decision join the recent ones; if at least
    /// `DECIDE_MIN_PROBES` recent probes hit less than half the time, the EMC is left out
    /// of this burst and the next `BYPASS_BURSTS - 1`. Deterministic: it depends on counts
    /// only.
    #[inline]
    pub fn probe_burst(&mut self) -> bool {
        let g = &mut self.gate;
        if !g.adaptive || self.insert_min == 0 {
            return true;
        }
        if g.skip > 0 {
            g.skip -= 1;
            return false;
        }
        let now = (self.stats.hits + self.stats.misses, self.stats.hits);
        let (probes, hits) = (now.0.saturating_sub(g.seen.0), now.1.saturating_sub(g.seen.1));
        if probes == 0 {
            return true;
        }
        g.seen = now;
        g.recent = (g.recent.0 - g.recent.0 / 4 + probes, g.recent.1 - g.recent.1 / 4 + hits);
        if g.recent.0 >= DECIDE_MIN_PROBES && g.recent.1 * 2 < g.recent.0 {
            g.skip = BYPASS_BURSTS - 1;
            return false;
        }
        true
    }

    pub fn stats(&self) -> EmcStats {
        self.stats
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.tags.fill(EMPTY);
        self.set_adaptive(self.gate.adaptive);
    }

    /// Number of entries that point to a live megaflow.
    pub fn count_live<T>(&self, megaflows: &MegaflowCache<T>) -> usize {
        self.tags
            .iter()
            .filter(|e| e.valid && megaflows.generation(e.flow) == Some(e.gen))
            .filter(|e| megaflows.get(e.flow).is_some())
            .count()
    }

    #[inline(always)]
    fn positions(hash: u32) -> [usize; 2] {
        [(hash & EMC_MASK) as usize, ((hash >> EMC_SHIFT) & EMC_MASK) as usize]
    }

    /// The megaflow id cached for `key` (whose `hash_key` is `hash`), if still current.
    #[inline]
    pub fn lookup<T>(
        &mut self,
        key: &FlowKey,
        hash: u32,
        megaflows: &MegaflowCache<T>,
    ) -> Option<u32> {
        let hit = self.probe(key, hash, megaflows);
        if hit.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        hit
    }

    /// `lookup` without counting (see `count_hit` / `count_miss`).
    #[inline(always)]
    pub fn probe<T>(&self, key: &FlowKey, hash: u32, megaflows: &MegaflowCache<T>) -> Option<u32> {
        self.probe_place(key, hash, megaflows).map(|(_, flow)| flow)
    }

    /// `probe`, with the place of the entry found.
    #[inline(always)]
    pub fn probe_place<T>(
        &self,
        key: &FlowKey,
        hash: u32,
        megaflows: &MegaflowCache<T>,
    ) -> Option<(u16, u32)> {
        for pos in Self::positions(hash) {
            let e = &self.tags[pos];
            if e.valid
                && e.hash == hash
                && megaflows.generation(e.flow) == Some(e.gen)
                && words_equal(self.keys[pos].words(), key.words())
            {
                return Some((pos as u16, e.flow));
            }
        }
        None
    }

    /// A probe in two halves, so that the memory waits of a burst's probes overlap and no
    /// branch waits on them: `candidate` reads the tags only, and names the first entry
    /// whose tag has `hash` (its place and megaflow id), starting to load its key and the
    /// megaflow's counters; `verify`, when the packet's actions are about to run, checks
    /// that entry as `probe` would (the tag unchanged, the megaflow current, the same key).
    #[inline(always)]
    pub fn candidate<T>(&self, hash: u32, megaflows: &MegaflowCache<T>) -> Option<(u16, u32)> {
        for pos in Self::positions(hash) {
            let e = &self.tags[pos];
            if e.valid && e.hash == hash {
                let k: *const u8 = (&self.keys[pos] as *const FlowKey).cast();
                for line in 0..std::mem::size_of::<FlowKey>().div_ceil(64) {
                    crate::flow::key::prefetch_ptr(k.wrapping_add(64 * line));
                }
                megaflows.prefetch_flow(e.flow, 0);
                return Some((pos as u16, e.flow));
            }
        }
        None
    }

    /// See `candidate`: whether entry `pos`, which named megaflow `flow`, is a hit for `key`.
    #[inline(always)]
    pub fn verify<T>(
        &self,
        key: &FlowKey,
        hash: u32,
        pos: u16,
        flow: u32,
        megaflows: &MegaflowCache<T>,
    ) -> bool {
        let e = &self.tags[pos as usize];
        e.valid
            && e.hash == hash
            && e.flow == flow
            && megaflows.generation(flow) == Some(e.gen)
            && words_equal(self.keys[pos as usize].words(), key.words())
    }

    #[inline(always)]
    pub fn count_hit(&mut self) {
        self.stats.hits += 1;
    }

    #[inline(always)]
    pub fn count_miss(&mut self) {
        self.stats.misses += 1;
    }

    /// Starts loading the tags of the two entries `hash` may be in.
    #[inline(always)]
    pub fn prefetch(&self, hash: u32) {
        for pos in Self::positions(hash) {
            crate::flow::key::prefetch(&self.tags[pos]);
        }
    }

    /// After a megaflow hit for `key`: caches it with probability `1 / inv_prob`. Returns
    /// true when an entry was written.
    #[inline(always)]
    pub fn maybe_insert<T>(
        &mut self,
        key: &FlowKey,
        hash: impl FnOnce() -> u32,
        flow: u32,
        megaflows: &MegaflowCache<T>,
    ) -> bool {
        if self.insert_min == 0 {
            return false;
        }
        if self.until_insert > 0 {
            self.until_insert -= 1;
            return false;
        }
        self.insert_now(key, hash(), flow, megaflows)
    }

    /// `maybe_insert` once its countdown has run out: out of line, as it is rare.
    #[inline(never)]
    fn insert_now<T>(
        &mut self,
        key: &FlowKey,
        hash: u32,
        flow: u32,
        megaflows: &MegaflowCache<T>,
    ) -> bool {
        self.until_insert = self.next_gap();
        self.insert(key, hash, flow, megaflows)
    }

    /// Caches `key` -> megaflow `flow` unconditionally (unless the EMC is disabled or the
    /// flow does not exist).
    pub fn insert<T>(
        &mut self,
        key: &FlowKey,
        hash: u32,
        flow: u32,
        megaflows: &MegaflowCache<T>,
    ) -> bool {
        if self.inv_prob == 0 {
            return false;
        }
        let Some(gen) = megaflows.generation(flow).filter(|_| megaflows.get(flow).is_some()) else {
            return false;
        };
        let live = |e: &Tag| e.valid && megaflows.generation(e.flow) == Some(e.gen);
        let [a, b] = Self::positions(hash);
        let (ea, eb) = (&self.tags[a], &self.tags[b]);
        let keys = &self.keys;
        let same = |e: &Tag, pos: usize| {
            e.valid && e.hash == hash && words_equal(keys[pos].words(), key.words())
        };
        let victim = if same(ea, a) {
            a
        } else if same(eb, b) || (live(ea) && !live(eb)) {
            b
        } else if !live(ea) && live(eb) {
            a
        } else if eb.hash < ea.hash {
            b
        } else {
            a
        };
        self.tags[victim] = Tag { hash, valid: true, flow, gen };
        self.keys[victim] = *key;
        self.stats.inserted += 1;
        true
    }

    /// Hits before the next insertion, each inserting with probability p = (insert_min + 1)
    /// / 2^32 (OVS draws a random u32 per hit and inserts when it is <= insert_min): the
    /// number of failures before a success, floor(ln U / ln(1 - p)) for U uniform in (0, 1].
    fn next_gap(&mut self) -> u32 {
        let p = (f64::from(self.insert_min) + 1.0) / 4_294_967_296.0;
        if self.insert_min == 0 || p >= 1.0 {
            return 0;
        }
        let u = (f64::from(self.next_random()) + 1.0) / 4_294_967_296.0;
        let gap = (u.ln() / (-p).ln_1p()).floor();
        if gap >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            gap as u32
        }
    }

    /// xorshift64*: the deterministic random numbers of probabilistic insertion.
    #[inline(always)]
    fn next_random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = port;
        k.dl_type = 0x0800;
        k.nw_dst = 0x0a00_0000 | port;
        k
    }

    fn cache() -> (MegaflowCache<char>, u32) {
        let mut mf = MegaflowCache::new(100);
        let mut m = FlowKey::ZERO;
        m.dl_type = 0xffff;
        let id = mf.insert(&key(1), &m, 'a').unwrap();
        (mf, id)
    }

    #[test]
    fn hit_after_insert_and_key_is_verified() {
        let (mf, id) = cache();
        let mut emc = Emc::new(1, 7);
        let k = key(1);
        let h = hash_key(&k);
        assert_eq!(emc.lookup(&k, h, &mf), None);
        assert!(emc.maybe_insert(&k, || h, id, &mf));
        assert_eq!(emc.lookup(&k, h, &mf), Some(id));
        // Another key presented with the same hash is not taken for it.
        assert_eq!(emc.lookup(&key(2), h, &mf), None);
        assert_eq!(emc.stats(), EmcStats { hits: 1, misses: 2, inserted: 1 });
        assert_eq!(emc.count_live(&mf), 1);
    }

    #[test]
    fn keys_with_one_5_tuple_share_places_and_are_told_apart() {
        let (mf, id) = cache();
        let mut emc = Emc::new(1, 7);
        let a = key(1);
        let mut b = a;
        b.dl_src = [2, 0, 0, 0, 0, 9]; // another MAC, the same 5-tuple: the same hash
        assert_eq!(hash_key(&a), hash_key(&b));
        assert_eq!(hash_at(hash_key(&a), 0), hash_key(&a));
        assert_ne!(hash_at(hash_key(&a), 1), hash_key(&a), "a recirculated pass has its own");
        assert_ne!(hash_at(hash_key(&a), 1), hash_at(hash_key(&a), 2));
        assert!(emc.insert(&a, hash_key(&a), id, &mf));
        assert_eq!(emc.lookup(&b, hash_key(&b), &mf), None, "the whole key is compared");
        assert!(emc.insert(&b, hash_key(&b), id, &mf));
        // Both fit, one in each of the hash's two places.
        assert_eq!(emc.lookup(&a, hash_key(&a), &mf), Some(id));
        assert_eq!(emc.lookup(&b, hash_key(&b), &mf), Some(id));
    }

    #[test]
    fn removing_the_megaflow_invalidates_entries() {
        let (mut mf, id) = cache();
        let mut emc = Emc::new(1, 7);
        let k = key(1);
        let h = hash_key(&k);
        emc.insert(&k, h, id, &mf);
        mf.remove(id);
        assert_eq!(emc.lookup(&k, h, &mf), None);
        // The slot is reused by a new flow: the old entry still does not resolve to it.
        let mut m = FlowKey::ZERO;
        m.in_port = !0;
        let id2 = mf.insert(&key(5), &m, 'b').unwrap();
        assert_eq!(id2, id);
        assert_eq!(emc.lookup(&k, h, &mf), None);
        assert_eq!(emc.count_live(&mf), 0);
        // Inserting a flow id that does not exist is refused.
        assert!(!emc.insert(&k, h, 99, &mf));
    }

    #[test]
    fn insertion_is_probabilistic_and_reproducible() {
        let (mf, id) = cache();
        let count = |seed| {
            let mut emc = Emc::new(DEFAULT_INSERT_INV_PROB, seed);
            (0..100_000u32)
                .filter(|&p| emc.maybe_insert(&key(p), || hash_key(&key(p)), id, &mf))
                .count()
        };
        let n = count(42);
        assert!((800..1200).contains(&n), "{n} insertions for 100000 hits at 1/100");
        assert_eq!(count(42), n);
        let mut off = Emc::new(0, 1);
        assert!(!off.maybe_insert(&key(1), || hash_key(&key(1)), id, &mf));
        assert!(!off.insert(&key(1), hash_key(&key(1)), id, &mf));
        assert_eq!(off.lookup(&key(1), hash_key(&key(1)), &mf), None);
    }

    #[test]
    fn insertion_rate_is_one_in_inv_prob() {
        let (mf, id) = cache();
        for (inv, lo, hi) in [(1u32, 10_000, 10_000), (2, 4_800, 5_200), (4, 2_350, 2_650)] {
            let mut emc = Emc::new(inv, 9);
            let k = key(1);
            let n = (0..10_000).filter(|_| emc.maybe_insert(&k, || hash_key(&k), id, &mf)).count();
            assert!((lo..=hi).contains(&n), "1/{inv}: {n} insertions in 10000 hits");
        }
    }

    #[test]
    fn two_way_replacement_keeps_live_entries() {
        let (mf, id) = cache();
        let mut emc = Emc::new(1, 3);
        // Two keys forced onto the same pair of entries both stay; a third evicts one.
        let h = 0x0123_4567;
        for p in 0..2 {
            assert!(emc.insert(&key(p), h, id, &mf));
        }
        assert_eq!(emc.lookup(&key(0), h, &mf), Some(id));
        assert_eq!(emc.lookup(&key(1), h, &mf), Some(id));
        assert!(emc.insert(&key(2), h, id, &mf));
        assert_eq!(emc.lookup(&key(2), h, &mf), Some(id));
        let survivors = (0..2).filter(|&p| emc.lookup(&key(p), h, &mf).is_some()).count();
        assert_eq!(survivors, 1);
        // Re-inserting a cached key updates it in place.
        assert!(emc.insert(&key(2), h, id, &mf));
        assert_eq!(emc.lookup(&key(2), h, &mf), Some(id));
        emc.clear();
        assert_eq!(emc.lookup(&key(2), h, &mf), None);
    }
}
