//! Account registration: `/register` (user-interactive, `m.login.dummy`), guests, `register/available`.

use axum::{Router, extract::State};
use ruma::{
    OwnedDeviceId, OwnedUserId,
    api::{
        client::{
            account::{get_username_availability, register},
            uiaa::AuthData,
        },
        error::ErrorKind,
    },
};

use crate::{
    api::{RouteExt, Ruma, RumaResponse},
    error::{Error, Result},
    service::{
        Services,
        accounts::{LoginResult, Registration, SessionOptions},
        ratelimit::Action,
    },
};

const MAX_PASSWORD_LEN: usize = 512;

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<register::v3::Request, _, _>(register)
        .ruma::<get_username_availability::v3::Request, _, _>(available)
}

/// `POST /_matrix/client/v3/register`
async fn register(
    State(s): State<Services>,
    req: Ruma<register::v3::Request>,
) -> Result<RumaResponse<register::v3::Response>> {
    let ip = req.ip.clone();
    let requester = req.requester.clone();
    let body = req.body;
    let as_login = body.login_type == Some(register::LoginType::ApplicationService);
    let appservice = requester.as_ref().and_then(|r| r.appservice.clone());
    if as_login && appservice.is_none() {
        // The spec: the appservice login type without a valid as_token is 401.
        return Err(Error::new(
            ErrorKind::MissingToken,
            "m.login.application_service needs the application service's as_token",
        ));
    }
    // `rate_limited: false` lifts the registration limit for that appservice.
    let limited = match &appservice {
        Some(id) if as_login => s.appservices.get(id).is_none_or(|r| r.rate_limited),
        _ => true,
    };
    if limited {
        s.limits.would_limit(Action::Registration, &ip)?;
    }
    let (user_id, is_guest) = match body.kind {
        _ if as_login => {
            let as_id = appservice.expect("checked above");
            let localpart = body
                .username
                .as_deref()
                .ok_or_else(|| Error::missing_param("Missing params: username"))?
                .to_lowercase();
            if limited {
                s.limits.check(Action::Registration, &ip)?;
            }
            (s.register_for_appservice(&as_id, &localpart).await?, false)
        }
        register::RegistrationKind::Guest => {
            if !s.config.allow_guest_access {
                return Err(Error::new(
                    ErrorKind::GuestAccessForbidden,
                    "Guest access is disabled",
                ));
            }
            s.limits.check(Action::Registration, &ip)?;
            let localpart = s.generate_localpart().await?;
            let reg = Registration {
                localpart: &localpart,
                is_guest: true,
                ..Default::default()
            };
            (s.register(&reg).await?, true)
        }
        _ => {
            if !s.config.enable_registration {
                return Err(Error::forbidden("Registration has been disabled"));
            }
            let localpart = match body.username.as_deref() {
                Some(name) => {
                    let name = name.to_lowercase();
                    s.validate_localpart(&name)?;
                    s.check_user_not_exclusive(&s.user_id(&name), None)?;
                    if s.store.user_exists(&s.user_id(&name)).await? {
                        return Err(Error::new(ErrorKind::UserInUse, "User ID already taken."));
                    }
                    Some(name)
                }
                None => None,
            };
            dummy_stage(&s, body.auth.as_ref())?;
            let password = body
                .password
                .as_deref()
                .ok_or_else(|| Error::missing_param("Missing params: password"))?;
            if password.len() > MAX_PASSWORD_LEN {
                return Err(Error::invalid_param("Password too long"));
            }
            s.limits.check(Action::Registration, &ip)?;
            let localpart = match localpart {
                Some(l) => l,
                None => s.generate_localpart().await?,
            };
            let reg = Registration {
                localpart: &localpart,
                password: Some(password),
                ..Default::default()
            };
            (s.register(&reg).await?, false)
        }
    };
    let user_id: OwnedUserId = user_id.try_into().map_err(Error::internal)?;
    let mut response = register::v3::Response::new(user_id.clone());
    if body.inhibit_login {
        return Ok(RumaResponse(response));
    }
    let opts = SessionOptions {
        device_id: body.device_id.as_deref().map(|d| d.as_str()),
        display_name: body.initial_device_display_name.as_deref(),
        refresh_token: body.refresh_token && !is_guest,
        ip: &ip,
    };
    let login = s.create_session(user_id.as_str(), &opts).await?;
    fill(&mut response, login)?;
    Ok(RumaResponse(response))
}

/// The only registration stage we offer is `m.login.dummy`.
fn dummy_stage(s: &Services, auth: Option<&AuthData>) -> Result<()> {
    const STAGES: &[&str] = &["m.login.dummy"];
    match auth {
        None => Err(s.uiaa.challenge(None, "register", STAGES, None)),
        Some(AuthData::Dummy(_))
            if s.uiaa.is_open(auth.and_then(AuthData::session), "register") =>
        {
            s.uiaa.finish(auth.and_then(AuthData::session));
            Ok(())
        }
        Some(a) => Err(s.uiaa.challenge(
            a.session(),
            "register",
            STAGES,
            Some(("M_UNRECOGNIZED", "Unsupported auth stage")),
        )),
    }
}

fn fill(response: &mut register::v3::Response, login: LoginResult) -> Result<()> {
    response.access_token = Some(login.access_token);
    response.device_id = Some(OwnedDeviceId::from(login.device_id));
    response.refresh_token = login.refresh_token;
    response.expires_in = login.expires_in_ms.map(std::time::Duration::from_millis);
    Ok(())
}

/// `GET /_matrix/client/v3/register/available`
async fn available(
    State(s): State<Services>,
    req: Ruma<get_username_availability::v3::Request>,
) -> Result<RumaResponse<get_username_availability::v3::Response>> {
    s.limits.check(Action::Registration, &req.ip)?;
    let name = req.body.username.to_lowercase();
    s.validate_localpart(&name)?;
    if s.store.user_exists(&s.user_id(&name)).await? {
        return Err(Error::new(ErrorKind::UserInUse, "User ID already taken."));
    }
    Ok(RumaResponse(get_username_availability::v3::Response::new(
        true,
    )))
}
