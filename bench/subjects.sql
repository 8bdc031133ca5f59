-- Valid BSNs for the benchmarks' data scripts: :subjects of them in table bench_subjects (r = 1, 2, ...), eight digits
-- and then the check digit that makes the elfproef hold (prefixes where it would be 10 are skipped).
CREATE TABLE bench_subjects AS
SELECT row_number() OVER (ORDER BY p) AS r, p::text || (s % 11)::text AS bsn
FROM (
    SELECT p, substr(p::text, 1, 1)::int * 9 + substr(p::text, 2, 1)::int * 8 + substr(p::text, 3, 1)::int * 7
            + substr(p::text, 4, 1)::int * 6 + substr(p::text, 5, 1)::int * 5 + substr(p::text, 6, 1)::int * 4
            + substr(p::text, 7, 1)::int * 3 + substr(p::text, 8, 1)::int * 2 AS s
    FROM generate_series(10000000, 10000000 + 2 * :subjects) AS p
) candidates
WHERE s % 11 < 10
ORDER BY p
LIMIT :subjects;
CREATE UNIQUE INDEX ON bench_subjects (r);
