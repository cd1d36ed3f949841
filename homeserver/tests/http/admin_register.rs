//! Synapse's shared-secret registration API.

use hmac::{Hmac, Mac};
use http::StatusCode;
use serde_json::{Value, json};
use sha1::Sha1;

use crate::support::{Db, SHARED_SECRET, TestServer, assert_error};

on_both_backends!(
    shared_secret_registration_creates_an_admin,
    a_wrong_mac_or_a_reused_nonce_is_refused,
    shared_secret_registration_is_off_without_a_secret,
);

/// Computed independently of the server's code, as Synapse's docs describe it.
fn mac(secret: &str, nonce: &str, user: &str, password: &str, admin: bool) -> String {
    let mut m = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    let admin = if admin { "admin" } else { "notadmin" };
    m.update(format!("{nonce}\0{user}\0{password}\0{admin}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

async fn nonce(s: &TestServer) -> String {
    let (status, body) = s.get("/_synapse/admin/v1/register", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["nonce"].as_str().unwrap().to_owned()
}

fn request(nonce: &str, user: &str, password: &str, admin: bool, mac: &str) -> Value {
    json!({"nonce": nonce, "username": user, "password": password, "admin": admin, "mac": mac})
}

async fn shared_secret_registration_creates_an_admin(db: Db) {
    let s = TestServer::start(db).await;
    let n = nonce(&s).await;
    let (status, body) = s
        .post(
            "/_synapse/admin/v1/register",
            None,
            request(
                &n,
                "root",
                "pw",
                true,
                &mac(SHARED_SECRET, &n, "root", "pw", true),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@root:test.local");
    assert_eq!(body["home_server"], "test.local");
    let (status, who) = s
        .get(
            "/_matrix/client/v3/account/whoami",
            body["access_token"].as_str(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["user_id"], "@root:test.local");
    let user = s
        .services
        .store
        .user("@root:test.local")
        .await
        .unwrap()
        .unwrap();
    assert!(user.is_admin);
    s.login("root", "pw").await;
}

async fn a_wrong_mac_or_a_reused_nonce_is_refused(db: Db) {
    let s = TestServer::start(db).await;
    let n = nonce(&s).await;
    let r = s
        .post(
            "/_synapse/admin/v1/register",
            None,
            request(&n, "x", "pw", false, &mac("wrong", &n, "x", "pw", false)),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let r = s
        .post(
            "/_synapse/admin/v1/register",
            None,
            request(
                &n,
                "x",
                "pw",
                false,
                &mac(SHARED_SECRET, &n, "x", "pw", false),
            ),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_UNKNOWN");
    assert!(r.1["error"].as_str().unwrap().contains("nonce"));
    let n = nonce(&s).await;
    let r = s
        .post(
            "/_synapse/admin/v1/register",
            None,
            request(
                &n,
                "x",
                "pw",
                true,
                &mac(SHARED_SECRET, &n, "x", "pw", false),
            ),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn shared_secret_registration_is_off_without_a_secret(db: Db) {
    let s = TestServer::with_config(db, "registration_shared_secret: null\n").await;
    let r = s.get("/_synapse/admin/v1/register", None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_UNKNOWN");
}
