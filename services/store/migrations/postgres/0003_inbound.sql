-- Inbound messages: one row per provider message (webhooks arrive duplicated),
-- and the WhatsApp customer service window of each contact.
ALTER TABLE contacts ADD COLUMN whatsapp_window_until TIMESTAMPTZ;
CREATE UNIQUE INDEX messages_inbound_provider_id ON messages (channel, provider_message_id)
    WHERE direction = 2;
-- WhatsApp business-scoped user ids (BSUID), when WhatsApp reports them.
ALTER TABLE identities ADD COLUMN provider_user_id TEXT;
