//! Thumbnails with the `image` crate: the spec's sizes, crop and scale, never upscaled.
//!
//! Decoding untrusted images is the dangerous part of a media repository: a few kilobytes of PNG
//! can claim to be 100 000 × 100 000 pixels (a decompression bomb). So the dimensions are read from
//! the header first and refused above `max_image_pixels`, and the decoder itself runs under
//! `image::Limits`, so no allocation can exceed what those pixels need. This module is blocking
//! code; the caller runs it on the blocking pool behind a semaphore.

use std::{io::BufReader, path::Path};

use image::{DynamicImage, ImageError, ImageFormat, ImageReader, Limits};

/// How to fit the image into the requested box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Cover the box in its aspect ratio, cutting what sticks out.
    Crop,
    /// Fit inside the box, keeping the image's own aspect ratio.
    Scale,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Crop => "crop",
            Method::Scale => "scale",
        }
    }
}

/// The sizes the spec says servers SHOULD produce.
const SPEC_SIZES: [(u32, u32, Method); 5] = [
    (32, 32, Method::Crop),
    (96, 96, Method::Crop),
    (320, 240, Method::Scale),
    (640, 480, Method::Scale),
    (800, 600, Method::Scale),
];

/// Past this, a "thumbnail" is no longer one: the original is served instead.
const MAX_THUMBNAIL_SIDE: u32 = 1600;

/// Picks the size to make for a request: the smallest of the spec's sizes that is at least as big
/// as asked (the spec forbids returning less), so thumbnails are shared between clients and the
/// cache stays small; else exactly what was asked. `None` means the original should be served.
pub(crate) fn choose_size(width: u32, height: u32, method: Method) -> Option<(u32, u32)> {
    let standard = SPEC_SIZES
        .iter()
        .filter(|(w, h, m)| *m == method && *w >= width && *h >= height)
        .min_by_key(|(w, h, _)| w * h)
        .map(|(w, h, _)| (*w, *h));
    match standard {
        Some(size) => Some(size),
        None if width <= MAX_THUMBNAIL_SIDE && height <= MAX_THUMBNAIL_SIDE => {
            Some((width, height))
        }
        None => None,
    }
}

/// Why no thumbnail could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ThumbnailError {
    #[error("the image is {width}x{height} pixels, more than the {max} we thumbnail")]
    TooLarge { width: u32, height: u32, max: u64 },
    #[error("cannot generate thumbnails for this content type")]
    Unsupported,
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
    #[error("reading the media store failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A thumbnail, or the advice to serve the original because it is no bigger than asked.
#[derive(Debug)]
pub(crate) enum Thumbnail {
    Original,
    Made {
        bytes: Vec<u8>,
        content_type: &'static str,
    },
}

/// Makes a `width` × `height` thumbnail of the image at `path` (blocking).
pub(crate) fn make(
    path: &Path,
    width: u32,
    height: u32,
    method: Method,
    max_pixels: u64,
) -> Result<Thumbnail, ThumbnailError> {
    let format = sniff(path)?;
    let limits = limits(max_pixels);
    let mut reader = ImageReader::with_format(BufReader::new(std::fs::File::open(path)?), format);
    reader.limits(limits.clone());
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| decode_error(e, max_pixels))?;
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(ThumbnailError::TooLarge {
            width: w,
            height: h,
            max: max_pixels,
        });
    }
    if w <= width && h <= height {
        return Ok(Thumbnail::Original);
    }
    let mut reader = ImageReader::with_format(BufReader::new(std::fs::File::open(path)?), format);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| decode_error(e, max_pixels))?;
    // `thumbnail` is image's fast downscaler (each source pixel feeds one target pixel): several
    // times quicker than a filtered resize of a photo, and only ever used to shrink.
    let thumb = match method {
        Method::Scale => image.thumbnail(width, height),
        Method::Crop => {
            // Never upscale: a side already shorter than asked stays as it is.
            let (tw, th) = (width.min(w), height.min(h));
            let (cw, ch) = crop_box(w, h, tw, th);
            image
                .crop_imm((w - cw) / 2, (h - ch) / 2, cw, ch)
                .thumbnail_exact(tw, th)
        }
    };
    encode(thumb, format)
}

/// The largest centred region of a `w` × `h` image with the aspect ratio of `tw` × `th`.
fn crop_box(w: u32, h: u32, tw: u32, th: u32) -> (u32, u32) {
    // Compare w/h with tw/th without floating point: w * th against h * tw.
    if u64::from(w) * u64::from(th) > u64::from(h) * u64::from(tw) {
        let cw = (u64::from(h) * u64::from(tw) / u64::from(th)).max(1) as u32;
        (cw.min(w), h)
    } else {
        let ch = (u64::from(w) * u64::from(th) / u64::from(tw)).max(1) as u32;
        (w, ch.min(h))
    }
}

