//! A bridge's OpenFlow tables: rules with counters and timeouts, and flow-mods applied to
//! them with OpenFlow semantics (add replaces an identical match and priority; loose modify
//! and delete select every rule at least as specific as the given match; strict ones select
//! the exact match and priority; cookie masks and `out_port` filter).
//!
//! Rules are shared (`Arc<Rule>`) so that translation can hold one while the tables change.
//! Counters live in the rule as relaxed atomics: the datapath pushes megaflow statistics
//! into them, and dump-flows reads them.

use super::action::{port, Action, FlowFlags, FlowMod, FlowModCommand, Match};
use super::classifier::Classifier;
use crate::flow::FlowKey;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Number of OpenFlow tables per bridge (0..=254; 255 is OFPTT_ALL).
pub const N_TABLES: usize = 255;

/// One installed flow.
#[derive(Debug)]
pub struct Rule {
    pub id: u64, // unique per datapath, never reused
    pub table: u8,
    pub priority: u16,
    pub mat: Match,
    pub cookie: u64,
    pub actions: Vec<Action>,
    pub idle_timeout: u16, // seconds; 0 = never
    pub hard_timeout: u16, // seconds; 0 = never
    pub importance: u16,
    pub flags: FlowFlags,
    pub created_ms: u64,        // datapath clock at install
    pub modified_ms: AtomicU64, // last add/modify that touched it (hard timeout base)
    pub used_ms: AtomicU64,     // last packet; 0 = never
    pub n_packets: AtomicU64,
    pub n_bytes: AtomicU64,
}

impl Rule {
    /// Adds packets and bytes to the counters and refreshes the idle time.
    #[inline]
    pub fn credit(&self, packets: u64, bytes: u64, now_ms: u64) {
        if packets > 0 {
            self.n_packets.fetch_add(packets, Relaxed);
            self.n_bytes.fetch_add(bytes, Relaxed);
            self.used_ms.fetch_max(now_ms, Relaxed);
        }
    }

    /// True when the rule has an output (or output-like) action to `p`, for `out_port`.
    pub fn outputs_to(&self, p: u32) -> bool {
        fn any(actions: &[Action], p: u32) -> bool {
            actions.iter().any(|a| match a {
                Action::Output { port, .. } => *port == p,
                Action::Ct(ct) => any(&ct.exec, p),
                _ => false,
            })
        }
        p == port::NONE || any(&self.actions, p)
    }

    /// True when the idle or hard timeout has passed at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        let hard = self.hard_timeout as u64 * 1000;
        let idle = self.idle_timeout as u64 * 1000;
        if hard > 0 && now_ms >= self.modified_ms.load(Relaxed) + hard {
            return true;
        }
        if idle > 0 {
            let last = self.used_ms.load(Relaxed).max(self.modified_ms.load(Relaxed));
            if now_ms >= last + idle {
                return true;
            }
        }
        false
    }
}

/// Why a flow-mod was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowModError {
    /// `check_overlap` found a rule of the same priority that overlaps.
    Overlap,
    /// The table number is out of range.
    BadTable(u16),
}

impl std::fmt::Display for FlowModError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlowModError::Overlap => write!(f, "flow overlaps an existing flow (check_overlap)"),
            FlowModError::BadTable(t) => write!(f, "table {t} out of range (0-254)"),
        }
    }
}

/// What a flow-mod changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlowModResult {
    pub added: u32,
    pub modified: u32,
    pub deleted: u32,
}

impl FlowModResult {
    /// True when the tables changed, so cached megaflows must be revalidated.
    pub fn changed(&self) -> bool {
        self.added + self.modified + self.deleted > 0
    }
}

/// The tables of one bridge.
pub struct Tables {
    tables: Vec<Classifier<Arc<Rule>>>,
    /// Whether some rule may have an idle or hard timeout (false: `expire` has nothing to
    /// look at).
    timed: bool,
}

