-- 0005: notifications and mail. docs/MAIL.md tells the whole story: a notification row per event the resident
-- should hear about, written in the event's transaction; the notifier merges a resident's open notifications into
-- one mail (a delivery) and records every attempt to send it.

-- A resident's address is used for mail only once verified with a code sent to it. Until then it waits in
-- pending_email. This table keeps only the code's SHA-256 (with the resident's id), so the code is not on screen for
-- whoever looks at a resident's row; the code itself travels to the notifier in its job's payload, which is deleted
-- with the job. A six-digit code is no secret against someone who can read the database: it is short-lived (30
-- minutes), survives five wrong tries, and a new one can be asked for once a minute.
ALTER TABLE residents
    ADD COLUMN email_verified_at     timestamptz,
    ADD COLUMN email_code_sent_at    timestamptz,
    -- Set once the resident chose a language; until then mail about a case is in the case's language.
    ADD COLUMN locale_chosen_at      timestamptz,
    ADD COLUMN pending_email         text CHECK (pending_email IS NULL OR length(pending_email) <= 254),
    ADD COLUMN email_code_hash       bytea,
    ADD COLUMN email_code_expires_at timestamptz,
    ADD COLUMN email_code_attempts   integer NOT NULL DEFAULT 0,
    -- The kinds of mail the resident switched off, e.g. {"status": false}; a kind not named is on.
    ADD COLUMN mail_preferences      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(mail_preferences) = 'object');

-- Until now an address was taken as given; from now on only a verified one receives mail. An address given before
-- this migration waits for verification like a new one.
UPDATE residents SET pending_email = email, email = NULL WHERE email IS NOT NULL;

-- One mail, sent or being sent: to whom, in which language, with which Message-ID (reused on every retry, so a
-- resend after a crash is recognisably the same message). `job_id` is the job that sends it: after a crash that job
-- finds its delivery again and resends it unchanged.
CREATE TABLE mail_deliveries (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('update', 'verification')),
    message_id  text        NOT NULL UNIQUE,
    resident_id uuid        REFERENCES residents (id) ON DELETE SET NULL,
    address     text        NOT NULL,
    language    text        NOT NULL CHECK (language IN ('nl', 'en')),
    job_id      bigint      NOT NULL,
    state       text        NOT NULL DEFAULT 'sending' CHECK (state IN ('sending', 'sent', 'failed')),
    -- The relay's last reply (or why no reply came), for operators.
    last_reply  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX mail_deliveries_job ON mail_deliveries (job_id) WHERE state = 'sending';
CREATE INDEX mail_deliveries_unfinished ON mail_deliveries (created_at) WHERE state <> 'sent';

-- Every attempt to hand a delivery to the relay.
CREATE TABLE mail_attempts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint      NOT NULL REFERENCES mail_deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    relay        text        NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('sent', 'transient', 'permanent')),
    reply        text
);
CREATE INDEX mail_attempts_delivery ON mail_attempts (delivery_id, attempted_at);

-- Something a resident should hear about. `key` makes it happen at most once: 'status:<event id>' for a status,
-- 'overdue:<case id>' for a case past its due date. A notification is open until it is in a delivery or skipped
-- (no address, or the resident switched that kind of mail off).
CREATE TABLE notifications (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         text        NOT NULL UNIQUE,
    kind        text        NOT NULL CHECK (kind IN ('status', 'correction', 'message', 'document', 'overdue')),
    case_id     uuid        NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    delivery_id bigint      REFERENCES mail_deliveries (id),
    skipped     text        CHECK (skipped IN ('no-address', 'switched-off')),
    CHECK (delivery_id IS NULL OR skipped IS NULL)
);
CREATE INDEX notifications_delivery ON notifications (delivery_id) WHERE delivery_id IS NOT NULL;
CREATE INDEX notifications_case ON notifications (case_id, id);

-- The overdue scan: open cases by due date.
CREATE INDEX cases_open_due ON cases (due_date) WHERE NOT status_final AND due_date IS NOT NULL;
