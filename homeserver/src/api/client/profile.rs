//! Profiles: displayname, avatar_url, the whole profile.

use axum::{Router, extract::State};
use ruma::{
    OwnedMxcUri,
    api::client::profile::{
        get_avatar_url::v3 as get_avatar_url, get_display_name::v3 as get_display_name,
        get_profile::v3 as get_profile, set_avatar_url::v3 as set_avatar_url,
        set_display_name::v3 as set_display_name,
    },
};

use crate::{
    api::{RouteExt, Ruma, RumaResponse},
    error::{Error, Result},
    service::Services,
    store::UserRow,
};

const MAX_DISPLAYNAME_LEN: usize = 256;

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<get_profile::Request, _, _>(get_whole)
        .ruma::<get_display_name::Request, _, _>(get_name)
        .ruma::<set_display_name::Request, _, _>(set_name)
        .ruma::<get_avatar_url::Request, _, _>(get_avatar)
        .ruma::<set_avatar_url::Request, _, _>(set_avatar)
}

async fn profile_of(s: &Services, user_id: &str) -> Result<UserRow> {
    // A user in an appservice's namespace may be provided on demand.
    s.ensure_appservice_user(user_id).await?;
    match s.store.user(user_id).await? {
        Some(u) if !u.deactivated => Ok(u),
        _ => Err(Error::not_found("Profile was not found")),
    }
}

fn mxc(url: Option<String>) -> Option<OwnedMxcUri> {
    url.map(OwnedMxcUri::from)
}

/// `GET /_matrix/client/v3/profile/{userId}`
async fn get_whole(
    State(s): State<Services>,
    req: Ruma<get_profile::Request>,
) -> Result<RumaResponse<get_profile::Response>> {
    let u = profile_of(&s, req.body.user_id.as_str()).await?;
    let mut response = get_profile::Response::new();
    if let Some(name) = u.displayname {
        response.set("displayname".into(), name.into());
    }
    if let Some(url) = u.avatar_url {
        response.set("avatar_url".into(), url.into());
    }
    Ok(RumaResponse(response))
}

/// `GET /_matrix/client/v3/profile/{userId}/displayname`
async fn get_name(
    State(s): State<Services>,
    req: Ruma<get_display_name::Request>,
) -> Result<RumaResponse<get_display_name::Response>> {
    let u = profile_of(&s, req.body.user_id.as_str()).await?;
    Ok(RumaResponse(get_display_name::Response::new(u.displayname)))
}

/// `GET /_matrix/client/v3/profile/{userId}/avatar_url`
async fn get_avatar(
    State(s): State<Services>,
    req: Ruma<get_avatar_url::Request>,
) -> Result<RumaResponse<get_avatar_url::Response>> {
    let u = profile_of(&s, req.body.user_id.as_str()).await?;
    Ok(RumaResponse(get_avatar_url::Response::new(mxc(
        u.avatar_url
    ))))
}

/// `PUT /_matrix/client/v3/profile/{userId}/displayname`
async fn set_name(
    State(s): State<Services>,
    req: Ruma<set_display_name::Request>,
) -> Result<RumaResponse<set_display_name::Response>> {
    let who = req.requester();
    if req.body.user_id.as_str() != who.user_id {
        return Err(Error::forbidden(
            "You cannot set the profile of another user",
        ));
    }
    let name = req.body.displayname.as_deref().filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.len() > MAX_DISPLAYNAME_LEN) {
        return Err(Error::bad_json("displayname is too long"));
    }
    s.set_displayname(&who.user_id, name).await?;
    tracing::info!(user_id = who.user_id, "displayname changed");
    Ok(RumaResponse(set_display_name::Response::new()))
}

/// `PUT /_matrix/client/v3/profile/{userId}/avatar_url`
async fn set_avatar(
    State(s): State<Services>,
    req: Ruma<set_avatar_url::Request>,
) -> Result<RumaResponse<set_avatar_url::Response>> {
    let who = req.requester();
    if req.body.user_id.as_str() != who.user_id {
        return Err(Error::forbidden(
            "You cannot set the profile of another user",
        ));
    }
    let url = req
        .body
        .avatar_url
        .as_ref()
        .map(|u| u.as_str())
        .filter(|u| !u.is_empty());
    s.set_avatar_url(&who.user_id, url).await?;
    tracing::info!(user_id = who.user_id, "avatar changed");
    Ok(RumaResponse(set_avatar_url::Response::new()))
}
