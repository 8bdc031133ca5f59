-- pgbench (-M prepared): the two statements the API runs for one GET /api/v1/cases, in the same order: the session
-- lookup (SessionStore.resume) and the list (CaseStore.list). The API's third, the read's audit record, is shared
-- between concurrent reads (one INSERT and commit for many), which pgbench cannot do, so it is left out here.
\set r random(1, 1000)
WITH found AS (
    SELECT r.id, r.subject_kind, r.subject, r.locale, r.email, s.csrf_token, s.method, s.acr, s.expires_at, s.last_seen_at
    FROM sessions AS s JOIN residents AS r ON r.id = s.resident_id
    WHERE s.token_hash = sha256(convert_to('bench-token-' || :r, 'UTF8'))
      AND s.expires_at > now()
      AND s.last_seen_at > now() - make_interval(secs => 900)
), touched AS (
    UPDATE sessions SET last_seen_at = now()
    WHERE token_hash = sha256(convert_to('bench-token-' || :r, 'UTF8'))
      AND EXISTS (SELECT 1 FROM found WHERE last_seen_at < now() - interval '1 minute')
)
SELECT id, subject_kind, subject, locale, email, csrf_token, method, acr, expires_at FROM found;
SELECT c.id, ct.code, ct.name_nl, ct.name_en, c.title, c.status_code, c.status_text_nl, c.status_text_en,
       c.status_set_at, c.status_final, c.due_date::text,
       (c.due_date < (now() AT TIME ZONE 'Europe/Amsterdam')::date AND NOT c.status_final),
       (extract(epoch FROM c.last_activity_at) * 1000000)::bigint,
       (SELECT count(*) FROM messages m WHERE m.case_id = c.id AND m.direction = 'to-resident' AND m.read_at IS NULL),
       (SELECT count(*) FROM documents d WHERE d.case_id = c.id AND d.state = 'stored')
FROM cases c JOIN case_types ct ON ct.id = c.case_type_id
WHERE c.subject_kind = 'bsn' AND c.subject = (SELECT bsn FROM bench_subjects WHERE r = :r)
  AND (NULL::text IS NULL OR c.status_final = (NULL::text = 'closed'))
  AND (NULL::text IS NULL OR ct.code = NULL::text)
ORDER BY c.last_activity_at DESC, c.id DESC
LIMIT 21;
