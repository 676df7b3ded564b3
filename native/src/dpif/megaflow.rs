//! The megaflow cache: the datapath's flow table, as OVS's userspace datapath (`dpcls`) keeps
//! it. A megaflow is a masked key, its mask, the datapath actions for every packet it covers
//! (the payload `T`), and counters.
//!
//! Invariants:
//! - Megaflows carry no priority. Translation builds each one from the exact set of bits the
//!   slow path read, so two megaflows that overlap give the same answer, and the first one
//!   found wins.
//! - Megaflows with the same mask share a subtable: an open-addressing index (linear
//!   probing, at most half full, backward-shift deletion, so no tombstones) of 8-byte
//!   entries, the low 32 bits of the masked key's hash and the flow id, as OVS's `cmap`
//!   buckets hold hashes and pointers. The flow's slot keeps the masked key's words (the
//!   first `SLOT_WORDS` of those the mask touches) on the line before its counters, so a hit
//!   reads one line of the index (2 MiB for 100k flows) and the two first lines of the flow,
//!   which executing it reads anyway. The hash covers only the words the mask touches,
//!   listed once per subtable. A subtable that empties is dropped.
//! - Subtables are searched in order of recent hits, re-ranked every `rerank_interval`
//!   lookups (OVS re-sorts by hit count once a second; counting lookups keeps runs
//!   deterministic).
//! - A flow id is a slot index, reused after removal. Each slot has a generation that changes
//!   when its flow is removed, so that holders of an id (the exact-match cache) can tell a
//!   stale id from a live one.
//! - The number of flows never exceeds `capacity` (OVS's `flow-limit`): an insertion beyond it
//!   is refused and counted, and the packet is handled by the slow path alone.
//! - Lookups allocate nothing and never panic on key contents.

use crate::flow::key::{FlowKey, KEY_WORDS};
use std::collections::HashMap;

/// Most slots reserved when a cache is made (see `MegaflowCache::new`).
const RESERVE_MAX: usize = 1 << 21;

/// Default maximum number of megaflows (OVS's default `flow-limit`).
pub const DEFAULT_CAPACITY: usize = 200_000;

/// Default number of lookups between two re-rankings of the subtables.
pub const DEFAULT_RERANK_INTERVAL: u32 = 1024;

/// What `ovs-appctl dpctl/dump-flows` prints after the match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets: u64,
    pub bytes: u64,
    pub used_ms: u64,   // time of the last packet, in the caller's clock; 0 = never
    pub tcp_flags: u16, // OR of the TCP flags seen
    /// Credited since the cache's owner last took the credited flows (`take_credited`).
    pub unpushed: bool,
}

/// One datapath flow. Laid out in this order (`repr(C)`) so that a hit touches few cache
/// lines: the counters it updates, then the actions (whose first fields are what execution
/// reads). The key and the mask, which lookups do not read (the subtable holds the masked
/// words), come last.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Megaflow<T> {
    pub stats: FlowStats,
    pub actions: T,
    pub key: FlowKey, // masked by `mask`
    pub mask: FlowKey,
}

/// Why an insertion did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The cache holds `capacity` flows.
    Full,
    /// A flow with exactly this key and mask exists, with this id.
    Exists(u32),
}

/// Cache counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MegaflowStats {
    pub lookups: u64,
    pub hits: u64,
    pub misses: u64,
    /// Subtables searched by all lookups (`masks hit` in `dpif-netdev/pmd-stats-show`).
    pub subtables_searched: u64,
    pub inserted: u64,
    pub removed: u64,
    /// Insertions refused because the cache was full.
    pub refused_full: u64,
}

/// Asks the kernel to back a large table with transparent huge pages: with hundreds of
/// thousands of flows, a lookup otherwise pays a TLB miss on top of each cache miss. A hint;
/// nothing changes where the kernel does not do it.
fn huge_pages<T>(table: &[T]) {
    huge_pages_raw(table.as_ptr() as usize, std::mem::size_of_val(table));
}

