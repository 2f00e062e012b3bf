//! A domain's serial console as a libvirt stream (works over any URI).

use virt::stream::Stream;
use virt::sys;

use super::errors::failure;
use super::Libvirt;
use crate::error::{Failure, Result};

pub struct Console {
    stream: Stream,
}

impl Libvirt {
    /// Opens the first console; `force` takes it over from another client.
    pub fn open_console(&self, name: &str, force: bool) -> Result<Console> {
        let dom = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(|e| failure(e, &format!("looking up vm '{name}'")))?;
        let stream = Stream::new(&self.conn, 0).map_err(|e| failure(e, "opening a stream"))?;
        let flags = if force {
            sys::VIR_DOMAIN_CONSOLE_FORCE
        } else {
            0
        };
        dom.open_console(None, &stream, flags)
            .map_err(|e| failure(e, &format!("opening the console of vm '{name}'")))?;
        Ok(Console { stream })
    }
}

impl Console {
    /// Blocks until the guest prints; 0 means the console closed.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        match self.stream.recv(buf) {
            Ok(n) => Ok(n.max(0) as usize),
            Err(e) => Err(failure(e, "reading the console")),
        }
    }

    pub fn write(&self, data: &[u8]) -> Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            match self.stream.send(rest) {
                Ok(n) if n > 0 => rest = &rest[n as usize..],
                Ok(_) => return Err(Failure::failed("the console closed")),
                Err(e) => return Err(failure(e, "writing to the console")),
            }
        }
        Ok(())
    }
}
