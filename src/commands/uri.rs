//! `boxvirt uri`: how to reach this instance's libvirt from other tools.

use serde::Serialize;

use crate::context::Ctx;
use crate::error::{Exit, Result};
use crate::quote;

#[derive(Serialize)]
struct Uris {
    socket_uri: String,
    ssh_uri: String,
    ssh_config: String,
    ssh_command: String,
    virsh_socket: String,
    virsh_ssh: String,
    virt_manager: String,
}

/// The virsh command that lists every domain at `uri`.
pub fn virsh_list(uri: &str) -> String {
    format!("virsh -c {} list --all", quote::shell(uri))
}

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let s = &ctx.settings;
    let u = Uris {
        socket_uri: s.socket_uri(),
        ssh_uri: s.ssh_uri(),
        ssh_config: s.ssh_config_path().display().to_string(),
        ssh_command: s.ssh_command(),
        virsh_socket: virsh_list(&s.socket_uri()),
        virsh_ssh: virsh_list(&s.ssh_uri()),
        virt_manager: format!("virt-manager --connect {}", quote::shell(&s.ssh_uri())),
    };
    if ctx.out.is_json() {
        return ctx.out.json(&u).map(|_| Exit::Ok);
    }
    crate::outln!("socket:       {}", u.socket_uri);
    crate::outln!("over ssh:     {}", u.ssh_uri);
    crate::outln!();
    crate::outln!("{}", u.virsh_socket);
    crate::outln!("{}", u.virsh_ssh);
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
