//! Thumbnails: the four formats, crop and scale, the cache, and hostile images.

use http::StatusCode;
use image::{DynamicImage, ImageFormat, RgbaImage};

use super::{get, media_server, mxc_path, upload};

use crate::support::Db;

on_both_backends!(
    png_jpeg_gif_and_webp_are_cropped_and_scaled_and_cached,
    images_smaller_than_asked_come_back_as_they_are,
    corrupt_and_non_image_content_is_refused_with_m_unknown,
    decompression_bombs_are_m_too_large,
    thumbnail_parameters_are_checked,
);

/// A 500×400 gradient, so scaling artefacts cannot hide a wrong crop; its blue differs per
/// format, so thumbnails of different test images are never the same (deduplicated) file.
fn picture(format: ImageFormat) -> Vec<u8> {
    let blue = match format {
        ImageFormat::Png => 0,
        ImageFormat::Jpeg => 60,
        ImageFormat::Gif => 120,
        _ => 180,
    };
    let image = RgbaImage::from_fn(500, 400, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, blue, 255])
    });
    let image = match format {
        // JPEG has no alpha channel.
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(image).to_rgb8()),
        _ => DynamicImage::ImageRgba8(image),
    };
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let image = image::load_from_memory(bytes).expect("a thumbnail is a decodable image");
    (image.width(), image.height())
}

async fn png_jpeg_gif_and_webp_are_cropped_and_scaled_and_cached(db: Db) {
    let (s, media) = media_server(db, "").await;
    let (_, token, _) = s.register("alice", "pw").await;
    for (format, mime, thumb_type) in [
        (ImageFormat::Png, "image/png", "image/png"),
        (ImageFormat::Jpeg, "image/jpeg", "image/jpeg"),
        (ImageFormat::Gif, "image/gif", "image/png"),
        (ImageFormat::WebP, "image/webp", "image/png"),
    ] {
        let mxc = upload(&s.app, &token, mime, None, picture(format)).await;
        let thumb = |w: u32, h: u32, method: &str| {
            format!(
                "/_matrix/client/v1/media/thumbnail/{}?width={w}&height={h}&method={method}",
                mxc_path(&mxc)
            )
        };
        let reply = get(&s.app, &thumb(32, 32, "crop"), Some(&token)).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{format:?}: {:?}",
            reply.json()
        );
        assert_eq!(reply.header("content-type"), thumb_type, "{format:?}");
        assert_eq!(dimensions(&reply.body), (32, 32), "{format:?} crop");
        assert_eq!(reply.header("content-disposition"), "inline");
        assert!(!reply.header("content-security-policy").is_empty());

        // 40×30 crop rounds up to the spec's 96×96.
        let reply = get(&s.app, &thumb(40, 30, "crop"), Some(&token)).await;
        assert_eq!(dimensions(&reply.body), (96, 96), "{format:?} crop");

        // Scale fits in the spec's 320×240 keeping 5:4.
        let first = get(&s.app, &thumb(320, 240, "scale"), Some(&token)).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(dimensions(&first.body), (300, 240), "{format:?} scale");
        let again = get(&s.app, &thumb(300, 200, "scale"), Some(&token)).await;
        assert_eq!(
            again.body, first.body,
            "{format:?}: the same size comes from the cache"
        );
    }
    let files = super::walk(&media.path().join("content")).len();
    assert_eq!(
        files,
        4 + 4 * 3,
        "four originals, three thumbnails each, none made twice"
    );
}

async fn images_smaller_than_asked_come_back_as_they_are(db: Db) {
    let (s, _media) = media_server(db, "").await;
    let (_, token, _) = s.register("alice", "pw").await;
    let bytes = picture(ImageFormat::Png);
    let mxc = upload(&s.app, &token, "image/png", Some("p.png"), bytes.clone()).await;
    for query in ["width=800&height=600", "width=640&height=480&method=crop"] {
        let path = format!(
            "/_matrix/client/v1/media/thumbnail/{}?{query}",
            mxc_path(&mxc)
        );
        let reply = get(&s.app, &path, Some(&token)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, bytes, "never upscaled: {query}");
    }
}

async fn corrupt_and_non_image_content_is_refused_with_m_unknown(db: Db) {
    let (s, _media) = media_server(db, "").await;
    let (_, token, _) = s.register("alice", "pw").await;
    let mut corrupt = picture(ImageFormat::Png);
    corrupt.truncate(200);
    corrupt.extend_from_slice(&[0xde; 300]);
    let mut truncated_jpeg = picture(ImageFormat::Jpeg);
    truncated_jpeg.truncate(100);
    for (mime, bytes) in [
        ("image/png", corrupt),
        ("image/jpeg", truncated_jpeg),
        ("image/png", b"this is text pretending to be a PNG".to_vec()),
        ("application/pdf", b"%PDF-1.4 not an image".to_vec()),
    ] {
        let mxc = upload(&s.app, &token, mime, None, bytes).await;
        let path = format!(
            "/_matrix/client/v1/media/thumbnail/{}?width=32&height=32&method=crop",
            mxc_path(&mxc)
        );
        let reply = get(&s.app, &path, Some(&token)).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "M_UNKNOWN");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("Cannot generate thumbnails"),
            "{:?}",
            reply.json()
        );
    }
    // The server is still there.
    let ok = upload(&s.app, &token, "image/png", None, picture(ImageFormat::Png)).await;
    let path = format!(
        "/_matrix/client/v1/media/thumbnail/{}?width=32&height=32",
        mxc_path(&ok)
    );
    assert_eq!(
        get(&s.app, &path, Some(&token)).await.status,
        StatusCode::OK
    );
}

/// A tiny PNG whose header claims `width` × `height` pixels: decoding it for real would need
/// gigabytes.
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut png = picture(ImageFormat::Png);
    // IHDR: 8-byte signature, 4 length, "IHDR", then width and height, then 5 bytes, then CRC.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

async fn decompression_bombs_are_m_too_large(db: Db) {
    let (s, _media) = media_server(db, "max_image_pixels: 1M\n").await;
    let (_, token, _) = s.register("alice", "pw").await;
    let bomb = png_bomb(60_000, 60_000);
    assert!(bomb.len() < 100_000, "the bomb itself is small");
    // A real, decodable image that is simply over the configured pixel budget.
    let big = {
        let image = image::GrayImage::new(1500, 1000);
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    };
    for bytes in [bomb, big] {
        let mxc = upload(&s.app, &token, "image/png", None, bytes).await;
        let path = format!(
            "/_matrix/client/v1/media/thumbnail/{}?width=96&height=96&method=crop",
            mxc_path(&mxc)
        );
        let reply = get(&s.app, &path, Some(&token)).await;
        reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    }
}

async fn thumbnail_parameters_are_checked(db: Db) {
    let (s, _media) = media_server(db, "").await;
    let (_, token, _) = s.register("alice", "pw").await;
    let mxc = upload(&s.app, &token, "image/png", None, picture(ImageFormat::Png)).await;
    let base = format!("/_matrix/client/v1/media/thumbnail/{}", mxc_path(&mxc));
    get(&s.app, &format!("{base}?width=32"), Some(&token))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
    for query in [
        "width=-1&height=32",
        "width=abc&height=32",
        "width=0&height=32",
        "width=32&height=32&method=stretch",
    ] {
        get(&s.app, &format!("{base}?{query}"), Some(&token))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    }
    get(&s.app, &format!("{base}?width=32&height=32"), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
}
