//! The trace recorder: while translation runs with one attached, every table lookup, action
//! and decision is appended to a tree, which prints in the layout of `ovs-appctl
//! ofproto/trace` (OVS >= 2.7). Tracing runs the real translator; this module only records
//! and prints.
//!
//! The tree has OVS's node types. Translation appends to a *current list*: a table lookup
//! appends a table node and makes its children current while the rule's actions run; crossing
//! a patch port appends a bridge node and makes its children current. Printing follows
//! `oftrace_node_print_details`: a node is indented one step further when more nodes follow it
//! in its list (or when it is terminal), which is what puts a resubmit in tail position back at
//! the left margin.

/// The kind of a trace node (OVS `enum oftrace_node_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeType {
    Bridge,
    Table,
    Thaw,
    Action,
    Detail,
    Warn,
    Error,
}

impl NodeType {
    fn is_terminal(self) -> bool {
        matches!(self, NodeType::Action | NodeType::Detail | NodeType::Warn | NodeType::Error)
    }
}

/// One node of the trace tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceNode {
    pub ty: NodeType,
    pub text: String,
    pub subs: Vec<TraceNode>,
    /// For a bridge or namespace node: the flow as it entered (not printed; in the JSON form,
    /// so that a reader can say what each hop changed).
    pub flow: Option<Box<crate::flow::FlowKey>>,
    /// For a bridge node: the ports it sent the packet out of (a VM's or a NIC's port, or
    /// `underlay` for a tunnel), each with the flow as it left. Not printed either.
    pub emitted: Vec<(String, crate::flow::FlowKey)>,
}

/// A trace being recorded.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub root: Vec<TraceNode>,
    /// Path (child indexes from the root) of the node whose children are the current list;
    /// empty = the root list.
    cursor: Vec<usize>,
}

impl Trace {
    pub fn new() -> Trace {
        Trace::default()
    }

    fn current(&mut self) -> &mut Vec<TraceNode> {
        let mut list = &mut self.root;
        for &i in &self.cursor {
            list = &mut list[i].subs;
        }
        list
    }

    /// Appends a node to the current list.
    pub fn report(&mut self, ty: NodeType, text: impl Into<String>) {
        self.current().push(TraceNode {
            ty,
            text: text.into(),
            subs: Vec::new(),
            flow: None,
            emitted: Vec::new(),
        });
    }

    /// Appends a node and makes its children the current list. Returns the cursor to restore
    /// with `leave` when the node's activity is over.
    pub fn enter(&mut self, ty: NodeType, text: impl Into<String>) -> Vec<usize> {
        self.enter_with_flow(ty, text, None)
    }

    /// As `enter`, keeping the flow the node starts with.
    pub fn enter_with_flow(
        &mut self,
        ty: NodeType,
        text: impl Into<String>,
        flow: Option<Box<crate::flow::FlowKey>>,
    ) -> Vec<usize> {
        let saved = self.cursor.clone();
        let list = self.current();
        list.push(TraceNode { ty, text: text.into(), subs: Vec::new(), flow, emitted: Vec::new() });
        let i = list.len() - 1;
        self.cursor.push(i);
        saved
    }

    /// Notes that the innermost open bridge sent the packet out of `port`, as `flow`.
    pub fn note_emitted(&mut self, port: String, flow: crate::flow::FlowKey) {
        // The depth, on the cursor's path, of the last bridge node.
        let mut at: Option<usize> = None;
        let mut l = &self.root;
        for (depth, &i) in self.cursor.iter().enumerate() {
            if l[i].ty == NodeType::Bridge {
                at = Some(depth);
            }
            l = &l[i].subs;
        }
        let Some(depth) = at else { return };
        let mut l = &mut self.root;
        for &i in &self.cursor[..depth] {
            l = &mut l[i].subs;
        }
        l[self.cursor[depth]].emitted.push((port, flow));
    }

    /// Restores the current list saved by `enter`.
    pub fn leave(&mut self, saved: Vec<usize>) {
        self.cursor = saved;
    }

    /// Prints the tree as ofproto/trace does.
    pub fn print(&self) -> String {
        let mut out = String::new();
        print_list(&mut out, &self.root, 0);
        out
    }
}

fn print_list(out: &mut String, nodes: &[TraceNode], level: usize) {
    for (i, n) in nodes.iter().enumerate() {
        if n.ty == NodeType::Bridge {
            out.push('\n');
        }
        let more = usize::from(i + 1 < nodes.len() || n.ty.is_terminal());
        let indent = " ".repeat((level + more) * 4);
        out.push_str(&indent);
        match n.ty {
            NodeType::Detail => out.push_str(&format!(" -> {}\n", n.text)),
            NodeType::Warn => out.push_str(&format!(" >> {}\n", n.text)),
            NodeType::Error => out.push_str(&format!(" >>>> {} <<<<\n", n.text)),
            NodeType::Bridge => {
                out.push_str(&n.text);
                out.push('\n');
                out.push_str(&indent);
                out.push_str(&"-".repeat(n.text.len()));
                out.push('\n');
            }
            NodeType::Table | NodeType::Thaw | NodeType::Action => {
                out.push_str(&n.text);
                out.push('\n');
            }
        }
        print_list(out, &n.subs, level + 2 * more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout example of cli-conventions §3: a resubmit with actions after it nests, a
    /// resubmit in tail position goes back to the margin.
    #[test]
    fn nesting_follows_ovs() {
        let mut t = Trace::new();
        let b = t.enter(NodeType::Bridge, "bridge(\"br0\")");
        let t0 = t.enter(NodeType::Table, " 0. in_port=1, priority 100, cookie 0x5");
        t.report(NodeType::Action, "resubmit(,10)");
        let t10 = t.enter(NodeType::Table, "10. tcp,tp_dst=80, priority 200");
        t.report(NodeType::Action, "set_field:aa:bb:cc:dd:ee:ff->eth_dst");
        t.leave(t10);
        t.report(NodeType::Action, "resubmit(,1)");
        let t1 = t.enter(NodeType::Table, " 1. priority 0");
        t.report(NodeType::Action, "output:2");
        t.report(NodeType::Detail, "forwarding to learned port");
        t.leave(t1);
        t.leave(t0);
        t.leave(b);
        let want =
            "\nbridge(\"br0\")\n-------------\n 0. in_port=1, priority 100, cookie 0x5\n    \
                    resubmit(,10)\n    10. tcp,tp_dst=80, priority 200\n            \
                    set_field:aa:bb:cc:dd:ee:ff->eth_dst\n    resubmit(,1)\n 1. priority 0\n    \
                    output:2\n     -> forwarding to learned port\n";
        assert_eq!(t.print(), want);
    }
}
