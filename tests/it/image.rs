//! The container image without a Docker engine: the files the Dockerfile's runtime stage copies
//! are laid out in a folder as in the image, and this build's binary runs there as the image
//! does: its default command, as uid 10001, from the image's working directory, on the image's
//! config (only the broker names and admin port made unique on this shared broker), with the
//! ledger on the image's volume path, and the variables that config requires (`AMQP_URL`,
//! `WEBHOOK_SECRET`: it has no defaults for credentials) set as `docker run -e` would. It must
//! become ready.
//!
//! As root, the volume is a private tmpfs mount in a mount namespace of the process's own
//! (`unshare`), owned by uid 10001 as the Dockerfile makes it, and the process drops to that
//! uid with `setpriv`. Otherwise the process runs as the (unprivileged) current user with the
//! ledger in a folder of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::support::poll::wait_for_status;
use crate::support::process::admin_address;
use crate::support::{AMQP_URL, SECRET, TestApp};

const UID: &str = "10001";
const VOLUME: &str = "/var/lib/run-notifier";

/// The runtime stage: everything after the last `FROM`.
fn runtime_stage() -> String {
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    let start = dockerfile.rfind("\nFROM ").expect("a runtime stage");
    dockerfile[start..].to_owned()
}

fn instruction<'a>(stage: &'a str, name: &str) -> Vec<&'a str> {
    stage
        .lines()
        .filter_map(|line| line.strip_prefix(name))
        .map(str::trim)
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn make_traversable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether this process may build a mount namespace and change uid (root, with `unshare` and
/// `setpriv` installed and allowed).
fn can_drop_privileges() -> bool {
    std::process::Command::new("unshare")
        .args([
            "-m",
            "setpriv",
            "--reuid",
            UID,
            "--regid",
            UID,
            "--clear-groups",
            "true",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn the_image_starts_with_its_default_command_as_uid_10001_and_becomes_ready() {
    let stage = runtime_stage();
    assert_eq!(instruction(&stage, "USER "), [UID]);
    assert_eq!(instruction(&stage, "CMD "), [r#"["run"]"#]);
    assert_eq!(instruction(&stage, "VOLUME "), [VOLUME]);
    assert!(
        stage.contains(&format!("chown {UID} {VOLUME}")),
        "the volume belongs to the image's user"
    );
    let workdir = PathBuf::from(instruction(&stage, "WORKDIR ")[0]);
    let config_in_image = instruction(&stage, "ENV RUN_NOTIFIER_CONFIG=")[0].to_owned();

    // The image's file system, under a folder of its own.
    let root = tempfile::tempdir().unwrap();
    make_traversable(root.path());
    let image = |path: &Path| root.path().join(path.strip_prefix("/").unwrap());
    let app = image(&workdir);
    for copy in instruction(&stage, "COPY ") {
        let parts: Vec<&str> = copy.split_whitespace().collect();
        if let ["--from=build", _, to] = parts[..] {
            let binary = image(Path::new(to));
            std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
            std::fs::copy(env!("CARGO_BIN_EXE_run-notifier"), &binary).unwrap();
        } else if let [from, to] = parts[..] {
            copy_dir(Path::new(from), &app.join(to));
        } else {
            panic!("an unexpected COPY: {copy}");
        }
    }
    for dir in ["app", "usr", "usr/local", "usr/local/bin"] {
        make_traversable(&root.path().join(dir));
    }
    let binary = image(Path::new("/usr/local/bin/run-notifier"));
    let config_path = image(Path::new(&config_in_image));
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(config.contains("listen: 0.0.0.0:9464"), "{config}");
    assert!(
        config.contains(&format!("path: {VOLUME}/run-notifier.db")),
        "{config}"
    );

    let test_app = TestApp::new().await;
    let names = &test_app.names;
    names
        .integrations
        .lock()
        .unwrap()
        .insert("audit-webhook".to_owned());
    let mut config = config
        // Any free port: the worker logs the one it takes.
        .replace("0.0.0.0:9464", "0.0.0.0:0")
        .replace(
            "broker:\n",
            &format!(
                "broker:\n  exchange: {}\n  queue: {}\n  retry_queue_prefix: {}\n  dead_letter_queue: {}\n  control_exchange: {}\n",
                names.exchange, names.queue, names.retry_prefix, names.dead, names.control
            ),
        );
    let privileged = can_drop_privileges();
    let own_volume = tempfile::tempdir().unwrap();
    let mut command = if privileged {
        // The volume as the Dockerfile makes it (a directory owned by 10001), private to this
        // process; then the image's user.
        let script = format!(
            "mount -t tmpfs tmpfs /var/lib && mkdir {VOLUME} && chown {UID} {VOLUME} && exec setpriv --reuid {UID} --regid {UID} --clear-groups \"$0\" run"
        );
        let mut command = tokio::process::Command::new("unshare");
        command.args(["-m", "sh", "-c", &script]).arg(&binary);
        command
    } else {
        eprintln!("not root: running as the current user, ledger in a folder of its own");
        config = config.replace(VOLUME, &own_volume.path().display().to_string());
        let mut command = tokio::process::Command::new(&binary);
        command.arg("run");
        command
    };
    std::fs::write(&config_path, config).unwrap();
    let log = own_volume.path().join("worker.log");
    let process = command
        .current_dir(&app)
        .env("RUN_NOTIFIER_CONFIG", &config_path)
        .env_remove("WEBHOOK_URL")
        .env("WEBHOOK_SECRET", SECRET)
        .env("AMQP_URL", AMQP_URL)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admin = admin_address(&log);
    wait_for_status(&format!("http://127.0.0.1:{}/readyz", admin.port()), 200).await;
    let pid = process.id().unwrap();
    if privileged {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(uid.split_whitespace().nth(1), Some(UID), "{uid}");
        // The ledger is on the volume, seen through the process's own mount namespace.
        let ledger = format!("/proc/{pid}/root{VOLUME}/run-notifier.db");
        assert!(Path::new(&ledger).exists(), "no {ledger}");
    } else {
        assert!(own_volume.path().join("run-notifier.db").exists());
    }

    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = process.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