impl Default for Tables {
    fn default() -> Self {
        Tables::new()
    }
}

/// True when rule match `r` is at least as specific as filter `f` and agrees with it: every
/// bit the filter matches, the rule matches too, with the same value (OpenFlow "loose").
fn loose_covers(f: &Match, r: &Match) -> bool {
    let (fm, fk, rm, rk) = (f.mask.words(), f.key.words(), r.mask.words(), r.key.words());
    (0..fm.len()).all(|i| fm[i] & !rm[i] == 0 && (rk[i] & fm[i]) == fk[i])
}

impl Tables {
    pub fn new() -> Tables {
        Tables { tables: (0..N_TABLES).map(|_| Classifier::new()).collect(), timed: false }
    }

    /// The classifier of table `t`.
    #[inline(always)]
    pub fn table(&self, t: u8) -> Option<&Classifier<Arc<Rule>>> {
        self.tables.get(t as usize)
    }

    /// Finds the highest-priority rule in table `t` for `key`, un-wildcarding into `wc`.
    #[inline]
    pub fn lookup(&self, t: u8, key: &FlowKey, wc: Option<&mut FlowKey>) -> Option<&Arc<Rule>> {
        self.tables.get(t as usize)?.lookup(key, wc).map(|e| &e.value)
    }

    /// Every rule, table by table.
    pub fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.tables.iter().flat_map(|c| c.iter().map(|e| &e.value))
    }

    /// Number of rules in all tables.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|c| c.len()).sum()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn selected(&self, fm: &FlowMod, strict: bool) -> Vec<Arc<Rule>> {
        let tables: Vec<usize> = match fm.table {
            Some(t) => vec![t as usize],
            None => (0..N_TABLES).collect(),
        };
        let mut out = Vec::new();
        for t in tables {
            let Some(cls) = self.tables.get(t) else { continue };
            for e in cls.iter() {
                let r = &e.value;
                let m = if strict {
                    r.priority == fm.priority && r.mat == fm.mat
                } else {
                    loose_covers(&fm.mat, &r.mat)
                };
                if m && (r.cookie & fm.cookie_mask) == (fm.cookie & fm.cookie_mask)
                    && fm.out_port.is_none_or(|p| r.outputs_to(p))
                {
                    out.push(r.clone());
                }
            }
        }
        out
    }

    fn new_rule(fm: &FlowMod, table: u8, id: u64, now_ms: u64) -> Rule {
        Rule {
            id,
            table,
            priority: fm.priority,
            mat: fm.mat,
            cookie: fm.cookie,
            actions: fm.actions.clone(),
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            importance: fm.importance,
            flags: fm.flags,
            created_ms: now_ms,
            modified_ms: AtomicU64::new(now_ms),
            used_ms: AtomicU64::new(0),
            n_packets: AtomicU64::new(0),
            n_bytes: AtomicU64::new(0),
        }
    }

    /// Applies one flow-mod. `next_id` hands out rule ids.
    pub fn apply(
        &mut self,
        fm: &FlowMod,
        next_id: &mut u64,
        now_ms: u64,
    ) -> Result<FlowModResult, FlowModError> {
        let mut res = FlowModResult::default();
        match fm.command {
            FlowModCommand::Add => {
                let t = fm.table.unwrap_or(0);
                if t as usize >= N_TABLES {
                    return Err(FlowModError::BadTable(t as u16));
                }
                let cls = &mut self.tables[t as usize];
                if fm.flags.check_overlap {
                    let overlaps = cls.iter().map(|e| &e.value).any(|r| {
                        r.priority == fm.priority && r.mat != fm.mat && overlap(&r.mat, &fm.mat)
                    });
                    if overlaps {
                        return Err(FlowModError::Overlap);
                    }
                }
                let mut rule = Self::new_rule(fm, t, *next_id, now_ms);
                *next_id += 1;
                if let Some(old) = cls.find_exactly(&fm.mat, fm.priority).map(|e| e.value.clone()) {
                    // An identical match and priority is replaced; OpenFlow keeps the
                    // counters only when asked not to reset them (OVS: keep unless
                    // reset_counts).
                    if !fm.flags.reset_counts {
                        rule.n_packets = AtomicU64::new(old.n_packets.load(Relaxed));
                        rule.n_bytes = AtomicU64::new(old.n_bytes.load(Relaxed));
                        rule.used_ms = AtomicU64::new(old.used_ms.load(Relaxed));
                    }
                    res.modified += 1;
                } else {
                    res.added += 1;
                }
                self.timed |= rule.idle_timeout != 0 || rule.hard_timeout != 0;
                cls.replace(fm.mat, fm.priority, Arc::new(rule));
            }
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
                let strict = fm.command == FlowModCommand::ModifyStrict;
                let victims = self.selected(fm, strict);
                if victims.is_empty() {
                    // OpenFlow 1.0 (what ovs-ofctl speaks by default): a modify that matches
                    // nothing adds the flow.
                    let mut add = fm.clone();
                    add.command = FlowModCommand::Add;
                    add.cookie_mask = 0;
                    return self.apply(&add, next_id, now_ms);
                }
                for old in victims {
                    let mut rule = Self::new_rule(fm, old.table, *next_id, old.created_ms);
                    *next_id += 1;
                    rule.priority = old.priority;
                    rule.mat = old.mat;
                    rule.cookie = if fm.cookie_mask == 0 { fm.cookie } else { old.cookie };
                    rule.idle_timeout = old.idle_timeout;
                    rule.hard_timeout = old.hard_timeout;
                    rule.modified_ms = AtomicU64::new(now_ms);
                    if !fm.flags.reset_counts {
                        rule.n_packets = AtomicU64::new(old.n_packets.load(Relaxed));
                        rule.n_bytes = AtomicU64::new(old.n_bytes.load(Relaxed));
                        rule.used_ms = AtomicU64::new(old.used_ms.load(Relaxed));
                    }
                    self.timed |= rule.idle_timeout != 0 || rule.hard_timeout != 0;
                    let cls = &mut self.tables[old.table as usize];
                    cls.replace(old.mat, old.priority, Arc::new(rule));
                    res.modified += 1;
                }
            }
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
                let strict = fm.command == FlowModCommand::DeleteStrict;
                for old in self.selected(fm, strict) {
                    remove_exactly(&mut self.tables[old.table as usize], &old.mat, old.priority);
                    res.deleted += 1;
                }
            }
        }
        Ok(res)
    }

    /// Installs or refreshes a flow learned by `learn(...)`: an identical flow (same match,
    /// priority and actions) only has its timeouts refreshed, as OVS does; otherwise it is
    /// added (replacing a flow with the same match and priority). Returns true when the
    /// tables changed.
    pub fn learn(&mut self, fm: &FlowMod, next_id: &mut u64, now_ms: u64) -> bool {
        let t = fm.table.unwrap_or(0) as usize;
        if t >= N_TABLES {
            return false;
        }
        if let Some(old) = self.tables[t].find_exactly(&fm.mat, fm.priority).map(|e| &e.value) {
            if old.actions == fm.actions
                && old.idle_timeout == fm.idle_timeout
                && old.hard_timeout == fm.hard_timeout
                && old.cookie == fm.cookie
            {
                old.modified_ms.store(now_ms, Relaxed);
                return false;
            }
        }
        self.apply(fm, next_id, now_ms).map(|r| r.changed()).unwrap_or(false)
    }

    /// Removes rules whose idle or hard timeout has passed. Returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        if !self.timed {
            return 0;
        }
        let mut victims = Vec::new();
        let mut timed = false; // a rule with a timeout stays
        for cls in &self.tables {
            for r in cls.iter().map(|e| &e.value) {
                if r.expired(now_ms) {
                    victims.push(r.clone());
                } else if r.idle_timeout != 0 || r.hard_timeout != 0 {
                    timed = true;
                }
            }
        }
        self.timed = timed;
        for r in &victims {
            remove_exactly(&mut self.tables[r.table as usize], &r.mat, r.priority);
        }
        victims.len()
    }
}

