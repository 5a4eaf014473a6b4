-- The choices a run was started with beyond its budget (a starter template, models per role),
-- which a worker in any process needs to drive it.
ALTER TABLE runs ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
-- "One active run per project" is checked on every start.
CREATE INDEX runs_project_status ON runs (project_id, status);
