-- 0007: connectors to the departments' own case systems, and the sync worker's state per department. docs/SYNC.md
-- tells the whole story.

-- How the sync worker reaches a department's system: one connector per department. `settings` holds what each kind
-- needs (feed: {"url"}; zgw: {"zaken", "catalogi", "maxConfidentiality"}). `secret` is what authenticates us there
-- (the feed's bearer token, or the secret our ZGW JWTs are signed with): stored as given because we must present
-- it, and never printed, logged or returned by a command.
CREATE TABLE department_connectors (
    department_id    uuid             PRIMARY KEY REFERENCES departments (id) ON DELETE CASCADE,
    kind             text             NOT NULL CHECK (kind IN ('feed', 'zgw')),
    settings         jsonb            NOT NULL CHECK (jsonb_typeof(settings) = 'object'),
    client_id        text,
    secret           text,
    -- ZGW: SHA-256 of the Authorization value Open Notificaties sends with every notification (the abonnement's
    -- `auth`). 256 random bits, like API keys, so a plain hash is enough.
    callback_hash    bytea            UNIQUE,
    -- How often the feed is pulled, or ZGW statuses are reconciled.
    interval_seconds integer          NOT NULL CHECK (interval_seconds BETWEEN 1 AND 86400),
    -- Limits towards the department, over all sync workers together.
    max_concurrent   integer          NOT NULL CHECK (max_concurrent BETWEEN 1 AND 100),
    max_per_second   double precision NOT NULL CHECK (max_per_second > 0 AND max_per_second <= 10000),
    paused_at        timestamptz,
    created_at       timestamptz      NOT NULL DEFAULT now(),
    updated_at       timestamptz      NOT NULL DEFAULT now()
);

-- The sync worker's position in a department's changes and what it knows of the connector's health.
CREATE TABLE department_sync (
    department_id        uuid             PRIMARY KEY REFERENCES department_connectors (department_id) ON DELETE CASCADE,
    -- Feed: where the next pull starts (the department's opaque cursor). ZGW: the reconciliation watermark.
    cursor               text,
    changes_applied      bigint           NOT NULL DEFAULT 0,
    changes_refused      bigint           NOT NULL DEFAULT 0,
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    last_error           text,
    consecutive_failures integer          NOT NULL DEFAULT 0,
    -- The circuit breaker: while open, no request goes to the department.
    open_until           timestamptz,
    -- Lag: set while the department is known to have changes we have not applied yet, to when the oldest of them
    -- happened (as far as we know); NULL when caught up.
    behind_since         timestamptz,
    -- The rate limit's token bucket.
    tokens               double precision NOT NULL DEFAULT 1,
    tokens_at            timestamptz      NOT NULL DEFAULT now()
);

-- At most max_concurrent requests to one department at a time, over all sync workers: a request holds a slot's
-- lease for its duration (a crashed worker's lease runs out).
CREATE TABLE department_request_slots (
    department_id uuid        NOT NULL REFERENCES department_connectors (department_id) ON DELETE CASCADE,
    slot          integer     NOT NULL,
    lease_until   timestamptz NOT NULL DEFAULT '-infinity',
    -- Who holds the slot: only its holder gives it back (a request that outlived its lease frees nothing).
    holder        uuid,
    PRIMARY KEY (department_id, slot)
);

-- Changes a department sent that could not be applied (an unknown case type, an invalid field): the feed moves on,
-- and operators see what was left behind. The change itself is not kept (it may carry a BSN): the department has it.
CREATE TABLE sync_refusals (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    department_id uuid        NOT NULL REFERENCES departments (id) ON DELETE CASCADE,
    reference     text,
    reason        text        NOT NULL,
    refused_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_refusals_department ON sync_refusals (department_id, refused_at);

-- ZGW zaaktypen with their statustypen as fetched from the Catalogi API, per department (each reads with its own
-- credentials) and URL; refetched once older than a day, or when a status names a statustype they lack.
CREATE TABLE zgw_resources (
    department_id uuid        NOT NULL REFERENCES department_connectors (department_id) ON DELETE CASCADE,
    url           text        NOT NULL,
    body          jsonb       NOT NULL,
    fetched_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (department_id, url)
);

-- ZGW statuses that reach no resident (an internal zaaktype, a zaak above the confidentiality maximum, no initiator
-- we can identify), so reconciliation does not fetch them again and again.
CREATE TABLE zgw_skipped (
    department_id uuid        NOT NULL REFERENCES department_connectors (department_id) ON DELETE CASCADE,
    status_url    text        NOT NULL,
    reason        text        NOT NULL,
    skipped_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (department_id, status_url)
);
