-- One status notification per benchmark case whose reference is in M-:first .. M-:last, with its notifier job, in one
-- transaction: what CaseStore.apply writes for a status that informs (bench/mail.sh).
\set ON_ERROR_STOP on
BEGIN;
WITH recorded AS (
    INSERT INTO notifications (key, kind, case_id)
    SELECT 'bench:' || c.id, 'status', c.id FROM cases c
    WHERE c.reference IN (SELECT 'M-' || i FROM generate_series(:first, :last) AS i)
    RETURNING id
)
INSERT INTO jobs (queue, kind, payload, max_attempts, unique_key)
SELECT 'notifications', 'mail.notification', jsonb_build_object('notification', id), 25, 'notification:' || id
FROM recorded;
NOTIFY portal_jobs, 'notifications';
COMMIT;
