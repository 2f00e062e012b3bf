//! Tier 4: any directory, any habit. The real binary, the real Docker engine
//! and the real nested host, with data dirs a new user really has: a space,
//! `&`, `#`, `%`, `?`, `+`, `=`, a single quote and non-ASCII letters, a
//! relative `./data-dev02`, and one too deep for a unix socket address. Then
//! two boxvirts on one instance at once, a lock left by a killed one, and
//! what `up`'s timeout says it saw.
//!
//! Requires (and FAILS without) a Docker engine and the base image, as
//! tests/nested_e2e.rs. Instances are named `paths-*`, live in temp dirs with
//! a temp HOME and XDG_RUNTIME_DIR, and are removed by a drop guard.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

mod common;

use common::nested::{docker, image_tag, run, Out, BIN};

/// One instance: a temp working dir (cwd of every command) with `home/`
/// and `run/` (HOME, XDG_RUNTIME_DIR), and the `--data-dir` argument as
/// the user typed it. Dropping it removes the container.
struct Inst {
    name: String,
    port: u16,
    work: tempfile::TempDir,
    data_arg: String,
}

impl Inst {
    fn new(name: &str, data_arg: &str) -> Inst {
        let work = tempfile::Builder::new()
            .prefix(&format!("boxvirt-{name}-"))
            .tempdir()
            .unwrap();
        for d in ["home", "run"] {
            std::fs::create_dir_all(work.path().join(d)).unwrap();
        }
        let inst = Inst {
            name: name.to_string(),
            port: free_port(),
            work,
            data_arg: data_arg.to_string(),
        };
        docker(&["rm", "-f", &inst.container()]);
        inst
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }
    /// The data dir as an absolute path.
    fn data(&self) -> PathBuf {
        let p = Path::new(&self.data_arg);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir().join(p.strip_prefix("./").unwrap_or(p))
        };
        p
    }
    fn home(&self) -> PathBuf {
        self.dir().join("home")
    }
    fn container(&self) -> String {
        format!("boxman-libvirt-{}", self.name)
    }
    fn alias(&self) -> String {
        format!("boxman-{}", self.name)
    }

    fn prepare(&self, cmd: &mut Command) {
        cmd.current_dir(self.dir())
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.dir().join("run"))
            .stdin(Stdio::null());
        for var in [
            "BOXMAN_INSTANCE_NAME",
            "BOXMAN_DATA_DIR",
            "BOXMAN_SSH_PORT",
            "LIBVIRT_DEFAULT_URI",
            "DOCKER_HOST",
            "BOXVIRT_CONNECT_TIMEOUT",
        ] {
            cmd.env_remove(var);
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--instance",
            &self.name,
            "--ssh-port",
            &self.port.to_string(),
            "--data-dir",
            &self.data_arg,
        ])
        .args(args);
        self.prepare(&mut cmd);
        cmd
    }

    fn run(&self, args: &[&str]) -> Out {
        run(self.command(args))
    }

    fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_eq!(
            out.code, 0,
            "boxvirt {args:?} in {}: {out:?}",
            self.data_arg
        );
        out
    }

    /// Another program (ssh, sh) in the same environment; asserts exit 0.
    fn program_ok(&self, program: &str, args: &[&str]) -> Out {
        let mut cmd = Command::new(program);
        cmd.args(args);
        self.prepare(&mut cmd);
        let out = run(cmd);
        assert_eq!(out.code, 0, "{program} {args:?}: {out:?}");
        out
    }

    fn spawn(&self, args: &[&str]) -> Child {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    }

    /// Waits until `child` holds the instance lock (its pid is in the file).
    fn wait_for_lock_of(&self, child: &Child) {
        let lock = self.data().join(".boxvirt.lock");
        let want = child.id().to_string();
        let started = Instant::now();
        while std::fs::read_to_string(&lock).unwrap_or_default().trim() != want {
            assert!(
                started.elapsed().as_secs() < 120,
                "pid {want} never took {}",
                lock.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn exists(&self) -> bool {
        docker(&["container", "inspect", &self.container()])
    }

    fn running(&self) -> bool {
        Command::new("docker")
            .args(["container", "inspect", "-f", "{{.State.Running}}"])
            .arg(self.container())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
    }
}

impl Drop for Inst {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.container()]);
    }
}

