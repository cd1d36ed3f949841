//! Telegram message kinds -> what the Matrix event will be (text, media to re-upload, location).
//!
//! Media are described, not fetched: the bridge downloads `file_id` with `getFile`, uploads it, then calls
//! [`Media::content`] with the `mxc://` URI.

use serde_json::{Value, json};
use teloxide::types::{FileMeta, Message, PhotoSize};

use super::entities::{MatrixText, Mentions, telegram_to_matrix};
use crate::html::escape;

/// The Matrix side of one Telegram message.
#[derive(Debug, Clone, PartialEq)]
pub enum MatrixContent {
    /// `m.text`, or `m.notice` for things shown as text (contacts, polls, unsupported kinds).
    Text {
        msgtype: &'static str,
        text: MatrixText,
    },
    /// A file to copy to the media repository.
    Media(Media),
    /// `m.location`.
    Location { body: String, geo_uri: String },
}

/// A Telegram file and how Matrix should show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Media {
    /// `m.image`, `m.video`, `m.audio` or `m.file`.
    pub msgtype: &'static str,
    pub file_id: String,
    pub file_unique_id: String,
    pub file_name: String,
    pub mime_type: Option<String>,
    pub size: u32,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    /// The caption, sent in the same event as MSC2530 allows.
    pub caption: Option<MatrixText>,
    /// A voice message (MSC3245).
    pub voice: bool,
    /// A GIF-like animation: looped, autoplayed and muted by clients that know the `fi.mau` hints.
    pub animation: bool,
}

impl MatrixContent {
    /// The `m.room.message` content for text and locations (media need [`Media::content`]).
    pub fn content(&self) -> Option<Value> {
        match self {
            Self::Text { msgtype, text } => Some(text_content(msgtype, text)),
            Self::Location { body, geo_uri } => {
                Some(json!({"msgtype": "m.location", "body": body, "geo_uri": geo_uri}))
            }
            Self::Media(_) => None,
        }
    }
}

/// `m.text`-like content with `formatted_body` and `m.mentions` when there are any.
pub fn text_content(msgtype: &str, text: &MatrixText) -> Value {
    let mut content = json!({"msgtype": msgtype, "body": text.body});
    if let Some(html) = &text.html {
        content["format"] = "org.matrix.custom.html".into();
        content["formatted_body"] = html.clone().into();
    }
    if !text.mentions.is_empty() {
        content["m.mentions"] = json!({"user_ids": text.mentions});
    }
    content
}

impl Media {
    /// The `m.room.message` content once the file is at `mxc`.
    pub fn content(&self, mxc: &str) -> Value {
        let mut info = json!({"size": self.size});
        if let Some(mime) = &self.mime_type {
            info["mimetype"] = mime.clone().into();
        }
        if let (Some(w), Some(h)) = (self.width, self.height) {
            info["w"] = w.into();
            info["h"] = h.into();
        }
        if let Some(ms) = self.duration_ms {
            info["duration"] = ms.into();
        }
        if self.animation {
            for hint in [
                "fi.mau.loop",
                "fi.mau.autoplay",
                "fi.mau.hide_controls",
                "fi.mau.no_audio",
            ] {
                info[hint] = true.into();
            }
        }
        let mut content = json!({
            "msgtype": self.msgtype,
            "body": self.file_name,
            "filename": self.file_name,
            "url": mxc,
            "info": info,
        });
        if let Some(caption) = &self.caption {
            content["body"] = caption.body.clone().into();
            if let Some(html) = &caption.html {
                content["format"] = "org.matrix.custom.html".into();
                content["formatted_body"] = html.clone().into();
            }
        }
        if self.voice {
            content["org.matrix.msc3245.voice"] = json!({});
            content["org.matrix.msc1767.audio"] =
                json!({"duration": self.duration_ms.unwrap_or(0)});
        }
        content
    }
}

