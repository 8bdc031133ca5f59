-- Realistic data for the status-tracking benchmark (bench/cases.sh): :residents residents with valid BSNs, each with
-- :cases / :residents cases of 5 status events (so 5 × :cases events), a third of them closed; and a session for
-- each of the first 1000 residents, whose cookie value is 'bench-token-<n>'.
\set ON_ERROR_STOP on

\set subjects :residents
\ir subjects.sql

INSERT INTO departments (name) VALUES ('Bench');
INSERT INTO case_types (department_id, code, name_nl, name_en, term_days)
SELECT id, 'bench', 'Aanvraag', 'Application', 56 FROM departments WHERE name = 'Bench';
INSERT INTO status_types (case_type_id, position, code, name_nl, informs, final)
SELECT ct.id, k - 1, 's' || k, 'Stap ' || k, true, k = 5 FROM case_types ct, generate_series(1, 5) k;

INSERT INTO cases (department_id, reference, subject_kind, subject, case_type_id, title, submitted_at, due_date,
                   status_code, status_text_nl, status_set_at, status_final, last_activity_at)
SELECT d.id, 'B-' || i, 'bsn', s.bsn, ct.id, 'Aanvraag ' || i,
       now() - (i % 720) * interval '1 hour' - interval '30 days',
       (now() + ((i % 60) - 30) * interval '1 day')::date,
       CASE WHEN i % 3 = 0 THEN 's5' ELSE 's4' END, 'Stap', now() - (i % 720) * interval '1 hour' - interval '25 days',
       i % 3 = 0, now() - (i % 720) * interval '1 hour' - interval '25 days'
FROM generate_series(1, :cases) AS i
JOIN bench_subjects s ON s.r = (i % :residents) + 1
CROSS JOIN departments d CROSS JOIN case_types ct
WHERE d.name = 'Bench';

INSERT INTO status_events (case_id, department_id, event_id, status_code, text_nl, set_at, final, informs, sort_at)
SELECT c.id, c.department_id, c.reference || '-' || k, 's' || k, 'Stap ' || k,
       c.submitted_at + k * interval '1 day', k = 5 AND c.status_final, true, c.submitted_at + k * interval '1 day'
FROM cases c CROSS JOIN generate_series(1, 5) AS k;

INSERT INTO residents (subject_kind, subject) SELECT 'bsn', bsn FROM bench_subjects WHERE r <= 1000;
INSERT INTO sessions (token_hash, resident_id, csrf_token, method, expires_at)
SELECT sha256(convert_to('bench-token-' || s.r, 'UTF8')), res.id, 'bench', 'dev', now() + interval '12 hours'
FROM bench_subjects s JOIN residents res ON res.subject_kind = 'bsn' AND res.subject = s.bsn
WHERE s.r <= 1000;

VACUUM ANALYZE;
