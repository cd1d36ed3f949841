//! The `homeserver` binary's command line.

use std::process::Command;

fn homeserver() -> Command {
    Command::new(env!("CARGO_BIN_EXE_homeserver"))
}

#[test]
fn help_lists_every_subcommand() {
    let out = homeserver().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "generate-config",
        "register-user",
        "hash-password",
        "--config-path",
    ] {
        assert!(text.contains(sub), "{sub} missing from:\n{text}");
    }
}

#[test]
fn a_bad_config_exits_2_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "server_name: example.org\nlisteners:\n  - port: eighty\n",
    )
    .unwrap();
    let out = homeserver().arg("-c").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("listeners[0].port"),
        "{err}"
    );
}

#[test]
fn a_bad_appservice_registration_exits_2_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("bridge.yaml");
    std::fs::write(
        &reg,
        "id: b\nurl: null\nas_token: a\nhs_token: h\nsender_localpart: bot\n\
         namespaces:\n  users:\n    - exclusive: true\n      regex: '@b_(('\n",
    )
    .unwrap();
    let path = dir.path().join("hs.yaml");
    std::fs::write(
        &path,
        format!(
            "server_name: example.org\napp_service_config_files: [\"{}\"]\n",
            reg.display()
        ),
    )
    .unwrap();
    let out = homeserver().arg("-c").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bridge.yaml") && err.contains("namespaces.users[0]"),
        "{err}"
    );
}

#[test]
fn bad_arguments_exit_2() {
    let out = homeserver().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = homeserver()
        .args(["generate-config", "--server-name", "not a name"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn generate_config_writes_once_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hs.yaml");
    let data = dir.path().join("data");
    let run = || {
        homeserver()
            .args([
                "generate-config",
                "--server-name",
                "example.org",
                "--config-path",
            ])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    let first = std::fs::read_to_string(&config).unwrap();
    assert!(first.contains("server_name: \"example.org\""));
    assert!(data.join("example.org.signing.key").exists());
    let again = run();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        first,
        "the config was not touched"
    );
}

#[test]
fn hash_password_prints_an_argon2id_hash_that_verifies() {
    let out = homeserver()
        .args(["hash-password", "-p", "s3cret"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(homeserver::service::passwords::verify(
        "s3cret",
        hash.trim()
    ));
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over plain HTTP/1.1: (status line, body), or `None` if nothing listens.
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// Runs the real server with `extra` config on a client port and a metrics port, and calls
/// `check(client_port, metrics_port)` once the client port answers; returns its stderr.
fn with_running_server(extra: &str, check: impl FnOnce(u16, u16)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (client, metrics) = (free_port(), free_port());
    let path = dir.path().join("hs.yaml");
    std::fs::write(
        &path,
        format!(
            "server_name: localhost\n\
             database: {{name: sqlite3, args: {{database: \"{data}/hs.db\"}}}}\n\
             media_store_path: \"{data}/media\"\n\
             listeners:\n  - {{port: {client}, type: http, resources: [{{names: [client]}}]}}\n  \
             - {{port: {metrics}, type: metrics, bind_addresses: ['127.0.0.1']}}\n{extra}",
            data = dir.path().display()
        ),
    )
    .unwrap();
    let mut child = homeserver()
        .arg("-c")
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while http_get(client, "/_matrix/client/versions").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(client, metrics)));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if let Err(panic) = outcome {
        eprintln!("server log:\n{stderr}");
        std::panic::resume_unwind(panic);
    }
    stderr
}

#[test]
fn a_metrics_listener_serves_prometheus_text_on_its_own_port() {
    with_running_server("enable_metrics: true\n", |client, metrics| {
        let (status, body) = http_get(metrics, "/metrics").unwrap();
        assert!(status.ends_with("200 OK"), "{status}");
        assert!(body.contains("process_resident_memory_bytes "), "{body}");
        // The request to the client port that showed the server was up is counted.
        assert!(
            body.contains(
                "causeway_http_requests_total{method=\"GET\",route=\"/_matrix/client/versions\",status=\"2xx\"}"
            ),
            "{body}"
        );
        let (status, _) = http_get(metrics, "/_synapse/metrics").unwrap();
        assert!(status.ends_with("200 OK"), "{status}");
        // Not on the client listener, which does not list the `metrics` resource.
        let (status, _) = http_get(client, "/_synapse/metrics").unwrap();
        assert!(status.ends_with("404 Not Found"), "{status}");
    });
}

#[test]
fn a_metrics_listener_without_enable_metrics_is_not_started_and_says_why() {
    let log = with_running_server("", |_, metrics| {
        assert!(http_get(metrics, "/metrics").is_none(), "nothing listens");
    });
    assert!(
        log.contains("a metrics listener is configured but `enable_metrics` is not true"),
        "{log}"
    );
}
