//! `fake-bot-api`: a Telegram Bot API server for tests and demos, for any token, following the method and
//! type definitions of Bot API 10.1 (`../shared/telegram-bot-api/api.json`).
//!
//! - `/bot<token>/<method>`: GET query or POST JSON / form / multipart, answered with `{"ok":true,"result":..}`
//!   or `{"ok":false,"error_code":..,"description":..,"parameters":{..}}`.
//! - `/file/bot<token>/<file_path>`: downloads of files the bot uploaded or tests stored.
//! - `/_fake/*`: control routes for tests (see `control`).

mod control;
pub mod error;
mod methods;
pub mod params;
pub mod parse_mode;
pub mod spec;
pub mod world;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use self::error::ApiError;
use self::params::Params;
pub use self::world::FakeConfig;
use self::world::World;

/// Uploads up to 50 MB are accepted; a little more for the multipart envelope.
const BODY_LIMIT: usize = 52 * 1024 * 1024;

/// The fake's state: the world behind a lock never held across `.await`, and a wake-up for long polls.
#[derive(Debug)]
pub struct FakeBotApi {
    world: Mutex<World>,
    updates: Notify,
}

impl FakeBotApi {
    pub fn new(config: FakeConfig) -> Arc<Self> {
        Arc::new(Self {
            world: Mutex::new(World::new(config)),
            updates: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The whole fake as a router.
pub fn app(state: Arc<FakeBotApi>) -> Router {
    Router::new()
        .route("/{bot}/{method}", any(bot_method))
        .route("/file/{bot}/{*path}", get(download))
        .route("/_fake/updates", post(control::inject_update))
        .route("/_fake/sent", get(control::sent))
        .route("/_fake/reactions", get(control::reactions))
        .route("/_fake/actions", get(control::actions))
        .route("/_fake/fail", post(control::fail))
        .route("/_fake/files", post(control::upload_file))
        .route("/_fake/profile_photo", post(control::profile_photo))
        .fallback(|| async { ApiError::not_found() })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    state: Arc<FakeBotApi>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The bot id of `bot<id>:<secret>`; any such token is accepted.
fn bot_id(segment: &str) -> Result<i64, ApiError> {
    let token = segment
        .strip_prefix("bot")
        .ok_or_else(ApiError::not_found)?;
    let (id, secret) = token.split_once(':').ok_or_else(ApiError::unauthorized)?;
    let secret_ok = !secret.is_empty()
        && secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match id.parse::<i64>() {
        Ok(id) if id > 0 && secret_ok => Ok(id),
        _ => Err(ApiError::unauthorized()),
    }
}

async fn bot_method(
    State(state): State<Arc<FakeBotApi>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    let bot_id = match bot_id(&bot) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let params = match Params::from_request(request).await {
        Ok(params) => params,
        Err(e) => return e.into_response(),
    };
    match methods::call(&state, &method, bot_id, params).await {
        Ok(result) => {
            tracing::debug!(bot_id, method, "ok");
            error::ok(result)
        }
        Err(e) => {
            tracing::info!(
                bot_id,
                method,
                code = e.error_code,
                description = e.description,
                "error"
            );
            e.into_response()
        }
    }
}

async fn download(
    State(state): State<Arc<FakeBotApi>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    if let Err(e) = bot_id(&bot) {
        return e.into_response();
    }
    let file = state.lock().file_by_path(&path).cloned();
    match file {
        Some(file) => {
            let mime = file
                .mime_type
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            ([(axum::http::header::CONTENT_TYPE, mime)], file.bytes).into_response()
        }
        None => ApiError::not_found().into_response(),
    }
}
