//! The OpenFlow priority classifier: tuple space search, as Open vSwitch 3.1's
//! `lib/classifier.c` does it, including the parts that decide how wide a megaflow is.
//!
//! # What it stores
//!
//! Entries are `(Match, priority, T)`. Entries with the same mask share a *subtable*: a hash
//! table keyed by the masked key. Several entries may have exactly the same match (with the
//! same or different priorities); they share one bucket, kept sorted by decreasing priority
//! and, for equal priorities, by insertion order. Subtables are kept sorted by the highest
//! priority they contain, so a lookup visits them from the most to the least promising and
//! stops as soon as the best match found so far has a priority at least as high as the next
//! subtable's maximum.
//!
//! # Ties
//!
//! OpenFlow leaves the choice between overlapping rules of equal priority undefined, and so
//! does OVS (it depends on the order of its subtable vector). Ours is deterministic: among the
//! matching rules of the highest priority, the winner is the one whose subtable comes first in
//! lookup order — subtables ordered by decreasing maximum priority, then by creation order
//! (older first) — and within a subtable the earlier-inserted rule. `replace` keeps a rule's
//! place. The tests' linear oracle applies exactly this rule.
//!
//! # The megaflow contract
//!
//! `lookup` with `Some(wc)` ORs into `wc` every key bit its answer depended on. A datapath
//! megaflow is built from that mask: every packet that agrees with this one on the bits of
//! `wc` must get the same answer, or the cache would forward packets the rules treat
//! differently. So a bit we fail to un-wildcard is a correctness bug, while an extra bit only
//! makes the megaflow narrower (more upcalls, more cache entries). Because dvrlab's megaflows
//! are compared with those of real OVS, we also un-wildcard no more than OVS does, which takes
//! the same three tricks:
//!
//! - **Staged lookup.** A subtable's mask is split in the four stages of `key::STAGE_ENDS`
//!   (metadata, L2, L3, L4). For every stage but the last, the subtable keeps the set of hashes
//!   of its rules' keys masked up to the end of that stage. The lookup hashes stage by stage;
//!   when a stage's hash is not in the set, no rule can match, and only the subtable's mask
//!   bits of the stages examined so far are un-wildcarded. A full match un-wildcards the whole
//!   subtable mask.
//! - **Prefix tries** on `nw_dst` and `nw_src` (OVS's default `prefixes`). Each trie holds the
//!   CIDR prefixes of all the rules whose subtable masks the field with a prefix. Before
//!   hashing a subtable's L3 stage, the lookup consults the trie (once per lookup per field):
//!   if no rule has a prefix of this subtable's length that matches the packet, the subtable
//!   is skipped, and only the few leading address bits the trie had to examine are
//!   un-wildcarded (OVS's `check_tries`: only when that is no more than the subtable's prefix
//!   length, or when those bits are already un-wildcarded).
//! - **The ports trie.** A subtable that matches `tp_src`/`tp_dst` keeps a trie of its rules'
//!   masked port pair (`tp_src << 16 | tp_dst`). When the last stage misses, only the leading
//!   port bits needed to tell the packet apart from every rule are un-wildcarded, instead of
//!   the subtable's whole port mask.
//!
//! The tries are path-compressed binary tries in canonical form (a node exists only where a
//! prefix ends or two branches meet), so for the same set of prefixes they have the same shape
//! as OVS's and `trie_lookup` answers the same number of bits.
//!
//! Subtable hashes cover only the key words the subtable's mask touches (precomputed per
//! subtable), so hashing costs what the mask is wide, and lookups allocate nothing.

use crate::flow::key::{FlowKey, KEY_WORDS, STAGE_ENDS};
use crate::ofproto::action::Match;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// The word of `FlowKey` that holds `nw_src` (low half) and `nw_dst` (high half).
const NW_WORD: usize = 12;
/// The word of `FlowKey` that holds `tp_src` (bits 0..16) and `tp_dst` (bits 16..32).
const PORTS_WORD: usize = 22;
/// The lookup stage that holds the L3 fields the prefix tries cover.
const L3_STAGE: usize = 2;
/// `dl_type` of IPv4: the prerequisite of the `nw_src` / `nw_dst` tries (OVS `MFP_IPV4`).
const ETH_TYPE_IP: u16 = 0x0800;

/// The prefix-tracked fields, in OVS's default order (`prefixes=nw_dst,nw_src`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrieField {
    NwDst,
    NwSrc,
}

const TRIE_FIELDS: [TrieField; 2] = [TrieField::NwDst, TrieField::NwSrc];

impl TrieField {
    #[inline(always)]
    fn get(self, k: &FlowKey) -> u32 {
        match self {
            TrieField::NwDst => k.nw_dst,
            TrieField::NwSrc => k.nw_src,
        }
    }

    #[inline(always)]
    fn get_mut(self, k: &mut FlowKey) -> &mut u32 {
        match self {
            TrieField::NwDst => &mut k.nw_dst,
            TrieField::NwSrc => &mut k.nw_src,
        }
    }
}

/// A stable handle on a classifier entry (slot index and slot generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId {
    index: u32,
    gen: u32,
}

impl RuleId {
    /// The slot index, dense from 0 (useful to index side tables; reused after removal).
    pub fn index(self) -> u32 {
        self.index
    }
}

/// One rule of the classifier.
#[derive(Clone, Debug)]
pub struct Entry<T> {
    pub id: RuleId,
    pub mat: Match,
    pub priority: u16,
    pub value: T,
    seq: u64, // insertion order, for the tie rule
}

/// Lookup counters, for `ovs-appctl dpif/show`-like statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassifierStats {
    pub n_lookups: u64,
    /// Subtables examined by all lookups (OVS's "masks hit" average is this / n_lookups).
    pub n_subtables_visited: u64,
}

// ---------------------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------------------

/// A hasher for keys that are already good 64-bit hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdBuild = BuildHasherDefault<IdentityHasher>;

const HASH_BASIS: u64 = 0x9e37_79b9_7f4a_7c15;

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

// ---------------------------------------------------------------------------------------
// Prefix tries
// ---------------------------------------------------------------------------------------

/// A node of a path-compressed binary trie over 32-bit values, most significant bit first.
#[derive(Clone, Debug)]
struct TrieNode {
    prefix: u32, // the node's `n_bits` bits, left-aligned; the rest are zero
    n_bits: u32,
    n_rules: u32, // number of distinct rule keys whose prefix ends here
    edges: [Option<Box<TrieNode>>; 2],
}

