//! The napi-rs binding layer: the only code that knows about JavaScript. It exposes an
//! `Engine` class whose replay runs on a libuv worker thread; JavaScript sees one call per
//! run and polls progress counters, never a call per packet.

use crate::engine::{Engine as Core, Progress, ReplayOptions};
use napi::bindgen_prelude::*;
use napi::{Env, Task};
use napi_derive::napi;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

/// The dvrlab version (the crate's).
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A scenario loaded into the datapath.
#[napi(js_name = "Engine")]
pub struct JsEngine {
    core: Arc<Mutex<Core>>,
    /// The scenario it was built from (benchmarks on several threads build more).
    scenario: Arc<String>,
    progress: Arc<Progress>,
    /// What a live run forwards between (kept open between `openLive` and `live`).
    taps: Arc<Mutex<Option<crate::engine::live::LiveSetup>>>,
}

pub struct LiveTask {
    core: Arc<Mutex<Core>>,
    progress: Arc<Progress>,
    taps: Arc<Mutex<Option<crate::engine::live::LiveSetup>>>,
}

impl Task for LiveTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        let mut core = self
            .core
            .lock()
            .map_err(|_| Error::from_reason("the engine is unusable after an earlier failure"))?;
        let mut taps = self
            .taps
            .lock()
            .map_err(|_| Error::from_reason("the TAP devices are unusable"))?
            .take()
            .ok_or_else(|| {
                Error::from_reason("nothing is open to forward between (openLive first)")
            })?;
        self.progress.done.store(0, Relaxed);
        let stats = core.run_live(&mut taps, &self.progress).map_err(Error::from_reason)?;
        // The devices close (and disappear) here.
        drop(taps);
        Ok(stats.to_json().to_string())
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

pub struct ReplayTask {
    core: Arc<Mutex<Core>>,
    progress: Arc<Progress>,
    options: ReplayOptions,
}

impl Task for ReplayTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        let mut core = self
            .core
            .lock()
            .map_err(|_| Error::from_reason("the engine is unusable after an earlier failure"))?;
        self.progress.done.store(0, Relaxed);
        self.progress.cancel.store(false, Relaxed);
        let stats = core.replay(&self.options, &self.progress).map_err(Error::from_reason)?;
        let mut json = stats.to_json();
        if let Some(t) = &stats.trace {
            json["trace_text"] = serde_json::Value::String(core.format_trace(t));
            json["trace"] = core.trace_json(t);
        }
        if !self.options.trace_packets.is_empty() {
            let traces: Vec<serde_json::Value> = stats
                .traces
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "packet": t.packet,
                        "port": t.port,
                        "drop": t.drop.map(|d| d.name()),
                        "trace": core.trace_json(&t.report),
                    })
                })
                .collect();
            json["traces"] = serde_json::Value::Array(traces);
        }
        if let Some(verbose) = self.options.dump_megaflows {
            let names = self.options.trace_names;
            json["megaflows_text"] = serde_json::Value::String(core.dump_megaflows(verbose, names));
        }
        Ok(json.to_string())
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

#[napi]
impl JsEngine {
    /// Builds the datapath from a normalised scenario (JSON text).
    #[napi(constructor)]
    pub fn new(scenario_json: String) -> Result<Self> {
        let core = Core::from_json(&scenario_json).map_err(|e| Error::from_reason(e.0))?;
        Ok(JsEngine {
            core: Arc::new(Mutex::new(core)),
            scenario: Arc::new(scenario_json),
            progress: Arc::new(Progress::default()),
            taps: Arc::new(Mutex::new(None)),
        })
    }

    /// Opens what a live run forwards between (`engine::live::LiveSpec` JSON: TAP devices,
    /// the node this process runs and its UDP underlay, the control socket). The TAP devices
    /// exist (in this network namespace, and may be moved) until the live run ends or
    /// `closeLive` is called. Returns JSON: the canonical reference of each TAP's port
    /// (`taps`) and the UDP underlay's address and peers (`underlay`).
    #[napi]
    pub fn open_live(&self, spec_json: String) -> Result<String> {
        let spec: crate::engine::live::LiveSpec = serde_json::from_str(&spec_json)
            .map_err(|e| Error::from_reason(format!("internal live spec: {e}")))?;
        let mut core = self
            .core
            .lock()
            .map_err(|_| Error::from_reason("the engine is unusable after an earlier failure"))?;
        core.live_defaults();
        let setup = core.open_live(&spec).map_err(Error::from_reason)?;
        let refs: Vec<String> = setup.taps.iter().map(|t| t.3.clone()).collect();
        let ifaces: Vec<String> = setup.ifaces.iter().map(|t| t.3.clone()).collect();
        let underlay = setup.udp.as_ref().map(|u| u.to_json());
        *self.taps.lock().map_err(|_| Error::from_reason("the TAP devices are unusable"))? =
            Some(setup);
        Ok(serde_json::json!({"taps": refs, "ifaces": ifaces, "underlay": underlay}).to_string())
    }

