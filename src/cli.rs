//! What the user can type: clap definitions only, with their help text.
//! Resolution of flags + environment + `.env` happens in `settings.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "boxvirt",
    version,
    about = "Disposable libvirt/KVM infrastructure: a nested libvirt host in Docker and a native libvirt client",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts (shown under their own heading).
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// libvirt URI; wins over LIBVIRT_DEFAULT_URI and the instance socket
    #[arg(short = 'c', long = "connect", global = true, value_name = "URI")]
    pub connect: Option<String>,
    /// How to reach the instance's libvirtd when no URI is given
    #[arg(long, global = true, value_enum)]
    pub via: Option<Via>,
    /// Nested-host instance name [env: BOXMAN_INSTANCE_NAME] [default: default]
    #[arg(long, global = true, value_name = "NAME")]
    pub instance: Option<String>,
    /// Instance data directory [env: BOXMAN_DATA_DIR] [default: ./data]
    #[arg(long, global = true, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// Directory of user templates overriding the built-in ones [env: BOXVIRT_TEMPLATE_DIR]
    #[arg(long, global = true, value_name = "PATH")]
    pub template_dir: Option<PathBuf>,
    /// Output format of listings and reports
    #[arg(short = 'o', long, global = true, value_enum)]
    pub output: Option<OutputFormat>,
    /// More output (repeatable)
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output: only errors and requested data
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// Do not ask before deleting
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// Host SSH port of the instance [env: BOXMAN_SSH_PORT] [default: 2222]
    #[arg(long, global = true, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ssh_port: Option<u16>,
    /// Reserved libvirt TCP port [env: BOXMAN_LIBVIRT_TCP_PORT] [default: 16509]
    #[arg(long, global = true, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub libvirt_tcp_port: Option<u16>,
    /// Reserved libvirt TLS port [env: BOXMAN_LIBVIRT_TLS_PORT] [default: 16514]
    #[arg(long, global = true, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub libvirt_tls_port: Option<u16>,
    /// Host user id mapped into the nested host [env: HOST_UID] [default: yours]
    #[arg(long, global = true, value_name = "UID")]
    pub host_uid: Option<u32>,
    /// Host group id owning the libvirt socket [env: HOST_GID] [default: yours]
    #[arg(long, global = true, value_name = "GID")]
    pub host_gid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Via {
    #[default]
    Socket,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    Kvm,
    Qemu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Base {
    #[default]
    Debian,
    Rocky9,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build (when needed) and start the nested libvirt host, wait for libvirt, write SSH keys and config
    Up(UpArgs),
    /// Stop and remove the instance's container (data is kept)
    Down,
    /// down, then up
    Restart(UpArgs),
    /// Build the nested-host image
    Build(BuildArgs),
    /// Build the nested-host image without cache
    Rebuild(BuildArgs),
    /// Show the container's logs
    Logs(LogsArgs),
    /// Container, supervised programs, sshd, ports, socket and key permissions
    Status,
    /// SSH into the nested host as qemu_user
    Ssh(SshArgs),
    /// List all domains through the instance socket (the old `make virsh`), natively
    Virsh,
    /// Link the instance's ssh config into ~/.ssh/config.d/boxman/
    LinkSsh,
    /// Remove the ssh config link
    UnlinkSsh,
    /// Remove instance data, images or containers
    Clean(CleanArgs),
    /// List boxvirt-made objects that belong to no domain (left by a killed create or delete); --yes removes them
    Gc(GcArgs),
    /// Print the URIs for virsh, virt-manager and qemu+ssh (and qemu+tls after 'up --tls') of this instance
    Uri,
    /// libvirt over TLS: certificates of the instance (see 'up --tls')
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Check KVM, devices, libvirt, networks and pools; exit 0 only if nothing fails
    Doctor,
    /// Virtual networks
    #[command(subcommand)]
    Net(NetCommand),
    /// XML templates (built-in and user)
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Virtual machines
    #[command(subcommand)]
    Vm(VmCommand),
    /// Cloud images: download (verified), build offline or import; cached, and uploaded into the libvirt pool
    #[command(subcommand)]
    Image(ImageCommand),
    /// Environments: a whole lab (networks, VMs, hosts) from one file
    #[command(subcommand)]
    Env(EnvCommand),
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args, Clone, Default)]
pub struct UpArgs {
    /// Image base
    #[arg(long, value_enum)]
    pub base: Option<Base>,
    /// Rebuild the image without cache before starting
    #[arg(long)]
    pub rebuild: bool,
    /// Run the container --privileged instead of the explicit capability list
    #[arg(long)]
    pub privileged: bool,
    /// Pick free ports when the configured ones are taken
    #[arg(long)]
    pub auto_ports: bool,
    /// Do not link the ssh config into ~/.ssh/config.d/boxman/
    #[arg(long)]
    pub no_link_ssh: bool,
    /// Seconds to wait for libvirt to answer
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
    /// Also serve libvirt over TLS on BOXMAN_LIBVIRT_TLS_PORT (CA, server and client certificates in DATA/pki) [env: BOXVIRT_TLS]
    #[arg(long)]
    pub tls: bool,
    /// Extra DNS name or IP address in the TLS server certificate (repeatable)
    #[arg(long = "tls-san", value_name = "NAME|IP")]
    pub tls_san: Vec<String>,
    /// Publish the TLS port on this address instead of 127.0.0.1 (reachable from other machines)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::IpAddr>,
    /// Hardened profile: SASL socket auth, read-only root, minimal caps,
    /// seccomp, limits, non-root QEMU (also BOXVIRT_HARDENED=1)
    #[arg(long)]
    pub hardened: bool,
    /// Container memory limit, e.g. 4g or 2048m (default 4g under --hardened)
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Container CPU limit, e.g. 2 or 0.5 (default 2 under --hardened)
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Container pids limit (default 4096 under --hardened)
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Issue new server and client certificates from the kept CA; the old client certificate is no longer let in
    Rotate,
}

