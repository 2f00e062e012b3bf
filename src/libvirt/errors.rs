//! libvirt errors turned into [`Failure`]s with the right exit kind.

use virt::error::{Error as VirtError, ErrorNumber};

use crate::error::{Exit, Failure};

/// `what` names the action and object, e.g. "starting vm 'tiny-1'".
pub fn failure(err: VirtError, what: &str) -> Failure {
    let exit = match err.code().unwrap_or(ErrorNumber::InternalError) {
        ErrorNumber::NoDomain
        | ErrorNumber::NoNetwork
        | ErrorNumber::NoStoragePool
        | ErrorNumber::NoStorageVolume => Exit::NotFound,
        ErrorNumber::DomExist
        | ErrorNumber::NetworkExist
        | ErrorNumber::StorageVolExist
        | ErrorNumber::StoragePoolBuilt => Exit::Conflict,
        ErrorNumber::OperationTimeout => Exit::Timeout,
        ErrorNumber::NoConnect
        | ErrorNumber::AuthFailed
        | ErrorNumber::AuthUnavailable
        | ErrorNumber::AuthCancelled => Exit::Connect,
        ErrorNumber::SystemError | ErrorNumber::Rpc if err.domain().is_known_and(is_transport) => {
            Exit::Connect
        }
        _ => Exit::Failed,
    };
    Failure::new(exit, format!("{what}: {}", clean(err.message())))
}

fn is_transport(d: virt::error::ErrorDomain) -> bool {
    use virt::error::ErrorDomain::*;
    matches!(d, Rpc | Remote | Ssh | Libssh)
}

/// libvirt messages can span lines (ssh stderr); keep them on one.
pub fn clean(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn is_code(err: &VirtError, code: ErrorNumber) -> bool {
    err.code().is_known_and(|c| c == code)
}