/// Describes a Telegram message for Matrix; `None` for service messages (joins, title changes, ...), which
/// the bridge handles itself.
pub fn from_telegram(message: &Message, mentions: &dyn Mentions) -> Option<MatrixContent> {
    if let Some(text) = message.text() {
        let entities = message.entities().unwrap_or_default();
        let text = telegram_to_matrix(text, entities, mentions);
        return Some(MatrixContent::Text {
            msgtype: "m.text",
            text,
        });
    }
    let caption = message
        .caption()
        .map(|c| telegram_to_matrix(c, message.caption_entities().unwrap_or_default(), mentions));
    if let Some(media) = media(message) {
        return Some(MatrixContent::Media(Media { caption, ..media }));
    }
    if let Some(venue) = message.venue() {
        let body = format!("Location: {}, {}", venue.title, venue.address);
        return Some(location(
            body,
            venue.location.latitude,
            venue.location.longitude,
        ));
    }
    if let Some(loc) = message.location() {
        let body = format!("Location: {:.6}, {:.6}", loc.latitude, loc.longitude);
        return Some(location(body, loc.latitude, loc.longitude));
    }
    if let Some(contact) = message.contact() {
        let name = [
            Some(contact.first_name.as_str()),
            contact.last_name.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        let body = format!("Contact: {name}, {}", contact.phone_number);
        return Some(notice(body, None));
    }
    if let Some(poll) = message.poll() {
        let options: Vec<&str> = poll.options.iter().map(|o| o.text.as_str()).collect();
        let mut body = format!("Poll: {}", poll.question);
        for (i, option) in options.iter().enumerate() {
            body.push_str(&format!("\n{}. {option}", i + 1));
        }
        let items: String = options
            .iter()
            .map(|o| format!("<li>{}</li>", escape(o)))
            .collect();
        let html = format!(
            "<strong>Poll</strong>: {}<ol>{items}</ol>",
            escape(&poll.question)
        );
        return Some(notice(body, Some(html)));
    }
    if let Some(dice) = message.dice() {
        let emoji = serde_json::to_value(dice.emoji).ok()?;
        let body = format!("{} {}", emoji.as_str().unwrap_or("🎲"), dice.value);
        return Some(MatrixContent::Text {
            msgtype: "m.text",
            text: MatrixText {
                body,
                ..MatrixText::default()
            },
        });
    }
    let unsupported = if message.story().is_some() {
        "a story"
    } else if message.game().is_some() {
        "a game"
    } else if message.invoice().is_some() {
        "an invoice"
    } else if message.paid_media().is_some() {
        "paid media"
    } else if message.checklist().is_some() {
        "a checklist"
    } else {
        return None;
    };
    Some(notice(
        format!("Unsupported Telegram message: {unsupported}"),
        None,
    ))
}

fn notice(body: String, html: Option<String>) -> MatrixContent {
    let text = MatrixText {
        body,
        html,
        mentions: Vec::new(),
    };
    MatrixContent::Text {
        msgtype: "m.notice",
        text,
    }
}

fn location(body: String, latitude: f64, longitude: f64) -> MatrixContent {
    let geo_uri = format!("geo:{latitude:.6},{longitude:.6}");
    MatrixContent::Location { body, geo_uri }
}

/// The largest photo size: most pixels, then the biggest file.
pub fn largest_photo(sizes: &[PhotoSize]) -> Option<&PhotoSize> {
    sizes
        .iter()
        .max_by_key(|p| (u64::from(p.width) * u64::from(p.height), p.file.size))
}

fn file(meta: &FileMeta, msgtype: &'static str, file_name: String, mime: Option<String>) -> Media {
    Media {
        msgtype,
        file_id: meta.id.0.clone(),
        file_unique_id: meta.unique_id.0.clone(),
        file_name,
        mime_type: mime,
        size: meta.size,
        ..Media::default()
    }
}

fn media(message: &Message) -> Option<Media> {
    let ms = |s: teloxide::types::Seconds| Some(u64::from(s.seconds()) * 1000);
    if let Some(sizes) = message.photo() {
        let photo = largest_photo(sizes)?;
        let mut media = file(
            &photo.file,
            "m.image",
            "photo.jpg".to_owned(),
            Some("image/jpeg".to_owned()),
        );
        (media.width, media.height) = (Some(photo.width), Some(photo.height));
        return Some(media);
    }
    // An animation message also carries a `document`; the animation is the better description.
    if let Some(a) = message.animation() {
        let name = a
            .file_name
            .clone()
            .unwrap_or_else(|| "animation.mp4".to_owned());
        let mut media = file(&a.file, "m.video", name, mime(a.mime_type.as_ref()));
        (media.width, media.height, media.duration_ms) =
            (Some(a.width), Some(a.height), ms(a.duration));
        media.animation = true;
        return Some(media);
    }
    if let Some(v) = message.video() {
        let name = v
            .file_name
            .clone()
            .unwrap_or_else(|| "video.mp4".to_owned());
        let mut media = file(&v.file, "m.video", name, mime(v.mime_type.as_ref()));
        (media.width, media.height, media.duration_ms) =
            (Some(v.width), Some(v.height), ms(v.duration));
        return Some(media);
    }
    if let Some(v) = message.video_note() {
        let mut media = file(
            &v.file,
            "m.video",
            "video_note.mp4".to_owned(),
            Some("video/mp4".to_owned()),
        );
        (media.width, media.height, media.duration_ms) =
            (Some(v.length), Some(v.length), ms(v.duration));
        return Some(media);
    }
    if let Some(v) = message.voice() {
        let mime = mime(v.mime_type.as_ref()).or_else(|| Some("audio/ogg".to_owned()));
        let mut media = file(&v.file, "m.audio", "voice.ogg".to_owned(), mime);
        media.duration_ms = ms(v.duration);
        media.voice = true;
        return Some(media);
    }
    if let Some(a) = message.audio() {
        let name = a
            .file_name
            .clone()
            .or_else(|| a.title.clone())
            .unwrap_or_else(|| "audio.mp3".to_owned());
        let mut media = file(&a.file, "m.audio", name, mime(a.mime_type.as_ref()));
        media.duration_ms = ms(a.duration);
        return Some(media);
    }
    if let Some(s) = message.sticker() {
        // Static stickers are WebP images; animated (Lottie) ones only Telegram renders, so they are files.
        let (msgtype, name, mime) = if s.is_animated() {
            ("m.file", "sticker.tgs", "application/x-tgsticker")
        } else if s.is_video() {
            ("m.video", "sticker.webm", "video/webm")
        } else {
            ("m.image", "sticker.webp", "image/webp")
        };
        let mut media = file(&s.file, msgtype, name.to_owned(), Some(mime.to_owned()));
        (media.width, media.height) = (Some(u32::from(s.width)), Some(u32::from(s.height)));
        return Some(media);
    }
    if let Some(d) = message.document() {
        let name = d.file_name.clone().unwrap_or_else(|| "file".to_owned());
        return Some(file(&d.file, "m.file", name, mime(d.mime_type.as_ref())));
    }
    None
}

/// A MIME type as text (teloxide's `mime::Mime` displays as `type/subtype`).
fn mime(m: Option<&impl std::fmt::Display>) -> Option<String> {
    m.map(|m| m.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::entities::NoMentions;

    /// A teloxide `Message` from Bot API JSON, with the fields every message has filled in.
    fn message(fields: Value) -> Message {
        let mut m = json!({"message_id": 1, "date": 1_700_000_000,
            "chat": {"id": -100, "type": "supergroup", "title": "G"},
            "from": {"id": 7, "is_bot": false, "first_name": "Ann"}});
        m.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        serde_json::from_value(m).expect("valid Message")
    }

    fn convert(fields: Value) -> MatrixContent {
        from_telegram(&message(fields), &NoMentions).expect("bridged")
    }

    fn media_of(fields: Value) -> Media {
        match convert(fields) {
            MatrixContent::Media(media) => media,
            other => panic!("not media: {other:?}"),
        }
    }

    fn file(id: &str) -> Value {
        json!({"file_id": id, "file_unique_id": format!("u{id}"), "file_size": 1000})
    }

    #[test]
    fn text_with_entities_becomes_formatted_text() {
        let content = convert(
            json!({"text": "hi 😀 bold", "entities": [{"type": "bold", "offset": 6, "length": 4}]}),
        )
        .content()
        .unwrap();
        assert_eq!(
            content,
            json!({"msgtype": "m.text", "body": "hi 😀 bold", "format": "org.matrix.custom.html",
                   "formatted_body": "hi 😀 <strong>bold</strong>"})
        );
    }

    #[test]
    fn the_largest_photo_size_is_chosen_and_the_caption_rides_along() {
        let mut small = file("s");
        small
            .as_object_mut()
            .unwrap()
            .extend([("width".into(), 90.into()), ("height".into(), 60.into())]);
        let mut big = file("b");
        big.as_object_mut()
            .unwrap()
            .extend([("width".into(), 1280.into()), ("height".into(), 853.into())]);
        let mut mid = file("m");
        mid.as_object_mut()
            .unwrap()
            .extend([("width".into(), 320.into()), ("height".into(), 213.into())]);
        let media = media_of(json!({"photo": [small, big, mid], "caption": "look",
            "caption_entities": [{"type": "italic", "offset": 0, "length": 4}]}));
        assert_eq!(
            (media.file_id.as_str(), media.width, media.height),
            ("b", Some(1280), Some(853))
        );
        assert_eq!(
            media.content("mxc://x/y"),
            json!({"msgtype": "m.image", "body": "look", "filename": "photo.jpg", "url": "mxc://x/y",
                   "format": "org.matrix.custom.html", "formatted_body": "<em>look</em>",
                   "info": {"size": 1000, "mimetype": "image/jpeg", "w": 1280, "h": 853}})
        );
    }

    #[test]
    fn documents_keep_their_name_and_type() {
        let mut doc = file("d");
        doc["file_name"] = "spec.pdf".into();
        doc["mime_type"] = "application/pdf".into();
        let media = media_of(json!({"document": doc}));
        assert_eq!(media.msgtype, "m.file");
        let content = media.content("mxc://x/d");
        assert_eq!(content["body"], "spec.pdf");
        assert_eq!(content["filename"], "spec.pdf");
        assert_eq!(content["info"]["mimetype"], "application/pdf");
    }

    #[test]
    fn video_audio_and_voice_carry_durations_in_milliseconds() {
        let mut video = file("v");
        video.as_object_mut().unwrap().extend([
            ("width".into(), 640.into()),
            ("height".into(), 360.into()),
            ("duration".into(), 12.into()),
            ("mime_type".into(), "video/mp4".into()),
        ]);
        let media = media_of(json!({"video": video}));
        assert_eq!(
            (media.msgtype, media.duration_ms),
            ("m.video", Some(12_000))
        );
        // teloxide needs `mime_type` on audio, voice, video and animations (Telegram always sends it).
        let mut audio = file("a");
        audio["mime_type"] = "audio/mpeg".into();
        audio["duration"] = 200.into();
        audio["title"] = "Song".into();
        let media = media_of(json!({"audio": audio}));
        assert_eq!(
            (media.msgtype, media.file_name.as_str()),
            ("m.audio", "Song")
        );
        let mut voice = file("n");
        voice["mime_type"] = "audio/ogg".into();
        voice["duration"] = 3.into();
        let content = media_of(json!({"voice": voice})).content("mxc://x/n");
        assert_eq!(content["msgtype"], "m.audio");
        assert_eq!(content["org.matrix.msc3245.voice"], json!({}));
        assert_eq!(content["org.matrix.msc1767.audio"]["duration"], 3000);
        assert_eq!(content["info"]["mimetype"], "audio/ogg");
    }

    #[test]
    fn animations_win_over_their_document_and_loop() {
        let mut animation = file("g");
        animation.as_object_mut().unwrap().extend([
            ("width".into(), 200.into()),
            ("height".into(), 100.into()),
            ("duration".into(), 2.into()),
            ("mime_type".into(), "video/mp4".into()),
        ]);
        let media = media_of(json!({"animation": animation, "document": file("g")}));
        assert!(media.animation);
        let content = media.content("mxc://x/g");
        assert_eq!(content["msgtype"], "m.video");
        assert_eq!(content["info"]["fi.mau.loop"], true);
    }

    #[test]
    fn stickers_are_images_unless_animated() {
        let sticker = |animated: bool, video: bool| {
            let mut s = file("st");
            s.as_object_mut().unwrap().extend([
                ("type".into(), "regular".into()),
                ("width".into(), 512.into()),
                ("height".into(), 512.into()),
                ("is_animated".into(), animated.into()),
                ("is_video".into(), video.into()),
                ("emoji".into(), "😀".into()),
            ]);
            media_of(json!({"sticker": s}))
        };
        let still = sticker(false, false);
        assert_eq!(
            (still.msgtype, still.mime_type.as_deref()),
            ("m.image", Some("image/webp"))
        );
        assert_eq!(sticker(true, false).msgtype, "m.file");
        assert_eq!(sticker(false, true).msgtype, "m.video");
    }

    #[test]
    fn locations_venues_contacts_and_polls() {
        let here = json!({"latitude": 48.858_37, "longitude": 2.294_481});
        assert_eq!(
            convert(json!({"location": here})).content().unwrap(),
            json!({"msgtype": "m.location", "body": "Location: 48.858370, 2.294481", "geo_uri": "geo:48.858370,2.294481"})
        );
        let venue = convert(
            json!({"location": here, "venue": {"location": here, "title": "Tower", "address": "Paris"}}),
        );
        assert_eq!(venue.content().unwrap()["body"], "Location: Tower, Paris");
        let contact = convert(
            json!({"contact": {"phone_number": "+33 1", "first_name": "Ann", "last_name": "Lee"}}),
        );
        assert_eq!(
            contact.content().unwrap(),
            json!({"msgtype": "m.notice", "body": "Contact: Ann Lee, +33 1"})
        );
        let poll = convert(
            json!({"poll": {"id": "p", "question": "Lunch?", "options": [
            {"text": "Pizza", "voter_count": 0}, {"text": "<Sushi>", "voter_count": 0}],
            "total_voter_count": 0, "is_closed": false, "is_anonymous": true, "type": "regular",
            "allows_multiple_answers": false}}),
        );
        let content = poll.content().unwrap();
        assert_eq!(content["body"], "Poll: Lunch?\n1. Pizza\n2. <Sushi>");
        assert_eq!(
            content["formatted_body"],
            "<strong>Poll</strong>: Lunch?<ol><li>Pizza</li><li>&lt;Sushi&gt;</li></ol>"
        );
    }

    #[test]
    fn service_messages_are_left_to_the_bridge() {
        let joined =
            message(json!({"new_chat_members": [{"id": 8, "is_bot": false, "first_name": "Bob"}]}));
        assert_eq!(from_telegram(&joined, &NoMentions), None);
        let renamed = message(json!({"new_chat_title": "New"}));
        assert_eq!(from_telegram(&renamed, &NoMentions), None);
    }
}
