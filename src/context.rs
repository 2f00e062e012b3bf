//! What every command gets: resolved settings, the template catalog, output.

use crate::error::Result;
use crate::libvirt::Libvirt;
use crate::output::Output;
use crate::settings::Settings;
use crate::template::Catalog;

pub struct Ctx {
    pub settings: Settings,
    pub catalog: Catalog,
    pub out: Output,
}

impl Ctx {
    pub fn new(settings: Settings) -> Ctx {
        let out = Output {
            format: settings.output,
            quiet: settings.quiet,
            verbose: settings.verbose,
            columns: settings.process.columns,
        };
        let catalog = Catalog::new(settings.template_dir.clone());
        // A hardened instance's credential (DATA/auth); an unreadable one
        // shows as libvirt's authentication error, with the hint.
        let _ = crate::nested::hardening::credentials::register(&settings);
        Ctx {
            settings,
            catalog,
            out,
        }
    }

    /// The next step a connection error suggests.
    pub fn connect_hint(&self) -> String {
        if self.settings.uses_instance() {
            format!(
                "run 'boxvirt up' (instance '{}') or 'boxvirt doctor', or pass -c URI",
                self.settings.instance
            )
        } else {
            "check the URI and that libvirtd runs there; 'boxvirt doctor' shows the details"
                .to_string()
        }
    }

    /// A read-write libvirt connection on the resolved URI.
    pub fn libvirt(&self) -> Result<Libvirt> {
        if self.settings.uses_instance_socket() {
            // A socket path too deep for a unix address goes through a link.
            crate::nested::socket_link::ensure(&self.settings)?;
        }
        let uri = self.settings.uri();
        self.out.detail(format!("connecting to {uri}"));
        Libvirt::open_uri(&uri, &self.connect_hint())
    }
}
