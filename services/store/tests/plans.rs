//! The hot statements on PostgreSQL (the event log's reads, the callbacks'
//! listings and writes, the lookup of API keys) touch only what they
//! return, on large tables, with generic plans forced, and whether the
//! tables were never analyzed, analyzed while empty (statistics years
//! old), or analyzed now: each statement's plan is executed (EXPLAIN
//! ANALYZE) and must read its page by index, with no sort or sequential
//! scan of a big table, and no node handling more rows than a few pages.
//!
//! (The machine, like many customers', runs without autovacuum, and a
//! prepared statement switches to a generic plan after five runs.)

use omniroute_store::PgStore;
use omniroute_store::testing::{fresh_pg_url, pg_config, pg_hot_statements};
use serde_json::Value;
use tokio_postgres::NoTls;

/// Rows in each big table.
const ROWS: i64 = 200_000;
/// The contact that owns a tenth of the events (and of the callbacks).
const CONTACT: &str = "00000000-0000-7000-8000-000000000000";
/// The page the statements ask for.
const PAGE: u64 = 500;

/// Takes statistics of every table the statements read.
const ANALYZE: &str = "ANALYZE contacts; ANALYZE messages; ANALYZE events; ANALYZE call_progress;
                       ANALYZE api_keys;";

async fn connect(url: &str, options: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().expect("url");
    config.options(options);
    let (client, connection) = config.connect(NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

/// Fills contacts, messages and events with `ROWS` rows each, as a busy
/// tenant's (and an endpoint's delivery attempts):
/// half of the messages are callbacks (voice calls, each with its
/// progress, due over two days around now), the other half email; one
/// contact has a tenth of them. The tenant has `ROWS` API keys too.
async fn fill(db: &tokio_postgres::Client) {
    db.batch_execute(&format!(
        "INSERT INTO contacts (tenant, id, state, display_name, create_time, update_time)
         SELECT 'default', CASE WHEN i = 1 THEN '{CONTACT}'::uuid ELSE gen_random_uuid() END,
                1, '', now(), now()
         FROM generate_series(1, {ROWS}) AS i;
         INSERT INTO messages (tenant, id, contact_id, direction, category, channel, priority,
                               status, content, send_time, provider_message_id,
                               idempotency_key, create_time, update_time)
         SELECT 'default', gen_random_uuid(),
                CASE WHEN i % 10 = 0 THEN '{CONTACT}'::uuid ELSE gen_random_uuid() END,
                1, 'transactional', CASE WHEN i % 2 = 0 THEN 'voice' ELSE 'email' END, 2,
                2 + i % 4,
                CASE WHEN i % 2 = 0
                     THEN '{{\"type\":\"callback_request\",\"agent_address\":\"+4930123456\"}}'
                     ELSE '{{\"text\":{{\"body\":\"hi\"}}}}' END::jsonb,
                CASE WHEN i % 3 <> 0 THEN now() + (i - {ROWS} / 2) * interval '1 second' END,
                CASE WHEN i % 2 = 0 THEN 'call-' || i END,
                CASE WHEN i % 2 = 1 THEN 'req-' || i END,
                now(), now()
         FROM generate_series(1, {ROWS}) AS i;
         INSERT INTO tenant_usage (tenant, day, sent)
         SELECT 'tenant-' || i, current_date, i FROM generate_series(1, {ROWS}) AS i;
         INSERT INTO call_progress (tenant, message_id, call_id, answered_by, bridged_seconds,
                                    update_time)
         SELECT tenant, id, provider_message_id, 'human', 30, now() FROM messages
         WHERE provider_message_id IS NOT NULL;
         INSERT INTO events (tenant, type, time, contact_id, message_id, payload)
         SELECT tenant, 2, now(), contact_id, id, '{{}}' FROM messages;
         INSERT INTO endpoint_attempts (tenant, endpoint_id, id, event_xid, event_seq,
                                        event_type, epoch, time, outcome, latency_ms)
         SELECT 'default', '00000000-0000-7000-8000-000000000000', gen_random_uuid(),
                '1'::xid8, i, 2, 0, now(), 1 + i % 2, 10
         FROM generate_series(1, {ROWS}) AS i;
         INSERT INTO api_keys (id, tenant, name, prefix, secret_hash, scopes, create_time)
         SELECT gen_random_uuid(), 'default', '', 'key-' || i, sha256(('secret-' || i)::bytea),
                '{{messages.send}}', now()
         FROM generate_series(1, {ROWS}) AS i;"
    ))
    .await
    .expect("fill the tables");
}

/// Every node of a JSON plan.
fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for child in children {
            nodes(child, out);
        }
    }
}

async fn check_plans(url: &str, when: &str) {
    for statement in pg_hot_statements() {
        let db = connect(url, statement.options).await;
        db.batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan;
             PREPARE hot({}) AS {}",
            statement.types, statement.sql
        ))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", statement.name));
        let row = db
            .query_one(
                &format!(
                    "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE hot({})",
                    statement.args
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", statement.name));
        let plan: Value = row.get(0);
        let plan = &plan[0]["Plan"];
        let mut all = Vec::new();
        nodes(plan, &mut all);
        for node in &all {
            let kind = node["Node Type"].as_str().unwrap_or_default();
            let relation = node["Relation Name"].as_str().unwrap_or_default();
            let rows = node["Actual Rows"].as_u64().unwrap_or(0)
                * node["Actual Loops"].as_u64().unwrap_or(1);
            let what = format!("{} ({when}): {kind} {relation}\n{plan:#}", statement.name);
            assert!(
                !matches!(kind, "Seq Scan" | "Sort" | "Bitmap Heap Scan" | "Hash"),
                "{what}"
            );
            assert!(rows <= 2 * PAGE, "{what}: {rows} rows");
        }
    }
}

#[tokio::test]
async fn hot_statements_touch_only_their_page_whatever_the_statistics() {
    let url = fresh_pg_url().await;
    let store = PgStore::connect(&pg_config(url.clone()))
        .await
        .expect("store");
    let db = connect(&url, "").await;
    // Statistics taken while the tables were empty, then the tables grew.
    db.batch_execute(ANALYZE).await.unwrap();
    fill(&db).await;
    check_plans(&url, "statistics from when the tables were empty").await;
    db.batch_execute(ANALYZE).await.unwrap();
    check_plans(&url, "fresh statistics").await;
    drop(store);
}

#[tokio::test]
async fn hot_statements_touch_only_their_page_on_never_analyzed_tables() {
    let url = fresh_pg_url().await;
    let store = PgStore::connect(&pg_config(url.clone()))
        .await
        .expect("store");
    let db = connect(&url, "").await;
    fill(&db).await;
    check_plans(&url, "never analyzed").await;
    drop(store);
}
