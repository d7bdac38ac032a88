import EvalForgeStore

/// The evaluation runner's tables in the backend's metadata file.
enum EvalSchema {
    static let migrator = MetadataMigrator([
        .init("eval.001_core", """
            CREATE TABLE eval_providers (
                project_id TEXT NOT NULL, name TEXT NOT NULL, config TEXT NOT NULL, created_unix_ms INTEGER NOT NULL,
                PRIMARY KEY (project_id, name));
            CREATE TABLE eval_evaluators (
                project_id TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, spec TEXT NOT NULL,
                created_unix_ms INTEGER NOT NULL, PRIMARY KEY (project_id, name));
            CREATE TABLE eval_rules (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, filter TEXT NOT NULL,
                sampling_rate REAL NOT NULL, evaluators TEXT NOT NULL, enabled INTEGER NOT NULL, created_unix_ms INTEGER NOT NULL);
            CREATE INDEX eval_rules_project ON eval_rules (project_id);
            CREATE TABLE eval_datasets (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
                created_unix_ms INTEGER NOT NULL);
            CREATE INDEX eval_datasets_project ON eval_datasets (project_id);
            CREATE TABLE eval_items (
                id TEXT PRIMARY KEY, dataset_id TEXT NOT NULL REFERENCES eval_datasets(id) ON DELETE CASCADE,
                seq INTEGER NOT NULL, input TEXT NOT NULL, expected TEXT, output TEXT, context TEXT, metadata TEXT NOT NULL,
                source_trace_id TEXT NOT NULL, source_span_id TEXT NOT NULL, created_unix_ms INTEGER NOT NULL);
            CREATE INDEX eval_items_dataset ON eval_items (dataset_id, seq);
            CREATE TABLE eval_experiments (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL, dataset_id TEXT NOT NULL,
                target TEXT NOT NULL, evaluators TEXT NOT NULL, concurrency INTEGER NOT NULL, created_unix_ms INTEGER NOT NULL);
            CREATE TABLE eval_runs (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, experiment_id TEXT NOT NULL, dataset_id TEXT NOT NULL,
                name TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL, total INTEGER NOT NULL,
                done INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
                judge_calls INTEGER NOT NULL DEFAULT 0, judge_input_tokens INTEGER NOT NULL DEFAULT 0,
                judge_output_tokens INTEGER NOT NULL DEFAULT 0, judge_cost_usd REAL NOT NULL DEFAULT 0,
                judge_latency_ms REAL NOT NULL DEFAULT 0, cache_hits INTEGER NOT NULL DEFAULT 0,
                error TEXT NOT NULL DEFAULT '', created_unix_ms INTEGER NOT NULL, started_unix_ms INTEGER,
                finished_unix_ms INTEGER, progress_notified INTEGER NOT NULL DEFAULT 0);
            CREATE INDEX eval_runs_project ON eval_runs (project_id, created_unix_ms);
            CREATE INDEX eval_runs_status ON eval_runs (status);
            CREATE TABLE eval_run_items (
                run_id TEXT NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE, item_id TEXT NOT NULL,
                seq INTEGER NOT NULL, state TEXT NOT NULL, claims INTEGER NOT NULL DEFAULT 0,
                output TEXT, latency_ms REAL, error TEXT, results TEXT, finished_unix_ms INTEGER,
                PRIMARY KEY (run_id, item_id));
            CREATE INDEX eval_run_items_state ON eval_run_items (run_id, state, seq);
            CREATE TABLE eval_cache (
                key TEXT PRIMARY KEY, result TEXT NOT NULL, created_unix_ms INTEGER NOT NULL);
            CREATE TABLE eval_webhooks (
                id TEXT PRIMARY KEY, project_id TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL,
                events TEXT NOT NULL, enabled INTEGER NOT NULL, created_unix_ms INTEGER NOT NULL);
            CREATE INDEX eval_webhooks_project ON eval_webhooks (project_id);
            CREATE TABLE eval_deliveries (
                id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL REFERENCES eval_webhooks(id) ON DELETE CASCADE,
                project_id TEXT NOT NULL, event TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, next_attempt_unix_ms INTEGER NOT NULL,
                last_status_code INTEGER, last_error TEXT NOT NULL DEFAULT '', log TEXT NOT NULL DEFAULT '[]',
                created_unix_ms INTEGER NOT NULL, updated_unix_ms INTEGER NOT NULL);
            CREATE INDEX eval_deliveries_due ON eval_deliveries (status, next_attempt_unix_ms);
            CREATE INDEX eval_deliveries_webhook ON eval_deliveries (webhook_id, created_unix_ms);
            """),
        // Resumes of a running run since its last progress (a crash loop outside item evaluation ends).
        .init("eval.002_run_resumes", "ALTER TABLE eval_runs ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;"),
        // The durable online-evaluation queue (`OnlineQueue`): one row per stored span waiting for
        // evaluation, unique per (project, trace, span) so a resent batch is queued once; `id` gives
        // the FIFO order (AUTOINCREMENT: never reused), `claims`/`lease_until_ms` the crash
        // accounting. `eval_online_projects` keeps each project's queued count (its bounded share)
        // and the counts of spans skipped, with the reason, for `GET /api/online-queue`.
        .init("eval.003_online_queue", """
            CREATE TABLE eval_online_queue (
                id INTEGER PRIMARY KEY AUTOINCREMENT, project_id TEXT NOT NULL, trace_id TEXT NOT NULL,
                span_id TEXT NOT NULL, start_ns INTEGER NOT NULL, enqueued_unix_ms INTEGER NOT NULL,
                claims INTEGER NOT NULL DEFAULT 0, lease_until_ms INTEGER NOT NULL DEFAULT 0);
            CREATE UNIQUE INDEX eval_online_queue_span ON eval_online_queue (project_id, trace_id, span_id);
            CREATE INDEX eval_online_queue_order ON eval_online_queue (project_id, id);
            CREATE INDEX eval_online_queue_suspect ON eval_online_queue (project_id, id) WHERE claims > 0;
            CREATE TABLE eval_online_projects (
                project_id TEXT PRIMARY KEY, queued INTEGER NOT NULL DEFAULT 0,
                enqueued INTEGER NOT NULL DEFAULT 0, evaluated INTEGER NOT NULL DEFAULT 0,
                skipped_over_share INTEGER NOT NULL DEFAULT 0, failed_after_claims INTEGER NOT NULL DEFAULT 0,
                missing INTEGER NOT NULL DEFAULT 0, last_skip_unix_ms INTEGER);
            """),
        // Evaluated spans stay in the queue, marked done, for `OnlineQueue.doneRetentionMs`: a batch
        // resent after its spans were evaluated (its acknowledgement was lost) finds them there and
        // does not queue them again. The claim indexes cover only rows still to do.
        .init("eval.004_online_queue_done", """
            ALTER TABLE eval_online_queue ADD COLUMN done_unix_ms INTEGER;
            DROP INDEX eval_online_queue_order;
            DROP INDEX eval_online_queue_suspect;
            CREATE INDEX eval_online_queue_order ON eval_online_queue (project_id, id) WHERE done_unix_ms IS NULL;
            CREATE INDEX eval_online_queue_suspect ON eval_online_queue (project_id, id) WHERE claims > 0 AND done_unix_ms IS NULL;
            CREATE INDEX eval_online_queue_done ON eval_online_queue (done_unix_ms) WHERE done_unix_ms IS NOT NULL;
            """),
        // Leases (`WorkLease`): several backends share runs, deliveries and the online queue. A
        // claim records its owner (the claiming process's worker id) and an expiry the owner's
        // heartbeat extends; a row whose lease ran out is claimable by any backend, and a result is
        // recorded only by the row's owner. Model calls made by a re-claim (an item evaluated
        // again after its claim was lost) are counted per run and per project.
        .init("eval.005_work_leases", """
            ALTER TABLE eval_run_items ADD COLUMN owner TEXT;
            ALTER TABLE eval_run_items ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE eval_runs ADD COLUMN judge_calls_repeated INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE eval_deliveries ADD COLUMN owner TEXT;
            ALTER TABLE eval_deliveries ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE eval_online_queue ADD COLUMN owner TEXT;
            ALTER TABLE eval_online_projects ADD COLUMN judge_calls_repeated INTEGER NOT NULL DEFAULT 0;
            CREATE INDEX eval_run_items_owner ON eval_run_items (owner) WHERE state = 'claimed';
            CREATE INDEX eval_deliveries_owner ON eval_deliveries (owner) WHERE status = 'sending';
            """),
    ])
}

extension EvaluationService {
    /// Migrations the evaluation runner keeps in the metadata file (part of its schema version).
    public static var metadataMigrations: Int { EvalSchema.migrator.migrations.count }
}
