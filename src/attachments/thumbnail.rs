//! An image's size and thumbnail, made from its stored bytes. The size
//! comes from the header alone; the pixels are decoded only within
//! `max_pixels` (a few kilobytes of PNG can claim billions of them), with
//! the decoder's own allocation limit as a second fence.

use image::{ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;

pub struct Thumbnailed {
    pub width: u32,
    pub height: u32,
    /// PNG bytes and their size in pixels; none beyond `max_pixels`, or
    /// for an image that does not decode.
    pub thumbnail: Option<(Vec<u8>, u32, u32)>,
}

/// The image's size, and a thumbnail if it has at most `max_pixels`;
/// `None` if its header does not read as an image at all.
pub fn thumbnail(bytes: &[u8], max_pixels: u64) -> Option<Thumbnailed> {
    let reader = |limits: Limits| {
        let mut reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .ok()?;
        reader.limits(limits);
        Some(reader)
    };
    let (width, height) = reader(Limits::default())?.into_dimensions().ok()?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Some(Thumbnailed {
            width,
            height,
            thumbnail: None,
        });
    }
    let mut limits = Limits::default();
    // The decoded image (four bytes a pixel) and the decoder's own room.
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 << 20));
    let thumbnail = reader(limits)
        .and_then(|reader| reader.decode().ok())
        .and_then(|image| {
            let small = image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
            let mut png = Vec::new();
            small
                .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
                .ok()?;
            Some((png, small.width(), small.height()))
        });
    Some(Thumbnailed {
        width,
        height,
        thumbnail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = ImageBuffer::from_pixel(width, height, Rgb([200u8, 30, 30]));
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn an_image_gets_its_size_and_a_thumbnail_within_320_pixels() {
        let made = thumbnail(&png(1280, 720), 40_000_000).unwrap();
        assert_eq!((made.width, made.height), (1280, 720));
        let (bytes, width, height) = made.thumbnail.unwrap();
        assert_eq!((width, height), (320, 180));
        assert!(bytes.starts_with(b"\x89PNG"));
    }

    #[test]
    fn an_image_past_the_pixel_limit_gets_its_size_and_no_thumbnail() {
        let made = thumbnail(&png(400, 300), 100_000).unwrap();
        assert_eq!((made.width, made.height), (400, 300));
        assert!(made.thumbnail.is_none());
        assert!(thumbnail(b"not an image", 100_000).is_none());
    }
}
