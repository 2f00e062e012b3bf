//! The floor for K VMs: the least a program can do to define and start K
//! domains from parallel threads (`env floor URI N XMLFILE...`), and to
//! destroy and undefine them (`env floor-delete URI N NAME...`). The runner
//! re-executes its own binary, so the floor pays a process start and, per
//! thread, a connection handshake, as `env apply`'s workers do.

use std::sync::atomic::{AtomicUsize, Ordering};

use virt::connect::Connect;

/// `floor URI N XMLFILE...`: define + start each, N threads.
pub fn main(args: &[String]) -> ! {
    exit(run(args, "floor", |conn, xml_file| {
        let xml = std::fs::read_to_string(xml_file).map_err(|e| format!("{xml_file}: {e}"))?;
        let dom = conn.define_domain_xml(&xml).map_err(|e| e.to_string())?;
        dom.create().map_err(|e| e.to_string()).map(|_| ())
    }))
}

/// `floor-delete URI N NAME...`: destroy + undefine each, N threads.
pub fn delete_main(args: &[String]) -> ! {
    exit(run(args, "floor-delete", |conn, name| {
        let dom = conn
            .lookup_domain_by_name(name)
            .map_err(|e| e.to_string())?;
        dom.destroy().map_err(|e| e.to_string())?;
        dom.undefine().map_err(|e| e.to_string())
    }))
}

fn exit(r: Result<(), String>) -> ! {
    match r {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// N threads, each with its own connection, take the jobs in order.
fn run(
    args: &[String],
    what: &str,
    job: impl Fn(&Connect, &str) -> Result<(), String> + Sync,
) -> Result<(), String> {
    let [uri, n, items @ ..] = args else {
        return Err(format!("usage: env {what} URI N ITEM..."));
    };
    let n: usize = n.parse().map_err(|_| format!("{what}: bad N {n}"))?;
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..n.clamp(1, items.len().max(1)))
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    let conn = Connect::open(Some(uri)).map_err(|e| e.to_string())?;
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(item) = items.get(i) else {
                            return Ok(());
                        };
                        job(&conn, item).map_err(|e| format!("{what} {item}: {e}"))?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(format!("{what}: a thread panicked")))
            })
            .collect::<Result<Vec<()>, String>>()
            .map(|_| ())
    })
}