/// Bit `ofs` (0 = most significant) of `v`.
#[inline(always)]
fn bit_at(v: u32, ofs: u32) -> usize {
    (v.checked_shr(31 - ofs.min(31)).unwrap_or(0) & 1) as usize
}

/// A mask of the `n` leading bits.
#[inline(always)]
fn prefix_mask(n: u32) -> u32 {
    if n == 0 {
        0
    } else {
        !0u32 << (32 - n.min(32))
    }
}

/// How many of the `n_bits` leading bits of `prefix` equal the bits of `value` from `ofs`.
#[inline(always)]
fn equal_bits(prefix: u32, n_bits: u32, value: u32, ofs: u32) -> u32 {
    let shifted = value.checked_shl(ofs).unwrap_or(0);
    let diff = u64::from(prefix ^ shifted) << 32;
    (diff | 1u64 << (63 - n_bits.min(32))).leading_zeros()
}

impl TrieNode {
    /// A leaf holding bits `ofs..ofs + plen` of `value`.
    fn new(value: u32, ofs: u32, plen: u32, n_rules: u32) -> Box<TrieNode> {
        Box::new(TrieNode {
            prefix: value.checked_shl(ofs).unwrap_or(0) & prefix_mask(plen),
            n_bits: plen,
            n_rules,
            edges: [None, None],
        })
    }

    fn is_leaf(&self) -> bool {
        self.edges[0].is_none() && self.edges[1].is_none()
    }
}

#[derive(Clone, Debug, Default)]
struct Trie {
    root: Option<Box<TrieNode>>,
}

impl Trie {
    /// Adds one rule key with prefix `value/mlen` (`mlen` in 1..=32).
    fn insert(&mut self, value: u32, mlen: u32) {
        Self::insert_at(&mut self.root, value, 0, mlen);
    }

    fn insert_at(edge: &mut Option<Box<TrieNode>>, value: u32, ofs: u32, mlen: u32) {
        let Some(node) = edge else {
            *edge = Some(TrieNode::new(value, ofs, mlen - ofs, 1));
            return;
        };
        let eq = equal_bits(node.prefix, node.n_bits.min(mlen - ofs), value, ofs);
        let ofs = ofs + eq;
        if eq < node.n_bits {
            // The new prefix leaves this node's path after `eq` bits: split the node.
            let mut old = edge.take().expect("edge checked non-empty above");
            let old_branch = bit_at(old.prefix, eq);
            let mut parent = TrieNode::new(value, ofs - eq, eq, u32::from(ofs == mlen));
            old.prefix = old.prefix.checked_shl(eq).unwrap_or(0);
            old.n_bits -= eq;
            parent.edges[old_branch] = Some(old);
            if ofs < mlen {
                parent.edges[1 - old_branch] = Some(TrieNode::new(value, ofs, mlen - ofs, 1));
            }
            *edge = Some(parent);
        } else if ofs == mlen {
            node.n_rules += 1;
        } else {
            Self::insert_at(&mut node.edges[bit_at(value, ofs)], value, ofs, mlen);
        }
    }

    /// Removes one rule key with prefix `value/mlen`; false if it was not there.
    fn remove(&mut self, value: u32, mlen: u32) -> bool {
        Self::remove_at(&mut self.root, value, 0, mlen)
    }

    fn remove_at(edge: &mut Option<Box<TrieNode>>, value: u32, ofs: u32, mlen: u32) -> bool {
        let Some(node) = edge else { return false };
        let eq = equal_bits(node.prefix, node.n_bits.min(mlen - ofs), value, ofs);
        if eq < node.n_bits {
            return false;
        }
        let ofs = ofs + eq;
        if ofs == mlen {
            if node.n_rules == 0 {
                return false;
            }
            node.n_rules -= 1;
        } else if !Self::remove_at(&mut node.edges[bit_at(value, ofs)], value, ofs, mlen) {
            return false;
        }
        // Keep the trie canonical: a node without rules must be a branching point.
        if node.n_rules == 0 && (node.edges[0].is_none() || node.edges[1].is_none()) {
            let mut node = edge.take().expect("edge checked non-empty above");
            let child = node.edges[0].take().or_else(|| node.edges[1].take());
            *edge = child.map(|mut next| {
                next.prefix = node.prefix | next.prefix.checked_shr(node.n_bits).unwrap_or(0);
                next.n_bits += node.n_bits;
                next
            });
        }
        true
    }

    /// OVS's `trie_lookup_value` over a 32-bit value: returns how many leading bits of
    /// `value` are needed to tell it apart from the prefixes it does not match, and sets bit
    /// `len` of `plens` for every prefix length `len` at which some rule matches `value`.
    fn lookup(&self, value: u32, plens: &mut u64) -> u32 {
        let mut node = self.root.as_deref();
        let mut prev: Option<&TrieNode> = None;
        let mut match_len = 0;
        while let Some(n) = node {
            let eq = equal_bits(n.prefix, n.n_bits, value, match_len);
            match_len += eq;
            if eq < n.n_bits {
                // The bit at `match_len` differs: it is needed too.
                return match_len + 1;
            }
            if n.n_rules > 0 {
                *plens |= 1u64 << match_len;
            }
            if match_len >= 32 {
                return 32;
            }
            prev = Some(n);
            node = n.edges[bit_at(value, match_len)].as_deref();
        }
        // Fell off the trie after a full match: the bit that chose the missing branch
        // matters, unless there was no other branch either.
        match prev {
            Some(p) if !p.is_leaf() => match_len + 1,
            _ => match_len,
        }
    }
}

/// The CIDR prefix length of a 32-bit mask, or 0 when it is zero or not a prefix.
fn cidr_len(mask: u32) -> u32 {
    if mask.leading_ones() + mask.trailing_zeros() == 32 {
        mask.leading_ones()
    } else {
        0
    }
}

/// The port pair as one 32-bit value, `tp_src` in the high half (OVS's be32 at `tp_src`).
#[inline(always)]
fn ports_of(k: &FlowKey) -> u32 {
    u32::from(k.tp_src) << 16 | u32::from(k.tp_dst)
}

// ---------------------------------------------------------------------------------------
// Subtables
// ---------------------------------------------------------------------------------------

/// Rules with one masked key, sorted by decreasing priority then insertion order.
#[derive(Clone, Debug)]
struct Bucket {
    key: FlowKey, // masked
    rules: Vec<u32>,
}

