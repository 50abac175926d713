//! The sandbox: loads WebAssembly components and runs them with no ambient authority.
//!
//! One [`Runtime`] per process holds the engine and linker (built once) and the compiled
//! component cache. Every call into a plugin gets a fresh store and instance, so no state leaks
//! from one call to the next, with three limits armed before the call: a wall-clock deadline
//! (epoch interruption), a memory cap, and a cap on output size. The plugin sees no files,
//! environment, network or real clock; its stdout and stderr are captured into small buffers,
//! and the `log` import is its only way out.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Config as EngineConfig, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use super::cache::ComponentCache;
use super::v0_1_0;
use super::{
    Config, Failure, LoadError, Plan, PluginError, PluginInfo, PluginOutput, SnapshotContext,
    TransformPlugin,
};
use crate::batch::{Batch, Schema};
use crate::names::{is_valid_label, is_valid_plugin_name};

/// How often the deadline clock ticks.
const TICK: Duration = Duration::from_millis(5);
/// Bytes of stdout/stderr kept from one call (the rest is discarded).
const CAPTURED_OUTPUT: usize = 16 * 1024;
/// Log lines a plugin may write in one call, and the longest line kept.
const LOG_LINES: usize = 200;
const LOG_LINE_BYTES: usize = 2000;

/// Resource limits for every plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one call may take.
    pub deadline: Duration,
    /// Linear memory one instance may grow to.
    pub memory: usize,
    /// Bytes of columns and rejection reasons one call may return.
    pub output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { deadline: Duration::from_secs(10), memory: 512 << 20, output: 256 << 20 }
    }
}

/// Failures setting up the runtime itself (not a plugin's fault).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("could not configure the WebAssembly engine: {0}")]
    Engine(String),
}

/// Engine, linker and compiled-component cache, shared by every plugin of the process.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<PluginState>>,
    cache: Arc<ComponentCache>,
    limits: Limits,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime with the given limits, caching compiled components in `cache_dir` when given.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self, RuntimeError> {
        let mut config = EngineConfig::new();
        config.wasm_component_model(true).epoch_interruption(true);
        #[cfg(target_os = "linux")]
        super::memory::configure(&mut config);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let mut linker = Linker::<PluginState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| {
                v0_1_0::TransformPlugin::add_to_linker::<_, HasSelf<PluginState>>(
                    &mut linker,
                    |s| s,
                )
            })
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        // The deadline clock: one thread per runtime, ending with the engine.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("plugin-deadline".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| {
                RuntimeError::Engine(format!("could not start the deadline clock: {e}"))
            })?;

        let cache = Arc::new(ComponentCache::new(&engine, cache_dir));
        Ok(Self { engine, linker: Arc::new(linker), cache, limits })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles (or fetches from cache) and checks a plugin; `origin` names it in errors.
    pub fn load(&self, bytes: &[u8], origin: &str) -> Result<WasmPlugin, LoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let component = self.cache.get_or_compile(&self.engine, bytes, &sha256).map_err(|e| {
            LoadError::NotAComponent { origin: origin.to_owned(), reason: format!("{e:#}") }
        })?;

        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        if !exports.iter().any(|e| e == v0_1_0::EXPORT) {
            let origin = origin.to_owned();
            return Err(
                match exports.iter().find_map(|e| e.strip_prefix("crypto-etl:plugin/transformer@"))
                {
                    Some(found) => {
                        LoadError::UnsupportedInterface { origin, found: found.to_owned() }
                    }
                    None => LoadError::MissingExport {
                        origin,
                        exports: if exports.is_empty() {
                            "nothing".into()
                        } else {
                            exports.join(", ")
                        },
                    },
                },
            );
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(v0_1_0::TransformPluginPre::new)
            .map_err(|e| LoadError::Unlinkable {
                origin: origin.to_owned(),
                reason: format!("{e:#}"),
            })?;

        let mut plugin = WasmPlugin {
            engine: self.engine.clone(),
            pre,
            limits: self.limits,
            info: PluginInfo {
                name: origin.to_owned(),
                version: "?".into(),
                description: String::new(),
            },
            sha256,
            peak_memory: AtomicUsize::new(0),
        };
        let info = plugin
            .call(0, |store, instance| instance.crypto_etl_plugin_transformer().call_info(store))
            .map(v0_1_0::info)
            .map_err(|failure| LoadError::Describe { origin: origin.to_owned(), failure })?;
        check_info(&info)
            .map_err(|reason| LoadError::BadInfo { origin: origin.to_owned(), reason })?;
        plugin.info = info;
        Ok(plugin)
    }
}

