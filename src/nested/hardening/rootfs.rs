//! Guideline 4: a read-only root filesystem. Everything the entrypoint and
//! the daemons write has a home: the data dir's binds (libvirt config, domain
//! state, images, caches, ssh) or one of these tmpfs mounts.
//! And guideline 5's `/proc` half: Docker's masked and read-only paths,
//! except `/proc/sys/net` (libvirt writes it when it starts a network; it is
//! the container's own network namespace). The default profile drops all of
//! them ("systempaths=unconfined"), which leaves /proc/sys/kernel writable.

use bollard::models::HostConfig;

/// (container path, why) of each tmpfs under --hardened.
pub const TMPFS: &[(&str, &str)] = &[
    ("/run", "supervisord, sshd, libvirt's pid files and sockets"),
    ("/tmp", "scratch files of every program"),
    ("/var/tmp", "scratch files of every program"),
    (
        "/var/log",
        "supervisord's and libvirt's logs (docker logs keeps the entrypoint's)",
    ),
    (
        "/var/lib/libvirt",
        "dnsmasq leases, network state (images and qemu are binds below)",
    ),
    ("/root", "root's client caches (virsh)"),
    (
        "/var/lib/extrausers",
        "the host user's passwd/group records (/etc is read-only)",
    ),
    (
        "/home/qemu_user/.ssh",
        "the SSH user's authorized_keys, written at start",
    ),
];

/// Docker's masked paths (kept as Docker has them).
pub const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Docker's read-only paths, with /proc/sys split so that net stays writable.
pub const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sysrq-trigger",
    "/proc/sys/abi",
    "/proc/sys/crypto",
    "/proc/sys/debug",
    "/proc/sys/dev",
    "/proc/sys/fs",
    "/proc/sys/kernel",
    "/proc/sys/user",
    "/proc/sys/vm",
];

pub fn apply(host: &mut HostConfig) {
    host.readonly_rootfs = Some(true);
    host.masked_paths = Some(MASKED.iter().map(|p| p.to_string()).collect());
    host.readonly_paths = Some(READ_ONLY.iter().map(|p| p.to_string()).collect());
    // HostConfig.Tmpfs, not a tmpfs Mount: Docker copies the image's
    // content of the directory up into these ("tmpcopyup"), so the dirs the
    // packages made (/var/log/libvirt/qemu, /run/sshd ...) are there.
    host.tmpfs = Some(
        TMPFS
            .iter()
            .map(|(target, _)| (target.to_string(), String::new()))
            .collect(),
    );
}