#[derive(Clone, Debug)]
struct Subtable {
    seq: u64, // creation order, for the tie rule
    max_priority: u16,
    n_rules: usize,
    /// The words the mask touches, in order, with their mask.
    words: Vec<(u8, u64)>,
    /// For each non-empty stage, in order: (stage number, end index into `words`).
    stages: Vec<(u8, u8)>,
    /// One hash-count set per non-final stage: cumulative hashes of the rule keys.
    indices: Vec<HashMap<u64, u32, IdBuild>>,
    buckets: HashMap<u64, Vec<Bucket>, IdBuild>,
    trie_plen: [u32; 2],
    ports_mask: u32,
    ports_mask_len: u32,
    ports_trie: Trie,
}

impl Subtable {
    fn new(mask: FlowKey, seq: u64) -> Subtable {
        let m = mask.words();
        let mut words = Vec::new();
        let mut stages = Vec::new();
        let mut start = 0;
        for (stage, &end) in STAGE_ENDS.iter().enumerate() {
            for (w, &mw) in m.iter().enumerate().take(end).skip(start) {
                if mw != 0 {
                    words.push((w as u8, mw));
                }
            }
            if stages.last().map_or(0, |&(_, e)| e as usize) < words.len() {
                stages.push((stage as u8, words.len() as u8));
            }
            start = end;
        }
        let n_indices = stages.len().saturating_sub(1);
        let trie_plen = TRIE_FIELDS.map(|f| cidr_len(f.get(&mask)));
        let ports_mask = ports_of(&mask);
        Subtable {
            seq,
            max_priority: 0,
            n_rules: 0,
            words,
            stages,
            indices: (0..n_indices).map(|_| HashMap::default()).collect(),
            buckets: HashMap::default(),
            trie_plen,
            ports_mask,
            ports_mask_len: 32 - ports_mask.trailing_zeros(),
            ports_trie: Trie::default(),
        }
    }

    /// Cumulative hashes of `key` under this mask: one per non-final stage, then the full one.
    fn stage_hashes(&self, key: &FlowKey) -> (Vec<u64>, u64) {
        let k = key.words();
        let mut h = HASH_BASIS;
        let mut out = Vec::with_capacity(self.indices.len());
        let mut i = 0;
        for (n, &(_, end)) in self.stages.iter().enumerate() {
            while i < end as usize {
                let (w, m) = self.words[i];
                h = hash_mix(h, k[w as usize] & m);
                i += 1;
            }
            if n + 1 < self.stages.len() {
                out.push(hash_finish(h));
            }
        }
        (out, hash_finish(h))
    }

    /// The full hash of `key` under this mask.
    #[inline(always)]
    fn hash(&self, key: &FlowKey) -> u64 {
        let k = key.words();
        let mut h = HASH_BASIS;
        for &(w, m) in &self.words {
            h = hash_mix(h, k[w as usize] & m);
        }
        hash_finish(h)
    }

    /// True when `key & mask == masked`, looking only at the mask's words.
    #[inline(always)]
    fn key_matches(&self, key: &FlowKey, masked: &FlowKey) -> bool {
        let (k, v) = (key.words(), masked.words());
        self.words.iter().all(|&(w, m)| k[w as usize] & m == v[w as usize])
    }

    /// The bucket `key` falls in, if any.
    #[inline(always)]
    fn find_bucket(&self, key: &FlowKey, hash: u64) -> Option<&Bucket> {
        self.buckets.get(&hash)?.iter().find(|b| self.key_matches(key, &b.key))
    }

    /// ORs into `wc` the mask bits of the first `n_words` mask words.
    #[inline(always)]
    fn fold(&self, wc: &mut FlowKey, n_words: usize) {
        let w = wc.words_mut();
        for &(i, m) in &self.words[..n_words] {
            w[i as usize] |= m;
        }
    }
}

/// Per-lookup state of one prefix trie (OVS's `trie_ctx`).
#[derive(Clone, Copy, Default)]
struct TrieCtx {
    done: bool,
    maskbits: u32,
    plens: u64,
}

// ---------------------------------------------------------------------------------------
// The classifier
// ---------------------------------------------------------------------------------------

struct Slot<T> {
    gen: u32,
    subtable: u32,
    entry: Option<Entry<T>>,
}

/// An OpenFlow table's rules, searchable by priority. See the module documentation.
pub struct Classifier<T> {
    slots: Vec<Slot<T>>,
    free_slots: Vec<u32>,
    subtables: Vec<Option<Subtable>>,
    free_subtables: Vec<u32>,
    by_mask: HashMap<FlowKey, u32, foldhash::fast::RandomState>,
    /// Live subtable indices in lookup order: max priority down, then creation order.
    order: Vec<u32>,
    tries: [Trie; 2],
    /// Prefix tracking on (OpenFlow tables) or off (OVS's internal classifiers, such as the
    /// tunnel-port one, which set no prefix fields).
    prefixes: bool,
    n_rules: usize,
    next_seq: u64,
    next_subtable_seq: u64,
    n_lookups: AtomicU64,
    n_visited: AtomicU64,
}

impl<T> Default for Classifier<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Classifier<T> {
    /// An empty classifier with prefix tracking on `nw_dst` and `nw_src`, as OVS's default.
    pub fn new() -> Classifier<T> {
        Classifier {
            slots: Vec::new(),
            free_slots: Vec::new(),
            subtables: Vec::new(),
            free_subtables: Vec::new(),
            by_mask: HashMap::default(),
            order: Vec::new(),
            tries: [Trie::default(), Trie::default()],
            prefixes: true,
            n_rules: 0,
            next_seq: 0,
            next_subtable_seq: 0,
            n_lookups: AtomicU64::new(0),
            n_visited: AtomicU64::new(0),
        }
    }

    /// An empty classifier without prefix tracking.
    pub fn without_prefixes() -> Classifier<T> {
        let mut c = Classifier::new();
        c.prefixes = false;
        c
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.n_rules
    }

    pub fn is_empty(&self) -> bool {
        self.n_rules == 0
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.order.len()
    }

    /// Lookup counters since creation.
    pub fn stats(&self) -> ClassifierStats {
        ClassifierStats {
            n_lookups: self.n_lookups.load(Ordering::Relaxed),
            n_subtables_visited: self.n_visited.load(Ordering::Relaxed),
        }
    }

