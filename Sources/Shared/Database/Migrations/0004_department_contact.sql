-- 0004: a department's general contact (name, phone, e-mail, opening hours), shown to residents for cases whose
-- handler is not given. Set by the department: PUT /api/v1/department/contact.
ALTER TABLE departments ADD COLUMN contact jsonb;