    /// Reports of the running live run for the user, since the last call.
    #[napi]
    pub fn live_events(&self) -> Vec<String> {
        match self.progress.events.lock() {
            Ok(mut e) => std::mem::take(&mut *e),
            Err(_) => Vec::new(),
        }
    }

    /// Closes what `openLive` opened and no live run took.
    #[napi]
    pub fn close_live(&self) {
        if let Ok(mut t) = self.taps.lock() {
            *t = None;
        }
    }

    /// Forwards between the open TAP devices on a worker thread until `cancel()`; resolves
    /// with the run's stats JSON text.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn live(&self) -> AsyncTask<LiveTask> {
        self.progress.cancel.store(false, Relaxed);
        AsyncTask::new(LiveTask {
            core: self.core.clone(),
            progress: self.progress.clone(),
            taps: self.taps.clone(),
        })
    }

    /// Runs a replay on a worker thread; resolves with the stats JSON text.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn replay(&self, options_json: String) -> Result<AsyncTask<ReplayTask>> {
        let options: ReplayOptions = serde_json::from_str(&options_json)
            .map_err(|e| Error::from_reason(format!("internal replay options: {e}")))?;
        Ok(AsyncTask::new(ReplayTask {
            core: self.core.clone(),
            progress: self.progress.clone(),
            options,
        }))
    }

    /// Progress of the running replay: [packets done, packets total].
    #[napi]
    pub fn progress(&self) -> Vec<f64> {
        vec![self.progress.done.load(Relaxed) as f64, self.progress.total.load(Relaxed) as f64]
    }

    /// Asks a running replay to stop after the current packet.
    #[napi]
    pub fn cancel(&self) {
        self.progress.cancel.store(true, Relaxed);
    }
}

pub struct BenchTask {
    core: Arc<Mutex<Core>>,
    options: crate::engine::BenchOptions,
}

impl Task for BenchTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        let mut core = self
            .core
            .lock()
            .map_err(|_| Error::from_reason("the engine is unusable after an earlier failure"))?;
        let stats = core.bench(&self.options).map_err(Error::from_reason)?;
        Ok(stats.to_json().to_string())
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

#[napi]
impl JsEngine {
    /// Replays a capture held in memory (see `engine::BenchOptions`); resolves with JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn bench(&self, options_json: String) -> Result<AsyncTask<BenchTask>> {
        let options = serde_json::from_str(&options_json)
            .map_err(|e| Error::from_reason(format!("internal bench options: {e}")))?;
        Ok(AsyncTask::new(BenchTask { core: self.core.clone(), options }))
    }
}

pub struct BenchFramesTask {
    core: Arc<Mutex<Core>>,
    scenario: Arc<String>,
    options: crate::engine::bench::BenchFramesOptions,
    data: Vec<u8>,
}

impl Task for BenchFramesTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        if self.options.threads.unwrap_or(1) > 1 {
            // Every thread gets an engine of its own, built from the scenario.
            let fig =
                crate::engine::bench::bench_threads(&self.scenario, &self.options, &self.data)
                    .map_err(Error::from_reason)?;
            return Ok(fig.to_json().to_string());
        }
        let mut core = self
            .core
            .lock()
            .map_err(|_| Error::from_reason("the engine is unusable after an earlier failure"))?;
        let fig = core.bench_frames(&self.options, &self.data).map_err(Error::from_reason)?;
        Ok(fig.to_json().to_string())
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

#[napi]
impl JsEngine {
    /// Runs an in-memory benchmark of frames given in one buffer (see
    /// `engine::bench::BenchFramesOptions` and `Engine::bench_frames`); resolves with JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn bench_frames(
        &self,
        options_json: String,
        data: napi::bindgen_prelude::Buffer,
    ) -> Result<AsyncTask<BenchFramesTask>> {
        let options = serde_json::from_str(&options_json)
            .map_err(|e| Error::from_reason(format!("internal bench options: {e}")))?;
        Ok(AsyncTask::new(BenchFramesTask {
            core: self.core.clone(),
            scenario: self.scenario.clone(),
            options,
            data: data.to_vec(),
        }))
    }
}

