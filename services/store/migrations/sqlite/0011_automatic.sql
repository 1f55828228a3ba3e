-- An inbound message a machine sent on the customer's behalf (an
-- out-of-office, RFC 3834), shown as such in the API so that nobody
-- answers a vacation notice.
ALTER TABLE messages ADD COLUMN automatic INTEGER NOT NULL DEFAULT 0;
