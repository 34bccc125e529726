//! What both benches need around the code they measure: a free loopback
//! address, a configuration file for it, the real binary serving it, a
//! deterministic generator, quantiles and the server's peak RSS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aiworklab::config::{self, RawConfig, RawOrg, RawRateLimit, Settings};

/// A rate-limit budget no bench reaches: a million requests a minute.
pub const UNPACED: RawRateLimit = RawRateLimit::new(1_000_000, 60);

/// `127.0.0.1:<port>` with a port that was free a moment ago.
pub fn loopback_bind() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    format!("127.0.0.1:{port}")
}

/// A data dir under `dir`, serving `orgs` on `bind`, with `tune` applied
/// (the benches raise the rate limits they would otherwise be paced by);
/// written to `dir/aiworklab.toml` for the binary and returned as settings
/// for this process.
pub fn settings(
    dir: &Path,
    bind: &str,
    orgs: &[&str],
    tune: impl FnOnce(&mut RawConfig),
) -> (Settings, PathBuf) {
    let mut raw = RawConfig::default();
    raw.storage.data_dir = dir.join("data").display().to_string();
    raw.server.bind = bind.to_string();
    tune(&mut raw);
    raw.orgs = orgs
        .iter()
        .map(|s| RawOrg {
            slug: (*s).into(),
            name: format!("Org {s}"),
            ..RawOrg::default()
        })
        .collect();
    let file = dir.join("aiworklab.toml");
    std::fs::write(&file, toml_edit::ser::to_string_pretty(&raw).expect("toml")).expect("config");
    (config::from_raw(&raw).expect("valid"), file)
}

/// The release binary (under `cargo bench`; `AIWORKLAB_BENCH_BIN` names
/// another) serving `config_file`, ready; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub async fn start(config_file: &Path, bind: &str) -> Self {
        Self::spawn(config_file, bind, Stdio::null()).await
    }

    /// As [`Server::start`], with the server's log (its stderr) written to
    /// `log_file`, e.g. for the `latency_ms` of each request it answered.
    #[allow(dead_code)] // the pages bench's; the others include this module too
    pub async fn start_logging_to(config_file: &Path, bind: &str, log_file: &Path) -> Self {
        let log = std::fs::File::create(log_file).expect("server log file");
        Self::spawn(config_file, bind, Stdio::from(log)).await
    }

    async fn spawn(config_file: &Path, bind: &str, stderr: Stdio) -> Self {
        // `AIWORKLAB_BENCH_BIN` runs another build of the binary (e.g. the
        // release one under a harness built in the dev profile).
        let bin = std::env::var_os("AIWORKLAB_BENCH_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_aiworklab")),
            PathBuf::from,
        );
        let child = Command::new(bin)
            // The server reads `AIWORKLAB_*` variables as settings and
            // refuses unknown ones: this one is the bench's, not its.
            .env_remove("AIWORKLAB_BENCH_BIN")
            .arg("--config")
            .arg(config_file)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("serve starts");
        let base = format!("http://{bind}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "the server never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small deterministic generator (xorshift64), so runs make the same data.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// The `q` quantile of `samples` (sorted in place), in milliseconds.
pub fn quantile(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1].as_secs_f64() * 1e3
}

/// The peak resident set (`VmHWM`) of process `pid`, in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}
