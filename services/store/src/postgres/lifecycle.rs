//! Merge and erasure on PostgreSQL: the statements that read what the plans
//! (`crate::plans::merge`, `crate::plans::erasure`) need and execute what
//! they decide, each write one statement over all the rows it touches.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::contacts::{load_contact, load_contacts, lock, write_profile};
use super::db;
use super::json::RawJson;
use super::messages::{MESSAGE_COLUMNS, append_events, message_from_row};
use crate::messages::Message;
use crate::model::{ChannelPreferences, Contact, now};
use crate::plans::{erasure, merge};
use crate::{Result, StoreError};

/// The stored channel preferences of contacts (resolved ids), in the order
/// given, by one statement.
async fn channel_preferences(
    c: &impl GenericClient,
    tenant: &str,
    ids: &[Uuid],
) -> Result<Vec<ChannelPreferences>> {
    let stmt = c
        .prepare_cached("SELECT id, preferences FROM contacts WHERE tenant = $1 AND id = ANY($2)")
        .await
        .map_err(db)?;
    let rows = c.query(&stmt, &[&tenant, &ids]).await.map_err(db)?;
    let mut by_id: HashMap<Uuid, ChannelPreferences> = rows
        .iter()
        .map(|r| {
            let value: serde_json::Value = r.get(1);
            (r.get(0), serde_json::from_value(value).unwrap_or_default())
        })
        .collect();
    Ok(ids
        .iter()
        .map(|id| by_id.remove(id).unwrap_or_default())
        .collect())
}

/// Merges `sources` into `survivor` inside the caller's transaction (see
/// [`crate::plans::merge`]); answers the survivor as it is after.
pub(super) async fn merge(
    tx: &impl GenericClient,
    tenant: &str,
    survivor: Uuid,
    sources: &[Uuid],
) -> Result<Contact> {
    let mut resolved = HashMap::new();
    for id in merge::lock_order(survivor, sources) {
        resolved.insert(id, lock(tx, tenant, id).await?);
    }
    let retirement = merge::retire(survivor, sources, &resolved)?;
    let ids = [&[retirement.survivor][..], &retirement.retired].concat();
    let (mut contacts, mut preferences) = tokio::try_join!(
        load_contacts(tx, tenant, &ids),
        channel_preferences(tx, tenant, &ids),
    )?;
    let survivor = contacts.remove(0);
    let own = preferences.remove(0);
    let retired: Vec<_> = contacts.into_iter().zip(preferences).collect();
    let plan = merge::plan(&survivor, own, &retired, now());
    write_merge(tx, tenant, &plan).await?;
    load_contact(tx, tenant, plan.survivor).await
}

async fn write_merge(c: &impl GenericClient, tenant: &str, plan: &merge::MergePlan) -> Result<()> {
    let (survivor, retired, now) = (plan.survivor, &plan.retired, plan.now);
    if !retired.is_empty() {
        for sql in [
            "UPDATE identities SET contact_id = $2 WHERE tenant = $1 AND contact_id = ANY($3)",
            "UPDATE consent_records SET contact_id = $2 WHERE tenant = $1 AND contact_id = ANY($3)",
            "UPDATE messages SET contact_id = $2 WHERE tenant = $1 AND contact_id = ANY($3)",
            "UPDATE contacts SET merged_into = $2 WHERE tenant = $1 AND merged_into = ANY($3)",
            // Watches follow the contact (a reply to the survivor cancels
            // their fallbacks).
            "UPDATE dispatch_jobs SET contact_id = $2
             WHERE tenant = $1 AND contact_id = ANY($3) AND kind = 1",
        ] {
            c.execute(sql, &[&tenant, &survivor, retired])
                .await
                .map_err(db)?;
        }
        let channels: Vec<&str> = plan.windows.iter().map(|w| w.channel.as_str()).collect();
        let lines: Vec<&str> = plan.windows.iter().map(|w| w.line.as_str()).collect();
        let until: Vec<std::time::SystemTime> = plan.windows.iter().map(|w| w.open_until).collect();
        c.execute(
            "WITH gone AS (
                 DELETE FROM service_windows WHERE tenant = $1 AND contact_id = ANY($3)
                 RETURNING channel, line, open_until
             )
             INSERT INTO service_windows (tenant, contact_id, channel, line, open_until)
             SELECT $1, $2, channel, line, max(open_until)
             FROM (SELECT channel, line, open_until FROM gone
                   UNION ALL
                   SELECT * FROM unnest($4::text[], $5::text[], $6::timestamptz[])
                  ) AS w(channel, line, open_until)
             GROUP BY channel, line
             ON CONFLICT (tenant, contact_id, channel, line) DO UPDATE
                 SET open_until = GREATEST(service_windows.open_until, EXCLUDED.open_until),
                     notified_until = NULL",
            &[&tenant, &survivor, retired, &channels, &lines, &until],
        )
        .await
        .map_err(db)?;
        // Retired rows keep no personal data: it all moved to the survivor.
        c.execute(
            "UPDATE contacts SET state = $5, merged_into = $2, display_name = '', locale = '',
                    time_zone = '', external_ref = NULL, labels = '{}', attributes = '{}',
                    preferences = '{}', update_time = $4
             WHERE tenant = $1 AND id = ANY($3)",
            &[
                &tenant,
                &survivor,
                retired,
                &now,
                &plan.retired_state.code(),
            ],
        )
        .await
        .map_err(db)?;
    }
    write_profile(c, tenant, survivor, &plan.profile, now).await?;
    c.execute(
        "UPDATE contacts SET preferences = $3 WHERE tenant = $1 AND id = $2",
        &[&tenant, &survivor, &RawJson::of(&plan.preferences)?],
    )
    .await
    .map_err(db)?;
    append_events(c, tenant, &plan.events, now).await
}