#[napi]
impl JsEngine {
    /// Traces one packet (see `engine::trace::TraceOptions`); returns JSON with the text in
    /// ofproto/trace layout (`text`) and the structured trace (`trace`).
    #[napi]
    pub fn trace(&self, options_json: String) -> Result<String> {
        let options: crate::engine::trace::TraceOptions = serde_json::from_str(&options_json)
            .map_err(|e| Error::from_reason(format!("internal trace options: {e}")))?;
        let mut core = self
            .core
            .lock()
            .map_err(|_| Error::from_reason("the engine is unusable after an earlier failure"))?;
        let report = core.trace(&options).map_err(Error::from_reason)?;
        let text = core.format_trace(&report);
        let json = core.trace_json(&report);
        Ok(serde_json::json!({"text": text, "trace": json}).to_string())
    }
}

#[napi]
impl JsEngine {
    /// `ovs-ofctl dump-flows`: JSON `{text, flows}`.
    #[napi]
    pub fn dump_flows(&self, options_json: String) -> Result<String> {
        let options: crate::engine::trace::DumpFlowsOptions =
            serde_json::from_str(&options_json)
                .map_err(|e| Error::from_reason(format!("internal dump-flows options: {e}")))?;
        let core = self
            .core
            .lock()
            .map_err(|_| Error::from_reason("the engine is unusable after an earlier failure"))?;
        let (text, flows) = core.dump_flows(&options).map_err(Error::from_reason)?;
        Ok(serde_json::json!({"text": text, "flows": flows}).to_string())
    }

    /// `ovs-vsctl show` / `ovs-ofctl show BRIDGE`: JSON `{text, ports}`.
    #[napi]
    pub fn show(&self, options_json: String) -> Result<String> {
        let v: serde_json::Value = serde_json::from_str(&options_json)
            .map_err(|e| Error::from_reason(format!("internal show options: {e}")))?;
        let core = self
            .core
            .lock()
            .map_err(|_| Error::from_reason("the engine is unusable after an earlier failure"))?;
        let (text, ports) = core.show(v["ofctl"].as_str()).map_err(Error::from_reason)?;
        Ok(serde_json::json!({"text": text, "ports": ports}).to_string())
    }
}

/// Captures read into memory for `Engine.benchFrames` (see `engine::nullio`): the packed
/// frames, and JSON with the counts of each input.
#[napi(object)]
pub struct JsBenchCapture {
    pub frames: Buffer,
    pub json: String,
}

/// Reads captures into memory, merged in timestamp order, packed for `Engine.benchFrames`
/// (`engine::nullio::LoadOptions` JSON).
#[napi]
pub fn load_bench_frames(options_json: String) -> Result<JsBenchCapture> {
    let o: crate::engine::nullio::LoadOptions = serde_json::from_str(&options_json)
        .map_err(|e| Error::from_reason(format!("internal load options: {e}")))?;
    let loaded = crate::engine::nullio::load_bench_frames(&o).map_err(Error::from_reason)?;
    let json = loaded.to_json().to_string();
    Ok(JsBenchCapture { frames: loaded.data.into(), json })
}

pub struct NullReplayTask {
    options: crate::engine::nullio::NullOptions,
}

impl Task for NullReplayTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        let fig = crate::engine::nullio::null_replay(&self.options).map_err(Error::from_reason)?;
        Ok(fig.to_json().to_string())
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

/// The file I/O ceiling of a replay: reads captures and writes their frames to a pcap, with
/// no forwarding (`engine::nullio::NullOptions` JSON), on a worker thread; resolves with JSON.
#[napi(ts_return_type = "Promise<string>")]
pub fn null_replay(options_json: String) -> Result<AsyncTask<NullReplayTask>> {
    let options = serde_json::from_str(&options_json)
        .map_err(|e| Error::from_reason(format!("internal null replay options: {e}")))?;
    Ok(AsyncTask::new(NullReplayTask { options }))
}

/// Captures mapped onto a topology for `Engine.benchFrames`, one buffer of packed frames per
/// node that receives some, and JSON naming the nodes, their ports and the mapper's counts.
#[napi(object)]
pub struct JsMappedCapture {
    pub frames: Vec<Buffer>,
    pub json: String,
}

#[napi]
impl JsEngine {
    /// Reads captures and maps them onto the topology as `replay --map` does
    /// (`engine::nullio::LoadMappedOptions` JSON), packed for `benchFrames` node by node.
    #[napi]
    pub fn load_mapped_bench_frames(&self, options_json: String) -> Result<JsMappedCapture> {
        let o: crate::engine::nullio::LoadMappedOptions = serde_json::from_str(&options_json)
            .map_err(|e| Error::from_reason(format!("internal load options: {e}")))?;
        let core = self
            .core
            .lock()
            .map_err(|_| Error::from_reason("the engine is unusable after an earlier failure"))?;
        let mut loaded = core.load_mapped_frames(&o).map_err(Error::from_reason)?;
        let json = loaded.to_json().to_string();
        let frames = loaded.nodes.iter_mut().map(|n| std::mem::take(&mut n.data).into()).collect();
        Ok(JsMappedCapture { frames, json })
    }
}
