//! The tiny guest (tests/harness/build-tiny-guest.sh) as the benches'
//! non-boxvirt contenders define it: xml-templates/domain/tiny.xml edited
//! by xmlstarlet (the original tool's way), with a MAC derived from the
//! name and a serial log under libvirt's log dir.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel, initramfs and domain template.
#[derive(Debug, Clone)]
pub struct Tiny {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub template: PathBuf,
}

impl Tiny {
    /// From `$BOXVIRT_TEST_CACHE/tiny` (default /var/cache/boxvirt-test);
    /// an error naming the script that builds it when it is missing.
    pub fn find() -> Result<Tiny, String> {
        let cache = std::env::var("BOXVIRT_TEST_CACHE")
            .unwrap_or_else(|_| "/var/cache/boxvirt-test".into());
        let dir = Path::new(&cache).join("tiny");
        let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initrd.img"));
        for f in [&kernel, &initrd] {
            if !f.exists() {
                return Err(format!(
                    "{} missing: run bash tests/harness/build-tiny-guest.sh",
                    f.display()
                ));
            }
        }
        Ok(Tiny {
            kernel,
            initrd,
            template: Path::new(env!("CARGO_MANIFEST_DIR")).join("xml-templates/domain/tiny.xml"),
        })
    }

    /// `bash -c script` in `work` with the variables [`XMLSTARLET_EDITS`] uses.
    pub fn edits_command(&self, work: &Path, name: &str, script: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script).current_dir(work);
        cmd.env("NAME", name)
            .env("KERNEL", &self.kernel)
            .env("INITRD", &self.initrd)
            .env("LOG", serial_log(name))
            .env("MAC", mac_for(name))
            .env("TEMPLATE", &self.template);
        cmd
    }

    /// The tiny domain `name` as XML.
    pub fn xml(&self, work: &Path, name: &str) -> Result<String, String> {
        let out = self
            .edits_command(work, name, XMLSTARLET_EDITS)
            .output()
            .map_err(|e| format!("xmlstarlet: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "xmlstarlet: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8(out.stdout).map_err(|e| e.to_string())
    }

    /// `virt-install --import` of the same domain (the other benches'
    /// contender): no disk, the tiny kernel, network 'default'.
    pub fn virt_install(&self, work: &Path, uri: &str, name: &str) -> Command {
        let (kernel, initrd) = (self.kernel.display(), self.initrd.display());
        let log = serial_log(name).display().to_string();
        let mac = mac_for(name);
        let mut cmd = Command::new("virt-install");
        cmd.current_dir(work)
            .args([
                "--connect",
                uri,
                "--import",
                "--noautoconsole",
                "--name",
                name,
            ])
            .args([
                "--memory",
                "256",
                "--vcpus",
                "1",
                "--virt-type",
                "qemu",
                "--machine",
                "q35",
            ])
            .args([
                "--boot",
                &format!("kernel={kernel},initrd={initrd},kernel_args=\"console=ttyS0 quiet\""),
            ])
            .args([
                "--disk",
                "none",
                "--network",
                &format!("network=default,model=virtio,mac={mac}"),
            ])
            .args([
                "--osinfo",
                "linux2022",
                "--graphics",
                "none",
                "--serial",
                &format!("pty,log.file={log}"),
            ])
            .args([
                "--memballoon",
                "none",
                "--rng",
                "none",
                "--channel",
                "none",
                "--controller",
                "usb,model=none",
            ])
            .args([
                "--input",
                "none",
                "--sound",
                "none",
                "--events",
                "on_reboot=destroy",
            ]);
        cmd
    }
}

/// The xmlstarlet edits of the tiny template that make domain `$NAME`.
pub const XMLSTARLET_EDITS: &str = r#"xmlstarlet ed -u /domain/name -v "$NAME" \
      -u /domain/os/kernel -v "$KERNEL" -u /domain/os/initrd -v "$INITRD" \
      -u /domain/devices/serial/log/@file -v "$LOG" \
      -u /domain/devices/interface/mac/@address -v "$MAC" "$TEMPLATE""#;

/// A MAC for the domains the non-boxvirt contenders define (boxvirt
/// derives its own).
pub fn mac_for(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (h >> 16) as u8,
        (h >> 8) as u8,
        h as u8
    )
}

pub fn serial_log(name: &str) -> PathBuf {
    PathBuf::from(format!("/var/log/libvirt/qemu/{name}.serial.log"))
}
