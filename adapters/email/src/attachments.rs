//! Outbound media on email: the file a media message names by URL is
//! fetched when the message is sent and attached (with its file name and
//! MIME type) when it is at most `attachment_max_bytes`; a larger one (or
//! any, with a limit of 0) goes as a link in the text and the HTML instead,
//! so that no mailbox refuses the mail for its size. A URL that answers 4xx
//! fails the step permanently (the link would be as broken); a network
//! failure, a timeout or a 5xx is transient and retried.

use std::sync::Arc;
use std::time::Duration;

use omniroute_channel::content::{Media, MediaKind, Text};
use omniroute_channel::{AdapterError, ErrorClass};

/// A file to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name shown.
    pub filename: String,
    /// Its MIME type.
    pub mime_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The body of a media message: its text (caption, or a link) and the file
/// when it is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaBody {
    /// The text (and subject) of the mail.
    pub text: Text,
    /// The attachment, when the file fits.
    pub attachment: Option<Attachment>,
}

/// Fetches media files over HTTP(S).
#[derive(Debug, Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    max_bytes: usize,
}

fn configuration(what: &str, e: impl std::fmt::Display) -> AdapterError {
    AdapterError::new(
        ErrorClass::Configuration,
        "http_client",
        format!("{what}: {e}"),
    )
}

impl Fetcher {
    /// A fetcher attaching files up to `max_bytes` (0: links only), each
    /// fetch taking at most `timeout`.
    pub fn new(max_bytes: usize, timeout: Duration) -> Result<Fetcher, AdapterError> {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| configuration("tls setup", e))?
            .with_platform_verifier()
            .map_err(|e| configuration("tls setup", e))?
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .user_agent(concat!("omniroute-email/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| configuration("http client", e))?;
        Ok(Fetcher { http, max_bytes })
    }

    /// The body of a mail carrying `media`.
    pub async fn body(&self, media: &Media) -> Result<MediaBody, AdapterError> {
        let filename = filename(media);
        if self.max_bytes > 0
            && let Some((mime, bytes)) = self.fetch(&media.url).await?
        {
            let mime_type = if media.mime_type.is_empty() {
                mime.unwrap_or_else(|| default_mime(media.kind).to_owned())
            } else {
                media.mime_type.clone()
            };
            return Ok(MediaBody {
                text: Text {
                    body: media.caption.clone(),
                    subject: subject(media, &filename),
                    ..Text::default()
                },
                attachment: Some(Attachment {
                    filename,
                    mime_type,
                    bytes,
                }),
            });
        }
        Ok(MediaBody {
            text: linked(media, &filename),
            attachment: None,
        })
    }

    /// The file at `url` with its Content-Type, or `None` when it is larger
    /// than the limit.
    async fn fetch(&self, url: &str) -> Result<Option<(Option<String>, Vec<u8>)>, AdapterError> {
        let transient = |e: reqwest::Error| {
            AdapterError::new(
                ErrorClass::Transient,
                "media-fetch",
                format!("fetching the media failed: {e}"),
            )
        };
        let mut response = self.http.get(url).send().await.map_err(transient)?;
        let status = response.status();
        if !status.is_success() {
            let class = if status.is_client_error() && status.as_u16() != 429 {
                ErrorClass::Permanent
            } else {
                ErrorClass::Transient
            };
            return Err(AdapterError::new(
                class,
                format!("media-http-{}", status.as_u16()),
                format!("the media URL answered {status}"),
            ));
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Ok(None);
        }
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| v.contains('/'));
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transient)? {
            if bytes.len() + chunk.len() > self.max_bytes {
                return Ok(None);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some((mime, bytes)))
    }
}

/// The file name: the caller's, else the URL's last path segment, else one
/// made from the kind.
fn filename(media: &Media) -> String {
    if !media.filename.is_empty() {
        return media.filename.clone();
    }
    let path = media
        .url
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .splitn(4, '/')
        .nth(3)
        .unwrap_or("");
    match path.rsplit('/').next() {
        Some(last) if !last.is_empty() => last.to_owned(),
        _ => format!(
            "{}.{}",
            kind_name(media.kind),
            default_extension(media.kind)
        ),
    }
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image | MediaKind::Sticker => "image",
        MediaKind::Document => "document",
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

fn default_extension(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "jpg",
        MediaKind::Sticker => "webp",
        MediaKind::Document => "pdf",
        MediaKind::Audio => "mp3",
        MediaKind::Video => "mp4",
    }
}

fn default_mime(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image/jpeg",
        MediaKind::Sticker => "image/webp",
        MediaKind::Document => "application/octet-stream",
        MediaKind::Audio => "audio/mpeg",
        MediaKind::Video => "video/mp4",
    }
}

/// The subject: the caption's first line, else the file name.
fn subject(media: &Media, filename: &str) -> String {
    media
        .caption
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| filename.to_owned())
}

/// The media as a link: the caption, then the URL; in HTML an anchor named
/// by the file.
fn linked(media: &Media, filename: &str) -> Text {
    let body = [media.caption.as_str(), media.url.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let caption = crate::transformers::escape(&media.caption);
    let html = format!(
        "<!doctype html><html><body><div style=\"white-space:pre-wrap\">{}</div><p><a href=\"{}\">{}</a></p></body></html>",
        caption.replace('\n', "<br>\n"),
        crate::transformers::escape(&media.url),
        crate::transformers::escape(filename),
    );
    Text {
        body,
        subject: subject(media, filename),
        html_body: html,
        preview_url: false,
        overflow: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(url: &str, filename: &str) -> Media {
        Media {
            kind: MediaKind::Document,
            url: url.into(),
            media_id: String::new(),
            caption: String::new(),
            filename: filename.into(),
            mime_type: String::new(),
            sha256: String::new(),
        }
    }

    #[test]
    fn file_names_come_from_the_caller_the_url_or_the_kind() {
        assert_eq!(
            filename(&media("https://a.example/x/y.pdf", "bill.pdf")),
            "bill.pdf"
        );
        assert_eq!(
            filename(&media("https://a.example/x/y.pdf?sig=1", "")),
            "y.pdf"
        );
        assert_eq!(filename(&media("https://a.example/", "")), "document.pdf");
        assert_eq!(filename(&media("https://a.example", "")), "document.pdf");
    }

    #[test]
    fn a_link_is_escaped_in_the_html() {
        let mut m = media("https://a.example/a.pdf?x=1&y=<2>", "");
        m.caption = "Your <invoice>".into();
        let text = linked(&m, "a.pdf");
        assert_eq!(
            text.body,
            "Your <invoice>\n\nhttps://a.example/a.pdf?x=1&y=<2>"
        );
        assert!(
            text.html_body.contains("Your &lt;invoice&gt;"),
            "{}",
            text.html_body
        );
        assert!(
            text.html_body
                .contains("href=\"https://a.example/a.pdf?x=1&amp;y=&lt;2&gt;\""),
            "{}",
            text.html_body
        );
        assert_eq!(text.subject, "Your <invoice>");
    }
}
