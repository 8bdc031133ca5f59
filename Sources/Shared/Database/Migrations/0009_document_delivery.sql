-- 0009: delivering residents' uploads and messages to departments: to a ZGW Documenten API, or to their own webhook
-- (docs/SYNC.md, "Delivering uploads" and "Webhook").
-- The informatieobject the sync worker created, with its lock and parts, is stored before any part is uploaded, so a
-- retry after a crash continues with the same object instead of creating a second one.
ALTER TABLE documents
    ADD COLUMN zgw_informatieobject text,
    ADD COLUMN zgw_lock             text,
    -- [{"url", "volgnummer", "omvang"}] as the Documenten API gave them.
    ADD COLUMN zgw_parts            jsonb,
    -- Our unlock succeeded: the object is complete, only the link to the zaak may be left.
    ADD COLUMN zgw_unlocked_at      timestamptz;

-- A department's own webhook, to which the sync worker posts residents' messages and uploads (those not delivered to
-- a Documenten API), signed with `secret` (HMAC-SHA256 of the timestamp and the body; docs/SYNC.md, "Webhook").
-- The secret is stored as given because we must sign with it; it is never printed, logged or returned.
CREATE TABLE department_webhooks (
    department_id uuid        PRIMARY KEY REFERENCES departments (id) ON DELETE CASCADE,
    url           text        NOT NULL,
    secret        text        NOT NULL CHECK (length(secret) >= 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
