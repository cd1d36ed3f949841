//! Portal ids (the SDK's remote chat ids) and the room aliases of channels.
//!
//! | what | portal id |
//! | --- | --- |
//! | channel `#rust` on `libera` | `libera/#rust` (channel lowercased) |
//! | private chat of Matrix user `@a:x` with IRC user `bob` | `libera/pm/bob/@a:x` |

use super::nick::irc_lower;

/// Localpart prefix of the aliases the bridge answers for: `#irc_<network>_<#channel>:domain`.
pub const ALIAS_PREFIX: &str = "irc_";

/// What a portal id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalId {
    /// A channel.
    Channel {
        /// Network name from the config.
        network: String,
        /// The channel, lowercased.
        channel: String,
    },
    /// Private messages between a Matrix user and an IRC user.
    Private {
        /// Network name.
        network: String,
        /// The IRC user's nick, lowercased.
        nick: String,
        /// The Matrix user.
        user_id: String,
    },
}

impl PortalId {
    /// The id of a channel's portal.
    pub fn channel(network: &str, channel: &str) -> String {
        format!("{network}/{}", irc_lower(channel))
    }

    /// The id of a private chat's portal.
    pub fn private(network: &str, nick: &str, user_id: &str) -> String {
        format!("{network}/pm/{}/{user_id}", irc_lower(nick))
    }

    /// Reads a portal id.
    ///
    /// ```
    /// use irc_bridge::convert::ids::PortalId;
    /// assert_eq!(
    ///     PortalId::parse("libera/#Rust"),
    ///     Some(PortalId::Channel { network: "libera".into(), channel: "#rust".into() })
    /// );
    /// ```
    pub fn parse(id: &str) -> Option<Self> {
        let (network, rest) = id.split_once('/')?;
        if let Some(pm) = rest.strip_prefix("pm/") {
            let (nick, user_id) = pm.split_once('/')?;
            return Some(Self::Private {
                network: network.to_owned(),
                nick: nick.to_owned(),
                user_id: user_id.to_owned(),
            });
        }
        is_channel(rest).then(|| Self::Channel {
            network: network.to_owned(),
            channel: irc_lower(rest),
        })
    }

    /// The network.
    pub fn network(&self) -> &str {
        match self {
            Self::Channel { network, .. } | Self::Private { network, .. } => network,
        }
    }
}

/// Whether a name is a channel (`#` or `&`, no spaces, commas or BEL).
pub fn is_channel(name: &str) -> bool {
    name.len() > 1
        && name.starts_with(['#', '&'])
        && !name.contains([' ', ',', '\u{7}', ':'])
        && name.len() <= 64
}

/// The channel a dynamic alias localpart names, for one of `networks`: `irc_libera_#rust` is
/// `("libera", "#rust")`.
pub fn channel_of_alias<'a>(
    localpart: &str,
    networks: impl IntoIterator<Item = &'a str>,
) -> Option<(String, String)> {
    let rest = localpart.strip_prefix(ALIAS_PREFIX)?;
    let network = networks
        .into_iter()
        .filter(|n| rest.starts_with(&format!("{n}_")))
        .max_by_key(|n| n.len())?;
    let channel = &rest[network.len() + 1..];
    is_channel(channel).then(|| (network.to_owned(), channel.to_owned()))
}

/// The alias localpart of a channel: `irc_<network>_<#channel>`.
pub fn alias_localpart(network: &str, channel: &str) -> String {
    format!("{ALIAS_PREFIX}{network}_{}", irc_lower(channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_ids_round_trip() {
        let id = PortalId::channel("libera", "#Rust");
        assert_eq!(id, "libera/#rust");
        assert_eq!(PortalId::parse(&id).unwrap().network(), "libera");
        let pm = PortalId::private("libera", "Bob", "@a:x.org");
        assert_eq!(
            PortalId::parse(&pm),
            Some(PortalId::Private {
                network: "libera".into(),
                nick: "bob".into(),
                user_id: "@a:x.org".into()
            })
        );
        assert_eq!(PortalId::parse("libera/nochannel"), None);
    }

    #[test]
    fn aliases_name_a_channel_of_a_configured_network() {
        assert_eq!(
            channel_of_alias("irc_libera_#rust", ["libera"]),
            Some(("libera".into(), "#rust".into()))
        );
        assert_eq!(channel_of_alias("irc_libera_rust", ["libera"]), None);
        assert_eq!(channel_of_alias("irc_oftc_#rust", ["libera"]), None);
        assert_eq!(alias_localpart("libera", "#Rust"), "irc_libera_#rust");
    }
}
