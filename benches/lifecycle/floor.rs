//! The floor: the least a program can do to create and start a domain through
//! libvirt's API. The runner re-executes its own binary as
//! `lifecycle floor URI XMLFILE`, so the floor pays the same process start and
//! connection handshake as the CLIs it is compared with: open the
//! connection, define the XML, start the domain. Nothing else.

use virt::connect::Connect;

/// Runs the minimal program and exits (0 on success, 1 with a message).
pub fn main(args: &[String]) -> ! {
    let [uri, xml_file] = args else {
        eprintln!("usage: lifecycle floor URI XMLFILE");
        std::process::exit(2);
    };
    match define_and_start(uri, xml_file) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("floor: {e}");
            std::process::exit(1);
        }
    }
}

fn define_and_start(uri: &str, xml_file: &str) -> Result<(), String> {
    let xml = std::fs::read_to_string(xml_file).map_err(|e| format!("{xml_file}: {e}"))?;
    let conn = Connect::open(Some(uri)).map_err(|e| e.to_string())?;
    let dom = conn.define_domain_xml(&xml).map_err(|e| e.to_string())?;
    dom.create().map_err(|e| e.to_string())?;
    Ok(())
}

/// `lifecycle floor-delete URI NAME`: the least a program can do to remove
/// a running domain: open, look up, destroy, undefine.
pub fn delete_main(args: &[String]) -> ! {
    let [uri, name] = args else {
        eprintln!("usage: lifecycle floor-delete URI NAME");
        std::process::exit(2);
    };
    let run = || -> Result<(), String> {
        let conn = Connect::open(Some(uri)).map_err(|e| e.to_string())?;
        let dom = conn
            .lookup_domain_by_name(name)
            .map_err(|e| e.to_string())?;
        dom.destroy().map_err(|e| e.to_string())?;
        dom.undefine().map_err(|e| e.to_string())?;
        Ok(())
    };
    match run() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("floor-delete: {e}");
            std::process::exit(1);
        }
    }
}
