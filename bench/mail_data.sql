-- Data for the mail benchmark (bench/mail.sh): one department (created by the script, named in :department), a case
-- type whose statuses inform, and :cases cases, each of its own resident with its own form address, so that no two
-- notifications share a mail.
\set ON_ERROR_STOP on

-- Valid BSNs: eight digits, then the check digit that makes the elfproef hold (skipping prefixes where it would be 10).
CREATE TEMPORARY TABLE bench_subjects AS
SELECT row_number() OVER (ORDER BY p) AS r, p::text || (s % 11)::text AS bsn
FROM (
    SELECT p, substr(p::text, 1, 1)::int * 9 + substr(p::text, 2, 1)::int * 8 + substr(p::text, 3, 1)::int * 7
            + substr(p::text, 4, 1)::int * 6 + substr(p::text, 5, 1)::int * 5 + substr(p::text, 6, 1)::int * 4
            + substr(p::text, 7, 1)::int * 3 + substr(p::text, 8, 1)::int * 2 AS s
    FROM generate_series(10000000, 10000000 + 2 * :cases) AS p
) candidates
WHERE s % 11 < 10
ORDER BY p
LIMIT :cases;

INSERT INTO case_types (department_id, code, name_nl, term_days)
VALUES (:'department', 'bench', 'Aanvraag', 56);
INSERT INTO status_types (case_type_id, position, code, name_nl, informs, final)
SELECT ct.id, k - 1, 's' || k, 'Stap ' || k, true, k = 5 FROM case_types ct, generate_series(1, 5) k;

INSERT INTO cases (department_id, reference, subject_kind, subject, case_type_id, title, submitted_at, contact_email)
SELECT :'department', 'M-' || s.r, 'bsn', s.bsn, ct.id, 'Aanvraag ' || s.r, now(), 'inwoner' || s.r || '@example.org'
FROM bench_subjects s CROSS JOIN case_types ct;
ANALYZE;