/// Erases a contact inside the caller's transaction (see
/// [`crate::plans::erasure`]); answers the tombstone.
pub(super) async fn erase(tx: &impl GenericClient, tenant: &str, id: Uuid) -> Result<Contact> {
    let (id, state) = lock(tx, tenant, id).await?;
    let pending = tx
        .query(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE tenant = $1 AND contact_id = $2 AND id IN (SELECT message_id FROM dispatch_jobs)
                 FOR UPDATE"
            ),
            &[&tenant, &id],
        )
        .await
        .map_err(db)?
        .iter()
        .map(message_from_row)
        .collect::<Result<Vec<Message>>>()?;
    if let Some(plan) = erasure::plan(id, state, pending, now()) {
        write_erasure(tx, tenant, &plan).await?;
    }
    load_contact(tx, tenant, id).await
}

async fn write_erasure(
    c: &impl GenericClient,
    tenant: &str,
    plan: &erasure::ErasurePlan,
) -> Result<()> {
    let (id, now) = (plan.contact_id, plan.now);
    let mut removed = [0u64; 2];
    for (n, sql) in [
        "DELETE FROM identities WHERE tenant = $1 AND contact_id = $2",
        "DELETE FROM consent_records WHERE tenant = $1 AND contact_id = $2",
        "DELETE FROM service_windows WHERE tenant = $1 AND contact_id = $2",
    ]
    .into_iter()
    .enumerate()
    {
        let count = c.execute(sql, &[&tenant, &id]).await.map_err(db)?;
        if let Some(slot) = removed.get_mut(n) {
            *slot = count;
        }
    }
    if !plan.jobs.is_empty() {
        c.execute(
            "DELETE FROM dispatch_jobs WHERE message_id = ANY($1)",
            &[&plan.jobs],
        )
        .await
        .map_err(db)?;
    }
    if !plan.canceled.is_empty() {
        let ids: Vec<Uuid> = plan.canceled.iter().map(|m| m.id).collect();
        let statuses: Vec<i16> = plan.canceled.iter().map(|m| m.status.code()).collect();
        let histories = plan
            .canceled
            .iter()
            .map(|m| RawJson::of(&m.history))
            .collect::<Result<Vec<_>>>()?;
        c.execute(
            "UPDATE messages m SET status = h.status, history = h.history, update_time = $2
             FROM unnest($1::uuid[], $3::smallint[], $4::jsonb[]) AS h(id, status, history)
             WHERE m.id = h.id",
            &[&ids, &now, &statuses, &histories],
        )
        .await
        .map_err(db)?;
    }
    // Logged like any cancellation; the log's redaction below empties them.
    append_events(c, tenant, &plan.cancel_events, now).await?;
    c.execute(
        "DELETE FROM inbound_media WHERE message_id IN
             (SELECT id FROM messages WHERE tenant = $1 AND contact_id = $2)",
        &[&tenant, &id],
    )
    .await
    .map_err(db)?;
    c.execute(
        "DELETE FROM call_progress WHERE tenant = $1 AND message_id IN
             (SELECT id FROM messages WHERE tenant = $1 AND contact_id = $2)",
        &[&tenant, &id],
    )
    .await
    .map_err(db)?;
    let r = &plan.redaction;
    let redacted = c
        .execute(
            "UPDATE messages SET content = $3, overrides = $4, metadata = $5, correlation_ref = $6,
                    route = $7, attempts = $8, update_time = $9
             WHERE tenant = $1 AND contact_id = $2",
            &[
                &tenant,
                &id,
                &RawJson::of(&r.content)?,
                &RawJson::of(&r.overrides)?,
                &RawJson::of(&r.metadata)?,
                &r.correlation_ref,
                &r.route.as_ref().map(RawJson::of).transpose()?,
                &RawJson::of(&r.attempts)?,
                &now,
            ],
        )
        .await
        .map_err(db)?;
    // Events name the contact they were written for, which may be a contact
    // merged into this one since.
    c.execute(
        "UPDATE events SET payload = $3, metadata = '{}', correlation_ref = ''
         WHERE tenant = $1 AND (contact_id = $2 OR contact_id IN
               (SELECT id FROM contacts WHERE tenant = $1 AND merged_into = $2))",
        &[&tenant, &id, &RawJson::of(&plan.event_payload)?],
    )
    .await
    .map_err(db)?;
    let summary = plan.summary(removed[0], removed[1], redacted);
    let summary = serde_json::to_value(summary).map_err(StoreError::backend)?;
    c.execute(
        "UPDATE contacts SET state = $5, display_name = '', locale = '', time_zone = '',
                external_ref = NULL, labels = '{}', attributes = '{}', preferences = '{}',
                preferences_update_time = NULL, update_time = $3, erase_time = $3, erasure = $4
         WHERE tenant = $1 AND id = $2",
        &[&tenant, &id, &now, &summary, &plan.state.code()],
    )
    .await
    .map_err(db)?;
    append_events(c, tenant, std::slice::from_ref(&plan.erased_event), now).await
}