fn check_info(info: &PluginInfo) -> Result<(), String> {
    if !is_valid_plugin_name(&info.name) {
        return Err(format!("name {:?} is not of the form [a-z][a-z0-9-]*", info.name));
    }
    if info.version.is_empty() || !is_valid_label(&info.version, 64) {
        return Err(format!(
            "version {:?} is empty, too long or has control characters",
            info.version
        ));
    }
    if !is_valid_label(&info.description, 1000) {
        return Err("the description is over 1000 bytes or has control characters".into());
    }
    Ok(())
}

/// A loaded plugin component.
pub struct WasmPlugin {
    engine: Engine,
    pre: v0_1_0::TransformPluginPre<PluginState>,
    limits: Limits,
    info: PluginInfo,
    sha256: String,
    /// The most linear memory the last call's instance had, in bytes.
    peak_memory: AtomicUsize,
}

impl std::fmt::Debug for WasmPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPlugin")
            .field("info", &self.info)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl WasmPlugin {
    /// Runs `f` against a fresh instance in a fresh store with every limit armed.
    fn call<R>(
        &self,
        fetch_time: i64,
        f: impl FnOnce(&mut Store<PluginState>, &v0_1_0::TransformPlugin) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        let stderr = MemoryOutputPipe::new(CAPTURED_OUTPUT);
        let stdout = MemoryOutputPipe::new(CAPTURED_OUTPUT);
        let frozen = FrozenClock(Duration::from_micros(fetch_time.max(0).unsigned_abs()));
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // The clock a plugin sees is the snapshot's fetch time, so runs are reproducible.
            .wall_clock(frozen)
            .monotonic_clock(frozen)
            .build();
        let state = PluginState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { limit: self.limits.memory, hit: false, peak: 0 },
            plugin: self.info.name.clone(),
            log_lines: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = (self.limits.deadline.as_micros() / TICK.as_micros()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();

        let result = self.pre.instantiate(&mut store).and_then(|instance| f(&mut store, &instance));
        let state = store.data();
        self.peak_memory.store(state.limiter.peak, Ordering::Relaxed);
        if state.log_lines > LOG_LINES {
            tracing::warn!(plugin = %state.plugin, "{} more log lines dropped", state.log_lines - LOG_LINES);
        }
        let printed = String::from_utf8_lossy(&stdout.contents()).into_owned()
            + &String::from_utf8_lossy(&stderr.contents());
        result.map_err(|error| {
            if state.limiter.hit {
                Failure::MemoryLimit { limit: self.limits.memory }
            } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                Failure::Timeout { deadline: self.limits.deadline }
            } else {
                let trap = match error.downcast_ref::<Trap>() {
                    Some(trap) => trap.to_string(),
                    None => format!("{error:#}"),
                };
                Failure::Trap { trap, printed: tail(&printed, 2000) }
            }
        })
    }

    fn fail(&self, failure: Failure) -> PluginError {
        PluginError::new(&self.info, failure)
    }
}

fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

