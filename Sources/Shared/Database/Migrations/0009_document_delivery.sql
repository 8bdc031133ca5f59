-- 0009: delivering residents' uploads to a department's ZGW Documenten API (docs/SYNC.md, "Delivering uploads").
-- The informatieobject the sync worker created, with its lock and parts, is stored before any part is uploaded, so a
-- retry after a crash continues with the same object instead of creating a second one.
ALTER TABLE documents
    ADD COLUMN zgw_informatieobject text,
    ADD COLUMN zgw_lock             text,
    -- [{"url", "volgnummer", "omvang"}] as the Documenten API gave them.
    ADD COLUMN zgw_parts            jsonb;
