-- Media a customer sent inside the message itself (email attachments),
-- which no provider holds for us: kept here, by the message that carries
-- it, and served by GetMessageMedia. Erasure deletes it.
CREATE TABLE inbound_media (
    message_id  UUID    PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    bytes       BYTEA   NOT NULL
);
