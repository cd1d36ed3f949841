//! Signed media links, pure: what a link carries, how it is signed and how it is checked.
//!
//! A link is `<public_url>/_irc/media/<signed part>/<file name>`. The signed part is base64url
//! without padding of
//!
//! ```text
//! version (1) | expiry (4, big-endian Unix seconds, 0 = never) | server length (1) | server
//!             | media id length (1) | media id | tag (16)
//! ```
//!
//! where the tag is HMAC-SHA256 over everything before it followed by the file name (as it reads
//! once percent-decoded), cut to its first 128 bits (RFC 2104 allows truncation to half the
//! output; 128 bits keep links short enough for an IRC line). The file name is signed, so a
//! link cannot be renamed (`cat.png` to `invoice.exe`) any more than pointed at other media.
//! Tags are compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

/// The path the bridge serves links under (and a reverse proxy forwards to it).
pub const PATH_PREFIX: &str = "/_irc/media";
/// The longest file name a link carries, in characters (longer ones keep their extension).
pub const MAX_FILENAME_CHARS: usize = 64;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
/// Longer signed parts are refused before decoding (servers and ids are at most 255 bytes each).
const MAX_SIGNED_PART: usize = 800;
/// Separates this use of the key from any other.
const CONTEXT: &[u8] = b"causeway irc-bridge media link\0";
/// Characters of a file name left as they are in a link: RFC 3986's unreserved ones. Everything
/// else is percent-encoded, so IRC clients' link detection never stops inside a link.
const FILENAME_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The key links are signed with.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// The media a valid link points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// The `mxc://` server name.
    pub server: String,
    /// The `mxc://` media id.
    pub media_id: String,
    /// When the link stops working, Unix seconds; `None` = never.
    pub expires: Option<u64>,
    /// The file name the link carries.
    pub filename: String,
}

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a link of this bridge: malformed, changed, or signed with another key.
    #[error("the link is not valid: it was changed, or it was not made by this bridge")]
    Invalid,
    /// Valid, but past its expiry.
    #[error("the link has expired")]
    Expired,
}

impl SigningKey {
    /// A key from its bytes (at least 32 of them; [`super::key`] checks that).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The link's path after `PATH_PREFIX`: `<signed part>/<percent-encoded file name>`. `None`
    /// when the server or media id is empty, longer than 255 bytes, or has a `/`.
    pub fn sign(
        &self,
        server: &str,
        media_id: &str,
        expires: Option<u64>,
        filename: &str,
    ) -> Option<String> {
        let plausible = |part: &str| !part.is_empty() && part.len() <= 255 && !part.contains('/');
        if !plausible(server) || !plausible(media_id) {
            return None;
        }
        let filename = link_filename(filename);
        let expiry = expires.map_or(0, |at| u32::try_from(at.max(1)).unwrap_or(u32::MAX));
        let mut bytes = Vec::with_capacity(7 + server.len() + media_id.len() + TAG_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&expiry.to_be_bytes());
        bytes.push(server.len() as u8);
        bytes.extend_from_slice(server.as_bytes());
        bytes.push(media_id.len() as u8);
        bytes.extend_from_slice(media_id.as_bytes());
        let tag = self.mac(&bytes, &filename).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        let mut encoded = utf8_percent_encode(&filename, FILENAME_KEEP).to_string();
        // IRC clients leave a final `.` out of a link, as the end of a sentence.
        if encoded.ends_with('.') {
            encoded.pop();
            encoded.push_str("%2E");
        }
        Some(format!("{}/{encoded}", URL_SAFE_NO_PAD.encode(&bytes)))
    }