fn finish(child: Child) -> Out {
    let started = Instant::now();
    let out = Out::of(child.wait_with_output().unwrap(), started);
    eprintln!("[background] -> {}\n{}", out.code, out.stderr);
    out
}

/// A free port from the kernel (the --auto-ports flag covers a later race).
fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn require_engine_and_base_image() {
    common::nested::require_engine_and_base_image();
    ensure_image();
}

/// The nested-host image, built once for all tests of this file (they run
/// in parallel; an earlier tier-4 file's `clean all` may have removed it).
fn ensure_image() {
    static BUILT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if docker(&["image", "inspect", &image_tag()]) {
        return;
    }
    let mut cmd = Command::new(BIN);
    cmd.arg("build").stdin(Stdio::null());
    let out = run(cmd);
    assert_eq!(out.code, 0, "boxvirt build: {out:?}");
}

fn check_row(report: &serde_json::Value, id: &str, status: &str) -> serde_json::Value {
    let row = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no row {id}: {report:#}"))
        .clone();
    assert_eq!(row["status"], status, "{id}: {row}");
    row
}

/// Every way in, against one running instance: boxvirt's own commands,
/// the real ssh with the generated config (directly and through link-ssh)
/// and the real virsh with the commands `boxvirt uri` prints.
fn every_way_in(i: &Inst) {
    let up = i.ok(&["up", "--auto-ports"]);
    assert!(
        up.stdout.contains(&format!("instance '{}' is up", i.name)),
        "{up:?}"
    );
    i.ok(&["status"]);
    let doctor = i.run(&["-o", "json", "doctor"]);
    assert_eq!(
        doctor.code, 0,
        "doctor in {}: {}",
        i.data_arg, doctor.stdout
    );
    let report = doctor.json();
    for id in [
        "instance-socket",
        "instance-sshd",
        "host-ids",
        "cgroup-controllers",
        "libvirt",
        "network-default",
    ] {
        check_row(&report, id, "pass");
    }
    i.ok(&["vm", "list"]);
    i.ok(&["--via", "ssh", "vm", "list"]);

    // The real ssh, with the config path as the user would type it.
    let conf = Path::new(&i.data_arg).join("ssh/boxman.conf");
    let conf = conf.to_str().unwrap();
    i.program_ok("ssh", &["-F", conf, &i.alias(), "true"]);

    // link-ssh into the temp HOME, and ssh through the link.
    i.ok(&["link-ssh"]);
    let link = i
        .home()
        .join(format!(".ssh/config.d/boxman/{}.conf", i.alias()));
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        i.data().join("ssh/boxman.conf")
    );
    i.program_ok("ssh", &["-F", link.to_str().unwrap(), &i.alias(), "true"]);

    // The virsh lines `boxvirt uri` prints, through a real shell.
    let uri = i.ok(&["-o", "json", "uri"]).json();
    let deep = i.data().join("libvirt-run/libvirt-sock").as_os_str().len() > 107;
    let through_link = uri["socket_uri"].as_str().unwrap().contains(&format!(
        "socket={}/",
        i.dir().join("run/boxvirt").display()
    ));
    assert_eq!(deep, through_link, "{uri}");
    for key in ["virsh_socket", "virsh_ssh", "ssh_command"] {
        let line = uri[key].as_str().unwrap();
        let line = if key == "ssh_command" {
            format!("{line} true")
        } else {
            line.to_string()
        };
        i.program_ok("sh", &["-c", &line]);
    }
    i.ok(&["down"]);
    assert!(!i.running());
    let clean = i.ok(&["clean", "data", "--yes"]);
    assert!(!i.data().exists());
    // The stopped container binds the data dir: it goes with it.
    assert!(!i.exists(), "{clean:?}");
    assert!(
        clean.stderr.contains("removed stopped container"),
        "{clean:?}"
    );
    // No link is left behind in the runtime dir (the deep case made one).
    let links = std::fs::read_dir(i.dir().join("run/boxvirt"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        links,
        0,
        "links left in {}",
        i.dir().join("run/boxvirt").display()
    );
}

#[test]
fn nested_paths_every_way_in_for_awkward_data_dirs() {
    require_engine_and_base_image();
    let started = Instant::now();
    let parent = tempfile::Builder::new()
        .prefix("boxvirt-paths-")
        .tempdir()
        .unwrap();
    let nasty = parent.path().join("sp ace&x#y%z?a+b=c'd:e,f-äöü Ωñ/data");
    let percent = parent.path().join("100%41 =+ é/data");
    let deep = parent.path().join("d".repeat(110));
    assert!(deep.join("libvirt-run/libvirt-sock").as_os_str().len() > 107);
    let cases = [
        ("paths-nasty", nasty.to_str().unwrap().to_string()),
        ("paths-pct", percent.to_str().unwrap().to_string()),
        ("paths-rel", "./data-dev02".to_string()),
        ("paths-deep", deep.to_str().unwrap().to_string()),
    ];
    for (name, data) in &cases {
        let i = Inst::new(name, data);
        every_way_in(&i);
    }
    eprintln!(
        "path matrix: {} data dirs in {:.0} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn nested_paths_deep_socket_without_a_runtime_dir_is_refused_first() {
    require_engine_and_base_image();
    let deep = tempfile::Builder::new()
        .prefix("boxvirt-deep-")
        .tempdir()
        .unwrap();
    let data = deep.path().join("d".repeat(110));
    let i = Inst::new("paths-refused", data.to_str().unwrap());
    // No runtime dir can be made: XDG_RUNTIME_DIR is a file.
    let file = i.dir().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    for args in [&["up"][..], &["vm", "list"][..]] {
        let mut cmd = i.command(args);
        cmd.env("XDG_RUNTIME_DIR", &file);
        let out = run(cmd);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        let line = out.stderr.trim();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.contains("107 bytes"), "{line}");
        assert!(line.contains("shorter --data-dir"), "{line}");
        assert!(!line.contains("boxvirt up"), "{line}");
    }
    assert!(!i.exists(), "up must refuse before starting anything");
    assert!(!data.exists(), "up must refuse before making anything");

    // A `"` cannot be written into an ssh config: refused before anything.
    let quoted = deep.path().join("a\"b/data");
    let q = Inst::new("paths-dquote", quoted.to_str().unwrap());
    let out = q.run(&["up"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("ssh config"), "{out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
    assert!(!q.exists());
    assert!(!quoted.exists());
}

#[test]
fn nested_paths_concurrent_commands_on_one_instance() {
    require_engine_and_base_image();
    let i = Inst::new("paths-lock", "./data");

    // Two `up`s at once: both succeed; one waited and found it up.
    let first = i.spawn(&["up", "--auto-ports", "--no-link-ssh"]);
    i.wait_for_lock_of(&first);
    let second = i.spawn(&["up", "--auto-ports", "--no-link-ssh"]);
    let (a, b) = (finish(first), finish(second));
    assert_eq!((a.code, b.code), (0, 0), "{a:?}\n{b:?}");
    assert!(a.stdout.contains("is up in"), "{a:?}");
    assert!(
        b.stderr.contains("waiting for another boxvirt (pid")
            && b.stderr.contains("working on instance 'paths-lock'"),
        "{b:?}"
    );
    assert!(
        b.stderr.contains("instance 'paths-lock' is already up"),
        "{b:?}"
    );

    // clean data while up: refused (4); the data stays.
    let out = i.run(&["clean", "data", "--yes"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(i.data().join("ssh/boxman.conf").exists());

    // `down` during an `up` (a restart): waits for it, then stops it.
    i.ok(&["down"]);
    let up = i.spawn(&["up", "--auto-ports", "--no-link-ssh"]);
    i.wait_for_lock_of(&up);
    // clean data while another boxvirt holds the lock: refused (4).
    let out = i.run(&["clean", "data", "--yes"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("is in use"), "{out:?}");
    let up_pid = up.id();
    let down = i.run(&["down"]);
    let up = finish(up);
    assert_eq!(up.code, 0, "{up:?}");
    assert_eq!(down.code, 0, "{down:?}");
    assert!(
        down.stderr.contains(&format!(
            "waiting for another boxvirt (pid {up_pid}) working on instance 'paths-lock'"
        )),
        "{down:?}"
    );
    assert!(!i.running(), "down must stop what the up started");

    // A lock held by a SIGKILLed boxvirt does not block the next one.
    let mut killed = i.spawn(&["up", "--auto-ports", "--no-link-ssh"]);
    i.wait_for_lock_of(&killed);
    killed.kill().unwrap();
    let _ = killed.wait();
    let out = i.ok(&["up", "--auto-ports", "--no-link-ssh"]);
    assert!(!out.stderr.contains("waiting for another"), "{out:?}");
    i.ok(&["down"]);
    i.ok(&["clean", "data", "--yes"]);
    assert!(!i.data().exists());
}

#[test]
fn nested_paths_doctor_rows_and_up_timeout_messages() {
    require_engine_and_base_image();
    let i = Inst::new("paths-timeout", "./data");
    i.ok(&["up", "--auto-ports", "--no-link-ssh"]);
    let c = i.container();

    // doctor, the original's two other troubleshooting items. A uid with no
    // record inside the container fails host-ids, naming the fix.
    let out = i.run(&[
        "--host-uid",
        "4242",
        "--host-gid",
        "4243",
        "-o",
        "json",
        "doctor",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    let row = check_row(&out.json(), "host-ids", "fail");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains("uid 4242 has no user record"), "{row}");
    assert!(detail.contains("gid 4243 has no group"), "{row}");
    assert!(
        row["fix"].as_str().unwrap().contains("boxvirt restart"),
        "{row}"
    );
    // qemu.conf without `cgroup_controllers = [ ]` in a container whose
    // cgroup fs is read-only fails cgroup-controllers, naming the setting.
    let conf = i.data().join("libvirt-etc/qemu.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("cgroup_controllers = [ ]"), "{text}");
    std::fs::write(
        &conf,
        text.replace("cgroup_controllers = [ ]", "#cgroup_controllers = [ ]"),
    )
    .unwrap();
    let out = i.run(&["-o", "json", "doctor"]);
    std::fs::write(&conf, &text).unwrap();
    assert_eq!(out.code, 1, "{out:?}");
    let row = check_row(&out.json(), "cgroup-controllers", "fail");
    assert!(
        row["fix"]
            .as_str()
            .unwrap()
            .contains("cgroup_controllers = [ ]"),
        "{row}"
    );
    let out = i.ok(&["-o", "json", "doctor"]);
    check_row(&out.json(), "cgroup-controllers", "pass");
    check_row(&out.json(), "host-ids", "pass");

    // libvirtd frozen: the socket is there but nothing answers.
    assert!(docker(&["exec", &c, "pkill", "-STOP", "-x", "libvirtd"]));
    let mut cmd = i.command(&["up", "--timeout", "3", "--no-link-ssh"]);
    cmd.env("BOXVIRT_CONNECT_TIMEOUT", "1");
    let out = run(cmd);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(
        out.stderr
            .contains("socket there but libvirt does not answer"),
        "{out:?}"
    );
    assert!(out.stderr.contains("last log lines of"), "{out:?}");
    assert!(out.stderr.contains("boxvirt restart"), "{out:?}");

    // The socket gone: "socket missing".
    assert!(docker(&[
        "exec",
        &c,
        "rm",
        "-f",
        "/run/libvirt/libvirt-sock"
    ]));
    let out = i.run(&["up", "--timeout", "2", "--no-link-ssh"]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("socket missing"), "{out:?}");
    assert!(!out.stderr.contains("does not answer"), "{out:?}");

    // The container dies while `up` waits: "container exited" with its code.
    let mut waiting = i.spawn(&["up", "--timeout", "120", "--no-link-ssh"]);
    let mut stderr = BufReader::new(waiting.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("waiting for libvirt on") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    assert!(docker(&["kill", &c]));
    let mut rest = String::new();
    for line in stderr.lines() {
        rest.push_str(&line.unwrap());
        rest.push('\n');
    }
    let status = waiting.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen}{rest}");
    assert!(rest.contains("container exited"), "{rest}");
    assert!(rest.contains("exit code 137"), "{rest}");
    assert!(rest.contains("last log lines of"), "{rest}");
}
