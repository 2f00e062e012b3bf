//! The two ways to get the same Debian 12 guest ready, each timed from
//! spawn to exit of one process: boxvirt's `vm create --wait`, and what a
//! user of virt-install and cloud-localds does (virt-install-ready.sh).

use std::path::PathBuf;

use crate::build_time::Base;
use crate::noise::Busy;
use crate::process::{self, Timed};
use crate::Config;

/// The virt-install contender's script (see its header).
const VIRT_INSTALL_READY: &str = include_str!("virt-install-ready.sh");
/// Login user of both guests (boxvirt's default user).
pub const LOGIN: &str = "boxvirt";
/// The debian12 template's memory and boxvirt's default disk size.
const MEMORY_MIB: u32 = 1024;
const DISK_GIB: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Boxvirt,
    VirtInstall,
}

impl Contender {
    pub const ALL: [Contender; 2] = [Contender::Boxvirt, Contender::VirtInstall];

    pub fn label(self) -> &'static str {
        match self {
            Contender::Boxvirt => "boxvirt vm create --template debian12 --wait",
            Contender::VirtInstall => {
                "qemu-img overlay + cloud-localds + virt-install --import, SSH polled until cloud-init status: done"
            }
        }
    }

    /// For the per-run table.
    pub fn tag_long(self) -> &'static str {
        match self {
            Contender::Boxvirt => "boxvirt",
            Contender::VirtInstall => "virt-install",
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Contender::Boxvirt => "bx",
            Contender::VirtInstall => "vi",
        }
    }

    /// Made by boxvirt, so removed with `boxvirt vm delete`.
    pub fn by_boxvirt(self) -> bool {
        self == Contender::Boxvirt
    }
}

/// One create-to-ready run.
pub struct Sample {
    /// Seconds from spawn to exit.
    pub wall: f64,
    /// Seconds until the VM was defined and started (the rest is boot to
    /// ready), when known.
    pub started: Option<f64>,
    pub error: Option<String>,
    /// The machine when the run started.
    pub busy: Busy,
}

/// The key pair the virt-install contender's guests accept (boxvirt makes
/// and keeps its own in its data dir).
pub struct Key {
    pub private: PathBuf,
    pub public: PathBuf,
}

pub fn make_key(cfg: &Config) -> Result<Key, String> {
    let private = cfg.work.join("id_ed25519");
    let mut cmd = cfg.command("ssh-keygen", false);
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", "bench-guest", "-f"])
        .arg(&private);
    process::run(&mut cmd)?;
    Ok(Key {
        public: private.with_extension("pub"),
        private,
    })
}

pub fn run(cfg: &Config, who: Contender, name: &str, base: &Base, key: &Key) -> Sample {
    let busy = Busy::now();
    let timed = match who {
        Contender::Boxvirt => boxvirt(cfg, name),
        Contender::VirtInstall => virt_install(cfg, name, base, key),
    };
    let t = match timed {
        Ok(t) => t,
        Err(e) => {
            return Sample {
                wall: 0.0,
                started: None,
                error: Some(e),
                busy,
            }
        }
    };
    let started = match who {
        Contender::Boxvirt => boxvirt_started(&t),
        Contender::VirtInstall => mark(&t, "started"),
    };
    Sample {
        wall: t.wall,
        started,
        error: (!t.ok()).then(|| t.why()),
        busy,
    }
}

fn boxvirt(cfg: &Config, name: &str) -> Result<Timed, String> {
    let mut cmd = cfg.boxvirt_cmd(&cfg.cache, true);
    cmd.args(["-o", "json", "vm", "create", "--template", "debian12"])
        .args(["--name", name, "--wait"])
        .args(["--timeout", &cfg.timeout.to_string()]);
    process::timed(&mut cmd)
}

/// Wall minus the wait boxvirt reports (`ready.seconds` of its JSON).
fn boxvirt_started(t: &Timed) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(&t.stdout).ok()?;
    let waited = v["ready"]["seconds"].as_f64()?;
    Some(t.wall - waited)
}

fn virt_install(cfg: &Config, name: &str, base: &Base, key: &Key) -> Result<Timed, String> {
    let mut cmd = cfg.command("bash", true);
    cmd.arg("-c").arg(VIRT_INSTALL_READY);
    cmd.env("NAME", name)
        .env("BASE", &base.path)
        .env("DIR", &cfg.work)
        .env("PUBKEY", &key.public)
        .env("KEY", &key.private)
        .env("LOGIN", LOGIN)
        .env("DISK_GIB", DISK_GIB.to_string())
        .env("MEMORY", MEMORY_MIB.to_string())
        .env("URI", &cfg.uri)
        .env("TIMEOUT", cfg.timeout.to_string());
    process::timed(&mut cmd)
}

/// Seconds from spawn to the script's `mark STAGE <unix time>` line.
fn mark(t: &Timed, stage: &str) -> Option<f64> {
    t.stdout.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        match (w.next(), w.next(), w.next()) {
            (Some("mark"), Some(s), Some(at)) if s == stage => {
                at.parse::<f64>().ok().map(|at| at - t.spawned_at)
            }
            _ => None,
        }
    })
}

/// The files the virt-install contender made for `name` (overlay, seed,
/// user-data, meta-data), for cleanup.
pub fn virt_install_files(cfg: &Config, name: &str) -> Vec<PathBuf> {
    ["qcow2", "user-data", "meta-data"]
        .iter()
        .map(|ext| cfg.work.join(format!("{name}.{ext}")))
        .chain([cfg.work.join(format!("{name}-seed.iso"))])
        .collect()
}
