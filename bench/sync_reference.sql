-- The reference for bench/sync.sh: PostgreSQL writing the rows of one feed page of :size changes with plain
-- set-based statements in one transaction (events with a unique event id, cases upserted with their current
-- status, the cursor moved), run by pgbench one page after another on one connection: the floor our sync worker's
-- page transaction is compared with. Change i is case i % :cases, step i / :cases, as bench/department_sim.py makes them.
SELECT nextval('ref_page') - 1 AS page \gset
BEGIN;
INSERT INTO ref_cases (reference, subject, status_code, status_set_at)
SELECT 'F-' || (i % :cases), (100000000 + i % :cases)::text, 's' || (i / :cases), now()
FROM generate_series(:page * :size, :page * :size + :size - 1) AS i
ON CONFLICT (reference) DO UPDATE SET status_code = excluded.status_code, status_set_at = excluded.status_set_at;
INSERT INTO ref_events (case_reference, event_id, status_code, set_at)
SELECT 'F-' || (i % :cases), 'F-' || (i % :cases) || '-' || (i / :cases), 's' || (i / :cases), now()
FROM generate_series(:page * :size, :page * :size + :size - 1) AS i;
UPDATE ref_sync SET cursor = ((:page + 1) * :size)::text;
END;
