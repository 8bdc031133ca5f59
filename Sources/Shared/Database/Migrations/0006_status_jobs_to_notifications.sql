-- 0006: status announcements queued before 0005 (one `notification.status` job per event, which no notifier handles
-- any more) become notifications with their `mail.notification` jobs, so an upgrade announces them instead of
-- letting them die. Their payload was {"caseID", "correction", "statusEvent"}.
WITH old AS (
    DELETE FROM jobs WHERE kind = 'notification.status' AND state IN ('pending', 'running')
    RETURNING payload
), recorded AS (
    INSERT INTO notifications (key, kind, case_id)
    SELECT 'status:' || (old.payload->>'statusEvent'),
           CASE WHEN (old.payload->>'correction')::boolean THEN 'correction' ELSE 'status' END,
           cases.id
    FROM old JOIN cases ON cases.id = (old.payload->>'caseID')::uuid
    ON CONFLICT (key) DO NOTHING
    RETURNING id
)
INSERT INTO jobs (queue, kind, payload, max_attempts, unique_key)
SELECT 'notifications', 'mail.notification', jsonb_build_object('notification', id), 25, 'notification:' || id
FROM recorded;
