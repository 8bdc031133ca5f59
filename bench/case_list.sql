-- pgbench: the resident's case list, the statement CaseStore.list runs for a first page
-- (FirstCaseListPage, with no filters),
-- for a random one of the 1000 residents with a session. The subject comes from a primary-key lookup in
-- bench_subjects, which the API does not need (it has the subject from the session).
\set r random(1, 1000)
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
