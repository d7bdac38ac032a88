/// The embedded store's schema, as versioned migrations.
///
/// - `spans`: one row per span, typed columns plus attributes and content as JSON text; unique on
///   (project, trace, span) so a resent span is stored once.
/// - `traces`: a per-trace summary maintained on insert, so the trace list never scans spans.
/// - `rollups`: exact per-minute aggregates, merged on insert (sketches as `evalforge.v1.Sketch`
///   protobuf blobs).
/// - `batches`: the ledger of stored batch ids (idempotent ingest).
/// - `scores`: evaluation results and feedback.
enum SQLiteSchema {
    static let migrations = MetadataMigrator([
        .init("store.001_spans", """
            CREATE TABLE spans (
                project_id TEXT NOT NULL,
                trace_id TEXT NOT NULL,
                span_id TEXT NOT NULL,
                parent_span_id TEXT NOT NULL,
                start_ns INTEGER NOT NULL,
                duration_ns INTEGER NOT NULL,
                service TEXT NOT NULL,
                name TEXT NOT NULL,
                kind INTEGER NOT NULL,
                status INTEGER NOT NULL,
                status_message TEXT NOT NULL,
                operation TEXT NOT NULL,
                provider TEXT NOT NULL,
                model TEXT NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cache_read_tokens INTEGER NOT NULL,
                cache_creation_tokens INTEGER NOT NULL,
                reasoning_tokens INTEGER NOT NULL,
                cost_usd REAL,
                ttft_ns INTEGER,
                user_id TEXT NOT NULL,
                session_id TEXT NOT NULL,
                tags TEXT NOT NULL,
                attributes TEXT NOT NULL,
                input TEXT NOT NULL,
                output TEXT NOT NULL,
                events TEXT NOT NULL
            );
            CREATE UNIQUE INDEX spans_identity ON spans(project_id, trace_id, span_id);
            CREATE INDEX spans_project_start ON spans(project_id, start_ns, span_id);
            CREATE INDEX spans_project_session ON spans(project_id, session_id, start_ns) WHERE session_id != '';
            CREATE INDEX spans_project_model ON spans(project_id, model, start_ns) WHERE model != '';

            CREATE TABLE traces (
                project_id TEXT NOT NULL,
                trace_id TEXT NOT NULL,
                name TEXT NOT NULL,
                service TEXT NOT NULL,
                has_root INTEGER NOT NULL,
                start_ns INTEGER NOT NULL,
                end_ns INTEGER NOT NULL,
                duration_ns INTEGER NOT NULL,
                span_count INTEGER NOT NULL,
                llm_calls INTEGER NOT NULL,
                error_count INTEGER NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cost_usd REAL NOT NULL,
                cost_unknown INTEGER NOT NULL,
                user_id TEXT NOT NULL,
                session_id TEXT NOT NULL,
                tags TEXT NOT NULL,
                models TEXT NOT NULL,
                providers TEXT NOT NULL,
                services TEXT NOT NULL,
                PRIMARY KEY (project_id, trace_id)
            );
            CREATE INDEX traces_start ON traces(project_id, start_ns, trace_id);
            CREATE INDEX traces_cost ON traces(project_id, cost_usd, trace_id);
            CREATE INDEX traces_duration ON traces(project_id, duration_ns, trace_id);
            CREATE INDEX traces_session ON traces(project_id, session_id, end_ns) WHERE session_id != '';
            CREATE INDEX traces_user ON traces(project_id, user_id, end_ns) WHERE user_id != '';

            CREATE TABLE rollups (
                project_id TEXT NOT NULL,
                minute_unix INTEGER NOT NULL,
                service TEXT NOT NULL,
                provider TEXT NOT NULL,
                model TEXT NOT NULL,
                is_error INTEGER NOT NULL,
                requests INTEGER NOT NULL,
                errors INTEGER NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cache_read_tokens INTEGER NOT NULL,
                cache_creation_tokens INTEGER NOT NULL,
                reasoning_tokens INTEGER NOT NULL,
                cost_usd REAL NOT NULL,
                cost_unknown_requests INTEGER NOT NULL,
                latency_ms BLOB NOT NULL,
                ttft_ms BLOB NOT NULL,
                PRIMARY KEY (project_id, minute_unix, service, provider, model, is_error)
            );

            CREATE TABLE batches (
                project_id TEXT NOT NULL,
                batch_id TEXT NOT NULL,
                stored_unix INTEGER NOT NULL,
                spans INTEGER NOT NULL,
                PRIMARY KEY (project_id, batch_id)
            );

            CREATE TABLE scores (
                project_id TEXT NOT NULL,
                id TEXT NOT NULL,
                trace_id TEXT NOT NULL,
                span_id TEXT NOT NULL,
                session_id TEXT NOT NULL,
                name TEXT NOT NULL,
                value REAL,
                label TEXT NOT NULL,
                data_type TEXT NOT NULL,
                source TEXT NOT NULL,
                comment TEXT NOT NULL,
                evaluator TEXT NOT NULL,
                run_id TEXT NOT NULL,
                created_ns INTEGER NOT NULL,
                PRIMARY KEY (project_id, id)
            );
            CREATE INDEX scores_trace ON scores(project_id, trace_id) WHERE trace_id != '';
            CREATE INDEX scores_run ON scores(project_id, run_id) WHERE run_id != '';
            CREATE INDEX scores_session ON scores(project_id, session_id) WHERE session_id != '';
            CREATE INDEX scores_name ON scores(project_id, name, value);
            """),
    ])
}