#[derive(Debug, Args, Clone, Default)]
pub struct BuildArgs {
    /// Image base
    #[arg(long, value_enum)]
    pub base: Option<Base>,
}

#[derive(Debug, Args, Clone)]
pub struct LogsArgs {
    /// Follow the log
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines from the end
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
}

#[derive(Debug, Args, Clone)]
pub struct SshArgs {
    /// ssh -vvv
    #[arg(long)]
    pub debug: bool,
    /// Command to run instead of a shell
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct GcArgs {
    /// Only the objects of these VMs (default: all)
    pub vms: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct CleanArgs {
    #[arg(value_enum)]
    pub what: CleanTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CleanTarget {
    Data,
    Volumes,
    Images,
    Containers,
    All,
    Dangling,
}

#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Define (from xml-templates/network/NAME.xml), start and autostart a network,
    /// with a block of address slots (one fixed MAC -> IP pair per VM)
    Ensure {
        name: String,
        /// Address slots in the block (default 64, or the whole DHCP range if
        /// smaller); applies when the network is defined or given its block
        #[arg(long, value_name = "N")]
        slots: Option<u32>,
    },
    /// List networks
    List,
    /// Print a network's XML
    Show { name: String },
    /// Stop and undefine a network (refused while VMs use it, unless --force)
    Delete {
        name: String,
        /// Delete even though VMs are attached (they lose that interface's network)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List templates (built-in and user)
    List,
    /// Render a template with defaults and --set values
    Show {
        /// domain, network or pool template name (e.g. rocky9, default)
        name: String,
        /// KEY=VALUE parameter
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Template kind when a name exists in several kinds
        #[arg(long, value_enum)]
        kind: Option<TemplateKindArg>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TemplateKindArg {
    Domain,
    Network,
    Pool,
}

#[derive(Debug, Args, Clone)]
pub struct VmCreateArgs {
    /// Domain template (see `boxvirt template list`)
    #[arg(long, short = 't')]
    pub template: String,
    /// VM name [default: <template>-<n>, the first free]
    #[arg(long)]
    pub name: Option<String>,
    /// Memory in MiB
    #[arg(long, value_name = "MiB")]
    pub memory: Option<u64>,
    /// Virtual CPUs
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Disk size in GiB
    #[arg(long, value_name = "GiB")]
    pub disk_size: Option<u64>,
    /// Network to attach; repeat for one NIC per network (the first is the
    /// primary: the VM's IP and SSH address come from it)
    #[arg(long = "network", value_name = "NETWORK")]
    pub networks: Vec<String>,
    /// Accelerator (default: kvm where a KVM guest can really run, else qemu)
    #[arg(long, value_enum)]
    pub accel: Option<Accel>,
    /// Extra template parameter KEY=VALUE (e.g. kernel=/path for tiny)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Start the VM after defining it
    #[arg(long)]
    pub start: bool,
    /// Start, then wait until the VM is ready (IP, SSH, cloud-init finished without errors)
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait may take
    #[arg(long, default_value_t = 600, value_name = "S")]
    pub timeout: u64,
    /// Extra authorized SSH public key file for the VM's user (repeatable)
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<std::path::PathBuf>,
    /// cloud-init user-data file merged into boxvirt's (#cloud-config) or added as a part (scripts)
    #[arg(long, value_name = "FILE")]
    pub user_data: Option<std::path::PathBuf>,
    /// Copy the base image instead of a linked clone (qcow2 overlay)
    #[arg(long)]
    pub full_clone: bool,
    /// Base image: a catalogue name, a URL or a pulled name [default: the template's]
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// An empty disk instead of a clone of the base image (install or netboot later)
    #[arg(long, conflicts_with_all = ["image", "full_clone"])]
    pub blank_disk: bool,
    /// No address slot or DHCP reservation: a MAC from the VM name, the
    /// address from the network's dynamic leases
    #[arg(long)]
    pub no_reserve: bool,
    /// No cloud-init seed, even when the template has one
    #[arg(long, conflicts_with_all = ["wait", "ssh_keys", "user_data"])]
    pub no_seed: bool,
    /// With --wait: remove the cloud-init seed once the VM is ready
    #[arg(long, requires = "wait")]
    pub eject_seed: bool,
    /// With --wait: errors cloud-init reports are warnings, not a failed wait
    #[arg(long, requires = "wait")]
    pub allow_cloud_init_errors: bool,
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Create a VM from a domain template
    Create(VmCreateArgs),
    /// List VMs
    List {
        /// Only the VMs of this environment (made by 'env apply')
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
    },
    /// Start a VM
    Start { name: String },
    /// Gracefully shut a VM down (waits up to --timeout; --force destroys)
    Stop {
        name: String,
        #[arg(long)]
        force: bool,
        #[arg(long, default_value_t = 60, value_name = "S")]
        timeout: u64,
    },
    /// Power a VM off at once
    Destroy { name: String },
    /// Remove a VM and the volumes boxvirt created for it
    Delete { name: String },
    /// Show a VM's details
    Info { name: String },
    /// Print a VM's XML
    Xml { name: String },
    /// Print a VM's IP address (reservation, DHCP lease, guest agent or ARP)
    Ip { name: String },
    /// Wait until a VM is ready: IP, then SSH (host key pinned), then cloud-init finished without errors
    Wait {
        name: String,
        #[arg(long, default_value_t = 600, value_name = "S")]
        timeout: u64,
        /// Errors cloud-init reports are warnings, not a failed wait
        #[arg(long)]
        allow_cloud_init_errors: bool,
    },
    /// SSH into a VM (through the nested host when needed)
    Ssh {
        name: String,
        /// Command to run instead of a shell
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Print ssh config Host entries for one or all boxvirt VMs
    SshConfig { name: Option<String> },
    /// Attach to a VM's serial console (Ctrl-] detaches)
    Console { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Download an image (verified against its checksum, cached by digest) and upload it into pool 'default'
    Pull {
        /// Catalogue name (rocky9, ubuntu24, debian12) or an http(s) URL
        #[arg(value_name = "NAME|URL")]
        image: String,
        /// Expected SHA-256 of the image; wins over any checksum file
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// For a URL: a SHA256SUMS/SHA512SUMS/CHECKSUM file listing the image
        #[arg(long, value_name = "URL")]
        checksum_url: Option<String>,
        /// For a URL: the image's name [default: from the file name]
        #[arg(long)]
        name: Option<String>,
        /// Only download into the local cache; do not contact libvirt
        #[arg(long)]
        no_upload: bool,
    },
    /// Check a local qcow2 or raw disk image, cache it by digest and upload it into pool 'default'
    Import {
        /// The qcow2 or raw file
        path: std::path::PathBuf,
        /// The image's name [default: the file name without .qcow2/.img/.raw]
        #[arg(long)]
        name: Option<String>,
        /// Only copy into the local cache; do not contact libvirt
        #[arg(long)]
        no_upload: bool,
    },
    /// Upload a kernel and initramfs pair as image NAME (for direct-boot templates such as tiny)
    #[command(hide = true)]
    ImportKernel {
        name: String,
        /// The kernel (bzImage)
        #[arg(long, value_name = "FILE")]
        kernel: std::path::PathBuf,
        /// The initramfs
        #[arg(long, value_name = "FILE")]
        initrd: std::path::PathBuf,
    },
    /// Build a bootable image offline (debian12, tiny) in a throwaway container of the nested-host image; cache it and upload a disk image into pool 'default'
    Build {
        /// Recipe name: debian12 or tiny
        #[arg(value_name = "NAME")]
        name: String,
        /// Build even when a build with the same inputs is cached
        #[arg(long)]
        rebuild: bool,
        /// Only build into the local cache; do not contact libvirt
        #[arg(long)]
        no_upload: bool,
    },
    /// List cached images and base volumes in pool 'default'
    List {
        /// Only the local cache; do not contact libvirt
        #[arg(long)]
        cache_only: bool,
    },
    /// Remove an image from the cache and its base volumes from pool 'default'
    Rm {
        /// Image name or sha256 digest (at least 12 hex characters)
        #[arg(value_name = "NAME|DIGEST")]
        image: String,
        /// Only the local cache; do not contact libvirt
        #[arg(long)]
        cache_only: bool,
    },
}

/// `-f FILE` of the env commands.
#[derive(Debug, Args, Clone)]
pub struct EnvFileArg {
    /// The environment file
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "boxvirt.yaml"
    )]
    pub file: std::path::PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct EnvPlanArgs {
    #[command(flatten)]
    pub file: EnvFileArg,
    /// Show VMs of the same name that no environment made as adopted, not as conflicts
    #[arg(long)]
    pub adopt: bool,
}

#[derive(Debug, Args, Clone)]
pub struct EnvApplyArgs {
    #[command(flatten)]
    pub file: EnvFileArg,
    /// How many VMs are made at the same time
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,
    /// Start the VMs it makes
    #[arg(long)]
    pub start: bool,
    /// Start the VMs it makes and wait until each is ready (IP, SSH, cloud-init)
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait may take per VM
    #[arg(long, value_name = "SECONDS", default_value_t = 300, requires = "wait")]
    pub timeout: u64,
    /// Delete and re-create VMs whose fields changed, and delete the environment's VMs the file no longer has
    #[arg(long)]
    pub replace: bool,
    /// Take over VMs of the same name that no environment made
    #[arg(long)]
    pub adopt: bool,
    /// Leave out the cloud-init seed (no login key; for guests that need none)
    #[arg(long, conflicts_with = "wait")]
    pub no_seed: bool,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Show what 'env apply' would do on each host (create, keep, change, delete); only reads
    Plan(EnvPlanArgs),
    /// Environments that have VMs on the current connection (from the VMs' metadata; no file)
    List,
    /// The VMs of one environment on the current connection, with what they were made with
    Show { name: String },
    /// Make what the file describes: missing networks, then the VMs, in parallel
    Apply(EnvApplyArgs),
    /// Remove the environment's VMs (with their volumes and reservations) and the networks it made
    Destroy {
        #[command(flatten)]
        file: EnvFileArg,
    },
    /// An ssh config with one entry per VM of the environment (current connection, or every host of -f FILE)
    SshConfig {
        name: String,
        /// Read the hosts from this environment file (its VMs on every host, each through its own jump host)
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<std::path::PathBuf>,
    },
}
