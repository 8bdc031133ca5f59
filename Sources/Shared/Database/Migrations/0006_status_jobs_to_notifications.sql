-- 0006: status announcements queued before 0005 (one `notification.status` job per event) become notifications with
-- their `mail.notification` jobs, so an upgrade announces them instead of letting them die: those still queued, and
-- those of the last week that died because the notifier before 0005 had no handler for them. Their payload was
-- {"caseID", "correction", "statusEvent"}. (A notifier from 0005 on also takes such jobs from API replicas that are
-- still old during a rolling upgrade: `LegacyStatusJob`.)
WITH old AS (
    DELETE FROM jobs
    WHERE kind = 'notification.status'
      AND (state IN ('pending', 'running')
           OR (state = 'dead' AND last_error LIKE 'no handler%' AND finished_at > now() - interval '7 days'))
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
