//! The event log's reads on PostgreSQL touch only what they return, on
//! large tables, with generic plans forced, and whether the tables were
//! never analyzed, analyzed while empty (statistics years old), or
//! analyzed now: each statement's plan is executed (EXPLAIN ANALYZE) and
//! must read its page by index, with no sort or sequential scan of a big
//! table, and no node handling more rows than a few pages.
//!
//! (The machine, like many customers', runs without autovacuum, and a
//! prepared statement switches to a generic plan after five runs.)

use omniroute_store::PgStore;
use omniroute_store::testing::{fresh_pg_url, pg_config, pg_hot_statements};
use serde_json::Value;
use tokio_postgres::NoTls;

/// Rows in each big table.
const ROWS: i64 = 200_000;
/// The contact that owns a tenth of the events.
const CONTACT: &str = "00000000-0000-7000-8000-000000000000";
/// The page the statements ask for.
const PAGE: u64 = 500;

async fn connect(url: &str, options: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().expect("url");
    config.options(options);
    let (client, connection) = config.connect(NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

/// Fills messages and events with `ROWS` rows each, as a busy tenant's.
async fn fill(db: &tokio_postgres::Client) {
    db.batch_execute(&format!(
        "INSERT INTO messages (tenant, id, contact_id, direction, category, channel, priority,
                               status, content, create_time, update_time)
         SELECT 'default', gen_random_uuid(),
                CASE WHEN i % 10 = 0 THEN '{CONTACT}'::uuid ELSE gen_random_uuid() END,
                1, 'transactional', 'email', 2, 5, '{{\"text\":{{\"body\":\"hi\"}}}}', now(), now()
         FROM generate_series(1, {ROWS}) AS i;
         INSERT INTO events (tenant, type, time, contact_id, message_id, payload)
         SELECT tenant, 2, now(), contact_id, id, '{{}}' FROM messages;"
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
async fn event_reads_touch_only_their_page_whatever_the_statistics() {
    let url = fresh_pg_url().await;
    let store = PgStore::connect(&pg_config(url.clone()))
        .await
        .expect("store");
    let db = connect(&url, "").await;
    // Statistics taken while the tables were empty, then the tables grew.
    db.batch_execute("ANALYZE messages; ANALYZE events;")
        .await
        .unwrap();
    fill(&db).await;
    check_plans(&url, "statistics from when the tables were empty").await;
    db.batch_execute("ANALYZE messages; ANALYZE events;")
        .await
        .unwrap();
    check_plans(&url, "fresh statistics").await;
    drop(store);
}

#[tokio::test]
async fn event_reads_touch_only_their_page_on_never_analyzed_tables() {
    let url = fresh_pg_url().await;
    let store = PgStore::connect(&pg_config(url.clone()))
        .await
        .expect("store");
    let db = connect(&url, "").await;
    fill(&db).await;
    check_plans(&url, "never analyzed").await;
    drop(store);
}
