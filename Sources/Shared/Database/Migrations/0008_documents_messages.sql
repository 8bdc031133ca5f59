-- 0008: documents and berichten (messages). docs/DOCUMENTS.md tells the whole story.

-- A file a resident uploaded or a department published. Every document has an owner (subject): only they can see it,
-- whatever the case. `file_name` is the given name, sanitised, and only ever metadata: the content is stored under
-- `id`. A row is 'receiving' while its content streams in; it becomes 'stored' in the transaction that accepts it,
-- after the size, type and virus checks. A receiving row that is older than an hour belongs to an upload that died
-- and is removed with its content (docs/DOCUMENTS.md, "Crashes").
CREATE TABLE documents (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    department_id uuid        NOT NULL REFERENCES departments (id),
    subject_kind  text        NOT NULL CHECK (subject_kind IN ('bsn', 'kvk')),
    subject       text        NOT NULL CHECK (subject ~ '^[0-9]{8,9}$'),
    -- Null for an attachment of a message that is not about a case.
    case_id       uuid        REFERENCES cases (id) ON DELETE CASCADE,
    origin        text        NOT NULL CHECK (origin IN ('resident', 'department')),
    state         text        NOT NULL DEFAULT 'receiving' CHECK (state IN ('receiving', 'stored')),
    file_name     text        NOT NULL CHECK (length(file_name) BETWEEN 1 AND 255),
    content_type  text        NOT NULL,
    size          bigint      NOT NULL DEFAULT 0 CHECK (size >= 0),
    -- SHA-256 of the whole file, and of each 256 KiB chunk in order (32 bytes each): every chunk is checked before
    -- it is served, so a damaged file is never handed out, and a range request checks only what it serves.
    sha256        bytea       CHECK (sha256 IS NULL OR length(sha256) = 32),
    chunk_hashes  bytea,
    storage       text        NOT NULL CHECK (storage IN ('postgres', 'directory')),
    -- 'clean': clamd found nothing; 'not-scanned': no clamd configured when it was stored.
    scan          text        NOT NULL DEFAULT 'not-scanned' CHECK (scan IN ('clean', 'not-scanned')),
    -- The department's own id for a document it published (`doc:<Idempotency-Key>`, or `msg:<message id>` for a
    -- message's attachment): publishing it again changes nothing.
    external_id   text        CHECK (length(external_id) BETWEEN 1 AND 210),
    -- Resident uploads: 'pending' until the department has it (fetched it, or the sync worker delivered it).
    delivery      text        CHECK (delivery IN ('pending', 'delivered')),
    delivered_at  timestamptz,
    -- The order in which departments fetch resident uploads (`GET /api/v1/department/documents?after=`), and when
    -- an upload was first in a page. Positions are taken when a row is inserted, so a slow upload can be stored
    -- after faster ones with higher positions: a fetch returns every pending row not offered yet, whatever its
    -- position, and only offered rows are confirmed delivered (docs/DOCUMENTS.md).
    position      bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    offered_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    stored_at     timestamptz,
    CHECK (state = 'receiving' OR (sha256 IS NOT NULL AND chunk_hashes IS NOT NULL AND size > 0)),
    CHECK ((origin = 'resident') = (delivery IS NOT NULL)),
    UNIQUE (department_id, external_id)
);
CREATE INDEX documents_case ON documents (case_id, created_at) WHERE state = 'stored';
CREATE INDEX documents_owner ON documents (subject_kind, subject) WHERE state = 'stored';
CREATE INDEX documents_receiving ON documents (created_at) WHERE state = 'receiving';
CREATE INDEX documents_outbound ON documents (department_id, position) WHERE origin = 'resident' AND state = 'stored' AND delivery = 'pending';

-- The content of documents kept in PostgreSQL: 256 KiB per row, so any replica can serve any file and a backup of
-- the database is a backup of everything. PDFs, photos and Office files are compressed already: storing them
-- EXTERNAL spares PostgreSQL the attempt to compress them again.
CREATE TABLE document_chunks (
    document_id uuid    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    index       integer NOT NULL CHECK (index >= 0),
    data        bytea   NOT NULL,
    PRIMARY KEY (document_id, index)
);
ALTER TABLE document_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- A bericht between a department and a resident, about one of their cases or in general. Never edited once sent.
CREATE TABLE messages (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    department_id uuid        NOT NULL REFERENCES departments (id),
    subject_kind  text        NOT NULL CHECK (subject_kind IN ('bsn', 'kvk')),
    subject       text        NOT NULL CHECK (subject ~ '^[0-9]{8,9}$'),
    case_id       uuid        REFERENCES cases (id) ON DELETE CASCADE,
    direction     text        NOT NULL CHECK (direction IN ('to-resident', 'from-resident')),
    title         text        CHECK (length(title) BETWEEN 1 AND 200),
    body          text        NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    -- Documents the message refers to (a resident's uploads to the same case) or carries (a department's attachment).
    document_ids  uuid[]      NOT NULL DEFAULT '{}',
    -- The department's own id for a message it sent: sending it again changes nothing.
    external_id   text        CHECK (length(external_id) BETWEEN 1 AND 200),
    -- Messages to the resident: when they first read it.
    read_at       timestamptz,
    -- Messages from the resident: 'pending' until the department has it.
    delivery      text        CHECK (delivery IN ('pending', 'delivered')),
    delivered_at  timestamptz,
    -- The order in which departments fetch residents' messages (`GET /api/v1/department/messages?after=`), and when a
    -- message was first in a page (as for documents: transactions commit out of position order).
    position      bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    offered_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((direction = 'from-resident') = (delivery IS NOT NULL)),
    CHECK (direction = 'to-resident' OR case_id IS NOT NULL),
    UNIQUE (department_id, external_id)
);
-- The inbox, newest first, in pages; the unread count; a case's thread; the department's fetch.
CREATE INDEX messages_inbox ON messages (subject_kind, subject, created_at DESC, id DESC);
CREATE INDEX messages_unread ON messages (subject_kind, subject) WHERE direction = 'to-resident' AND read_at IS NULL;
CREATE INDEX messages_case ON messages (case_id, created_at) WHERE case_id IS NOT NULL;
CREATE INDEX messages_outbound ON messages (department_id, position) WHERE direction = 'from-resident' AND delivery = 'pending';

-- A message that is not about a case is announced by mail like any other news: a notification may name its
-- resident instead of a case.
ALTER TABLE notifications
    ALTER COLUMN case_id DROP NOT NULL,
    ADD COLUMN subject_kind text CHECK (subject_kind IN ('bsn', 'kvk')),
    ADD COLUMN subject      text CHECK (subject ~ '^[0-9]{8,9}$'),
    ADD CONSTRAINT notifications_case_or_subject CHECK (case_id IS NOT NULL OR (subject_kind IS NOT NULL AND subject IS NOT NULL));
CREATE INDEX notifications_subject ON notifications (subject_kind, subject) WHERE case_id IS NULL AND delivery_id IS NULL AND skipped IS NULL;
