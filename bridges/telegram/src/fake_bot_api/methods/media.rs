//! `send{Photo,Document,Video,Audio,Voice,Animation,Sticker}` and `getFile`.

use serde_json::{Value, json};

use super::messages::{formatted, new_message, store};
use crate::fake_bot_api::error::ApiError;
use crate::fake_bot_api::params::{FileParam, Params};
use crate::fake_bot_api::parse_mode::MAX_CAPTION;
use crate::fake_bot_api::world::{MAX_DOWNLOAD, StoredFile, World};

/// Bot uploads are limited to 50 MB, photos to 10 MB.
const MAX_UPLOAD: usize = 50 * 1024 * 1024;
const MAX_PHOTO: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Photo,
    Document,
    Video,
    Audio,
    Voice,
    Animation,
    Sticker,
}

impl Kind {
    /// The parameter and the Message field.
    fn field(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Document => "document",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Voice => "voice",
            Self::Animation => "animation",
            Self::Sticker => "sticker",
        }
    }

    /// The folder of `file_path`, as Telegram names them.
    pub(super) fn folder(self) -> &'static str {
        match self {
            Self::Photo => "photos",
            Self::Document => "documents",
            Self::Video => "videos",
            Self::Audio => "music",
            Self::Voice => "voice",
            Self::Animation => "animations",
            Self::Sticker => "stickers",
        }
    }
}

pub(super) fn send_media(
    w: &mut World,
    bot_id: i64,
    p: &Params,
    kind: Kind,
) -> Result<Value, ApiError> {
    let file = resolve_file(w, p, kind)?;
    let caption = match kind {
        Kind::Sticker => None,
        _ => Some(formatted(p, "caption", "caption_entities", MAX_CAPTION)?),
    };
    let (chat_id, mut message) = new_message(w, bot_id, p)?;
    message[kind.field()] = media_object(&file, p, kind)?;
    if let Some((caption, entities)) = caption.filter(|(c, _)| !c.is_empty()) {
        message["caption"] = caption.into();
        if !entities.is_empty() {
            message["caption_entities"] = entities.into();
        }
    }
    Ok(store(w, chat_id, message))
}

pub(super) fn get_file(w: &mut World, p: &Params) -> Result<Value, ApiError> {
    let file_id = p.string("file_id").unwrap_or_default();
    let file = w
        .files
        .get(&file_id)
        .ok_or_else(|| ApiError::bad_request("invalid file_id"))?;
    if file.bytes.len() > MAX_DOWNLOAD {
        return Err(ApiError::bad_request("file is too big"));
    }
    Ok(file.file_object())
}

fn resolve_file(w: &mut World, p: &Params, kind: Kind) -> Result<StoredFile, ApiError> {
    match p.file(kind.field()) {
        Some(FileParam::Upload(upload)) => {
            let limit = if kind == Kind::Photo {
                MAX_PHOTO
            } else {
                MAX_UPLOAD
            };
            if upload.bytes.len() > limit {
                return Err(ApiError::too_large());
            }
            if upload.bytes.is_empty() {
                return Err(ApiError::bad_request("file must be non-empty"));
            }
            let stored = w.store_file(
                kind.folder(),
                upload.bytes,
                upload.file_name,
                upload.content_type,
            );
            Ok(stored)
        }
        Some(FileParam::Reference(r)) if r.starts_with("http://") || r.starts_with("https://") => {
            // The fake never fetches URLs: it would make tests depend on the network.
            Err(ApiError::bad_request("failed to get HTTP URL content"))
        }
        Some(FileParam::Reference(file_id)) => w
            .files
            .get(&file_id)
            .cloned()
            .ok_or_else(|| ApiError::bad_request("wrong file identifier/HTTP URL specified")),
        None => Err(ApiError::bad_request(format!(
            "there is no {} in the request",
            kind.field()
        ))),
    }
}

