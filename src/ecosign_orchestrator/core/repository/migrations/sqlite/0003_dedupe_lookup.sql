-- A repeat submission looks up the newest job holding its dedupe key (active or completed), and
-- one document's flows are listed by dedupe-key prefix: both read this index.
CREATE INDEX jobs_dedupe_key ON jobs (dedupe_key, id) WHERE dedupe_key IS NOT NULL;
