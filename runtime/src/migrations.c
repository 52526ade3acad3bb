/* migrations.c: the runtime's own tables (component "warren"), applied by
 * wr_db_migrate_runtime() at service start. The tables are documented in
 * docs/DESIGN.md ("Runtime tables"); column names are a contract with outbox.c,
 * relay.c, consumer.c and guard.c.
 *
 * Released migrations are never edited: a change is a new entry at the end. */
#include <warren/db.h>

/* v1: outbox, inbox, version guard.
 *
 * warren_outbox is an insert-then-delete queue. Its claim scans the primary key in id
 * order and skips rows whose next_attempt_at lies ahead; dead index entries of
 * deleted rows are what slows such a queue down, so autovacuum is told to visit the
 * table after a fixed number of dead rows rather than a fraction of its (tiny) size.
 *
 * The NOTIFY comes from a statement-level trigger: one notification per inserting
 * statement, and PostgreSQL folds identical notifications of one transaction into
 * one, so a transaction appending many events wakes the relays once, at commit.
 *
 * version is bigint: the outbox refuses meta.version above INT64_MAX. */
static const char v1_sql[] =
    "CREATE TABLE warren_outbox ("
    "  id bigserial PRIMARY KEY,"
    "  event_id uuid NOT NULL UNIQUE,"
    "  event_type text NOT NULL,"
    "  exchange text NOT NULL,"
    "  routing_key text NOT NULL,"
    "  aggregate_type text NOT NULL,"
    "  aggregate_id text NOT NULL,"
    "  version bigint NOT NULL CHECK (version >= 1),"
    "  correlation_id text,"
    "  causation_id text,"
    "  source_service text NOT NULL DEFAULT '',"
    "  occurred_at timestamptz NOT NULL,"
    "  payload bytea NOT NULL,"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  attempts integer NOT NULL DEFAULT 0,"
    "  next_attempt_at timestamptz NOT NULL DEFAULT now(),"
    "  last_error text"
    ") WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,"
    "        autovacuum_vacuum_insert_scale_factor = 0,"
    "        autovacuum_vacuum_insert_threshold = 5000);"
    "CREATE FUNCTION warren_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN PERFORM pg_notify('warren_outbox', ''); RETURN NULL; END $$;"
    "CREATE TRIGGER warren_outbox_notify AFTER INSERT ON warren_outbox"
    "  FOR EACH STATEMENT EXECUTE FUNCTION warren_outbox_notify();"
    "CREATE TABLE warren_inbox ("
    "  consumer text NOT NULL,"
    "  event_id uuid NOT NULL,"
    "  processed_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (consumer, event_id)"
    ");"
    /* The cleanup job deletes one consumer's rows by age. */
    "CREATE INDEX warren_inbox_consumer_processed_at ON warren_inbox (consumer, processed_at);"
    "CREATE TABLE warren_versions ("
    "  scope text NOT NULL,"
    "  aggregate_type text NOT NULL,"
    "  aggregate_id text NOT NULL,"
    "  version bigint NOT NULL,"
    "  tombstone boolean NOT NULL DEFAULT false,"
    "  updated_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (scope, aggregate_type, aggregate_id)"
    ");";

/* v2: the NOTIFY becomes a session's choice (setting warren.outbox_notify, default on).
 *
 * PostgreSQL serialises the commits of all notifying transactions of a database: the
 * commit takes a database-wide lock before it queues the notification and keeps it
 * through its WAL flush, so such commits cannot share a flush (group commit), and a
 * service committing one transaction per request is capped near 1 / fsync time
 * (docs/PERFORMANCE.md). A session whose process wakes its own relay right after
 * the commit (wr_relay_wake) does not need the NOTIFY and turns it off with
 * `warren.outbox_notify = off` (wr_db_pool_opts.outbox_notify, or the connection
 * string's `options=-c warren.outbox_notify=off`, or SET). Every other writer (SQL
 * scripts, processes without a relay) keeps notifying: an unset or empty setting means
 * on. The value is read as a PostgreSQL boolean (on/off, true/false, yes/no, 1/0); a
 * value that is none of these fails the insert, so a typo cannot silently stop the
 * wake-ups of other relays. */
static const char v2_sql[] =
    "CREATE OR REPLACE FUNCTION warren_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF coalesce(nullif(current_setting('warren.outbox_notify', true), '')::boolean, true)"
    "  THEN PERFORM pg_notify('warren_outbox', ''); END IF;"
    "  RETURN NULL;"
    " END $$;";

static const wr_migration runtime_migrations[] = {
    {1, "runtime tables: outbox, inbox, versions", v1_sql},
    {2, "outbox NOTIFY off for sessions with warren.outbox_notify = off", v2_sql},
};

int wr_db_migrate_runtime(PGconn *c, wr_err *err) {
  return wr_db_migrate(c, "warren", runtime_migrations,
                       sizeof runtime_migrations / sizeof runtime_migrations[0], err);
}
