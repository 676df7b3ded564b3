//! The control socket of a live run (`dvrlab run --ctl SOCKET`): a Unix stream socket,
//! readable and writable by its owner only, served by the live loop between batches, so that
//! every request sees (and changes) the state traffic is forwarded with.
//!
//! One request per connection: a line of JSON (`{"cmd": "dump-flows", ...}`), answered with
//! one JSON document (`{"ok": true, "text": ...}` or `{"ok": false, "error": ...}`), after
//! which the connection is closed. Flow changes revalidate the node's megaflow cache before
//! the next frame is forwarded.

use super::trace::{DumpFlowsOptions, TraceOptions};
use super::Engine;
use crate::ofproto::action::FlowModCommand;
use crate::ofproto::parse::parse_flow;
use serde::Deserialize;
use serde_json::json;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest request accepted (an add-flow with many flows fits).
const REQUEST_MAX: usize = 4 << 20;
/// Connections served at once; more wait in the listen backlog.
const CONNS_MAX: usize = 16;

/// A control request.
#[derive(Deserialize, Debug)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CtlRequest {
    DumpFlows {
        bridge: String,
        #[serde(default)]
        filter: String,
        #[serde(default = "yes")]
        stats: bool,
        #[serde(default)]
        names: bool,
    },
    /// One or more flows (one per line), as `ovs-ofctl add-flow` / `add-flows` take them.
    AddFlow {
        bridge: String,
        flows: String,
    },
    /// `ovs-ofctl del-flows BRIDGE [FILTER]` (`--strict` with `strict`).
    DelFlows {
        bridge: String,
        #[serde(default)]
        filter: String,
        #[serde(default)]
        strict: bool,
    },
    Trace {
        #[serde(flatten)]
        options: TraceOptions,
    },
    /// `dpctl/dump-flows [-m]`.
    Dpctl {
        #[serde(default)]
        verbose: bool,
        #[serde(default)]
        names: bool,
    },
    /// `dpctl/dump-conntrack [-s]` of every node (or one).
    Conntrack {
        #[serde(default)]
        node: Option<String>,
        #[serde(default)]
        stats: bool,
    },
    Stats,
}

fn yes() -> bool {
    true
}

struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// The listening socket and the connections being read.
pub struct Ctl {
    pub path: PathBuf,
    listener: UnixListener,
    conns: Vec<Conn>,
}

