//! `boxvirt uri`: how to reach this instance's libvirt from other tools
//! (over TLS too when the instance serves it: `up --tls`).

use serde::Serialize;

use crate::context::Ctx;
use crate::error::{Exit, Result};
use crate::nested::tls::{self, Pki};
use crate::nested::Engine;
use crate::quote;
use crate::settings::Settings;

#[derive(Serialize)]
struct Uris {
    socket_uri: String,
    ssh_uri: String,
    ssh_config: String,
    ssh_command: String,
    virsh_socket: String,
    virsh_ssh: String,
    virt_manager: String,
    /// `qemu+tls://127.0.0.1:PORT/system?pkipath=DATA/pki` after `up --tls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    virsh_tls: Option<String>,
    /// A hardened instance's libvirt auth.conf (SASL credential), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_file: Option<String>,
}

/// The virsh command that lists every domain at `uri`.
pub fn virsh_list(uri: &str) -> String {
    format!("virsh -c {} list --all", quote::shell(uri))
}

/// The TLS URI when the instance serves TLS: its container says so (and
/// which port it publishes); without Docker, BOXVIRT_TLS=1 and a client
/// certificate in the data dir do.
fn tls_uri(s: &Settings) -> Option<String> {
    let container = Engine::connect()
        .ok()
        .and_then(|e| e.container(&s.container_name()).ok());
    let port = match container {
        Some(Some(c)) if c.tls() => c.tls_port.unwrap_or(s.libvirt_tls_port),
        Some(Some(_)) => return None,
        _ if tls::wanted(s) && Pki::of(s).client_cert().exists() => s.libvirt_tls_port,
        _ => return None,
    };
    Some(
        Settings {
            libvirt_tls_port: port,
            ..s.clone()
        }
        .tls_uri(),
    )
}

/// A hardened instance's auth.conf, when the data dir has one.
fn auth_file(s: &Settings) -> Option<String> {
    let auth = crate::nested::hardening::credentials::auth_conf(&s.data_dir);
    auth.is_file().then(|| auth.display().to_string())
}

/// `line` with LIBVIRT_AUTH_FILE set when the instance wants credentials
/// (virsh and virt-manager read them from there).
pub fn with_auth(s: &Settings, line: String) -> String {
    match auth_file(s) {
        Some(f) => format!("LIBVIRT_AUTH_FILE={} {line}", quote::shell(&f)),
        None => line,
    }
}

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let s = &ctx.settings;
    let tls_uri = tls_uri(s);
    let auth_file = auth_file(s);
    let with_auth = |line: String| with_auth(s, line);
    let u = Uris {
        socket_uri: s.socket_uri(),
        ssh_uri: s.ssh_uri(),
        ssh_config: s.ssh_config_path().display().to_string(),
        ssh_command: s.ssh_command(),
        virsh_socket: with_auth(virsh_list(&s.socket_uri())),
        virsh_ssh: with_auth(virsh_list(&s.ssh_uri())),
        virt_manager: with_auth(format!(
            "virt-manager --connect {}",
            quote::shell(&s.ssh_uri())
        )),
        virsh_tls: tls_uri.as_deref().map(virsh_list),
        tls_uri,
        auth_file: auth_file.clone(),
    };
    if ctx.out.is_json() {
        return ctx.out.json(&u).map(|_| Exit::Ok);
    }
    crate::outln!("socket:       {}", u.socket_uri);
    crate::outln!("over ssh:     {}", u.ssh_uri);
    if let Some(uri) = &u.tls_uri {
        crate::outln!("over tls:     {uri}");
    }
    if let Some(f) = &u.auth_file {
        crate::outln!("credential:   {f} (hardened: the socket wants SASL; virsh and virt-manager read it from LIBVIRT_AUTH_FILE)");
    }
    crate::outln!();
    crate::outln!("{}", u.virsh_socket);
    crate::outln!("{}", u.virsh_ssh);
    if let Some(line) = &u.virsh_tls {
        crate::outln!("{line}");
    }
    crate::outln!("{}", u.virt_manager);
    crate::outln!("{}", u.ssh_command);
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virsh_line_is_one_shell_word_for_the_uri() {
        assert_eq!(
            virsh_list("qemu+unix:///system?socket=/a%20b/s"),
            "virsh -c 'qemu+unix:///system?socket=/a%20b/s' list --all"
        );
        assert_eq!(
            virsh_list("test:///default"),
            "virsh -c test:///default list --all"
        );
    }
}