    /// Checks a link's signed part and (percent-decoded) file name at time `now` (Unix seconds):
    /// the signature first, so an expiry cannot be changed, then the expiry.
    pub fn verify(&self, signed: &str, filename: &str, now: u64) -> Result<MediaRef, LinkError> {
        if signed.len() > MAX_SIGNED_PART {
            return Err(LinkError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(signed)
            .map_err(|_| LinkError::Invalid)?;
        let Some(split) = bytes.len().checked_sub(TAG_LEN) else {
            return Err(LinkError::Invalid);
        };
        let (payload, tag) = bytes.split_at(split);
        self.mac(payload, filename)
            .verify_truncated_left(tag)
            .map_err(|_| LinkError::Invalid)?;
        // Signed by us, so well-formed unless the format changed: parse defensively anyway.
        let parsed = parse_payload(payload).ok_or(LinkError::Invalid)?;
        let (expiry, server, media_id) = parsed;
        let expires = (expiry != 0).then_some(u64::from(expiry));
        if expires.is_some_and(|at| now >= at) {
            return Err(LinkError::Expired);
        }
        Ok(MediaRef {
            server,
            media_id,
            expires,
            filename: filename.to_owned(),
        })
    }

    fn mac(&self, payload: &[u8], filename: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        mac.update(CONTEXT);
        mac.update(payload);
        mac.update(filename.as_bytes());
        mac
    }
}

/// `(expiry, server, media id)` from a payload whose tag checked out.
fn parse_payload(payload: &[u8]) -> Option<(u32, String, String)> {
    let (&version, rest) = payload.split_first()?;
    if version != VERSION || rest.len() < 4 {
        return None;
    }
    let (expiry, rest) = rest.split_at(4);
    let expiry = u32::from_be_bytes(expiry.try_into().ok()?);
    let (server, rest) = length_prefixed(rest)?;
    let (media_id, rest) = length_prefixed(rest)?;
    rest.is_empty().then_some((expiry, server, media_id))
}

fn length_prefixed(bytes: &[u8]) -> Option<(String, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = usize::from(len);
    if rest.len() < len {
        return None;
    }
    let (part, rest) = rest.split_at(len);
    Some((String::from_utf8(part.to_vec()).ok()?, rest))
}

/// The file name a link shows: no control characters or path separators, at most
/// [`MAX_FILENAME_CHARS`] characters (a long name keeps its extension), `file` if nothing is left.
pub fn link_filename(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' => '_',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        return "file".to_owned();
    }
    let count = cleaned.chars().count();
    if count <= MAX_FILENAME_CHARS {
        return cleaned.to_owned();
    }
    let extension = cleaned
        .rfind('.')
        .map(|i| &cleaned[i..])
        .filter(|ext| ext.chars().count() <= 10)
        .unwrap_or("");
    let keep = MAX_FILENAME_CHARS - extension.chars().count();
    let stem: String = cleaned.chars().take(keep).collect();
    format!("{}{extension}", stem.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key(byte: u8) -> SigningKey {
        SigningKey::new(vec![byte; 32])
    }

    /// The link path split back into what the server's router hands to `verify`.
    fn parts(path: &str) -> (String, String) {
        let (signed, name) = path.split_once('/').unwrap();
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8()
            .unwrap();
        (signed.to_owned(), name.into_owned())
    }

    #[test]
    fn a_signed_link_verifies_and_gives_back_the_media_and_the_name() {
        let path = key(1)
            .sign("example.org", "AbC_d-9", Some(NOW + 60), "cat.png")
            .unwrap();
        let (signed, name) = parts(&path);
        assert_eq!(name, "cat.png");
        assert!(path.ends_with("/cat.png"), "{path}");
        assert!(
            !signed.contains(['=', '+', '/']),
            "base64url, no padding: {signed}"
        );
        let media = key(1).verify(&signed, &name, NOW).unwrap();
        assert_eq!(
            media,
            MediaRef {
                server: "example.org".to_owned(),
                media_id: "AbC_d-9".to_owned(),
                expires: Some(NOW + 60),
                filename: "cat.png".to_owned(),
            }
        );
    }

    #[test]
    fn a_file_name_with_spaces_and_unicode_round_trips_percent_encoded() {
        let path = key(1)
            .sign("x.org", "m", None, "Résumé (final) & notes.pdf")
            .unwrap();
        let encoded = path.split_once('/').unwrap().1;
        assert_eq!(encoded, "R%C3%A9sum%C3%A9%20%28final%29%20%26%20notes.pdf");
        let (signed, name) = parts(&path);
        assert_eq!(name, "Résumé (final) & notes.pdf");
        let media = key(1).verify(&signed, &name, NOW).unwrap();
        assert_eq!(media.filename, "Résumé (final) & notes.pdf");
        assert_eq!(media.expires, None);
    }

    #[test]
    fn a_final_dot_is_encoded_so_irc_clients_keep_it_in_the_link() {
        let path = key(1).sign("x.org", "m", None, "notes.").unwrap();
        assert!(path.ends_with("/notes%2E"), "{path}");
        let (signed, name) = parts(&path);
        assert_eq!(name, "notes.");
        assert!(key(1).verify(&signed, &name, NOW).is_ok());
    }

    #[test]
    fn a_changed_signed_part_is_invalid() {
        let path = key(1)
            .sign("x.org", "media", Some(NOW + 60), "a.png")
            .unwrap();
        let (signed, name) = parts(&path);
        let mut bytes = URL_SAFE_NO_PAD.decode(&signed).unwrap();
        // Every byte: version, expiry, lengths, server, id, tag.
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            let tampered = URL_SAFE_NO_PAD.encode(&bytes);
            assert_eq!(
                key(1).verify(&tampered, &name, NOW),
                Err(LinkError::Invalid),
                "byte {i} changed"
            );
            bytes[i] ^= 0x01;
        }
        assert_eq!(
            key(1).verify(&format!("{signed}A"), &name, NOW),
            Err(LinkError::Invalid)
        );
        assert_eq!(key(1).verify("!!", &name, NOW), Err(LinkError::Invalid));
        assert_eq!(key(1).verify("", &name, NOW), Err(LinkError::Invalid));
    }

    #[test]
    fn a_renamed_link_is_invalid() {
        let path = key(1).sign("x.org", "media", None, "cat.png").unwrap();
        let (signed, _) = parts(&path);
        assert_eq!(
            key(1).verify(&signed, "cat.exe", NOW),
            Err(LinkError::Invalid)
        );
        assert_eq!(key(1).verify(&signed, "", NOW), Err(LinkError::Invalid));
    }

    #[test]
    fn a_link_signed_with_another_key_is_invalid() {
        let path = key(1).sign("x.org", "media", None, "a.png").unwrap();
        let (signed, name) = parts(&path);
        assert_eq!(key(2).verify(&signed, &name, NOW), Err(LinkError::Invalid));
    }

    #[test]
    fn an_expired_link_is_expired_and_a_forged_expiry_is_invalid() {
        let path = key(1).sign("x.org", "media", Some(NOW), "a.png").unwrap();
        let (signed, name) = parts(&path);
        assert!(key(1).verify(&signed, &name, NOW - 1).is_ok());
        assert_eq!(key(1).verify(&signed, &name, NOW), Err(LinkError::Expired));
        // Pushing the expiry forward breaks the signature.
        let mut bytes = URL_SAFE_NO_PAD.decode(&signed).unwrap();
        bytes[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            key(1).verify(&URL_SAFE_NO_PAD.encode(&bytes), &name, NOW),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn ids_that_cannot_be_media_are_not_signed() {
        let k = key(1);
        assert!(k.sign("", "m", None, "a").is_none());
        assert!(k.sign("x.org", "", None, "a").is_none());
        assert!(k.sign("x.org", "a/b", None, "a").is_none());
        assert!(k.sign(&"s".repeat(256), "m", None, "a").is_none());
    }

    #[test]
    fn a_link_fits_easily_in_an_irc_line() {
        // A Synapse-style media id and a long file name.
        let path = key(1)
            .sign(
                "matrix.example.org",
                "ZkTcGqBrRwvQmYvLxUrHnWpa",
                Some(NOW),
                &"x".repeat(200),
            )
            .unwrap();
        assert!(path.len() < 160, "{} bytes: {path}", path.len());
    }

    #[test]
    fn file_names_are_cleaned_and_long_ones_keep_their_extension() {
        assert_eq!(link_filename("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(link_filename("a\nb\u{7}.txt"), "a b .txt");
        assert_eq!(link_filename("  "), "file");
        assert_eq!(link_filename(".."), "file");
        let long = format!("{}.jpeg", "é".repeat(100));
        let short = link_filename(&long);
        assert_eq!(short.chars().count(), MAX_FILENAME_CHARS);
        assert!(short.ends_with("é.jpeg"), "{short}");
    }
}
