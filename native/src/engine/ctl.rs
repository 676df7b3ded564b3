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
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// A client has this long to send its whole request line, and then to read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One client connection: reading its request, then writing its answer.
struct Conn {
    id: u64,
    stream: UnixStream,
    /// The client's process (SO_PEERCRED), to name it in reports.
    pid: Option<i32>,
    buf: Vec<u8>,
    /// The answer, and how much of it was written; None while the request is read.
    out: Option<(Vec<u8>, usize)>,
    /// When the request (or the answer) must be done.
    deadline: Instant,
    closed: bool,
}

impl Conn {
    fn client(&self) -> String {
        match self.pid {
            Some(p) => format!("control client (pid {p})"),
            None => "control client".to_string(),
        }
    }
}

/// The listening socket and the connections being served. Nothing here blocks: requests are
/// read and answers written as far as the socket takes them, between batches of frames; a
/// client that is silent, or does not read its answer, is dropped after a timeout.
pub struct Ctl {
    pub path: PathBuf,
    listener: UnixListener,
    conns: Vec<Conn>,
    next_id: u64,
    /// Reports for the user (clients that sent garbage, went silent or went away).
    pub events: Vec<String>,
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
        Ok(Ctl {
            path: path.to_path_buf(),
            listener,
            conns: Vec::new(),
            next_id: 0,
            events: Vec::new(),
        })
    }

    /// Adds the descriptors to poll: the listener first (not polled while `CONNS_MAX`
    /// connections are served), then each connection, for its request or its answer.
    pub fn push_fds(&self, fds: &mut Vec<libc::pollfd>) {
        let fd = |fd: RawFd, events| libc::pollfd { fd, events, revents: 0 };
        let accepting = if self.conns.len() < CONNS_MAX { libc::POLLIN } else { 0 };
        fds.push(fd(self.listener.as_raw_fd(), accepting));
        for c in &self.conns {
            let events = if c.out.is_some() { libc::POLLOUT } else { libc::POLLIN };
            fds.push(fd(c.stream.as_raw_fd(), events));
        }
    }

    /// Serves the connections (`polled`: what `push_fds` added, after poll): writes answers,
    /// reads requests, drops clients past their timeout, accepts new ones. Returns the
    /// complete, well-formed requests, each with its connection's id for `answer`; a request
    /// that is not one is answered here with an error.
    pub fn poll_requests(&mut self, polled: &[libc::pollfd]) -> Vec<(u64, CtlRequest)> {
        let now = Instant::now();
        let mut done = Vec::new();
        for (i, c) in self.conns.iter_mut().enumerate() {
            let revents = polled.get(i + 1).map_or(0, |p| p.revents);
            if c.out.is_some() {
                if revents != 0 {
                    write_some(c, &mut self.events);
                }
                if !c.closed && now >= c.deadline {
                    let who = c.client();
                    self.events.push(format!(
                        "{who} did not read its answer within {} s: closed",
                        ANSWER_TIMEOUT.as_secs()
                    ));
                    c.closed = true;
                }
                continue;
            }
            let eof = if revents != 0 { read_some(c) } else { false };
            let request = if c.buf.len() > REQUEST_MAX {
                Err(format!("request larger than {REQUEST_MAX} bytes"))
            } else if let Some(end) = c.buf.iter().position(|&b| b == b'\n') {
                Ok(String::from_utf8_lossy(&c.buf[..end]).into_owned())
            } else if eof && !c.buf.is_empty() {
                Ok(String::from_utf8_lossy(&c.buf).into_owned())
            } else if eof {
                // Connected and went away without a word: nothing to answer.
                c.closed = true;
                continue;
            } else if now >= c.deadline {
                Err(format!(
                    "no complete request (a line of JSON) within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ))
            } else {
                continue;
            };
            let request = request.and_then(|text| {
                serde_json::from_str::<CtlRequest>(&text).map_err(|e| format!("bad request: {e}"))
            });
            c.buf = Vec::new();
            match request {
                Ok(r) => {
                    c.out = Some((Vec::new(), 0));
                    done.push((c.id, r));
                }
                Err(e) => {
                    let who = c.client();
                    self.events.push(format!("{who}: {e}; answered with an error"));
                    queue_answer(c, &json!({"ok": false, "error": e}), &mut self.events);
                }
            }
        }
        self.conns.retain(|c| !c.closed);
        if polled.first().is_some_and(|p| p.revents & libc::POLLIN != 0) {
            while self.conns.len() < CONNS_MAX {
                let Ok((stream, _)) = self.listener.accept() else { break };
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                self.next_id += 1;
                let pid = peer_pid(&stream);
                self.conns.push(Conn {
                    id: self.next_id,
                    stream,
                    pid,
                    buf: Vec::new(),
                    out: None,
                    deadline: now + REQUEST_TIMEOUT,
                    closed: false,
                });
            }
        }
        done
    }

    /// Answers the request `poll_requests` returned with `id`: written as far as the socket
    /// takes it now, the rest when the client reads.
    pub fn answer(&mut self, id: u64, reply: &serde_json::Value) {
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
            queue_answer(c, reply, &mut self.events);
        }
        self.conns.retain(|c| !c.closed);
    }
}

/// Reads what is waiting; returns true at end of file (or on an error: the client is gone).
fn read_some(c: &mut Conn) -> bool {
    let mut chunk = [0u8; 65536];
    loop {
        match c.stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
        if c.buf.len() > REQUEST_MAX {
            return false;
        }
    }
}

fn queue_answer(c: &mut Conn, reply: &serde_json::Value, events: &mut Vec<String>) {
    let mut text = reply.to_string();
    text.push('\n');
    c.out = Some((text.into_bytes(), 0));
    c.deadline = Instant::now() + ANSWER_TIMEOUT;
    write_some(c, events);
}

/// Writes as much of the answer as the socket takes; closes the connection once it is all
/// written, or when the client is gone (reported: it went away in the middle of the answer).
fn write_some(c: &mut Conn, events: &mut Vec<String>) {
    let Some((out, sent)) = c.out.as_mut() else { return };
    while *sent < out.len() {
        let rest = &out[*sent..];
        // SAFETY: `rest` is valid for its length. MSG_NOSIGNAL: a client that went away is
        // EPIPE here, never a SIGPIPE for the process.
        let n = unsafe {
            libc::send(
                c.stream.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            *sent += n as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return,
            io::ErrorKind::Interrupted => continue,
            _ => {
                let (sent, len) = (*sent, out.len());
                events.push(format!(
                    "{} went away after {sent} of the {len} bytes of its answer ({e})",
                    c.client()
                ));
                c.closed = true;
                return;
            }
        }
    }
    let _ = c.stream.shutdown(std::net::Shutdown::Write);
    c.closed = true;
}

/// The process at the other end of a Unix stream (SO_PEERCRED).
fn peer_pid(stream: &UnixStream) -> Option<i32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes a ucred, which `cred` is, of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0 && cred.pid > 0).then_some(cred.pid)
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
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

    /// Carries out one parsed control request (see `control`).
    pub fn control_request(
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
