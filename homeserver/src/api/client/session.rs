//! Login, logout and token refresh.

use std::time::Duration;

use axum::{Router, extract::State};
use ruma::{
    OwnedDeviceId, OwnedServerName, OwnedUserId,
    api::client::{
        session::{
            get_login_types::v3 as login_types, login::v3 as login, logout::v3 as logout,
            logout_all::v3 as logout_all, refresh_token::v3 as refresh,
        },
        uiaa::UserIdentifier,
    },
};

use crate::{
    api::{RouteExt, Ruma, RumaResponse},
    error::{Error, Result},
    service::{Services, accounts::SessionOptions},
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<login_types::Request, _, _>(get_login_types)
        .ruma::<login::Request, _, _>(post_login)
        .ruma::<logout::Request, _, _>(post_logout)
        .ruma::<logout_all::Request, _, _>(post_logout_all)
        .ruma::<refresh::Request, _, _>(post_refresh)
}

/// `GET /_matrix/client/v3/login`
async fn get_login_types(_req: Ruma<login_types::Request>) -> RumaResponse<login_types::Response> {
    RumaResponse(login_types::Response::new(vec![
        login_types::LoginType::Password(login_types::PasswordLoginType::new()),
        login_types::LoginType::ApplicationService(login_types::ApplicationServiceLoginType::new()),
    ]))
}

/// The user named by an `m.id.user` identifier or the legacy `user` field.
fn login_user(identifier: &Option<UserIdentifier>, legacy: &Option<String>) -> Result<String> {
    match (identifier, legacy) {
        (Some(UserIdentifier::Matrix(m)), _) => Ok(m.user.clone()),
        (Some(_), _) => Err(Error::forbidden("Only m.id.user identifiers are supported")),
        (None, Some(user)) => Ok(user.clone()),
        (None, None) => Err(Error::missing_param("Missing params: identifier")),
    }
}

/// `POST /_matrix/client/v3/login`
async fn post_login(
    State(s): State<Services>,
    req: Ruma<login::Request>,
) -> Result<RumaResponse<login::Response>> {
    let requester = req.requester.clone();
    let body = req.body;
    let opts = SessionOptions {
        device_id: body.device_id.as_deref().map(|d| d.as_str()),
        display_name: body.initial_device_display_name.as_deref(),
        refresh_token: body.refresh_token,
        ip: &req.ip,
    };
    let result = match &body.login_info {
        login::LoginInfo::Password(p) => {
            #[allow(deprecated)]
            let user = login_user(&p.identifier, &p.user)?;
            s.login_password(&user, &p.password, &opts).await?
        }
        login::LoginInfo::ApplicationService(a) => {
            let Some(as_id) = requester.and_then(|r| r.appservice) else {
                return Err(Error::new(
                    ruma::api::error::ErrorKind::MissingToken,
                    "m.login.application_service needs the application service's as_token",
                ));
            };
            #[allow(deprecated)]
            let user = login_user(&a.identifier, &a.user)?;
            s.login_appservice(&as_id, &user, &opts).await?
        }
        _ => {
            return Err(Error::new(
                ruma::api::error::ErrorKind::Unknown,
                "Unknown login type",
            ));
        }
    };
    let user_id: OwnedUserId = result.user_id.try_into().map_err(Error::internal)?;
    let mut response = login::Response::new(
        user_id,
        result.access_token,
        OwnedDeviceId::from(result.device_id),
    );
    response.refresh_token = result.refresh_token;
    response.expires_in = result.expires_in_ms.map(Duration::from_millis);
    #[allow(deprecated)]
    {
        response.home_server = OwnedServerName::try_from(s.config.server_name.as_str()).ok();
    }
    if let Some(base) = &s.config.public_baseurl {
        response.well_known = Some(login::DiscoveryInfo::new(login::HomeserverInfo::new(
            base.clone(),
        )));
    }
    Ok(RumaResponse(response))
}

/// `POST /_matrix/client/v3/logout`
async fn post_logout(
    State(s): State<Services>,
    req: Ruma<logout::Request>,
) -> Result<RumaResponse<logout::Response>> {
    let who = req.requester();
    s.store.delete_device(&who.user_id, &who.device_id).await?;
    s.device_list_changed(&who.user_id).await?;
    tracing::info!(
        user_id = who.user_id,
        device_id = who.device_id,
        "logged out"
    );
    Ok(RumaResponse(logout::Response::new()))
}

/// `POST /_matrix/client/v3/logout/all`
async fn post_logout_all(
    State(s): State<Services>,
    req: Ruma<logout_all::Request>,
) -> Result<RumaResponse<logout_all::Response>> {
    let who = req.requester();
    s.store.delete_all_devices(&who.user_id, None).await?;
    s.device_list_changed(&who.user_id).await?;
    tracing::info!(user_id = who.user_id, "logged out every device");
    Ok(RumaResponse(logout_all::Response::new()))
}

/// `POST /_matrix/client/v3/refresh`
async fn post_refresh(
    State(s): State<Services>,
    req: Ruma<refresh::Request>,
) -> Result<RumaResponse<refresh::Response>> {
    let result = s.refresh(&req.body.refresh_token).await?;
    let mut response = refresh::Response::new(result.access_token);
    response.refresh_token = result.refresh_token;
    response.expires_in_ms = result.expires_in_ms.map(Duration::from_millis);
    Ok(RumaResponse(response))
}
