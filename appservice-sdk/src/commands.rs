//! Management commands, sent to the bot in a user's management room (no prefix needed) or in
//! a portal with the command prefix (`!bridge relay on`).
//!
//! | command | who | what |
//! | --- | --- | --- |
//! | `help` | everyone allowed to use the bridge | lists the commands |
//! | `ping` | same | the bridge status and whether you are logged in |
//! | `login ARGS...` / `logout` | `user` | the network's login hooks |
//! | `link REMOTE_ID` | `admin` | makes this room the portal of a remote chat |
//! | `unlink` | `admin` | forgets this room's portal |
//! | `relay on` / `relay off` | `admin` | relays users without a login in this portal |

use ruma::{RoomId, UserId};

use crate::bridge::Bridge;
use crate::config::Permission;
use crate::error::Result;
use crate::intent::SendOptions;
use crate::store::PortalRecord;

/// The help text.
pub const HELP: &str = "Commands:\n\
help: this list\n\
ping: bridge status and your login\n\
login ARGS...: log in to the remote network\n\
logout: log out\n\
link REMOTE_ID: bridge this room to a remote chat (admin)\n\
unlink: stop bridging this room (admin)\n\
relay on|off: relay users without a login in this room (admin)";

/// Runs one command line from `sender` in `room` (`portal` if the room is one) and answers
/// with a notice from the bot.
pub async fn run(
    bridge: &Bridge,
    sender: &UserId,
    room: &RoomId,
    portal: Option<&PortalRecord>,
    line: &str,
) -> Result<()> {
    let answer = answer(bridge, sender, room, portal, line).await?;
    bridge
        .appservice()
        .bot()
        .send_notice(room, &answer, SendOptions::default())
        .await?;
    Ok(())
}

/// What the bot answers to a command; state changes happen here.
pub async fn answer(
    bridge: &Bridge,
    sender: &UserId,
    room: &RoomId,
    portal: Option<&PortalRecord>,
    line: &str,
) -> Result<String> {
    let permission = bridge.permission_of(sender);
    if permission < Permission::Relay {
        return Ok("You are not allowed to use this bridge.".to_owned());
    }
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or("help").to_lowercase();
    let args: Vec<&str> = words.collect();
    let store = bridge.store();
    let admin_only = || Ok("That command is for bridge admins.".to_owned());
    match command.as_str() {
        "help" => Ok(HELP.to_owned()),
        "ping" => {
            let status = bridge.status();
            let login = store
                .user_settings(sender.as_str())
                .await?
                .remote_login
                .is_some();
            Ok(format!(
                "Pong. Bridge {}; you are {}.",
                status.state_event.describe(),
                if login { "logged in" } else { "not logged in" }
            ))
        }
        "login" => {
            if permission < Permission::User {
                return Ok("Logging in needs the `user` permission.".to_owned());
            }
            match bridge.network().login(sender, &args).await {
                Ok(login) => {
                    let mut settings = store.user_settings(sender.as_str()).await?;
                    settings.remote_login = Some(login);
                    store.set_user_settings(sender.as_str(), &settings).await?;
                    Ok("Logged in.".to_owned())
                }
                Err(e) => Ok(format!("Login failed: {e}")),
            }
        }
        "logout" => {
            let mut settings = store.user_settings(sender.as_str()).await?;
            let Some(login) = settings.remote_login.take() else {
                return Ok("You are not logged in.".to_owned());
            };
            bridge.network().logout(sender, &login).await?;
            store.set_user_settings(sender.as_str(), &settings).await?;
            Ok("Logged out.".to_owned())
        }
        "link" => {
            if permission < Permission::Admin {
                return admin_only();
            }
            let Some(remote_id) = args.first() else {
                return Ok("Usage: link REMOTE_ID".to_owned());
            };
            if portal.is_some() {
                return Ok("This room is already a portal; unlink it first.".to_owned());
            }
            let portal = PortalRecord {
                remote_id: (*remote_id).to_owned(),
                room_id: room.to_owned(),
                name: None,
                relay_enabled: false,
            };
            store.upsert_portal(&portal).await?;
            bridge.send_bridge_info(&portal).await;
            Ok(format!("This room is now bridged to {remote_id}."))
        }
        "unlink" => {
            if permission < Permission::Admin {
                return admin_only();
            }
            let Some(portal) = portal else {
                return Ok("This room is not a portal.".to_owned());
            };
            store.delete_portal(&portal.remote_id).await?;
            Ok(format!(
                "This room is no longer bridged to {}.",
                portal.remote_id
            ))
        }
        "relay" => {
            if permission < Permission::Admin {
                return admin_only();
            }
            let Some(portal) = portal else {
                return Ok("Relay mode is set in a portal room.".to_owned());
            };
            let on = match args.first().copied() {
                Some("on") => true,
                Some("off") => false,
                _ => return Ok("Usage: relay on|off".to_owned()),
            };
            if on && !bridge.relay_allowed() {
                return Ok("Relay mode is disabled in the bridge config.".to_owned());
            }
            store.set_portal_relay(&portal.remote_id, on).await?;
            Ok(format!("Relay mode {}.", if on { "on" } else { "off" }))
        }
        other => Ok(format!(
            "Unknown command `{other}`. Send `help` for the list."
        )),
    }
}