/// `huge_pages` over `bytes` bytes of an allocation at `at`, written or not.
fn huge_pages_raw(at: usize, bytes: usize) {
    const HUGE: usize = 2 << 20;
    if bytes < 4 * HUGE {
        return;
    }
    let start = at.div_ceil(HUGE) * HUGE;
    let end = (at + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: madvise only advises on a range of our own allocation; it never changes
        // the memory's contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// A free entry of a subtable's index.
const FREE_ENTRY: u64 = u64::MAX;

/// Masked key words a slot keeps beside its counters, in its subtable's word order: a lookup
/// compares them there, and reads the flow's full key only for masks of more words.
pub const SLOT_WORDS: usize = 8;

/// A subtable: the megaflows of one mask, found through an index of 8-byte entries (eight to
/// a cache line, so that the index of 100k flows is 2 MiB): the low 32 bits of the flow's
/// hash, then its id. A lookup reads the index, then compares the masked key's words kept in
/// the flow's slot, on the line before its counters: a hit reads one line of the index and
/// the two first lines of the flow, which its actions read anyway.
#[derive(Clone, Debug)]
struct Subtable {
    mask: FlowKey,
    n_words: usize,
    words: [u8; KEY_WORDS], // indices of the mask's non-zero words, first `n_words`
    masks: [u64; KEY_WORDS], // the mask word for each of them
    index: Box<[u64]>,
    n_buckets: usize, // entries in `index`: a power of two, at most half of them used
    n_flows: usize,
    hits: u64, // since the last re-ranking
}

#[inline(always)]
fn hash_mix(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29)
}

#[inline(always)]
fn hash_finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// An index of `n_buckets` free entries, advised for huge pages when large.
fn free_index(n_buckets: usize) -> Box<[u64]> {
    let mut t: Vec<u64> = Vec::with_capacity(n_buckets);
    // Advised before it is filled, so that its first faults already take huge pages.
    huge_pages_raw(t.as_ptr() as usize, n_buckets * 8);
    t.resize(n_buckets, FREE_ENTRY);
    t.into_boxed_slice()
}

/// The index entry of flow `flow` with hash `hash`.
#[inline(always)]
fn index_entry(hash: u64, flow: u32) -> u64 {
    (hash << 32) | u64::from(flow)
}

impl Subtable {
    fn new(mask: FlowKey) -> Subtable {
        let mut words = [0u8; KEY_WORDS];
        let mut masks = [0u64; KEY_WORDS];
        let mut n_words = 0;
        for (i, &m) in mask.words().iter().enumerate() {
            if m != 0 {
                words[n_words] = i as u8;
                masks[n_words] = m;
                n_words += 1;
            }
        }
        Subtable {
            mask,
            n_words,
            words,
            masks,
            index: free_index(8),
            n_buckets: 8,
            n_flows: 0,
            hits: 0,
        }
    }

    /// Hash of `key & mask`, over the mask's words only.
    #[inline(always)]
    fn hash(&self, key: &FlowKey) -> u64 {
        let k = key.words();
        // Masks of up to 2, 6 or 8 words hash 2, 6 or 8 words, constants the compiler
        // unrolls the loop for: the words past `n_words` are zero, their mask being 0, the
        // same for every key of the subtable.
        match self.n_words {
            0..=2 => self.hash_words(k, 2),
            3..=6 => self.hash_words(k, 6),
            7..=8 => self.hash_words(k, 8),
            n => self.hash_words(k, n),
        }
    }

    /// The hash over the first `n` of the mask's words.
    #[inline(always)]
    fn hash_words(&self, k: &[u64; KEY_WORDS], n: usize) -> u64 {
        let mut h = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..n {
            h = hash_mix(h, k[self.words[i] as usize] & self.masks[i]);
        }
        hash_finish(h)
    }

    /// Starts loading the index line where the search for `hash` begins.
    #[inline(always)]
    fn prefetch(&self, hash: u64) {
        crate::flow::key::prefetch(&self.index[hash as usize & (self.n_buckets - 1)]);
    }

    /// The first entry at or after place `from` of the probe run of `hash` whose hash bits
    /// are `hash`'s: its place and flow id.
    #[inline(always)]
    fn candidate(&self, hash: u64, from: usize) -> Option<(usize, u32)> {
        let bmask = self.n_buckets - 1;
        let mut i = from & bmask;
        loop {
            let e = self.index[i];
            if e == FREE_ENTRY {
                return None;
            }
            if (e >> 32) as u32 == hash as u32 {
                return Some((i, e as u32));
            }
            i = (i + 1) & bmask;
        }
    }

    /// Whether `words` (a slot's copy) and `full` (its flow's masked key) are `key & mask`.
    #[inline(always)]
    fn same(&self, key: &FlowKey, words: &[u64; SLOT_WORDS], full: &FlowKey) -> bool {
        let k = key.words();
        match self.n_words {
            0..=2 => self.same_words(k, words, 2),
            3..=6 => self.same_words(k, words, 6),
            7..=8 => self.same_words(k, words, 8),
            n => {
                let f = full.words();
                self.same_words(k, words, SLOT_WORDS)
                    && (SLOT_WORDS..n).all(|i| {
                        let w = self.words[i] as usize;
                        k[w] & self.masks[i] == f[w]
                    })
            }
        }
    }

    /// Whether `words` holds `k`'s first `n` masked words, all compared (`same` passes 2, 6
    /// or 8, constants the compiler unrolls the loop for). The words past `n_words` compare
    /// zero with zero: their mask is 0, and a slot's words past `n_words` are written 0.
    #[inline(always)]
    fn same_words(&self, k: &[u64; KEY_WORDS], words: &[u64; SLOT_WORDS], n: usize) -> bool {
        let mut diff = 0;
        for i in 0..n {
            diff |= (k[self.words[i] as usize] & self.masks[i]) ^ words[i];
        }
        diff == 0
    }

    /// The flow whose masked key is `key & mask`, given `hash`, the hash of it.
    #[inline(always)]
    fn find<T>(&self, key: &FlowKey, hash: u64, slots: &[Slot<T>]) -> Option<u32> {
        self.find_from(key, hash, hash as usize, slots)
    }

    /// `find`, from place `from` of the probe run of `hash` on.
    #[inline(always)]
    fn find_from<T>(
        &self,
        key: &FlowKey,
        hash: u64,
        mut from: usize,
        slots: &[Slot<T>],
    ) -> Option<u32> {
        loop {
            let (i, id) = self.candidate(hash, from)?;
            if let Some(slot) = slots.get(id as usize) {
                if let SlotFlow::Live(f) = &slot.flow {
                    if self.same(key, &slot.words, &f.key) {
                        return Some(id);
                    }
                }
            }
            from = i + 1;
        }
    }

    /// The words of masked key `key` a slot keeps (`SLOT_WORDS`, zero past `n_words`).
    fn slot_words(&self, key: &FlowKey) -> [u64; SLOT_WORDS] {
        let mut w = [0u64; SLOT_WORDS];
        let k = key.words();
        for (n, x) in w.iter_mut().enumerate().take(self.n_words) {
            *x = k[self.words[n] as usize] & self.masks[n];
        }
        w
    }

    /// Adds flow `flow`, whose masked key has hash `hash`.
    fn put(&mut self, hash: u64, flow: u32) {
        if (self.n_flows + 1) * 2 > self.n_buckets {
            let n = self.n_buckets * 2;
            let old = core::mem::replace(&mut self.index, free_index(n));
            self.n_buckets = n;
            for &e in old.iter() {
                if e != FREE_ENTRY {
                    self.place(e);
                }
            }
        }
        self.place(index_entry(hash, flow));
        self.n_flows += 1;
    }

    /// Puts entry `e` into the first free place of its probe run.
    fn place(&mut self, e: u64) {
        let bmask = self.n_buckets - 1;
        let mut i = (e >> 32) as usize & bmask;
        while self.index[i] != FREE_ENTRY {
            i = (i + 1) & bmask;
        }
        self.index[i] = e;
    }

    /// Removes `flow` (with hash `hash`), shifting later entries of the probe run back.
    fn delete(&mut self, hash: u64, flow: u32) -> bool {
        let bmask = self.n_buckets - 1;
        let t = &mut self.index;
        let mut i = hash as u32 as usize & bmask;
        loop {
            let e = t[i];
            if e == FREE_ENTRY {
                return false;
            }
            if e as u32 == flow {
                break;
            }
            i = (i + 1) & bmask;
        }
        let mut j = i;
        loop {
            t[i] = FREE_ENTRY;
            loop {
                j = (j + 1) & bmask;
                if t[j] == FREE_ENTRY {
                    self.n_flows -= 1;
                    return true;
                }
                let home = (t[j] >> 32) as usize & bmask;
                // Entry `j` may move to `i` unless its home lies cyclically in (i, j].
                let stays = if i <= j { i < home && home <= j } else { i < home || home <= j };
                if !stays {
                    break;
                }
            }
            t[i] = t[j];
            i = j;
        }
    }
}

/// `repr(C)`, aligned to two cache lines (which a core's adjacent-line prefetcher loads
/// together): a lookup compares the masked key's words of the first line, and a hit reads
/// and writes the second (the generation, whether the slot is in use, the counters, the drop
/// reason and a single output); actions beyond a single output start in the third line. A
/// test checks it. The rest is read when a flow is removed.
#[repr(C, align(128))]
struct Slot<T> {
    words: [u64; SLOT_WORDS], // the subtable's words of the masked key (`Subtable::slot_words`)
    gen: u32,
    flow: SlotFlow<T>,
    subtable: u32,
    hash: u64,
}

/// A slot's flow, or none. `repr(C, u8)`: the tag that says which is a byte at the start, in
/// the slot's first line, where the compiler would otherwise put it in any field with spare
/// values (an `Option` once took a vector's capacity in the sixth line, a miss per hit).
#[repr(C, u8)]
#[allow(clippy::large_enum_variant)] // the slots are the table: boxing the flow adds a miss
enum SlotFlow<T> {
    Free,
    Live(Megaflow<T>),
}

impl<T> SlotFlow<T> {
    #[inline(always)]
    fn as_ref(&self) -> Option<&Megaflow<T>> {
        match self {
            SlotFlow::Live(f) => Some(f),
            SlotFlow::Free => None,
        }
    }

    #[inline(always)]
    fn as_mut(&mut self) -> Option<&mut Megaflow<T>> {
        match self {
            SlotFlow::Live(f) => Some(f),
            SlotFlow::Free => None,
        }
    }

    fn take(&mut self) -> Option<Megaflow<T>> {
        match std::mem::replace(self, SlotFlow::Free) {
            SlotFlow::Live(f) => Some(f),
            SlotFlow::Free => None,
        }
    }
}

/// The megaflow cache. See the module documentation.
pub struct MegaflowCache<T> {
    slots: Vec<Slot<T>>,
    free_slots: Vec<u32>,
    subtables: Vec<Option<Subtable>>,
    free_subtables: Vec<u32>,
    by_mask: HashMap<FlowKey, u32, foldhash::fast::RandomState>,
    order: Vec<u32>, // live subtables, most hit first
    n_flows: usize,
    capacity: usize,
    rerank_interval: u32,
    until_rerank: u32,
    stats: MegaflowStats,
    /// Flows credited since the last `take_credited`, each once (ids of flows removed since
    /// may remain: their slots' next flows start unmarked).
    credited: Vec<u32>,
}

impl<T> Default for MegaflowCache<T> {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl<T> MegaflowCache<T> {
    /// An empty cache holding at most `capacity` flows.
    pub fn new(capacity: usize) -> MegaflowCache<T> {
        // The slots are reserved up to the flow limit at once (address space only: pages are
        // touched as flows arrive), so that a large table is one mapping the kernel can back
        // with huge pages from its first fault, instead of being copied as it doubles.
        let slots: Vec<Slot<T>> = Vec::with_capacity(capacity.min(RESERVE_MAX));
        huge_pages_raw(slots.as_ptr() as usize, slots.capacity() * std::mem::size_of::<Slot<T>>());
        MegaflowCache {
            slots,
            free_slots: Vec::new(),
            subtables: Vec::new(),
            free_subtables: Vec::new(),
            by_mask: HashMap::default(),
            order: Vec::new(),
            n_flows: 0,
            capacity,
            rerank_interval: DEFAULT_RERANK_INTERVAL,
            until_rerank: DEFAULT_RERANK_INTERVAL,
            stats: MegaflowStats::default(),
            credited: Vec::new(),
        }
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.n_flows
    }

    pub fn is_empty(&self) -> bool {
        self.n_flows == 0
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.order.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True when an insertion would be refused for want of room.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.n_flows >= self.capacity
    }

    /// Counts a refusal made by the caller after `is_full` (as `insert` counts its own).
    pub fn count_refused(&mut self) {
        self.stats.refused_full += 1;
    }

    /// Changes the flow limit. Existing flows stay, even beyond a lower limit; insertions are
    /// refused until the count falls below it.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    /// Re-rank the subtables every `n` lookups (at least 1).
    pub fn set_rerank_interval(&mut self, n: u32) {
        self.rerank_interval = n.max(1);
        self.until_rerank = self.rerank_interval;
    }

    pub fn stats(&self) -> MegaflowStats {
        self.stats
    }

    /// The flow with id `id`.
    pub fn get(&self, id: u32) -> Option<&Megaflow<T>> {
        self.slots.get(id as usize)?.flow.as_ref()
    }

    /// The generation of slot `id`: it changes whenever the slot's flow is removed.
    #[inline(always)]
    pub fn generation(&self, id: u32) -> Option<u32> {
        self.slots.get(id as usize).map(|s| s.gen)
    }

    /// The actions of flow `id`, for revalidation to update in place.
    pub fn actions_mut(&mut self, id: u32) -> Option<&mut T> {
        self.slots.get_mut(id as usize)?.flow.as_mut().map(|f| &mut f.actions)
    }

    /// Every flow with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Megaflow<T>)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.flow.as_ref().map(|f| (i as u32, f)))
    }

    /// Adds `packets` packets of `bytes` bytes in total to flow `id`'s counters.
    #[inline]
    pub fn credit(&mut self, id: u32, packets: u64, bytes: u64, now_ms: u64, tcp_flags: u16) {
        if let Some(f) = self.slots.get_mut(id as usize).and_then(|s| s.flow.as_mut()) {
            f.stats.packets += packets;
            f.stats.bytes += bytes;
            f.stats.used_ms = f.stats.used_ms.max(now_ms);
            f.stats.tcp_flags |= tcp_flags;
            if !f.stats.unpushed {
                f.stats.unpushed = true;
                self.credited.push(id);
            }
        }
    }

    /// The live flows credited since the last call, in id order, each once; their marks are
    /// cleared. A revalidator pushes the statistics of these flows only, not of every flow.
    pub fn take_credited(&mut self) -> Vec<u32> {
        let mut ids = std::mem::take(&mut self.credited);
        ids.retain(|&id| match self.slots.get_mut(id as usize).and_then(|s| s.flow.as_mut()) {
            Some(f) if f.stats.unpushed => {
                f.stats.unpushed = false;
                true
            }
            _ => false,
        });
        ids.sort_unstable();
        ids
    }

    /// The flow covering `key`, with its actions.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey) -> Option<(u32, &T)> {
        self.stats.lookups += 1;
        self.tick(1);
        let mut found = None;
        for (n, &sti) in self.order.iter().enumerate() {
            let Some(st) = self.subtables[sti as usize].as_mut() else {
                continue;
            };
            if let Some(id) = st.find(key, st.hash(key), &self.slots) {
                st.hits += 1;
                self.stats.subtables_searched += n as u64 + 1;
                found = Some(id);
                break;
            }
        }
        match found {
            Some(id) => {
                self.stats.hits += 1;
                let f = self.slots[id as usize].flow.as_ref()?;
                Some((id, &f.actions))
            }
            None => {
                self.stats.misses += 1;
                self.stats.subtables_searched += self.order.len() as u64;
                None
            }
        }
    }

    /// Looks up a burst of keys: `out[i]` gets the id of the flow covering `keys[i]`, or
    /// `None`. Subtables are searched one at a time for all the keys still unmatched, as
    /// OVS's `dpcls_lookup` does. Only `min(keys.len(), out.len())` entries are processed.
    pub fn lookup_batch(&mut self, keys: &[FlowKey], out: &mut [Option<u32>]) {
        let n = keys.len().min(out.len());
        self.stats.lookups += n as u64;
        self.tick(n as u32);
        for (keys, out) in keys[..n].chunks(64).zip(out[..n].chunks_mut(64)) {
            out.fill(None);
            let mut pending: u64 = if keys.len() == 64 { !0 } else { (1u64 << keys.len()) - 1 };
            for &sti in &self.order {
                if pending == 0 {
                    break;
                }
                let Some(st) = self.subtables[sti as usize].as_mut() else {
                    continue;
                };
                self.stats.subtables_searched += u64::from(pending.count_ones());
                let mut todo = pending;
                while todo != 0 {
                    let i = todo.trailing_zeros() as usize;
                    todo &= todo - 1;
                    if let Some(id) = st.find(&keys[i], st.hash(&keys[i]), &self.slots) {
                        out[i] = Some(id);
                        pending &= !(1u64 << i);
                        st.hits += 1;
                    }
                }
            }
            let missed = u64::from(pending.count_ones());
            self.stats.misses += missed;
            self.stats.hits += keys.len() as u64 - missed;
        }
    }

    /// Looks up `keys[i]` for each `i` in `idx` without touching any counter: `ids[i]` gets
    /// the flow, `tier[i]` how many subtables were searched to find it and `subtable[i]`
    /// the subtable it is in (see `count_hit`).
    /// Subtables are searched one at a time for all the keys still unmatched, their buckets
    /// prefetched first, so the memory latency of one key overlaps the others'.
    pub fn probe_indexed(
        &self,
        keys: &[FlowKey],
        idx: &[u8],
        ids: &mut [Option<u32>],
        tier: &mut [u8],
        subtable: &mut [u32],
    ) {
        let mut pending: u64 = 0;
        for (j, &i) in idx.iter().enumerate().take(64) {
            ids[i as usize] = None;
            pending |= 1 << j;
        }
        let mut hashes = [0u64; 64];
        let mut cands = [(0u32, 0u32); 64];
        let mut missed: u64 = 0;
        for (rank, &sti) in self.order.iter().enumerate() {
            if pending == 0 {
                break;
            }
            let Some(st) = self.subtables[sti as usize].as_ref() else { continue };
            let mut todo = pending;
            while todo != 0 {
                let j = todo.trailing_zeros() as usize;
                todo &= todo - 1;
                let h = st.hash(&keys[idx[j] as usize]);
                hashes[j] = h;
                st.prefetch(h);
            }
            // The index lines have had time to arrive: each candidate's slot starts loading
            // (its words and its counters, two lines), then the words are compared.
            let mut todo = pending;
            while todo != 0 {
                let j = todo.trailing_zeros() as usize;
                todo &= todo - 1;
                match st.candidate(hashes[j], hashes[j] as usize) {
                    Some((at, id)) => {
                        cands[j] = (at as u32, id);
                        self.prefetch_words(id);
                        self.prefetch_flow(id, 0);
                    }
                    None => {
                        pending &= !(1u64 << j);
                        missed |= 1u64 << j;
                    }
                }
            }
            let mut todo = pending;
            while todo != 0 {
                let j = todo.trailing_zeros() as usize;
                todo &= todo - 1;
                let i = idx[j] as usize;
                let (at, id) = cands[j];
                let slot = &self.slots[id as usize];
                let hit = match &slot.flow {
                    SlotFlow::Live(f) if st.same(&keys[i], &slot.words, &f.key) => Some(id),
                    _ => st.find_from(&keys[i], hashes[j], at as usize + 1, &self.slots),
                };
                if let Some(id) = hit {
                    ids[i] = Some(id);
                    tier[i] = (rank + 1).min(255) as u8;
                    subtable[i] = sti;
                } else {
                    missed |= 1u64 << j;
                }
            }
            pending = missed;
            missed = 0;
        }
    }

    /// Counts a hit found by `probe_indexed` in subtable `subtable` after searching
    /// `searched` subtables, as `lookup` would have.
    #[inline]
    pub fn count_hit(&mut self, subtable: u32, searched: u32) {
        self.stats.lookups += 1;
        self.stats.hits += 1;
        self.stats.subtables_searched += u64::from(searched);
        if let Some(Some(st)) = self.subtables.get_mut(subtable as usize) {
            st.hits += 1;
        }
        self.tick(1);
    }

    /// Starts loading line `line` (0 or 1) of flow `id`'s flow, by address alone: reading
    /// the slot to find it would wait for it. Line 0 holds what every hit reads and writes
    /// (the generation, the counters, the drop reason, a single output; the slot's second
    /// line); line 1 the rest of the head of the actions.
    #[inline(always)]
    pub fn prefetch_flow(&self, id: u32, line: usize) {
        let slot: *const u8 = self.slots.as_ptr().wrapping_add(id as usize).cast();
        crate::flow::key::prefetch_ptr(slot.wrapping_add(64 * (line + 1)));
    }

    /// Starts loading the masked key's words flow `id`'s slot keeps (its first line).
    #[inline(always)]
    fn prefetch_words(&self, id: u32) {
        crate::flow::key::prefetch_ptr(self.slots.as_ptr().wrapping_add(id as usize).cast());
    }

    /// Installs a megaflow: `key` (masked here) under `mask`, with `actions`.
    pub fn insert(
        &mut self,
        key: &FlowKey,
        mask: &FlowKey,
        actions: T,
    ) -> Result<u32, InsertError> {
        let key = key.masked(mask);
        let sti = self.by_mask.get(mask).copied();
        let hash = match sti.and_then(|i| self.subtables[i as usize].as_ref()) {
            Some(st) => {
                let hash = st.hash(&key);
                if let Some(id) = st.find(&key, hash, &self.slots) {
                    // `key` is masked, so a match is the identical flow.
                    return Err(InsertError::Exists(id));
                }
                hash
            }
            None => Subtable::new(*mask).hash(&key),
        };
        if self.n_flows >= self.capacity {
            self.stats.refused_full += 1;
            return Err(InsertError::Full);
        }
        let sti = match sti {
            Some(i) => i,
            None => self.create_subtable(*mask),
        };
        let id = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                let cap = self.slots.capacity();
                self.slots.push(Slot {
                    words: [0; SLOT_WORDS],
                    gen: 0,
                    subtable: 0,
                    hash: 0,
                    flow: SlotFlow::Free,
                });
                if self.slots.capacity() != cap {
                    huge_pages(&self.slots);
                }
                (self.slots.len() - 1) as u32
            }
        };
        let st = self.subtables[sti as usize].as_mut().expect("live subtable");
        let slot = &mut self.slots[id as usize];
        slot.words = st.slot_words(&key);
        slot.subtable = sti;
        slot.hash = hash;
        slot.flow =
            SlotFlow::Live(Megaflow { key, mask: *mask, actions, stats: FlowStats::default() });
        st.put(hash, id);
        self.n_flows += 1;
        self.stats.inserted += 1;
        Ok(id)
    }

    /// Removes flow `id` and returns it.
    pub fn remove(&mut self, id: u32) -> Option<Megaflow<T>> {
        let slot = self.slots.get_mut(id as usize)?;
        let flow = slot.flow.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        let (sti, hash) = (slot.subtable, slot.hash);
        self.free_slots.push(id);
        self.n_flows -= 1;
        self.stats.removed += 1;
        let st = self.subtables[sti as usize].as_mut().expect("flow's subtable is live");
        let deleted = st.delete(hash, id);
        debug_assert!(deleted, "flow {id} missing from its subtable");
        if st.n_flows == 0 {
            self.by_mask.remove(&flow.mask);
            self.subtables[sti as usize] = None;
            self.free_subtables.push(sti);
            self.order.retain(|&i| i != sti);
        }
        Some(flow)
    }

    /// Removes every flow; returns how many there were.
    pub fn flush(&mut self) -> usize {
        let n = self.n_flows;
        for slot in self.slots.iter_mut() {
            if slot.flow.take().is_some() {
                slot.gen = slot.gen.wrapping_add(1);
            }
        }
        self.free_slots = (0..self.slots.len() as u32).rev().collect();
        self.subtables.clear();
        self.free_subtables.clear();
        self.by_mask.clear();
        self.order.clear();
        self.credited.clear();
        self.n_flows = 0;
        self.stats.removed += n as u64;
        n
    }

    /// The masks of the subtables in search order (for `dpif-netdev/subtable-show`-like
    /// output and tests).
    pub fn subtable_masks(&self) -> impl Iterator<Item = &FlowKey> + '_ {
        self.order.iter().filter_map(|&i| self.subtables[i as usize].as_ref().map(|s| &s.mask))
    }

    fn create_subtable(&mut self, mask: FlowKey) -> u32 {
        let st = Subtable::new(mask);
        let sti = match self.free_subtables.pop() {
            Some(i) => {
                self.subtables[i as usize] = Some(st);
                i
            }
            None => {
                self.subtables.push(Some(st));
                (self.subtables.len() - 1) as u32
            }
        };
        self.by_mask.insert(mask, sti);
        self.order.push(sti);
        sti
    }

    /// Counts `n` lookups towards the next re-ranking, and re-ranks when it is due.
    #[inline(always)]
    fn tick(&mut self, n: u32) {
        if self.until_rerank > n {
            self.until_rerank -= n;
        } else {
            self.until_rerank = self.rerank_interval;
            self.rerank();
        }
    }

    /// Sorts the subtables by hits since the last re-ranking (stable: ties keep their
    /// order), then starts counting again.
    fn rerank(&mut self) {
        let subtables = &self.subtables;
        self.order.sort_by_key(|&i| {
            core::cmp::Reverse(subtables[i as usize].as_ref().map_or(0, |s| s.hits))
        });
        for st in self.subtables.iter_mut().flatten() {
            st.hits = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_reads_the_first_lines_of_a_datapath_flow_slot() {
        type S = Slot<crate::dpif::DpFlow>;
        type M = Megaflow<crate::dpif::DpFlow>;
        assert_eq!(std::mem::align_of::<S>(), 128, "the two first lines are a pair");
        // A lookup compares the words of the first line.
        assert_eq!(std::mem::offset_of!(S, words), 0);
        assert_eq!(std::mem::size_of::<[u64; SLOT_WORDS]>(), 64);
        // The state tag is the first byte of `flow`; the megaflow follows at its alignment.
        let tag = std::mem::offset_of!(S, flow);
        let flow = tag + std::mem::align_of::<M>();
        let size = std::mem::size_of::<SlotFlow<crate::dpif::DpFlow>>();
        assert_eq!(size, flow - tag + std::mem::size_of::<M>());
        assert!((64..128).contains(&tag), "slot state at byte {tag}");
        let gen = std::mem::offset_of!(S, gen);
        assert!((64..128).contains(&gen), "an exact-match hit checks it (byte {gen})");
        let actions = flow + std::mem::offset_of!(M, actions);
        let head = actions + std::mem::offset_of!(crate::dpif::DpFlow, actions);
        let end = head + std::mem::size_of::<crate::dpif::odp::DpActions>();
        assert!(end <= 192, "the actions end at byte {end}");
        // A hit on a flow whose actions are a single output reads the second line only,
        // beside the words its lookup compared.
        let counters = flow + std::mem::size_of::<FlowStats>();
        assert!(counters <= 128, "the counters end at {counters}");
        let drop = actions + std::mem::offset_of!(crate::dpif::DpFlow, drop);
        assert!((64..128).contains(&drop), "the drop reason is at byte {drop}");
        assert!(head + 4 <= 128, "the single output ends at byte {}", head + 4);
    }

    use crate::ofproto::action::Match;
    use crate::ofproto::classifier::Classifier;

    /// splitmix64, for the seeded tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn packet(rng: &mut Rng) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = 1 + rng.below(3) as u32;
        k.dl_dst = [0xfa, 0x16, 0x3e, 0, 0, rng.below(4) as u8];
        k.dl_type = [0x0800, 0x0800, 0x0806][rng.below(3) as usize];
        k.nw_src = 0x0a00_0000 | rng.below(64) as u32;
        k.nw_dst = [0x0a00_0000u32, 0x0a00_0100, 0xc0a8_0000][rng.below(3) as usize]
            | rng.below(300) as u32;
        k.nw_proto = [6u8, 17][rng.below(2) as usize];
        k.tp_src = rng.below(4) as u16;
        k.tp_dst = [22u16, 80, 443, rng.next() as u16][rng.below(4) as usize];
        k
    }

    fn mask(rng: &mut Rng) -> FlowKey {
        let mut m = FlowKey::ZERO;
        m.in_port = !0;
        m.dl_type = 0xffff;
        match rng.below(5) {
            0 => {}
            1 => m.nw_dst = 0xffff_ff00,
            2 => m.nw_dst = 0xffff_ffff,
            3 => {
                m.nw_proto = 0xff;
                m.tp_dst = 0xffff;
            }
            _ => {
                m.dl_dst = [0xff; 6];
                m.tp_src = 0xffff;
            }
        }
        m
    }

    fn check_found(c: &MegaflowCache<u32>, k: &FlowKey, got: Option<u32>, seed: u64) {
        match got {
            Some(id) => {
                let f = c.get(id).expect("returned id is live");
                assert!(k.matches(&f.key, &f.mask), "seed {seed}: flow {id} does not cover key");
            }
            None => {
                let any = c.iter().any(|(_, f)| k.matches(&f.key, &f.mask));
                assert!(!any, "seed {seed}: a flow covers the key but lookup missed");
            }
        }
    }

    #[test]
    fn random_inserts_and_removals_find_covering_flows() {
        for seed in 0..30u64 {
            let mut rng = Rng(seed);
            let mut c = MegaflowCache::new(10_000);
            c.set_rerank_interval(1 + rng.below(50) as u32);
            let mut ids = Vec::new();
            for round in 0..600u32 {
                if rng.below(3) != 0 || ids.is_empty() {
                    let m = mask(&mut rng);
                    match c.insert(&packet(&mut rng), &m, round) {
                        Ok(id) => ids.push(id),
                        Err(InsertError::Exists(id)) => assert!(ids.contains(&id), "seed {seed}"),
                        Err(InsertError::Full) => panic!("seed {seed}: not full"),
                    }
                } else {
                    let id = ids.swap_remove(rng.below(ids.len() as u64) as usize);
                    assert!(c.remove(id).is_some(), "seed {seed}");
                    assert!(c.remove(id).is_none(), "seed {seed}");
                }
                assert_eq!(c.len(), ids.len(), "seed {seed}");
                let keys: Vec<FlowKey> = (0..70).map(|_| packet(&mut rng)).collect();
                let mut out = vec![Some(u32::MAX); keys.len()];
                c.lookup_batch(&keys, &mut out);
                for (k, got) in keys.iter().zip(&out) {
                    check_found(&c, k, *got, seed);
                    let single = c.lookup(k).map(|(id, _)| id);
                    check_found(&c, k, single, seed);
                    assert_eq!(single.is_some(), got.is_some(), "seed {seed}");
                }
            }
            let s = c.stats();
            assert_eq!(s.hits + s.misses, s.lookups, "seed {seed}");
        }
    }

    #[test]
    fn cache_agrees_with_the_classifier_it_caches() {
        for seed in 0..20u64 {
            let mut rng = Rng(seed ^ 0x77);
            let mut cls = Classifier::new();
            for i in 0..40u32 {
                let m = mask(&mut rng);
                let key = packet(&mut rng).masked(&m);
                cls.insert(Match { key, mask: m }, rng.below(4) as u16 * 100, i);
            }
            let mut cache: MegaflowCache<Option<u32>> = MegaflowCache::new(100_000);
            let (mut hits, mut upcalls) = (0, 0);
            for _ in 0..3000 {
                let k = packet(&mut rng);
                let want = cls.lookup(&k, None).map(|e| e.value);
                match cache.lookup(&k) {
                    Some((_, &got)) => {
                        hits += 1;
                        assert_eq!(got, want, "seed {seed}: cached answer differs, key {k:?}");
                    }
                    None => {
                        upcalls += 1;
                        let mut wc = FlowKey::ZERO;
                        let v = cls.lookup(&k, Some(&mut wc)).map(|e| e.value);
                        assert!(cache.insert(&k, &wc, v).is_ok(), "seed {seed}");
                    }
                }
            }
            assert!(hits > 500 && upcalls > 0, "seed {seed}: {hits} hits, {upcalls} upcalls");
        }
    }

    fn key(port: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = port;
        k.dl_type = 0x0800;
        k
    }

    fn port_mask() -> FlowKey {
        let mut m = FlowKey::ZERO;
        m.in_port = !0;
        m
    }

    #[test]
    fn capacity_refuses_and_counts() {
        let mut c = MegaflowCache::new(2);
        let a = c.insert(&key(1), &port_mask(), 'a').unwrap();
        c.insert(&key(2), &port_mask(), 'b').unwrap();
        assert_eq!(c.insert(&key(1), &port_mask(), 'x'), Err(InsertError::Exists(a)));
        assert_eq!(c.insert(&key(3), &port_mask(), 'c'), Err(InsertError::Full));
        assert_eq!(c.stats().refused_full, 1);
        assert_eq!(c.lookup(&key(3)), None);
        c.remove(a);
        let d = c.insert(&key(3), &port_mask(), 'c').unwrap();
        assert_eq!(c.lookup(&key(3)), Some((d, &'c')));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn credited_flows_are_taken_once() {
        let mut c = MegaflowCache::new(10);
        let a = c.insert(&key(1), &port_mask(), 'a').unwrap();
        let b = c.insert(&key(2), &port_mask(), 'b').unwrap();
        let d = c.insert(&key(3), &port_mask(), 'd').unwrap();
        assert!(c.take_credited().is_empty());
        c.credit(d, 1, 60, 1, 0);
        c.credit(a, 1, 60, 1, 0);
        c.credit(d, 1, 60, 2, 0);
        assert_eq!(c.take_credited(), vec![a, d]);
        assert!(!c.get(a).unwrap().stats.unpushed);
        assert!(c.take_credited().is_empty());
        // A flow removed after its credit is not handed out; the next flow in its slot is
        // handed out once, when credited.
        c.credit(b, 1, 60, 3, 0);
        c.remove(b);
        assert!(c.take_credited().is_empty());
        c.credit(a, 1, 60, 4, 0);
        c.remove(a);
        let e = c.insert(&key(4), &port_mask(), 'e').unwrap();
        c.credit(e, 1, 60, 5, 0);
        assert_eq!(c.take_credited(), vec![e]);
    }

    #[test]
    fn counters_generations_and_flush() {
        let mut c = MegaflowCache::new(10);
        let a = c.insert(&key(1), &port_mask(), 'a').unwrap();
        c.credit(a, 2, 120, 5, 0x02);
        c.credit(a, 1, 60, 9, 0x10);
        let s = c.get(a).unwrap().stats;
        assert_eq!(
            s,
            FlowStats { packets: 3, bytes: 180, used_ms: 9, tcp_flags: 0x12, unpushed: true }
        );
        let g = c.generation(a).unwrap();
        assert_eq!(c.flush(), 1);
        assert_ne!(c.generation(a), Some(g));
        assert!(c.is_empty());
        assert_eq!(c.n_subtables(), 0);
        assert_eq!(c.lookup(&key(1)), None);
        let b = c.insert(&key(1), &port_mask(), 'b').unwrap();
        assert_eq!(c.lookup(&key(1)), Some((b, &'b')));
        *c.actions_mut(b).unwrap() = 'B';
        assert_eq!(c.iter().map(|(_, f)| f.actions).collect::<Vec<_>>(), vec!['B']);
    }

    #[test]
    fn subtables_are_reranked_by_hits() {
        let mut c = MegaflowCache::new(10);
        c.set_rerank_interval(4);
        let mut m2 = port_mask();
        m2.dl_type = 0xffff;
        c.insert(&key(1), &port_mask(), 1).unwrap();
        c.insert(&key(2), &m2, 2).unwrap();
        assert_eq!(c.subtable_masks().next(), Some(&port_mask()));
        for _ in 0..3 {
            assert_eq!(c.lookup(&key(2)).map(|(_, a)| *a), Some(2));
        }
        assert_eq!(c.subtable_masks().next(), Some(&port_mask()));
        // The fourth lookup re-ranks first, then finds the flow in the first subtable.
        c.lookup(&key(2));
        assert_eq!(c.subtable_masks().next(), Some(&m2));
        assert_eq!(c.stats().subtables_searched, 3 * 2 + 1);
    }

    #[test]
    fn many_flows_in_one_subtable_survive_growth_and_deletion() {
        let mut c = MegaflowCache::new(100_000);
        let ids: Vec<u32> =
            (0..5000).map(|p| c.insert(&key(p), &port_mask(), p).unwrap()).collect();
        for p in (0..5000).step_by(3) {
            assert_eq!(c.remove(ids[p as usize]).map(|f| f.actions), Some(p));
        }
        for p in 0..5000u32 {
            let want = (p % 3 != 0).then_some(p);
            assert_eq!(c.lookup(&key(p)).map(|(_, a)| *a), want, "port {p}");
        }
    }

    #[test]
    fn every_masked_word_decides_a_lookup_whatever_the_number_of_words() {
        // 1 to 12 masked words: compared 2, 6 or 8 at a time from the slot's copy, and past
        // 8 from the flow's full key.
        for n_words in 1..=12usize {
            let mut mask = FlowKey::ZERO;
            let mut flow = FlowKey::ZERO;
            // Spread over the key, the last word included; only some bits of each masked.
            let at: Vec<usize> = (0..n_words).map(|n| (n * 5 + 2) % KEY_WORDS).collect();
            for (n, &w) in at.iter().enumerate() {
                mask.words_mut()[w] = 0x00ff_00ff_0000_ffff << (n % 3);
                flow.words_mut()[w] = 0x1234_5678_9abc_def0 ^ (n as u64) << 20;
            }
            let mut c = MegaflowCache::new(1000);
            let id = c.insert(&flow, &mask, n_words).unwrap();
            assert_eq!(c.lookup(&flow).map(|(i, _)| i), Some(id), "{n_words} words");
            // The subtable itself, given the flow's hash for every key: the comparison, not
            // the hash, must tell the keys apart.
            let st = c.subtables[c.slots[id as usize].subtable as usize].as_ref().unwrap();
            let h = st.hash(&flow);
            assert_eq!(st.find(&flow, h, &c.slots), Some(id), "{n_words} words");
            for &w in &at {
                let mut other = flow;
                other.words_mut()[w] ^= mask.words()[w] & mask.words()[w].wrapping_neg();
                assert_eq!(st.find(&other, h, &c.slots), None, "{n_words} words, word {w}");
                let mut same = flow;
                same.words_mut()[w] ^= !mask.words()[w];
                assert_eq!(st.find(&same, h, &c.slots), Some(id), "{n_words}: unmasked bits");
            }
        }
    }
}
