//! Use cases on messages beyond sending: telling a customer's app their
//! message was read, and downloading what a customer sent (media, or the
//! whole of a text cut to the router's bounds).

use omniroute_channel::{Channel, Content, MediaDownload};
use omniroute_domain::{Direction, Message};
use uuid::Uuid;

use super::{App, AppError};

impl App {
    /// Tells the customer's app that their message `id` was read, where
    /// the channel has read receipts; the message.
    pub async fn mark_read(&self, tenant: &str, id: Uuid) -> Result<Message, AppError> {
        let message = self.store.get_message(tenant, id).await?;
        let (Direction::Inbound, Some(channel), Some(provider_id)) = (
            message.direction,
            message.channel,
            &message.provider_message_id,
        ) else {
            return Err(AppError::Precondition(format!(
                "messages/{id} is not a message from a customer"
            )));
        };
        let Some(adapter) = self.adapters.get(&channel) else {
            return Err(AppError::Precondition(format!(
                "{channel} is not configured"
            )));
        };
        adapter
            .mark_read(tenant, provider_id)
            .await
            .map_err(|error| AppError::Provider {
                what: "the read receipt was not taken",
                error,
            })?;
        Ok(message)
    }

    /// What a customer sent in message `id`, whole: its media, or the whole
    /// of its text when the router cut it; with the file name the customer
    /// gave, if any.
    pub async fn media(&self, tenant: &str, id: Uuid) -> Result<(MediaDownload, String), AppError> {
        let message = self.store.get_message(tenant, id).await?;
        match (message.channel, &message.content) {
            (_, Content::Text(text)) => {
                Ok((self.whole_text(tenant, id, text).await?, String::new()))
            }
            (Some(channel), Content::Media(media)) => Ok((
                self.media_of(tenant, id, channel, media).await?,
                media.filename.clone(),
            )),
            _ => Err(AppError::Precondition(format!(
                "messages/{id} carries no media"
            ))),
        }
    }

    /// The bytes of a media message: kept by the router when the message
    /// carried them itself (an email attachment), else the provider's.
    async fn media_of(
        &self,
        tenant: &str,
        id: Uuid,
        channel: Channel,
        media: &omniroute_channel::content::Media,
    ) -> Result<MediaDownload, AppError> {
        if media.media_id.is_empty() {
            return Err(AppError::Precondition(format!(
                "messages/{id} links its media by URL; fetch it there"
            )));
        }
        if let Some(bytes) = self.store.get_inbound_media(tenant, id).await? {
            return Ok(MediaDownload {
                mime_type: media.mime_type.clone(),
                bytes,
            });
        }
        let Some(adapter) = self.adapters.get(&channel) else {
            return Err(AppError::Precondition(format!(
                "{channel} is not configured"
            )));
        };
        adapter
            .fetch_media(tenant, &media.media_id)
            .await
            .map_err(|error| AppError::Provider {
                what: "the provider did not serve the media",
                error,
            })
    }

    /// The whole of a customer's text the router cut to its bounds
    /// (`omniroute_channel::bounds`): kept as the message's media; a text
    /// stored whole before the bounds applied is served from the message.
    async fn whole_text(
        &self,
        tenant: &str,
        id: Uuid,
        text: &omniroute_channel::content::Text,
    ) -> Result<MediaDownload, AppError> {
        if let Some(overflow) = &text.overflow
            && let Some(bytes) = self.store.get_inbound_media(tenant, id).await?
        {
            return Ok(MediaDownload {
                mime_type: overflow.mime_type.clone(),
                bytes,
            });
        }
        let mut cut = text.clone();
        match omniroute_channel::bounds::bound_text(&mut cut) {
            Some((mime_type, bytes)) => Ok(MediaDownload { mime_type, bytes }),
            None => Err(AppError::Precondition(format!(
                "messages/{id} carries no media: its text is whole in the message"
            ))),
        }
    }
}