/// The `PhotoSize` array, `Document`, `Video`, ... object for a stored file.
fn media_object(file: &StoredFile, p: &Params, kind: Kind) -> Result<Value, ApiError> {
    let (sniffed_width, sniffed_height) = image_size(&file.bytes).unwrap_or((0, 0));
    let width = p.int("width")?.unwrap_or(sniffed_width);
    let height = p.int("height")?.unwrap_or(sniffed_height);
    let duration = p.int("duration")?.unwrap_or(0);
    let mut object = json!({
        "file_id": file.file_id,
        "file_unique_id": file.file_unique_id,
        "file_size": file.bytes.len(),
    });
    let mut set = |key: &str, value: Value| {
        object[key] = value;
    };
    match kind {
        Kind::Photo => {
            set("width", width.into());
            set("height", height.into());
            return Ok(json!([object]));
        }
        Kind::Video | Kind::Animation => {
            set("width", width.into());
            set("height", height.into());
            set("duration", duration.into());
        }
        Kind::Audio => {
            set("duration", duration.into());
            for key in ["performer", "title"] {
                if let Some(v) = p.string(key) {
                    set(key, v.into());
                }
            }
        }
        Kind::Voice => set("duration", duration.into()),
        Kind::Sticker => {
            set("type", "regular".into());
            set("width", (if width > 0 { width } else { 512 }).into());
            set("height", (if height > 0 { height } else { 512 }).into());
            set("is_animated", file.file_path.ends_with(".tgs").into());
            set("is_video", file.file_path.ends_with(".webm").into());
            if let Some(emoji) = p.string("emoji") {
                set("emoji", emoji.into());
            }
        }
        Kind::Document => {}
    }
    if matches!(
        kind,
        Kind::Document | Kind::Video | Kind::Audio | Kind::Animation
    ) && let Some(name) = &file.file_name
    {
        object["file_name"] = name.clone().into();
    }
    // Telegram always sends a MIME type for these (and teloxide fails to parse them without one).
    let default_mime = match kind {
        Kind::Video | Kind::Animation => Some("video/mp4"),
        Kind::Audio => Some("audio/mpeg"),
        Kind::Voice => Some("audio/ogg"),
        Kind::Document => Some("application/octet-stream"),
        Kind::Photo | Kind::Sticker => None,
    };
    if let Some(mime) = file.mime_type.as_deref().or(default_mime) {
        object["mime_type"] = mime.into();
    }
    Ok(object)
}

/// Width and height of a PNG, GIF or JPEG, read from its header.
pub(super) fn image_size(bytes: &[u8]) -> Option<(i64, i64)> {
    let be16 = |b: &[u8], at: usize| -> Option<i64> {
        Some(i64::from(u16::from_be_bytes([
            *b.get(at)?,
            *b.get(at + 1)?,
        ])))
    };
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
        let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        return Some((i64::from(w), i64::from(h)));
    }
    if bytes.starts_with(b"GIF8") && bytes.len() >= 10 {
        let w = u16::from_le_bytes([bytes[6], bytes[7]]);
        let h = u16::from_le_bytes([bytes[8], bytes[9]]);
        return Some((i64::from(w), i64::from(h)));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut at = 2;
        while at + 9 < bytes.len() {
            if bytes[at] != 0xFF {
                return None;
            }
            let marker = bytes[at + 1];
            let len = usize::try_from(be16(bytes, at + 2)?).ok()?;
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
            if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
                return Some((be16(bytes, at + 7)?, be16(bytes, at + 5)?));
            }
            at += 2 + len;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sizes_are_read_from_png_gif_and_jpeg_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&640u32.to_be_bytes());
        png.extend_from_slice(&480u32.to_be_bytes());
        assert_eq!(image_size(&png), Some((640, 480)));
        assert_eq!(image_size(b"GIF89a\x20\x00\x10\x00"), Some((32, 16)));
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, // APP0, 2 bytes of payload
            0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0x2C, 0x02, 0x58, 0x03, // SOF0 300x600
        ];
        assert_eq!(image_size(&jpeg), Some((600, 300)));
        assert_eq!(image_size(b"plain text"), None);
    }
}
