-- 0010: retention (docs/OPERATIONS.md, "Retention"). Each retention step deletes the oldest rows past their term in
-- small batches; these indexes let it find them without reading whole tables.

-- Closed cases by the time of their final status.
CREATE INDEX cases_closed ON cases (status_set_at) WHERE status_final;

-- Residents' uploads the department has, by when it got them.
CREATE INDEX documents_delivered ON documents (delivered_at) WHERE origin = 'resident' AND delivery = 'delivered';

-- Finished mail deliveries by age, and notifications by age.
CREATE INDEX mail_deliveries_finished ON mail_deliveries (finished_at) WHERE state <> 'sending';
CREATE INDEX notifications_created_at ON notifications (created_at);

-- Refusals are pruned by age across departments.
CREATE INDEX sync_refusals_refused_at ON sync_refusals (refused_at);
