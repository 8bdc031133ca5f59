-- 0003: status tracking: case types with their ordered status types, cases, status events, and feedback.
-- docs/CASES.md describes the department contract and how the current status is chosen.

-- A kind of case (zaaktype) of one department, e.g. 'paspoort'.
CREATE TABLE case_types (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    department_id uuid        NOT NULL REFERENCES departments (id),
    code          text        NOT NULL CHECK (code ~ '^[A-Za-z0-9._-]{1,100}$'),
    name_nl       text        NOT NULL,
    name_en       text,
    -- The statutory term (termijn) in days; a case's due date defaults to submitted + term.
    term_days     integer     CHECK (term_days BETWEEN 1 AND 3650),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (department_id, code)
);

-- The steps of a case type, in order. Replaced as a whole when the department updates the case type; status events
-- keep their own copy of code and text, so history never changes with the type.
CREATE TABLE status_types (
    case_type_id    uuid    NOT NULL REFERENCES case_types (id) ON DELETE CASCADE,
    position        integer NOT NULL,
    code            text    NOT NULL CHECK (code ~ '^[A-Za-z0-9._-]{1,100}$'),
    name_nl         text    NOT NULL,
    name_en         text,
    -- Whether reaching this status is announced to the resident (statustype.informeren in ZGW).
    informs         boolean NOT NULL DEFAULT true,
    final           boolean NOT NULL DEFAULT false,
    uploads_allowed boolean NOT NULL DEFAULT false,
    PRIMARY KEY (case_type_id, code),
    UNIQUE (case_type_id, position)
);

-- An application (aanvraag) or report (melding). `id` is the opaque id residents see in URLs; `reference` is the
-- department's own, never shown in a URL.
CREATE TABLE cases (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    department_id   uuid        NOT NULL REFERENCES departments (id),
    reference       text        NOT NULL CHECK (length(reference) BETWEEN 1 AND 200),
    subject_kind    text        NOT NULL CHECK (subject_kind IN ('bsn', 'kvk')),
    subject         text        NOT NULL CHECK (subject ~ '^[0-9]{8,9}$'),
    case_type_id    uuid        NOT NULL REFERENCES case_types (id),
    title           text        NOT NULL,
    submitted_at    timestamptz NOT NULL,
    due_date        date,
    language        text        NOT NULL DEFAULT 'nl' CHECK (language IN ('nl', 'en')),
    -- The address the resident gave on the form, used for mail until they set one in the portal.
    contact_email   text,
    -- {"name", "phone", "email", "hours"}: whom to ask. Null: the department's fallback contact.
    handler         jsonb,
    -- The current status, kept here so the resident's case list is one index scan. Chosen by status_events below.
    status_event    bigint,
    status_code     text,
    status_text_nl  text,
    status_text_en  text,
    status_set_at   timestamptz,
    status_final    boolean     NOT NULL DEFAULT false,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (department_id, reference)
);
-- The resident's case list, newest activity first, in pages.
CREATE INDEX cases_subject_activity ON cases (subject_kind, subject, last_activity_at DESC, id DESC);

-- Every status a department reported, in the order they were set (not received). A correction names the event it
-- corrects; the corrected event stays stored but is no longer shown.
CREATE TABLE status_events (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id         uuid        NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    department_id   uuid        NOT NULL REFERENCES departments (id),
    -- The department's id for this event: replaying it changes nothing.
    event_id        text        NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
    status_code     text        NOT NULL,
    text_nl         text        NOT NULL,
    text_en         text,
    explanation_nl  text,
    explanation_en  text,
    set_at          timestamptz NOT NULL,
    final           boolean     NOT NULL,
    informs         boolean     NOT NULL,
    corrects        text,
    -- Where the event stands in history: its own set_at, or for a correction that of the event it corrects (a
    -- correction takes the place of what it corrects; it is not news).
    sort_at         timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (department_id, event_id)
);
CREATE INDEX status_events_case ON status_events (case_id, sort_at, id);

-- A resident's rating of a closed case, once per case.
CREATE TABLE case_feedback (
    case_id    uuid        PRIMARY KEY REFERENCES cases (id) ON DELETE CASCADE,
    rating     smallint    NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment    text        CHECK (length(comment) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now()
);
