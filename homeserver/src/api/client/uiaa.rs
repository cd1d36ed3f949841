//! User-interactive auth as endpoints use it: a password stage for sensitive account actions.

use ruma::api::client::uiaa::{AuthData, UserIdentifier};

use crate::{
    error::Result,
    service::{Services, accounts::Requester},
};

/// Requires the caller's password through user-interactive auth before `purpose` proceeds.
pub(super) async fn require_password(
    s: &Services,
    who: &Requester,
    auth: Option<&AuthData>,
    purpose: &str,
) -> Result<()> {
    const STAGES: &[&str] = &["m.login.password"];
    let purpose = format!("{purpose}:{}", who.user_id);
    let Some(auth) = auth else {
        return Err(s.uiaa.challenge(None, &purpose, STAGES, None));
    };
    if !s.uiaa.is_open(auth.session(), &purpose) {
        return Err(s.uiaa.challenge(
            auth.session(),
            &purpose,
            STAGES,
            Some(("M_FORBIDDEN", "Unknown or expired session")),
        ));
    }
    let AuthData::Password(p) = auth else {
        return Err(s.uiaa.challenge(
            auth.session(),
            &purpose,
            STAGES,
            Some(("M_UNRECOGNIZED", "Unsupported auth stage")),
        ));
    };
    let claimed = match &p.identifier {
        UserIdentifier::Matrix(m) => s.qualify_user_id(&m.user),
        _ => String::new(),
    };
    if claimed != who.user_id || !s.check_password(&who.user_id, &p.password).await? {
        return Err(s.uiaa.challenge(
            auth.session(),
            &purpose,
            STAGES,
            Some(("M_FORBIDDEN", "Invalid password")),
        ));
    }
    s.uiaa.finish(auth.session());
    Ok(())
}
