-- Data for the mail benchmark (bench/mail.sh): one department (created by the script, named in :department), a case
-- type whose statuses inform, and :cases cases, each of its own resident with its own form address, so that no two
-- notifications share a mail.
\set ON_ERROR_STOP on

\set subjects :cases
\ir subjects.sql

INSERT INTO case_types (department_id, code, name_nl, term_days)
VALUES (:'department', 'bench', 'Aanvraag', 56);
INSERT INTO status_types (case_type_id, position, code, name_nl, informs, final)
SELECT ct.id, k - 1, 's' || k, 'Stap ' || k, true, k = 5 FROM case_types ct, generate_series(1, 5) k;

INSERT INTO cases (department_id, reference, subject_kind, subject, case_type_id, title, submitted_at, contact_email)
SELECT :'department', 'M-' || s.r, 'bsn', s.bsn, ct.id, 'Aanvraag ' || s.r, now(), 'inwoner' || s.r || '@example.org'
FROM bench_subjects s CROSS JOIN case_types ct;
ANALYZE;
