//! OpenFlow actions, flow matches and flow-mods: what `ovs-ofctl add-flow` text parses into.
//!
//! Port numbers are OpenFlow port numbers of one bridge, with the OpenFlow 1.0 reserved
//! values for the special ports (`port::IN_PORT` .. `port::NONE`), as OVS keeps them
//! internally. `LOCAL` is 65534 (`0xfffe`), the bridge's own internal port.

use crate::flow::{FieldId, FlowKey, Subfield};
use std::net::IpAddr;

/// Reserved OpenFlow port numbers (OpenFlow 1.0 values, as OVS uses internally).
pub mod port {
    pub const MAX: u32 = 0xff00;
    pub const IN_PORT: u32 = 0xfff8;
    pub const TABLE: u32 = 0xfff9;
    pub const NORMAL: u32 = 0xfffa;
    pub const FLOOD: u32 = 0xfffb;
    pub const ALL: u32 = 0xfffc;
    pub const CONTROLLER: u32 = 0xfffd;
    pub const LOCAL: u32 = 0xfffe;
    pub const NONE: u32 = 0xffff;

    /// The name ovs-ofctl prints for a reserved port, if `p` is one.
    pub fn reserved_name(p: u32) -> Option<&'static str> {
        Some(match p {
            IN_PORT => "IN_PORT",
            TABLE => "TABLE",
            NORMAL => "NORMAL",
            FLOOD => "FLOOD",
            ALL => "ALL",
            CONTROLLER => "CONTROLLER",
            LOCAL => "LOCAL",
            NONE => "NONE",
            _ => return None,
        })
    }

    /// Parses a reserved port name (any case), as ovs-ofctl does.
    pub fn by_reserved_name(s: &str) -> Option<u32> {
        Some(match s.to_ascii_uppercase().as_str() {
            "IN_PORT" => IN_PORT,
            "TABLE" => TABLE,
            "NORMAL" => NORMAL,
            "FLOOD" => FLOOD,
            "ALL" => ALL,
            "CONTROLLER" => CONTROLLER,
            "LOCAL" => LOCAL,
            "NONE" | "ANY" => NONE,
            _ => return None,
        })
    }
}

/// A match: a key and a mask over it. `key` is always pre-masked (`key & mask == key`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Match {
    pub key: FlowKey,
    pub mask: FlowKey,
}

impl Match {
    /// The match-everything match.
    pub fn catchall() -> Match {
        Match { key: FlowKey::ZERO, mask: FlowKey::ZERO }
    }

    /// Restricts the match to `field & mask == value & mask`.
    pub fn set_field_masked(&mut self, field: FieldId, value: u128, mask: u128) {
        let f = field.field();
        f.unwildcard(&mut self.mask, mask);
        f.set_masked(&mut self.key, value & mask, mask);
    }

    /// Restricts the match to `field == value`.
    pub fn set_field(&mut self, field: FieldId, value: u128) {
        self.set_field_masked(field, value, field.field().all_ones());
    }

    /// True when a packet with key `k` matches.
    #[inline(always)]
    pub fn matches(&self, k: &FlowKey) -> bool {
        k.matches(&self.key, &self.mask)
    }
}

/// Where `ct(zone=...)` takes its zone from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtZone {
    Imm(u16),
    Field(Subfield),
}

/// `nat(...)` inside `ct(...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatSpec {
    pub kind: NatKind,
    /// Address range; `None` for a bare `nat` (un-NAT of an existing connection only).
    pub addrs: Option<(IpAddr, IpAddr)>,
    /// Port range (0, 0 = not given).
    pub ports: (u16, u16),
    pub random: bool,
    pub hash: bool,
    pub persistent: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// Bare `nat`: apply the NAT of an existing connection, set nothing up.
    Any,
    Src,
    Dst,
}

/// `ct(...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtAction {
    pub commit: bool,
    pub force: bool,
    pub zone: CtZone,
    /// Recirculate to this table after conntrack; `None` = continue without recirculation.
    pub table: Option<u8>,
    pub nat: Option<NatSpec>,
    /// `exec(...)`: only `set_field`/`load` of `ct_mark` (and `ct_label`) are allowed.
    pub exec: Vec<Action>,
    /// `alg=ftp|tftp` (accepted and ignored: no ALG support).
    pub alg: Option<u16>,
}

/// One part of a `learn(...)` specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LearnPart {
    /// `dst=src` or `field` alone (then src = dst): the learned flow matches `dst` against
    /// the value `src` has in the packet being processed.
    MatchField { dst: Subfield, src: Subfield },
    /// `dst=value`: the learned flow matches `dst` against a constant.
    MatchImm { dst: Subfield, value: u128 },
    /// `load:src->dst`: the learned flow loads the packet's current `src` into `dst`.
    LoadField { src: Subfield, dst: Subfield },
    /// `load:value->dst`.
    LoadImm { value: u128, dst: Subfield },
    /// `output:src`: the learned flow outputs to the port held in `src`.
    OutputField { src: Subfield },
}

/// `learn(...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LearnSpec {
    pub table: u8, // default 1, as OVS
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub fin_idle_timeout: u16,
    pub fin_hard_timeout: u16,
    pub cookie: u64,
    pub send_flow_rem: bool,
    pub delete_learned: bool,
    pub parts: Vec<LearnPart>,
}