impl Ctl {
    /// Listens on `path`, owner-only. A socket file left by a run that is gone is replaced;
    /// one a running instance answers on, or a file that is not a socket, is an error.
    pub fn open(path: &Path) -> Result<Ctl, String> {
        let shown = path.display();
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(format!("--ctl {shown}: exists and is not a socket"));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(format!("--ctl {shown}: another instance is listening there"));
            }
            std::fs::remove_file(path).map_err(|e| format!("--ctl {shown}: {e}"))?;
        }
        // Created owner-only from the start: no window in which others could connect.
        // SAFETY: umask only swaps the process's file mode mask.
        let old = unsafe { libc::umask(0o177) };
        let listener = UnixListener::bind(path);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let listener = listener.map_err(|e| format!("--ctl {shown}: {e}"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("--ctl {shown}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| format!("--ctl {shown}: {e}"))?;
        Ok(Ctl { path: path.to_path_buf(), listener, conns: Vec::new() })
    }

    /// Adds the descriptors to poll: the listener first, then each connection.
    pub fn push_fds(&self, fds: &mut Vec<libc::pollfd>) {
        let fd = |fd: RawFd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        fds.push(fd(self.listener.as_raw_fd()));
        fds.extend(self.conns.iter().map(|c| fd(c.stream.as_raw_fd())));
    }

    /// Accepts new connections and reads the readable ones (`polled`: what `push_fds` added,
    /// after poll); returns the complete requests, each with its connection.
    pub fn poll_requests(
        &mut self,
        polled: &[libc::pollfd],
    ) -> Vec<(UnixStream, Result<String, String>)> {
        let ready = |i: usize| polled.get(i).is_some_and(|p| p.revents != 0);
        let mut done = Vec::new();
        let mut keep = Vec::new();
        for (i, mut c) in std::mem::take(&mut self.conns).into_iter().enumerate() {
            if !ready(i + 1) {
                keep.push(c);
                continue;
            }
            let mut chunk = [0u8; 65536];
            let mut eof = false;
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
                if c.buf.len() > REQUEST_MAX {
                    break;
                }
            }
            if c.buf.len() > REQUEST_MAX {
                done.push((c.stream, Err(format!("request larger than {REQUEST_MAX} bytes"))));
            } else if let Some(end) = c.buf.iter().position(|&b| b == b'\n') {
                let text = String::from_utf8_lossy(&c.buf[..end]).into_owned();
                done.push((c.stream, Ok(text)));
            } else if eof {
                if !c.buf.is_empty() {
                    let text = String::from_utf8_lossy(&c.buf).into_owned();
                    done.push((c.stream, Ok(text)));
                }
            } else {
                keep.push(c);
            }
        }
        self.conns = keep;
        if ready(0) {
            while self.conns.len() < CONNS_MAX {
                match self.listener.accept() {
                    Ok((s, _)) => {
                        if s.set_nonblocking(true).is_ok() {
                            self.conns.push(Conn { stream: s, buf: Vec::new() });
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        done
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes the answer and closes the connection; a client that went away is not an error.
pub fn answer(mut stream: UnixStream, reply: &serde_json::Value) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut text = reply.to_string();
    text.push('\n');
    let _ = stream.write_all(text.as_bytes());
}

impl Engine {
    /// Carries out one control request against the running state. `stats` is the live run's
    /// counters so far (for `stats`).
    pub fn control(
        &mut self,
        text: &str,
        stats: impl FnOnce(&mut Engine) -> serde_json::Value,
    ) -> serde_json::Value {
        let req: CtlRequest = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => return json!({"ok": false, "error": format!("bad request: {e}")}),
        };
        match self.control_request(req, stats) {
            Ok(v) => v,
            Err(e) => json!({"ok": false, "error": e}),
        }
    }

    fn control_request(
        &mut self,
        req: CtlRequest,
        stats: impl FnOnce(&mut Engine) -> serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        Ok(match req {
            CtlRequest::DumpFlows { bridge, filter, stats, names } => {
                let (text, flows) =
                    self.dump_flows(&DumpFlowsOptions { bridge, filter, stats, names })?;
                json!({"ok": true, "text": text, "flows": flows})
            }
            CtlRequest::AddFlow { bridge, flows } => {
                let r = self.flow_mods(&bridge, &flows, FlowModCommand::Add)?;
                json!({"ok": true, "text": r})
            }
            CtlRequest::DelFlows { bridge, filter, strict } => {
                let cmd =
                    if strict { FlowModCommand::DeleteStrict } else { FlowModCommand::Delete };
                let r = self.flow_mods(&bridge, &filter, cmd)?;
                json!({"ok": true, "text": r})
            }
            CtlRequest::Trace { options } => {
                let report = self.trace(&options)?;
                json!({"ok": true, "text": self.format_trace(&report), "trace": self.trace_json(&report)})
            }
            CtlRequest::Dpctl { verbose, names } => {
                json!({"ok": true, "text": self.dump_megaflows(verbose, names)})
            }
            CtlRequest::Conntrack { node, stats } => {
                let mut text = String::new();
                let mut found = node.is_none();
                for n in &self.nodes {
                    if node.as_deref().is_some_and(|w| w != n.name) {
                        continue;
                    }
                    found = true;
                    if !self.one_node {
                        text.push_str(&format!("{}:\n", n.name));
                    }
                    for v in n.dp.ct.dump(n.dp.of.now_ms) {
                        text.push_str(&crate::conntrack::format_conn(&v, stats));
                        text.push('\n');
                    }
                }
                if !found {
                    return Err(format!("conntrack: no node {}", node.unwrap_or_default()));
                }
                json!({"ok": true, "text": text})
            }
            CtlRequest::Stats => {
                let s = stats(self);
                json!({"ok": true, "text": format!("{s:#}\n"), "stats": s})
            }
        })
    }

    /// Applies flow-mods (one per line; `#` comments and blank lines skipped; an empty text
    /// with a delete means every flow) to `bridge`, then revalidates the node's megaflows so
    /// that the next frame already sees the change. Nothing is applied unless every line
    /// parses.
    pub fn flow_mods(
        &mut self,
        bridge: &str,
        text: &str,
        cmd: FlowModCommand,
    ) -> Result<String, String> {
        let (ni, bi) = self.resolve_bridge(bridge)?;
        let is_delete = matches!(cmd, FlowModCommand::Delete | FlowModCommand::DeleteStrict);
        let mut lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if lines.is_empty() {
            if !is_delete {
                return Err("add-flow: no flow given".into());
            }
            lines.push((1, ""));
        }
        let at = |n: usize, e: &dyn std::fmt::Display| {
            if lines.len() > 1 {
                format!("line {n}: {e}")
            } else {
                e.to_string()
            }
        };
        let mut fms = Vec::new();
        {
            let b = &self.nodes[ni].dp.of.bridges[bi];
            for (n, l) in &lines {
                fms.push(parse_flow(l, cmd, b).map_err(|e| at(*n, &e))?);
            }
        }
        let dp = &mut self.nodes[ni].dp;
        let (mut added, mut modified, mut deleted) = (0, 0, 0);
        for (fm, (n, _)) in fms.iter().zip(&lines) {
            let of = &mut dp.of;
            let now = of.now_ms;
            let r = of.bridges[bi]
                .tables
                .apply(fm, &mut of.next_rule_id, now)
                .map_err(|e| at(*n, &e))?;
            added += r.added;
            modified += r.modified;
            deleted += r.deleted;
        }
        let before = dp.megaflows.len();
        dp.revalidate();
        let removed = before - dp.megaflows.len();
        Ok(format!(
            "{added} added, {modified} modified, {deleted} deleted; \
             {removed} cached megaflows revalidated away\n"
        ))
    }
}
