-- 0002: identity and access: residents, their sessions, login attempts, departments and their credentials, and the
-- audit log (Logboek dataverwerkingen). See docs/SECURITY.md for how these fit together.

-- A resident (BSN) or a business (KvK number) that logged in at least once.
CREATE TABLE residents (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    subject_kind  text        NOT NULL CHECK (subject_kind IN ('bsn', 'kvk')),
    -- The validated number. It never leaves the database in a log line, a URL or an e-mail.
    subject       text        NOT NULL CHECK (subject ~ '^[0-9]{8,9}$'),
    locale        text        NOT NULL DEFAULT 'nl' CHECK (locale IN ('nl', 'en')),
    email         text        CHECK (email IS NULL OR length(email) <= 254),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subject_kind, subject)
);

-- Server-side sessions. The cookie carries a random token; only its SHA-256 is stored, so a copy of this table
-- does not let anyone in. A session ends when it has been idle too long, at its absolute expiry, or at logout.
CREATE TABLE sessions (
    token_hash    bytea       PRIMARY KEY,
    resident_id   uuid        NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
    -- Sent back by the browser in X-CSRF-Token on every state-changing request (synchroniser token).
    csrf_token    text        NOT NULL,
    -- How the resident logged in: 'oidc' or 'dev'.
    method        text        NOT NULL CHECK (method IN ('oidc', 'dev')),
    acr           text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sessions_resident ON sessions (resident_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- An authorization request in flight at the broker. The callback consumes it with one DELETE ... RETURNING, so a
-- replayed `state` finds nothing.
CREATE TABLE login_attempts (
    state_hash    bytea       PRIMARY KEY,
    nonce         text        NOT NULL,
    code_verifier text        NOT NULL,
    return_to     text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX login_attempts_expires_at ON login_attempts (expires_at);

-- A department (vakafdeling) and the credentials its systems present as `Authorization: Bearer <apiKey>`.
CREATE TABLE departments (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE TABLE department_credentials (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    department_id uuid        NOT NULL REFERENCES departments (id) ON DELETE CASCADE,
    -- SHA-256 of the API key. Keys are 256 random bits, so a plain hash is enough (no password stretching needed).
    key_hash      bytea       NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Set on the old key when the department's key is rotated: both keys work until then.
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX department_credentials_department ON department_credentials (department_id);

-- One record per processing of personal data (Logboek dataverwerkingen), written in the same transaction as the
-- processing itself. Append-only: nothing in the application updates or deletes these rows.
CREATE TABLE audit_log (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    -- What was done, e.g. 'resident.login' or 'resident.profile.read'.
    activity     text        NOT NULL,
    -- Who did it: a resident (session or token), a department, an operator command, or the system itself.
    actor_kind   text        NOT NULL CHECK (actor_kind IN ('resident', 'department', 'operator', 'system')),
    actor_id     text,
    -- Whose data: HMAC-SHA256 of 'bsn:<number>' or 'kvk:<number>' under PORTAL_AUDIT_KEY, never the number itself.
    subject_hash text,
    object_type  text,
    object_id    text,
    result       text        NOT NULL CHECK (result IN ('success', 'refused', 'failed')),
    trace_id     text        NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject_hash, occurred_at);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);