    /// The entry with handle `id`, if it is still in the classifier.
    pub fn get(&self, id: RuleId) -> Option<&Entry<T>> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        slot.entry.as_ref()
    }

    /// The value of entry `id`, mutable (its match and priority are not).
    pub fn get_mut(&mut self, id: RuleId) -> Option<&mut T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.gen != id.gen {
            return None;
        }
        slot.entry.as_mut().map(|e| &mut e.value)
    }

    /// Every entry, in slot order (deterministic for a given sequence of changes; callers
    /// that print sort as they need).
    pub fn iter(&self) -> impl Iterator<Item = &Entry<T>> + '_ {
        self.slots.iter().filter_map(|s| s.entry.as_ref())
    }

    /// Adds a rule, even when one with the same match and priority exists (the older one
    /// then keeps winning ties). `mat.key` is masked here in case it was not.
    pub fn insert(&mut self, mat: Match, priority: u16, value: T) -> RuleId {
        let mat = Match { key: mat.key.masked(&mat.mask), mask: mat.mask };
        let sti = match self.by_mask.get(&mat.mask) {
            Some(&i) => i,
            None => self.create_subtable(mat.mask),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let index = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { gen: 0, subtable: 0, entry: None });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.subtable = sti;
        let id = RuleId { index, gen: slot.gen };
        slot.entry = Some(Entry { id, mat, priority, value, seq });

        let st = self.subtables[sti as usize].as_mut().expect("live subtable");
        let (ihash, hash) = st.stage_hashes(&mat.key);
        let list = st.buckets.entry(hash).or_default();
        if let Some(b) = list.iter_mut().find(|b| b.key == mat.key) {
            let slots = &self.slots;
            let rank = |r: &u32| {
                let e = slots[*r as usize].entry.as_ref().expect("bucket rule is live");
                (core::cmp::Reverse(e.priority), e.seq)
            };
            let pos = b.rules.partition_point(|r| rank(r) < (core::cmp::Reverse(priority), seq));
            b.rules.insert(pos, index);
        } else {
            // A new distinct key: it enters the stage indices and the tries (OVS counts
            // distinct keys, not rules, in both).
            list.push(Bucket { key: mat.key, rules: vec![index] });
            for (set, h) in st.indices.iter_mut().zip(ihash) {
                *set.entry(h).or_insert(0) += 1;
            }
            for (t, f) in TRIE_FIELDS.iter().enumerate() {
                if st.trie_plen[t] != 0 {
                    self.tries[t].insert(f.get(&mat.key), st.trie_plen[t]);
                }
            }
            if st.ports_mask_len != 0 {
                st.ports_trie.insert(ports_of(&mat.key), st.ports_mask_len);
            }
        }
        st.n_rules += 1;
        if st.n_rules == 1 || priority > st.max_priority {
            st.max_priority = priority;
            self.sort_order();
        }
        self.n_rules += 1;
        id
    }

    /// Adds a rule, or, when one with exactly this match and priority exists, replaces its
    /// value in place (it keeps its handle and its tie-breaking rank) and returns the old
    /// value. This is an OpenFlow `add` of a flow that already exists.
    pub fn replace(&mut self, mat: Match, priority: u16, value: T) -> (RuleId, Option<T>) {
        let mat = Match { key: mat.key.masked(&mat.mask), mask: mat.mask };
        if let Some(id) = self.find_exactly(&mat, priority).map(|e| e.id) {
            let slot = &mut self.slots[id.index as usize];
            let e = slot.entry.as_mut().expect("found entry is live");
            return (id, Some(core::mem::replace(&mut e.value, value)));
        }
        (self.insert(mat, priority, value), None)
    }

    /// Removes entry `id` and returns it; `None` if it is not in the classifier.
    pub fn remove(&mut self, id: RuleId) -> Option<Entry<T>> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.gen != id.gen || slot.entry.is_none() {
            return None;
        }
        let entry = slot.entry.take().expect("checked above");
        slot.gen = slot.gen.wrapping_add(1);
        let sti = slot.subtable;
        self.free_slots.push(id.index);
        self.n_rules -= 1;

        let st = self.subtables[sti as usize].as_mut().expect("live subtable");
        let (ihash, hash) = st.stage_hashes(&entry.mat.key);
        let list = st.buckets.get_mut(&hash).expect("rule's hash bucket exists");
        let bi = list.iter().position(|b| b.key == entry.mat.key).expect("rule's bucket");
        let b = &mut list[bi];
        let pos = b.rules.iter().position(|&r| r == id.index).expect("rule in its bucket");
        b.rules.remove(pos);
        if b.rules.is_empty() {
            list.swap_remove(bi);
            if list.is_empty() {
                st.buckets.remove(&hash);
            }
            for (set, h) in st.indices.iter_mut().zip(ihash) {
                if let Some(c) = set.get_mut(&h) {
                    *c -= 1;
                    if *c == 0 {
                        set.remove(&h);
                    }
                }
            }
            for (t, f) in TRIE_FIELDS.iter().enumerate() {
                if st.trie_plen[t] != 0 {
                    self.tries[t].remove(f.get(&entry.mat.key), st.trie_plen[t]);
                }
            }
            if st.ports_mask_len != 0 {
                st.ports_trie.remove(ports_of(&entry.mat.key), st.ports_mask_len);
            }
        }
        st.n_rules -= 1;
        if st.n_rules == 0 {
            self.by_mask.remove(&entry.mat.mask);
            self.subtables[sti as usize] = None;
            self.free_subtables.push(sti);
            self.order.retain(|&i| i != sti);
        } else if entry.priority == st.max_priority {
            let slots = &self.slots;
            let max = st
                .buckets
                .values()
                .flatten()
                .map(|b| slots[b.rules[0] as usize].entry.as_ref().map_or(0, |e| e.priority))
                .max()
                .unwrap_or(0);
            if max != st.max_priority {
                st.max_priority = max;
                self.sort_order();
            }
        }
        Some(entry)
    }

    /// The first entry (in tie order) with exactly this match and priority: what a strict
    /// flow-mod (`--strict`, `modify-strict`, `delete-strict`) addresses.
    pub fn find_exactly(&self, mat: &Match, priority: u16) -> Option<&Entry<T>> {
        let key = mat.key.masked(&mat.mask);
        let st = self.subtables[*self.by_mask.get(&mat.mask)? as usize].as_ref()?;
        let b = st.find_bucket(&key, st.hash(&key))?;
        b.rules
            .iter()
            .filter_map(|&r| self.slots[r as usize].entry.as_ref())
            .find(|e| e.priority == priority)
    }

    /// The highest-priority entry matching `key` (ties as in the module documentation).
    ///
    /// With `Some(wc)`, ORs into `wc` the key bits the answer depends on (the megaflow
    /// contract; see the module documentation).
    pub fn lookup(&self, key: &FlowKey, wc: Option<&mut FlowKey>) -> Option<&Entry<T>> {
        let mut best: Option<u32> = None;
        let mut best_pri: i32 = -1;
        let mut visited = 0u64;
        match wc {
            None => {
                for &sti in &self.order {
                    let st = self.subtable(sti);
                    if i32::from(st.max_priority) <= best_pri {
                        break;
                    }
                    visited += 1;
                    if let Some(b) = st.find_bucket(key, st.hash(key)) {
                        self.consider(b, &mut best, &mut best_pri);
                    }
                }
            }
            Some(wc) => {
                let mut ctx = [TrieCtx::default(); 2];
                for &sti in &self.order {
                    let st = self.subtable(sti);
                    if i32::from(st.max_priority) <= best_pri {
                        break;
                    }
                    visited += 1;
                    if let Some(b) = self.find_wc(st, key, &mut ctx, wc) {
                        self.consider(b, &mut best, &mut best_pri);
                    }
                }
            }
        }
        self.n_lookups.fetch_add(1, Ordering::Relaxed);
        self.n_visited.fetch_add(visited, Ordering::Relaxed);
        best.and_then(|r| self.slots[r as usize].entry.as_ref())
    }

    #[inline(always)]
    fn subtable(&self, sti: u32) -> &Subtable {
        self.subtables[sti as usize].as_ref().expect("ordered subtables are live")
    }

    /// Takes the bucket's best rule when it beats the best so far (ties keep the earlier).
    #[inline(always)]
    fn consider(&self, b: &Bucket, best: &mut Option<u32>, best_pri: &mut i32) {
        if let Some(e) = b.rules.first().and_then(|&r| self.slots[r as usize].entry.as_ref()) {
            if i32::from(e.priority) > *best_pri {
                *best = Some(e.id.index);
                *best_pri = i32::from(e.priority);
            }
        }
    }

    /// OVS's `find_match_wc`: the staged lookup of one subtable, with the trie checks.
    fn find_wc<'a>(
        &self,
        st: &'a Subtable,
        key: &FlowKey,
        ctx: &mut [TrieCtx; 2],
        wc: &mut FlowKey,
    ) -> Option<&'a Bucket> {
        let k = key.words();
        let mut h = HASH_BASIS;
        let mut i = 0usize; // words hashed so far
        let n_stages = st.stages.len();
        for (n, &(stage, end)) in st.stages.iter().enumerate() {
            if stage as usize == L3_STAGE && self.check_tries(st, key, ctx, wc) {
                st.fold(wc, i);
                return None;
            }
            while i < end as usize {
                let (w, m) = st.words[i];
                h = hash_mix(h, k[w as usize] & m);
                i += 1;
            }
            if n + 1 < n_stages && !st.indices[n].contains_key(&hash_finish(h)) {
                st.fold(wc, i);
                return None;
            }
        }
        if let Some(b) = st.find_bucket(key, hash_finish(h)) {
            st.fold(wc, i);
            return Some(b);
        }
        if st.ports_mask_len == 0 {
            st.fold(wc, i);
            return None;
        }
        // The last stage missed: un-wildcard only the leading port bits that tell this packet
        // apart from every rule's ports, plus what was un-wildcarded before (OVS's
        // "adjust_ports_mask"), instead of the subtable's whole port mask.
        let before = ports_of(wc);
        let mut plens = 0;
        let mbits = st.ports_trie.lookup(ports_of(key) & st.ports_mask, &mut plens);
        let ports = st.ports_mask & prefix_mask(mbits) | before;
        st.fold(wc, i);
        wc.tp_src = (ports >> 16) as u16;
        wc.tp_dst = ports as u16;
        None
    }

    /// OVS's `check_tries`: true when a prefix trie proves that no rule of `st` can match,
    /// in which case the trie bits have been un-wildcarded.
    fn check_tries(
        &self,
        st: &Subtable,
        key: &FlowKey,
        ctx: &mut [TrieCtx; 2],
        wc: &mut FlowKey,
    ) -> bool {
        if !self.prefixes {
            return false;
        }
        for (t, field) in TRIE_FIELDS.iter().enumerate() {
            let plen = st.trie_plen[t];
            if plen == 0 {
                continue;
            }
            let c = &mut ctx[t];
            if !c.done {
                c.done = true;
                c.plens = 0;
                if key.dl_type == ETH_TYPE_IP {
                    c.maskbits = self.tries[t].lookup(field.get(key), &mut c.plens);
                } else {
                    // The field is not an IPv4 address in this packet: no skipping.
                    c.plens = !0;
                    c.maskbits = 0;
                }
            }
            if c.plens & (1u64 << plen) == 0 {
                let bits = prefix_mask(c.maskbits);
                let wf = field.get_mut(wc);
                if c.maskbits <= plen {
                    *wf |= bits;
                    return true;
                }
                if *wf & bits == bits {
                    return true;
                }
            }
        }
        false
    }

    fn create_subtable(&mut self, mask: FlowKey) -> u32 {
        let st = Subtable::new(mask, self.next_subtable_seq);
        self.next_subtable_seq += 1;
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

    fn sort_order(&mut self) {
        let subtables = &self.subtables;
        self.order.sort_by_key(|&i| {
            let st = subtables[i as usize].as_ref().expect("ordered subtables are live");
            (core::cmp::Reverse(st.max_priority), st.seq)
        });
    }
}