/// The format from the file's first bytes; the uploader's Content-Type is not trusted.
fn sniff(path: &Path) -> Result<ImageFormat, ThumbnailError> {
    use std::io::Read;
    let mut head = [0u8; 64];
    let mut file = std::fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            read => n += read,
        }
    }
    match image::guess_format(&head[..n]) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP)) => {
            Ok(f)
        }
        _ => Err(ThumbnailError::Unsupported),
    }
}

fn limits(max_pixels: u64) -> Limits {
    let mut limits = Limits::default();
    // A side longer than the whole pixel budget is a bomb whatever the other side says.
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    // RGBA at 8 bits (16 for some PNGs) plus decoder working space.
    limits.max_alloc = Some(
        max_pixels
            .saturating_mul(8)
            .saturating_add(16 * 1024 * 1024),
    );
    limits
}

fn decode_error(err: ImageError, max_pixels: u64) -> ThumbnailError {
    match err {
        ImageError::Limits(_) => ThumbnailError::TooLarge {
            width: 0,
            height: 0,
            max: max_pixels,
        },
        ImageError::Unsupported(_) => ThumbnailError::Unsupported,
        ImageError::IoError(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            ThumbnailError::Io(e)
        }
        other => ThumbnailError::Corrupt(other.to_string()),
    }
}

/// JPEG stays JPEG (photos); everything else becomes PNG, which keeps transparency.
fn encode(image: DynamicImage, source: ImageFormat) -> Result<Thumbnail, ThumbnailError> {
    let mut out = std::io::Cursor::new(Vec::new());
    let content_type = if source == ImageFormat::Jpeg {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
        DynamicImage::ImageRgb8(image.to_rgb8())
            .write_with_encoder(encoder)
            .map_err(|e| ThumbnailError::Corrupt(e.to_string()))?;
        "image/jpeg"
    } else {
        image
            .write_to(&mut out, ImageFormat::Png)
            .map_err(|e| ThumbnailError::Corrupt(e.to_string()))?;
        "image/png"
    };
    Ok(Thumbnail::Made {
        bytes: out.into_inner(),
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_up_to_the_spec_sizes() {
        assert_eq!(choose_size(32, 32, Method::Crop), Some((32, 32)));
        assert_eq!(choose_size(50, 40, Method::Crop), Some((96, 96)));
        assert_eq!(choose_size(100, 100, Method::Scale), Some((320, 240)));
        assert_eq!(choose_size(641, 100, Method::Scale), Some((800, 600)));
        assert_eq!(choose_size(1000, 1000, Method::Scale), Some((1000, 1000)));
        assert_eq!(choose_size(5000, 10, Method::Crop), None);
    }

    fn write_png(dir: &Path, w: u32, h: u32) -> std::path::PathBuf {
        let path = dir.join("img");
        image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]))
            .save_with_format(&path, ImageFormat::Png)
            .unwrap();
        path
    }

    #[test]
    fn scale_keeps_the_aspect_and_crop_fills_the_box() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_png(dir.path(), 1000, 500);
        let size = |t: Thumbnail| match t {
            Thumbnail::Made { bytes, .. } => {
                let i = image::load_from_memory(&bytes).unwrap();
                (i.width(), i.height())
            }
            Thumbnail::Original => panic!("expected a thumbnail"),
        };
        assert_eq!(
            size(make(&path, 320, 240, Method::Scale, 1 << 25).unwrap()),
            (320, 160)
        );
        assert_eq!(
            size(make(&path, 96, 96, Method::Crop, 1 << 25).unwrap()),
            (96, 96)
        );
        assert!(matches!(
            make(&path, 2000, 2000, Method::Scale, 1 << 25).unwrap(),
            Thumbnail::Original
        ));
    }

    #[test]
    fn an_image_over_the_pixel_budget_is_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_png(dir.path(), 300, 300);
        assert!(matches!(
            make(&path, 32, 32, Method::Crop, 200 * 200),
            Err(ThumbnailError::TooLarge {
                width: 300,
                height: 300,
                ..
            })
        ));
    }

    #[test]
    fn text_is_not_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "just some text, not an image at all").unwrap();
        assert!(matches!(
            make(&path, 32, 32, Method::Crop, 1 << 25),
            Err(ThumbnailError::Unsupported)
        ));
    }
}
