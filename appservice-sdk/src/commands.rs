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
//!
//! A network adds its own commands with [`Network::handle_command`](crate::bridge::Network::handle_command),
//! which sees every command but `help` first (so it may also take over `link` and `unlink`), and lists
//! them with [`Network::commands`](crate::bridge::Network::commands); `help` shows them in place of the
//! built-in commands of the same name.

use ruma::{RoomId, UserId};

use crate::bridge::Bridge;
use crate::config::Permission;
use crate::error::Result;
use crate::intent::SendOptions;
use crate::store::PortalRecord;

/// The help text of the built-in commands (what `help` answers for a network without commands).
pub const HELP: &str = "Commands:\n\
help: this list\n\
ping: bridge status and your login\n\
login ARGS...: log in to the remote network\n\
logout: log out\n\
link REMOTE_ID: bridge this room to a remote chat (admin)\n\
unlink: stop bridging this room (admin)\n\
relay on|off: relay users without a login in this room (admin)";

/// What a network's command handler knows about the command it is asked to run.
#[derive(Debug, Clone, Copy)]
pub struct CommandContext<'a> {
    /// The running bridge (store, appservice, permissions).
    pub bridge: &'a Bridge,
    /// Who sent the command.
    pub sender: &'a UserId,
    /// Their permission; always at least [`Permission::Relay`] (others are refused before).
    pub permission: Permission,
    /// Where the command was sent.
    pub room_id: &'a RoomId,
    /// The portal, if the room is one.
    pub portal: Option<&'a PortalRecord>,
    /// Whether the room is the sender's management room (else a portal or another room, where
    /// commands carry the prefix).
    pub in_management_room: bool,
}

/// One line of `help` for a network's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandHelp {
    /// The command word, e.g. `bridge`; a built-in command of the same name leaves the list.
    pub name: String,
    /// Usage and what it does, e.g. `bridge CODE: link the Telegram chat that gave you CODE`.
    pub line: String,
}

impl CommandHelp {
    /// A help line for command `name`.
    ///
    /// ```
    /// use appservice_sdk::commands::CommandHelp;
    /// let help = CommandHelp::new("bridge", "bridge CODE: link the chat that gave you CODE");
    /// assert_eq!(help.name, "bridge");
    /// ```
    pub fn new(name: &str, line: &str) -> Self {
        Self {
            name: name.to_owned(),
            line: line.to_owned(),
        }
    }
}

/// The `help` text: the built-in commands the network does not take over, then the network's.
///
/// ```
/// use appservice_sdk::commands::{CommandHelp, help_text};
/// let text = help_text("Telegram", &[CommandHelp::new("unlink", "unlink [CHAT_ID]: stop bridging")]);
/// assert!(text.contains("unlink [CHAT_ID]: stop bridging"));
/// assert!(!text.contains("unlink: stop bridging this room (admin)"));
/// ```
pub fn help_text(network_name: &str, network: &[CommandHelp]) -> String {
    if network.is_empty() {
        return HELP.to_owned();
    }
    let mut lines: Vec<&str> = HELP
        .lines()
        .filter(|line| {
            let name = line.split([' ', ':']).next().unwrap_or_default();
            !network.iter().any(|c| c.name == name)
        })
        .collect();
    let heading = format!("{network_name} commands:");
    lines.push(&heading);
    lines.extend(network.iter().map(|c| c.line.as_str()));
    lines.join("\n")
}

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
    if command == "help" {
        let network = bridge.network();
        return Ok(help_text(&bridge.info().protocol_name, &network.commands()));
    }
    let in_management_room = portal.is_none()
        && store
            .user_settings(sender.as_str())
            .await?
            .management_room
            .as_deref()
            == Some(room.as_str());
    let context = CommandContext {
        bridge,
        sender,
        permission,
        room_id: room,
        portal,
        in_management_room,
    };
    if let Some(reply) = bridge
        .network()
        .handle_command(&context, &command, &args)
        .await?
    {
        return Ok(reply);
    }
    match command.as_str() {
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