const _: () = assert!(NW_WORD < STAGE_ENDS[L3_STAGE] && NW_WORD >= STAGE_ENDS[L3_STAGE - 1]);
const _: () = assert!(PORTS_WORD < KEY_WORDS && PORTS_WORD >= STAGE_ENDS[2]);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// splitmix64: a small deterministic generator for the seeded tests.
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
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize]
        }
    }

    /// The oracle: a linear scan with the same tie rule as the classifier.
    #[derive(Default)]
    struct Linear {
        rules: Vec<(RuleId, Match, u16, u64)>,
        masks: HashMap<FlowKey, (u64, usize)>, // mask -> (creation order, rule count)
        next_seq: u64,
        next_mask_seq: u64,
    }

    impl Linear {
        fn insert(&mut self, id: RuleId, m: Match, priority: u16) {
            let e = self.masks.entry(m.mask).or_insert((self.next_mask_seq, 0));
            if e.1 == 0 {
                self.next_mask_seq += 1;
            }
            e.1 += 1;
            self.rules.push((id, m, priority, self.next_seq));
            self.next_seq += 1;
        }
        fn remove(&mut self, id: RuleId) {
            let i = self.rules.iter().position(|r| r.0 == id).unwrap();
            let (_, m, _, _) = self.rules.remove(i);
            let e = self.masks.get_mut(&m.mask).unwrap();
            e.1 -= 1;
            if e.1 == 0 {
                self.masks.remove(&m.mask);
            }
        }
        fn subtable_max(&self, mask: &FlowKey) -> u16 {
            self.rules.iter().filter(|r| r.1.mask == *mask).map(|r| r.2).max().unwrap()
        }
        fn lookup(&self, k: &FlowKey) -> Option<RuleId> {
            let hits: Vec<_> = self.rules.iter().filter(|r| r.1.matches(k)).collect();
            let top = hits.iter().map(|r| r.2).max()?;
            hits.iter()
                .filter(|r| r.2 == top)
                .min_by_key(|r| {
                    let max = self.subtable_max(&r.1.mask);
                    (core::cmp::Reverse(max), self.masks[&r.1.mask].0, r.3)
                })
                .map(|r| r.0)
        }
    }

    const MACS: [[u8; 6]; 4] = [
        [0xfa, 0x16, 0x3e, 0x00, 0x00, 0x01],
        [0xfa, 0x16, 0x3e, 0x00, 0x00, 0x02],
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0x16],
    ];

    fn random_ip(rng: &mut Rng) -> u32 {
        let net = rng.pick(&[0x0a00_0000u32, 0x0a00_0100, 0xc0a8_0100, 0xac18_0400, 0x0a01_0000]);
        match rng.below(6) {
            0 => rng.next() as u32,
            _ => net | rng.pick(&[1u32, 5, 12, 129, 254]),
        }
    }

    /// A packet key drawn from small pools, so that rules built the same way often match.
    fn random_packet(rng: &mut Rng) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = 1 + rng.below(4) as u32;
        k.regs[0] = rng.below(3) as u32;
        k.metadata = rng.below(2);
        k.dl_dst = rng.pick(&MACS);
        k.dl_src = rng.pick(&MACS);
        k.vlan_tci = rng.pick(&[0u16, 0x1001, 0x1002, 0x3001]);
        k.dl_type = rng.pick(&[0x0800u16, 0x0800, 0x0800, 0x0806, 0x86dd]);
        k.nw_src = random_ip(rng);
        k.nw_dst = random_ip(rng);
        k.nw_proto = rng.pick(&[6u8, 17, 1]);
        k.nw_ttl = 64;
        let (r1, r2) = (rng.next() as u16, rng.next() as u16);
        k.tp_src = rng.pick(&[22u16, 80, 443, 53, 8080, 33000, r1]);
        k.tp_dst = rng.pick(&[22u16, 80, 443, 53, 8080, 33000, r2]);
        k
    }

    fn random_plen(rng: &mut Rng) -> u32 {
        let any = 1 + rng.below(32) as u32;
        rng.pick(&[8, 16, 24, 24, 32, 32, any])
    }

    /// A rule match from a pool of realistic masks, valued from a random packet.
    fn random_match(rng: &mut Rng) -> Match {
        let mut m = FlowKey::ZERO;
        let ip = |m: &mut FlowKey| m.dl_type = 0xffff;
        match rng.below(15) {
            0 => {}
            1 => m.in_port = !0,
            2 => {
                m.in_port = !0;
                m.dl_dst = [0xff; 6];
            }
            3 => {
                ip(&mut m);
                m.nw_dst = prefix_mask(random_plen(rng));
            }
            4 => {
                ip(&mut m);
                m.nw_src = prefix_mask(random_plen(rng));
                m.nw_dst = prefix_mask(random_plen(rng));
            }
            5 => {
                ip(&mut m);
                m.nw_proto = 0xff;
                m.tp_dst = 0xffff;
            }
            6 => {
                ip(&mut m);
                m.nw_proto = 0xff;
                m.tp_dst = rng.pick(&[0xfff0u16, 0xff00, 0x8000]);
            }
            7 => {
                ip(&mut m);
                m.nw_proto = 0xff;
                m.tp_src = 0xffff;
                m.tp_dst = 0xffff;
            }
            8 => {
                m.dl_dst = [0xff; 6];
                m.vlan_tci = 0x1fff;
            }
            9 => {
                ip(&mut m);
                m.nw_dst = prefix_mask(24);
            }
            10 => {
                m.regs[0] = !0;
                m.metadata = !0;
            }
            11 => m.dl_dst = [0x01, 0, 0, 0, 0, 0],
            12 => {
                ip(&mut m);
                m.nw_dst = 0xffff_00ff;
            }
            13 => {
                m.in_port = !0;
                ip(&mut m);
                m.nw_src = prefix_mask(random_plen(rng));
                m.nw_proto = 0xff;
                m.tp_dst = 0xffff;
            }
            _ => {
                ip(&mut m);
                m.nw_dst = prefix_mask(random_plen(rng));
                m.nw_proto = 0xff;
                m.tp_src = 0xff00;
            }
        }
        let mut v = random_packet(rng);
        if rng.below(4) == 0 {
            v.dl_type = 0x0806; // an ARP rule on arp_tpa shares the nw_dst trie
        }
        Match { key: v.masked(&m), mask: m }
    }

    fn flip(k: &FlowKey, bit: usize) -> FlowKey {
        let mut k = *k;
        k.words_mut()[bit / 64] ^= 1u64 << (bit % 64);
        k
    }

    fn bit_set(k: &FlowKey, bit: usize) -> bool {
        k.words()[bit / 64] >> (bit % 64) & 1 != 0
    }

    /// Checks one lookup against the oracle, and the megaflow contract for its wildcards.
    fn check_lookup(cls: &Classifier<u32>, o: &Linear, k: &FlowKey, wc0: FlowKey, rng: &mut Rng) {
        let want = o.lookup(k);
        let mut wc = wc0;
        let got = cls.lookup(k, Some(&mut wc)).map(|e| e.id);
        assert_eq!(got, want, "winner with wildcards, key {k:?}");
        assert_eq!(cls.lookup(k, None).map(|e| e.id), want, "winner without wildcards");
        // The caller's bits are kept.
        assert_eq!(wc.masked(&wc0), wc0);
        // Flipping bits outside `wc` must not change the winner.
        for _ in 0..24 {
            let bit = rng.below((KEY_WORDS * 64) as u64) as usize;
            if !bit_set(&wc, bit) {
                let k2 = flip(k, bit);
                assert_eq!(o.lookup(&k2), want, "bit {bit} outside wc {wc:?} changed the winner");
            }
        }
        // So must rewriting all of them at once.
        for _ in 0..4 {
            let mut k2 = FlowKey::ZERO;
            let mut noise = random_packet(rng);
            for w in noise.words_mut().iter_mut() {
                if rng.below(2) == 0 {
                    *w = rng.next();
                }
            }
            for i in 0..KEY_WORDS {
                let m = wc.words()[i];
                k2.words_mut()[i] = k.words()[i] & m | noise.words()[i] & !m;
            }
            assert_eq!(o.lookup(&k2), want, "key {k2:?} agreeing on wc {wc:?}");
        }
    }

    fn run_random(seed: u64) {
        let mut rng = Rng(seed);
        let mut cls = Classifier::new();
        let mut o = Linear::default();
        let mut ids = Vec::new();
        let n_rules = 20 + rng.below(80);
        for round in 0..n_rules * 2 {
            let action = rng.below(10);
            if action < 7 || ids.is_empty() {
                let m = random_match(&mut rng);
                let prio = rng.pick(&[0u16, 1, 10, 100, 100, 1000, 32768, 65535]);
                if action == 0 {
                    // An OpenFlow add of a possibly existing flow.
                    let (id, old) = cls.replace(m, prio, round as u32);
                    if old.is_none() {
                        o.insert(id, m, prio);
                        ids.push(id);
                    }
                } else {
                    let id = cls.insert(m, prio, round as u32);
                    o.insert(id, m, prio);
                    ids.push(id);
                }
            } else {
                let id = ids.swap_remove(rng.below(ids.len() as u64) as usize);
                assert!(cls.remove(id).is_some());
                assert!(cls.remove(id).is_none(), "a removed handle stays dead");
                o.remove(id);
            }
            assert_eq!(cls.len(), o.rules.len());
            for _ in 0..8 {
                let mut k = random_packet(&mut rng);
                if rng.below(3) == 0 && !o.rules.is_empty() {
                    // Aim at a rule: its bits, random elsewhere.
                    let r = &o.rules[rng.below(o.rules.len() as u64) as usize].1;
                    for i in 0..KEY_WORDS {
                        let m = r.mask.words()[i];
                        k.words_mut()[i] = r.key.words()[i] | k.words()[i] & !m;
                    }
                }
                let wc0 =
                    if rng.below(4) == 0 { random_match(&mut rng).mask } else { FlowKey::ZERO };
                check_lookup(&cls, &o, &k, wc0, &mut rng);
            }
        }
        // Draining leaves nothing behind: no subtables, empty tries.
        for id in ids {
            assert!(cls.remove(id).is_some());
        }
        assert_eq!(cls.len(), 0);
        assert_eq!(cls.n_subtables(), 0);
        assert!(cls.tries.iter().all(|t| t.root.is_none()));
    }

    #[test]
    fn random_rules_agree_with_linear_oracle_and_keep_megaflow_contract() {
        for seed in 0..40u64 {
            let r = std::panic::catch_unwind(|| run_random(seed));
            if let Err(e) = r {
                eprintln!("classifier random test failed with seed {seed}");
                std::panic::resume_unwind(e);
            }
        }
    }

    fn ip_key(nw_src: u32, nw_dst: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = 1;
        k.dl_type = 0x0800;
        k.nw_src = nw_src;
        k.nw_dst = nw_dst;
        k.nw_proto = 6;
        k.tp_src = 33000;
        k.tp_dst = 443;
        k
    }

    fn ip_match(f: impl FnOnce(&mut FlowKey, &mut FlowKey)) -> Match {
        let (mut k, mut m) = (FlowKey::ZERO, FlowKey::ZERO);
        k.dl_type = 0x0800;
        m.dl_type = 0xffff;
        f(&mut k, &mut m);
        Match { key: k.masked(&m), mask: m }
    }

    #[test]
    fn trie_unwildcards_only_the_leading_address_bits() {
        // ip,nw_dst=10.0.0.0/24 and a packet to 192.168.1.1: the first bit already differs.
        let mut cls = Classifier::new();
        cls.insert(
            ip_match(|k, m| {
                k.nw_dst = 0x0a00_0000;
                m.nw_dst = 0xffff_ff00;
            }),
            100,
            1u32,
        );
        let mut wc = FlowKey::ZERO;
        assert!(cls.lookup(&ip_key(0x0a00_0001, 0xc0a8_0101), Some(&mut wc)).is_none());
        let mut want = FlowKey::ZERO;
        want.dl_type = 0xffff;
        want.nw_dst = 0x8000_0000;
        assert_eq!(wc, want);

        // 10.0.1.1 agrees on 23 bits and differs at bit 24: 24 bits, as OVS's "/24".
        let mut wc = FlowKey::ZERO;
        assert!(cls.lookup(&ip_key(0, 0x0a00_0101), Some(&mut wc)).is_none());
        assert_eq!(wc.nw_dst, 0xffff_ff00);

        // A match un-wildcards the subtable mask, nothing more.
        let mut wc = FlowKey::ZERO;
        assert_eq!(cls.lookup(&ip_key(0, 0x0a00_0063), Some(&mut wc)).map(|e| e.value), Some(1));
        want.nw_dst = 0xffff_ff00;
        assert_eq!(wc, want);
    }

    #[test]
    fn trie_longer_prefixes_need_more_bits_than_shorter_subtables_allow() {
        // Rules 10.1.2.0/24 (priority 200) and 10.0.0.0/8 (priority 100). A packet to
        // 10.9.9.9: the /24 subtable comes first and is skipped by the trie after 13 bits
        // (10.1 and 10.9 differ at bit 12), then the /8 matches.
        let mut cls = Classifier::new();
        cls.insert(ip_match(|k, m| (k.nw_dst, m.nw_dst) = (0x0a01_0200, 0xffff_ff00)), 200, 24);
        cls.insert(ip_match(|k, m| (k.nw_dst, m.nw_dst) = (0x0a00_0000, 0xff00_0000)), 100, 8);
        let mut wc = FlowKey::ZERO;
        let got = cls.lookup(&ip_key(0, 0x0a09_0909), Some(&mut wc)).map(|e| e.value);
        assert_eq!(got, Some(8));
        // 0x0a01 = 0000 1010 0000 0001, 0x0a09 = 0000 1010 0000 1001: bit 12 differs.
        assert_eq!(wc.nw_dst, 0xfff8_0000);
        assert_eq!(wc.nw_src, 0);
    }

    #[test]
    fn staged_lookup_stops_at_the_first_stage_without_candidates() {
        // in_port=1,ip,nw_dst=10.0.0.1,tcp,tp_dst=80 and a packet from port 2: only in_port.
        let mut cls = Classifier::new();
        let mut mat = ip_match(|k, m| {
            k.in_port = 1;
            m.in_port = !0;
            k.nw_dst = 0x0a00_0001;
            m.nw_dst = !0;
            k.nw_proto = 6;
            m.nw_proto = 0xff;
            k.tp_dst = 80;
            m.tp_dst = 0xffff;
        });
        mat.key.in_port = 1;
        cls.insert(mat, 10, 0u32);
        let mut k = ip_key(0, 0x0a00_0001);
        k.in_port = 2;
        let mut wc = FlowKey::ZERO;
        assert!(cls.lookup(&k, Some(&mut wc)).is_none());
        let mut want = FlowKey::ZERO;
        want.in_port = !0;
        assert_eq!(wc, want);

        // From port 1 to another host: metadata and L2 pass, the nw_dst trie (a /32) stops it
        // at the first differing bit of the address, before L3 and L4 are hashed.
        k.in_port = 1;
        k.nw_dst = 0x0a00_0002;
        let mut wc = FlowKey::ZERO;
        assert!(cls.lookup(&k, Some(&mut wc)).is_none());
        want.dl_type = 0xffff;
        want.nw_dst = 0xffff_fffe;
        assert_eq!(wc, want);
    }

    #[test]
    fn ports_trie_unwildcards_only_the_leading_port_bits() {
        // tcp,tp_dst=80 and a packet to 443: 0x0050 vs 0x01bb first differ at bit 7.
        let mut cls = Classifier::new();
        cls.insert(
            ip_match(|k, m| {
                k.nw_proto = 6;
                m.nw_proto = 0xff;
                k.tp_dst = 80;
                m.tp_dst = 0xffff;
            }),
            10,
            0u32,
        );
        let mut wc = FlowKey::ZERO;
        assert!(cls.lookup(&ip_key(1, 2), Some(&mut wc)).is_none());
        let mut want = FlowKey::ZERO;
        want.dl_type = 0xffff;
        want.nw_proto = 0xff;
        want.tp_dst = 0xff00;
        assert_eq!(wc, want);
    }

    #[test]
    fn higher_priority_match_ends_the_search() {
        let mut cls = Classifier::new();
        let mut any_ip = FlowKey::ZERO;
        any_ip.dl_type = 0xffff;
        let mut k = FlowKey::ZERO;
        k.dl_type = 0x0800;
        cls.insert(Match { key: k, mask: any_ip }, 1000, 1u32);
        cls.insert(
            ip_match(|k, m| (k.tp_src, m.tp_src, m.nw_proto, k.nw_proto) = (1, !0, !0, 6)),
            10,
            2,
        );
        let mut wc = FlowKey::ZERO;
        assert_eq!(cls.lookup(&ip_key(1, 2), Some(&mut wc)).map(|e| e.value), Some(1));
        assert_eq!(wc, any_ip);
        assert_eq!(cls.stats().n_subtables_visited, 1);
    }

    #[test]
    fn equal_matches_keep_priority_then_insertion_order() {
        let mut cls = Classifier::new();
        let m = ip_match(|k, m| (k.nw_dst, m.nw_dst) = (0x0a00_0001, !0));
        let a = cls.insert(m, 10, 'a');
        let b = cls.insert(m, 20, 'b');
        let c = cls.insert(m, 20, 'c');
        let k = ip_key(0, 0x0a00_0001);
        assert_eq!(cls.lookup(&k, None).map(|e| e.id), Some(b));
        assert_eq!(cls.find_exactly(&m, 20).map(|e| e.id), Some(b));
        assert_eq!(cls.find_exactly(&m, 10).map(|e| e.id), Some(a));
        assert!(cls.find_exactly(&m, 30).is_none());
        // replace keeps the handle and the rank.
        assert_eq!(cls.replace(m, 20, 'B'), (b, Some('b')));
        assert_eq!(cls.lookup(&k, None).map(|e| e.value), Some('B'));
        assert_eq!(cls.remove(b).map(|e| e.value), Some('B'));
        assert_eq!(cls.lookup(&k, None).map(|e| e.id), Some(c));
        assert_eq!(cls.remove(c).map(|e| e.value), Some('c'));
        assert_eq!(cls.lookup(&k, None).map(|e| e.id), Some(a));
        *cls.get_mut(a).unwrap() = 'z';
        assert_eq!(cls.iter().map(|e| e.value).collect::<Vec<_>>(), vec!['z']);
        assert!(cls.get(b).is_none());
    }

    #[test]
    fn trie_stays_canonical_and_reports_matching_prefix_lengths() {
        for seed in 0..20u64 {
            let mut rng = Rng(seed ^ 0xabcdef);
            let mut trie = Trie::default();
            let mut prefixes = Vec::new();
            for _ in 0..40 {
                let plen = random_plen(&mut rng);
                let v = random_ip(&mut rng) & prefix_mask(plen);
                trie.insert(v, plen);
                prefixes.push((v, plen));
            }
            for _ in 0..200 {
                let x = random_ip(&mut rng);
                let mut plens = 0;
                let bits = trie.lookup(x, &mut plens);
                assert!(bits <= 32, "seed {seed}");
                for len in 1..=32u32 {
                    let want = prefixes.iter().any(|&(v, l)| l == len && x & prefix_mask(l) == v);
                    assert_eq!(plens >> len & 1 == 1, want, "seed {seed} len {len} x {x:#x}");
                }
                // The answer holds for every value that agrees on the first `bits` bits.
                let y = x & prefix_mask(bits) | rng.next() as u32 & !prefix_mask(bits);
                let mut plens_y = 0;
                trie.lookup(y, &mut plens_y);
                for len in 1..=bits.min(32) {
                    assert_eq!(plens >> len & 1, plens_y >> len & 1, "seed {seed}");
                }
            }
            // Removing everything, in a different order, empties the trie.
            while !prefixes.is_empty() {
                let (v, l) = prefixes.swap_remove(rng.below(prefixes.len() as u64) as usize);
                assert!(trie.remove(v, l), "seed {seed}");
            }
            assert!(trie.root.is_none(), "seed {seed}");
            assert!(!trie.remove(0x0a00_0000, 8));
        }
    }
}