impl TransformPlugin for WasmPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn sha256(&self) -> &str {
        &self.sha256
    }

    fn peak_memory(&self) -> Option<usize> {
        Some(self.peak_memory.load(Ordering::Relaxed))
    }

    fn plan(&self, config: &Config, schema: &Schema) -> Result<Plan, PluginError> {
        let schema = v0_1_0::schema(schema);
        self.call(0, |store, instance| {
            instance.crypto_etl_plugin_transformer().call_plan(store, config, &schema)
        })
        .map_err(|f| self.fail(f))?
        .map(v0_1_0::plan)
        .map_err(|e| self.fail(v0_1_0::guest_error(e)))
    }

    fn transform(
        &self,
        config: &Config,
        input: Batch,
        context: &SnapshotContext,
    ) -> Result<(Batch, PluginOutput), PluginError> {
        let batch = v0_1_0::batch(input);
        let wire_context = v0_1_0::context(context);
        let started = Instant::now();
        let output = self
            .call(context.fetch_time, |store, instance| {
                instance.crypto_etl_plugin_transformer().call_transform(
                    store,
                    config,
                    &batch,
                    &wire_context,
                )
            })
            .map_err(|f| self.fail(f))?
            .map_err(|e| self.fail(v0_1_0::guest_error(e)))?;
        let output = v0_1_0::output(output);
        let bytes = output.columns.iter().map(|c| c.data.byte_size()).sum::<usize>()
            + output.rejected.iter().map(|r| r.reason.len() + 8).sum::<usize>();
        if bytes > self.limits.output {
            return Err(self.fail(Failure::OutputTooLarge { bytes, limit: self.limits.output }));
        }
        tracing::debug!(plugin = %self.info.name, elapsed = ?started.elapsed(), "transform returned");
        Ok((v0_1_0::batch_back(batch), output))
    }
}

/// Everything a plugin's store holds.
struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    plugin: String,
    log_lines: usize,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl v0_1_0::crypto_etl::plugin::types::Host for PluginState {}

impl v0_1_0::crypto_etl::plugin::host::Host for PluginState {
    fn log(&mut self, level: v0_1_0::LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > LOG_LINES {
            return;
        }
        let message = if message.len() > LOG_LINE_BYTES {
            let mut end = LOG_LINE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &message[..end])
        } else {
            message
        };
        let plugin = &self.plugin;
        match level {
            v0_1_0::LogLevel::Debug => tracing::debug!(%plugin, "{message}"),
            v0_1_0::LogLevel::Info => tracing::info!(%plugin, "{message}"),
            v0_1_0::LogLevel::Warn => tracing::warn!(%plugin, "{message}"),
            v0_1_0::LogLevel::Error => tracing::error!(%plugin, "{message}"),
        }
    }
}

/// Refuses memory growth past the limit, and remembers whether the plugin is out of memory.
///
/// A refused growth makes `memory.grow` return -1, as WebAssembly specifies, rather than trap:
/// the SDK's heap then asks again for exactly what it needs, which may fit (it grows in 2 MiB
/// steps, and a limit need not be a multiple of 2 MiB). A plugin that cannot cope stops (an
/// allocation failure aborts it), and `hit` names the limit as the reason.
struct MemoryLimiter {
    limit: usize,
    /// Whether the latest growth asked for was refused.
    hit: bool,
    /// The largest size granted so far.
    peak: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let granted = desired <= self.limit;
        // A growth that fits after a refused one means the plugin coped with the refusal.
        self.hit = !granted;
        if granted {
            self.peak = self.peak.max(desired);
        }
        Ok(granted)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A clock that always says the same time.
#[derive(Clone, Copy)]
struct FrozenClock(Duration);

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        self.0
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_past_the_limit_is_refused_and_a_smaller_request_may_still_fit() {
        const MIB: usize = 1 << 20;
        let mut limiter = MemoryLimiter { limit: 65 * MIB, hit: false, peak: 0 };
        // The SDK's heap asks for the next 2 MiB boundary first...
        assert!(!limiter.memory_growing(2 * MIB, 66 * MIB, None).unwrap());
        assert!(limiter.hit, "a refused growth is not remembered");
        // ...then for exactly what it needs, which fits.
        assert!(limiter.memory_growing(2 * MIB, 65 * MIB, None).unwrap());
        assert!(!limiter.hit, "a plugin that coped is still reported out of memory");
        assert_eq!(limiter.peak, 65 * MIB, "the peak counts what was refused");
    }
}