/// How an action was written, so that dump-flows can print it back the way it came in
/// (`mod_dl_src:M` stays `mod_dl_src:M`), while trace prints the normalised `set_field` form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Spelling {
    #[default]
    SetField,
    /// `mod_dl_src:`, `mod_nw_dst:`, `mod_tp_src:`, `mod_nw_tos:`, `mod_nw_ecn:`, ...
    Mod,
    /// `load:V->F[]`.
    Load,
    /// `set_tunnel:` / `set_tunnel64:`.
    SetTunnel,
}

/// One OpenFlow action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `output:P`, a bare port number, or a reserved port (`NORMAL`, `FLOOD`, `ALL`,
    /// `LOCAL`, `IN_PORT`, `CONTROLLER`); `max_len` only for the controller.
    Output { port: u32, max_len: u16 },
    /// `output:NXM_NX_REG0[0..15]`.
    OutputReg(Subfield),
    /// `goto_table:N` (OpenFlow 1.1+ instruction).
    GotoTable(u8),
    /// `resubmit:P`, `resubmit(P,T)`, `resubmit(,T)`, `resubmit(,T,ct)`.
    Resubmit { in_port: Option<u32>, table: Option<u8>, ct: bool },
    /// `set_field:V/M->F`, `mod_*`, `load:V->F[a..b]` (as a masked write), `set_tunnel`.
    SetField { field: FieldId, value: u128, mask: u128, spelling: Spelling },
    /// `move:SRC[..]->DST[..]`.
    Move { src: Subfield, dst: Subfield },
    /// `push_vlan:0x8100`.
    PushVlan(u16),
    /// `pop_vlan`, or `strip_vlan` (`strip` = true) which prints differently.
    PopVlan { strip: bool },
    /// `mod_vlan_vid:N` (pushes a tag when there is none, as OVS).
    ModVlanVid(u16),
    /// `mod_vlan_pcp:N` (pushes a tag when there is none, as OVS).
    ModVlanPcp(u8),
    /// `dec_ttl`.
    DecTtl,
    /// `ct(...)`.
    Ct(Box<CtAction>),
    /// `ct_clear`.
    CtClear,
    /// `learn(...)`.
    Learn(Box<LearnSpec>),
    /// `note:...` (no effect).
    Note(Vec<u8>),
    /// `exit`: stop executing actions.
    Exit,
    /// `drop` written explicitly (an empty action list drops too).
    Drop,
}

/// What a flow-mod line does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowModCommand {
    Add,
    Modify,
    ModifyStrict,
    Delete,
    DeleteStrict,
}

/// Flags of a flow (`send_flow_rem`, `check_overlap`, `reset_counts`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowFlags {
    pub send_flow_rem: bool,
    pub check_overlap: bool,
    pub reset_counts: bool,
    pub no_packet_counts: bool,
    pub no_byte_counts: bool,
}

/// One parsed line of ovs-ofctl flow text.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowMod {
    pub command: FlowModCommand,
    /// `table=N`; `None` means table 0 for add, and "all tables" for modify / delete.
    pub table: Option<u8>,
    pub priority: u16, // default 32768
    pub cookie: u64,
    /// For modify / delete: `cookie=V/M` filters with this mask (0 = no filter).
    pub cookie_mask: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub importance: u16,
    pub flags: FlowFlags,
    /// `out_port=P` filter for delete.
    pub out_port: Option<u32>,
    pub mat: Match,
    pub actions: Vec<Action>,
}

impl Default for FlowMod {
    fn default() -> Self {
        FlowMod {
            command: FlowModCommand::Add,
            table: None,
            priority: 32768,
            cookie: 0,
            cookie_mask: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            importance: 0,
            flags: FlowFlags::default(),
            out_port: None,
            mat: Match::catchall(),
            actions: Vec::new(),
        }
    }
}

/// Prints `nat`, `nat(src=A-B:P-Q,random)` as OVS does.
pub fn format_nat(n: &NatSpec) -> String {
    let mut s = String::from("nat");
    let kind = match n.kind {
        NatKind::Any => None,
        NatKind::Src => Some("src"),
        NatKind::Dst => Some("dst"),
    };
    if let Some(k) = kind {
        s.push('(');
        s.push_str(k);
        if let Some((a, b)) = n.addrs {
            let fmt_ip = |ip: IpAddr| match ip {
                IpAddr::V4(v) => v.to_string(),
                IpAddr::V6(v) => format!("[{v}]"),
            };
            s.push('=');
            s.push_str(&fmt_ip(a));
            if a != b {
                s.push('-');
                s.push_str(&fmt_ip(b));
            }
            if n.ports.0 != 0 || n.ports.1 != 0 {
                s.push_str(&format!(":{}", n.ports.0));
                if n.ports.1 != n.ports.0 {
                    s.push_str(&format!("-{}", n.ports.1));
                }
            }
        }
        for (flag, on) in [("random", n.random), ("hash", n.hash), ("persistent", n.persistent)] {
            if on {
                s.push(',');
                s.push_str(flag);
            }
        }
        s.push(')');
    }
    s
}
