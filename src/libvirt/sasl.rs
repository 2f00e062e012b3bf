//! SASL credentials for connections to a hardened nested host (its socket
//! asks for SCRAM-SHA-256). The source is explicit: the caller registers the
//! credential for the exact URIs of that instance (read from its data dir),
//! and only those URIs are opened with `Connect::open_auth`; a server behind
//! any other URI never sees it.

use std::cell::RefCell;
use std::sync::Mutex;

use virt::connect::{Connect, ConnectAuth, ConnectCredential, ConnectCredentialType};

/// (uri, authname, password) of each registered URI.
static REGISTERED: Mutex<Vec<(String, String, String)>> = Mutex::new(Vec::new());

thread_local! {
    /// The credential of the open_auth call running on this thread (libvirt
    /// calls the plain-fn callback synchronously, on the opening thread).
    static CURRENT: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Authenticate to `uri` as `user` with `password` from now on.
pub fn register_credential(uri: &str, user: &str, password: &str) {
    if let Ok(mut list) = REGISTERED.lock() {
        list.retain(|(u, _, _)| u != uri);
        list.push((uri.to_string(), user.to_string(), password.to_string()));
    }
}

/// The credential registered for `uri`, if any.
pub fn credential_for(uri: &str) -> Option<(String, String)> {
    REGISTERED.lock().ok().and_then(|list| {
        list.iter()
            .find(|(u, _, _)| u == uri)
            .map(|(_, user, pw)| (user.clone(), pw.clone()))
    })
}

// The callback type is libvirt's (virt::connect::ConnectAuthCallback).
#[allow(clippy::ptr_arg)]
fn fill(creds: &mut Vec<ConnectCredential>) {
    CURRENT.with(|c| {
        if let Some((user, password)) = c.borrow().as_ref() {
            for cred in creds.iter_mut() {
                match cred.typed {
                    ConnectCredentialType::AuthName => cred.result = Some(user.clone()),
                    ConnectCredentialType::Passphrase => cred.result = Some(password.clone()),
                    _ => {}
                }
            }
        }
    });
}

/// Opens `uri` with `credential` answering libvirt's SASL prompts.
pub fn open_with(uri: &str, credential: (String, String)) -> Result<Connect, virt::error::Error> {
    CURRENT.with(|c| *c.borrow_mut() = Some(credential));
    let mut auth = ConnectAuth::new(
        vec![
            ConnectCredentialType::AuthName,
            ConnectCredentialType::Passphrase,
        ],
        fill,
    );
    let result = Connect::open_auth(Some(uri), &mut auth, 0);
    CURRENT.with(|c| *c.borrow_mut() = None);
    result
}