fn remove_exactly(cls: &mut Classifier<Arc<Rule>>, mat: &Match, priority: u16) {
    if let Some(id) = cls.find_exactly(mat, priority).map(|e| e.id) {
        cls.remove(id);
    }
}

/// True when some packet could match both (every bit both match agrees).
fn overlap(a: &Match, b: &Match) -> bool {
    let (am, ak, bm, bk) = (a.mask.words(), a.key.words(), b.mask.words(), b.key.words());
    (0..am.len()).all(|i| (ak[i] ^ bk[i]) & am[i] & bm[i] == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FieldId;

    fn fm(cmd: FlowModCommand, table: Option<u8>, prio: u16, port: Option<u32>) -> FlowMod {
        let mut m = Match::catchall();
        if let Some(p) = port {
            m.set_field(FieldId::InPort, p as u128);
        }
        FlowMod {
            command: cmd,
            table,
            priority: prio,
            mat: m,
            actions: vec![Action::Output { port: 2, max_len: 0 }],
            ..FlowMod::default()
        }
    }

    #[test]
    fn add_replace_modify_delete() {
        let mut t = Tables::new();
        let mut id = 1;
        let r = t.apply(&fm(FlowModCommand::Add, None, 10, Some(1)), &mut id, 0).unwrap();
        assert_eq!(r.added, 1);
        let r = t.apply(&fm(FlowModCommand::Add, None, 10, Some(1)), &mut id, 0).unwrap();
        assert_eq!((r.added, r.modified), (0, 1));
        t.apply(&fm(FlowModCommand::Add, Some(3), 5, None), &mut id, 0).unwrap();
        assert_eq!(t.len(), 2);
        // Loose delete with an empty match in all tables removes everything.
        let r = t.apply(&fm(FlowModCommand::Delete, None, 0, None), &mut id, 0).unwrap();
        assert_eq!(r.deleted, 2);
        assert!(t.is_empty());
    }

    #[test]
    fn strict_delete_needs_exact_priority() {
        let mut t = Tables::new();
        let mut id = 1;
        t.apply(&fm(FlowModCommand::Add, None, 10, Some(1)), &mut id, 0).unwrap();
        let r = t.apply(&fm(FlowModCommand::DeleteStrict, Some(0), 11, Some(1)), &mut id, 0);
        assert_eq!(r.unwrap().deleted, 0);
        let r = t.apply(&fm(FlowModCommand::DeleteStrict, Some(0), 10, Some(1)), &mut id, 0);
        assert_eq!(r.unwrap().deleted, 1);
    }

    #[test]
    fn timeouts_expire() {
        let mut t = Tables::new();
        let mut id = 1;
        let mut f = fm(FlowModCommand::Add, None, 10, Some(1));
        f.hard_timeout = 2;
        t.apply(&f, &mut id, 1000).unwrap();
        assert_eq!(t.expire(2999), 0);
        assert_eq!(t.expire(3000), 1);
        // Rules without timeouts never expire; a timed rule added after the last timed one
        // went still does.
        t.apply(&fm(FlowModCommand::Add, None, 20, Some(2)), &mut id, 3000).unwrap();
        assert_eq!(t.expire(1_000_000), 0);
        let mut g = fm(FlowModCommand::Add, None, 30, Some(3));
        g.idle_timeout = 5;
        t.apply(&g, &mut id, 1_000_000).unwrap();
        assert_eq!(t.expire(1_004_999), 0);
        assert_eq!(t.expire(1_005_000), 1);
        assert_eq!(t.len(), 1);
    }
}
