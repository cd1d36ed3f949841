use super::*;

#[test]
fn a_minimal_config_gets_synapse_defaults() {
    let c = Config::parse("server_name: example.org\n", "t.yaml").unwrap();
    assert_eq!(c.http_addresses(), vec!["127.0.0.1:8008".parse().unwrap()]);
    assert_eq!(
        c.backend(),
        Backend::Sqlite {
            path: "homeserver.db".to_owned()
        }
    );
    assert_eq!(c.max_upload_size, ByteSize(50 * 1024 * 1024));
    assert!(!c.enable_registration);
}

#[test]
fn sizes_and_durations_take_synapse_suffixes() {
    let c = Config::parse(
        "server_name: a.b\nmax_upload_size: 10M\nturn_user_lifetime: 2h\nrefreshable_access_token_lifetime: 90s\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(c.max_upload_size, ByteSize(10 * 1024 * 1024));
    assert_eq!(c.turn_user_lifetime, Duration(7_200_000));
    assert_eq!(c.refreshable_access_token_lifetime, Duration(90_000));
}

#[test]
fn postgres_args_become_a_url() {
    let c = Config::parse(
        "server_name: a.b\ndatabase:\n  name: psycopg2\n  args: {user: syn, password: pw, database: db1, host: 127.0.0.1, port: 5433, cp_max: 7}\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(
        c.backend(),
        Backend::Postgres {
            url: "postgres://syn:pw@127.0.0.1:5433/db1".to_owned(),
            max_connections: 7,
            min_connections: 5,
        }
    );
}

#[test]
fn a_wrong_value_names_the_key() {
    let err = Config::parse(
        "server_name: a.b\nlisteners:\n  - port: notaport\n",
        "hs.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("hs.yaml: "), "{err}");
    assert!(err.contains("listeners[0].port"), "{err}");

    let err = Config::parse("server_name: a.b\ndatabase: {name: mysql}\n", "hs.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("database.name") && err.contains("sqlite3"),
        "{err}"
    );

    let err = Config::parse("enable_registration: true\n", "hs.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("server_name"), "{err}");

    let err = Config::parse("server_name: a.b\nmax_upload_size: lots\n", "hs.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_upload_size"), "{err}");
}

#[test]
fn unknown_keys_are_not_fatal() {
    let c = Config::parse(
        "server_name: a.b\nmacaroon_secret_key: x\nlisteners:\n  - port: 9000\n    frob: 1\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(c.listeners[0].port, 9000);
}

#[test]
fn rc_login_accepts_flat_and_nested_shapes() {
    let c = Config::parse(
        "server_name: a.b\nrc_login: {per_second: 5, burst_count: 20}\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(c.rc_login.account.burst_count, 20.0);
    let c = Config::parse(
        "server_name: a.b\nrc_login: {address: {per_second: 1, burst_count: 2}}\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(c.rc_login.address.burst_count, 2.0);
    assert_eq!(c.rc_login.account, RcLogin::default().account);
}

#[test]
fn generated_config_loads_and_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        server_name: "example.org".to_owned(),
        config_path: dir.path().join("homeserver.yaml"),
        data_dir: dir.path().join("data"),
    };
    generate(&opts).unwrap();
    let c = Config::load(&opts.config_path).unwrap();
    assert_eq!(c.server_name, "example.org");
    assert!(
        c.registration_shared_secret
            .as_deref()
            .is_some_and(|s| s.len() >= 32)
    );
    let key = std::fs::read_to_string(c.signing_key_path.unwrap()).unwrap();
    assert!(key.starts_with("ed25519 a_"));
    assert!(generate(&opts).is_err());
}

#[test]
fn a_synapse_generated_config_loads() {
    let text = include_str!("../../tests/fixtures/synapse-generated.yaml");
    let c = Config::parse(text, "homeserver.yaml").unwrap();
    assert_eq!(c.server_name, "example.org");
    assert_eq!(c.http_addresses().len(), 2, "::1 and 127.0.0.1");
    assert_eq!(
        c.backend(),
        Backend::Sqlite {
            path: "/var/lib/synapse/homeserver.db".to_owned()
        }
    );
    assert!(c.registration_shared_secret.is_some());
}

#[test]
fn every_documented_synapse_key_is_read() {
    let text = include_str!("../../tests/fixtures/synapse-full.yaml");
    let c = Config::parse(text, "homeserver.yaml").unwrap();
    assert_eq!(
        c.public_baseurl.as_deref(),
        Some("https://matrix.example.org/")
    );
    assert_eq!(c.http_addresses(), vec!["127.0.0.1:8008".parse().unwrap()]);
    assert!(matches!(
        c.backend(),
        Backend::Postgres {
            max_connections: 10,
            ..
        }
    ));
    assert_eq!(c.max_upload_size, ByteSize(100 * 1024 * 1024));
    assert!(c.enable_registration && !c.allow_guest_access && c.url_preview_enabled);
    assert_eq!(c.app_service_config_files.len(), 1);
    assert_eq!(
        c.url_preview_ip_range_blacklist.as_ref().map(Vec::len),
        Some(3)
    );
    assert!(c.user_directory.search_all_users && !c.presence.enabled);
    assert_eq!(c.turn_uris.len(), 2);
    assert_eq!(c.turn_user_lifetime, Duration(86_400_000));
    assert!(c.serve_server_wellknown);
    assert_eq!(
        c.rc_message,
        RateLimit {
            per_second: 0.5,
            burst_count: 15.0
        }
    );
    assert_eq!(c.rc_registration.burst_count, 2.0);
    assert_eq!(c.rc_login.failed_attempts.burst_count, 7.0);
}

#[test]
fn media_keys_have_synapse_defaults_and_are_read() {
    let c = Config::parse("server_name: a.b\n", "hs.yaml").unwrap();
    assert!(c.enable_authenticated_media);
    assert_eq!(c.max_image_pixels, ByteSize(32 * 1024 * 1024));
    assert_eq!(c.max_thumbnail_workers, 2);
    assert_eq!(c.url_preview_ip_range_blacklist, None);

    let c = Config::parse(
        "server_name: a.b\nenable_authenticated_media: false\nmax_image_pixels: 10M\n\
         max_thumbnail_workers: 4\nurl_preview_ip_range_blacklist: []\n",
        "hs.yaml",
    )
    .unwrap();
    assert!(!c.enable_authenticated_media);
    assert_eq!(c.max_image_pixels, ByteSize(10 * 1024 * 1024));
    assert_eq!(c.max_thumbnail_workers, 4);
    assert_eq!(c.url_preview_ip_range_blacklist, Some(Vec::new()));
}

#[test]
fn a_bad_preview_blacklist_range_is_fatal_and_named() {
    let err = Config::parse(
        "server_name: a.b\nurl_preview_ip_range_blacklist: ['10.0.0.0/8', 'not-an-ip/3']\n",
        "hs.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("url_preview_ip_range_blacklist[1]"), "{err}");
}

#[test]
fn metrics_are_off_by_default() {
    let c = Config::parse("server_name: a.b\n", "t.yaml").unwrap();
    assert!(!c.enable_metrics);
    assert_eq!(c.warnings(), Vec::<String>::new());
}

#[test]
fn a_metrics_listener_with_metrics_enabled_is_read_without_warnings() {
    let c = Config::parse(
        "server_name: a.b\nenable_metrics: true\nlisteners:\n  - {port: 8008, type: http, resources: [{names: [client]}]}\n  - {port: 9000, type: metrics, bind_addresses: ['127.0.0.1', '::1']}\n",
        "t.yaml",
    )
    .unwrap();
    assert!(c.enable_metrics);
    let metrics = &c.listeners[1];
    assert_eq!(metrics.kind, "metrics");
    assert_eq!(
        metrics.addresses(),
        vec![
            "127.0.0.1:9000".parse().unwrap(),
            "[::1]:9000".parse().unwrap()
        ]
    );
    assert_eq!(c.http_addresses(), vec!["127.0.0.1:8008".parse().unwrap()]);
    assert_eq!(c.warnings(), Vec::<String>::new());
}

#[test]
fn a_metrics_listener_without_enable_metrics_is_a_warning_not_an_error() {
    let text = include_str!("../../tests/fixtures/synapse-full.yaml");
    let c = Config::parse(text, "homeserver.yaml").unwrap();
    assert!(!c.enable_metrics);
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "listeners[1]: a metrics listener is configured but `enable_metrics` is not true"
        ),
        "{warnings:?}"
    );
}

#[test]
fn the_metrics_resource_without_enable_metrics_is_a_warning() {
    let text = "server_name: a.b\nlisteners:\n  - {port: 8008, type: http, resources: [{names: [client, metrics]}]}\n";
    let c = Config::parse(text, "t.yaml").unwrap();
    assert!(c.listeners[0].serves("metrics"));
    assert!(c.listeners[0].serves("client"));
    assert!(!c.listeners[0].serves("federation"));
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("/_synapse/metrics is not served"),
        "{warnings:?}"
    );

    let enabled = Config::parse(&format!("{text}enable_metrics: true\n"), "t.yaml").unwrap();
    assert_eq!(enabled.warnings(), Vec::<String>::new());
}

#[test]
fn only_http_and_metrics_listeners_are_known_types() {
    let err = Config::parse(
        "server_name: a.b\nlisteners:\n  - {port: 8008, type: http}\n  - {port: 9000, type: prometheus}\n",
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("listeners[1].type"), "{err}");
    assert!(err.contains("`http` or `metrics`"), "{err}");
}

#[test]
fn enable_metrics_must_be_a_boolean() {
    let err = Config::parse("server_name: a.b\nenable_metrics: often\n", "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("enable_metrics"), "{err}");
}

#[test]
fn a_metrics_listener_alone_is_not_enough() {
    let err = Config::parse(
        "server_name: a.b\nenable_metrics: true\nlisteners:\n  - {port: 9000, type: metrics}\n",
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("at least one listener with `type: http`"),
        "{err}"
    );
}
