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
