//! Merge and erasure on SQLite: the statements that read what the plans
//! (`crate::plans::merge`, `crate::plans::erasure`) need and execute what
//! they decide, inside the writer's transaction.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use uuid::Uuid;

use super::contacts::{load_contact, read_channel_preferences, resolve, write_profile};
use super::messages::{message_columns, message_row};
use super::{db, events, json};
use crate::Result;
use crate::model::{Contact, now, to_micros};
use crate::plans::{erasure, merge};

/// Merges `sources` into `survivor` (see [`crate::plans::merge`]); answers
/// the survivor as it is after.
pub(super) fn merge(
    tx: &Connection,
    tenant: &str,
    survivor: Uuid,
    sources: &[Uuid],
) -> Result<Contact> {
    let mut resolved = HashMap::new();
    for id in merge::lock_order(survivor, sources) {
        resolved.insert(id, resolve(tx, tenant, id)?);
    }
    let retirement = merge::retire(survivor, sources, &resolved)?;
    let survivor = load_contact(tx, tenant, retirement.survivor)?;
    let own = read_channel_preferences(tx, tenant, survivor.id)?;
    let retired = retirement
        .retired
        .iter()
        .map(|&id| {
            Ok((
                load_contact(tx, tenant, id)?,
                read_channel_preferences(tx, tenant, id)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = merge::plan(&survivor, own, &retired, now());
    write_merge(tx, tenant, &plan)?;
    load_contact(tx, tenant, plan.survivor)
}

fn write_merge(tx: &Connection, tenant: &str, plan: &merge::MergePlan) -> Result<()> {
    let survivor = plan.survivor.to_string();
    let now = to_micros(plan.now);
    for retired in &plan.retired {
        let retired = retired.to_string();
        for sql in [
            "UPDATE identities SET contact_id = ?3 WHERE tenant = ?1 AND contact_id = ?2",
            "UPDATE consent_records SET contact_id = ?3 WHERE tenant = ?1 AND contact_id = ?2",
            "UPDATE messages SET contact_id = ?3 WHERE tenant = ?1 AND contact_id = ?2",
            "UPDATE contacts SET merged_into = ?3 WHERE tenant = ?1 AND merged_into = ?2",
            // Watches follow the contact (a reply to the survivor cancels
            // their fallbacks).
            "UPDATE dispatch_jobs SET contact_id = ?3
             WHERE tenant = ?1 AND contact_id = ?2 AND kind = 1",
        ] {
            tx.prepare_cached(sql)
                .map_err(db)?
                .execute(params![tenant, retired, survivor])
                .map_err(db)?;
        }
        tx.prepare_cached("DELETE FROM service_windows WHERE tenant = ?1 AND contact_id = ?2")
            .map_err(db)?
            .execute(params![tenant, retired])
            .map_err(db)?;
        // The retired row keeps no personal data: it all moved.
        tx.prepare_cached(
            "UPDATE contacts SET state = ?3, merged_into = ?4, display_name = '', locale = '',
                    time_zone = '', external_ref = NULL, labels = '[]', attributes = '{}',
                    preferences = '{}', update_time = ?5
             WHERE tenant = ?1 AND id = ?2",
        )
        .map_err(db)?
        .execute(params![
            tenant,
            retired,
            plan.retired_state.code(),
            survivor,
            now
        ])
        .map_err(db)?;
    }
    for window in &plan.windows {
        tx.prepare_cached(
            "INSERT INTO service_windows (tenant, contact_id, channel, line, open_until)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant, contact_id, channel, line) DO UPDATE
                 SET open_until = max(open_until, excluded.open_until), notified_until = NULL",
        )
        .map_err(db)?
        .execute(params![
            tenant,
            survivor,
            window.channel.as_str(),
            window.line,
            to_micros(window.open_until)
        ])
        .map_err(db)?;
    }
    write_profile(tx, tenant, plan.survivor, &plan.profile, now)?;
    tx.prepare_cached("UPDATE contacts SET preferences = ?3 WHERE tenant = ?1 AND id = ?2")
        .map_err(db)?
        .execute(params![tenant, survivor, json(&plan.preferences)])
        .map_err(db)?;
    for event in &plan.events {
        events::append(tx, tenant, event, plan.now)?;
    }
    Ok(())
}

/// Erases a contact (see [`crate::plans::erasure`]); answers the tombstone
/// and whether anything was written (erasing twice writes nothing).
pub(super) fn erase(tx: &Connection, tenant: &str, id: Uuid) -> Result<(Contact, bool)> {
    let (id, state) = resolve(tx, tenant, id)?;
    let pending = tx
        .prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE tenant = ?1 AND contact_id = ?2
               AND id IN (SELECT message_id FROM dispatch_jobs)"
        ))
        .map_err(db)?
        .query_map(params![tenant, id.to_string()], message_row)
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    let plan = erasure::plan(id, state, pending, now());
    let erased = plan.is_some();
    if let Some(plan) = plan {
        write_erasure(tx, tenant, &plan)?;
    }
    Ok((load_contact(tx, tenant, id)?, erased))
}

fn write_erasure(tx: &Connection, tenant: &str, plan: &erasure::ErasurePlan) -> Result<()> {
    let id = plan.contact_id.to_string();
    let now = to_micros(plan.now);
    let mut removed = [0u64; 2];
    for (n, sql) in [
        "DELETE FROM identities WHERE tenant = ?1 AND contact_id = ?2",
        "DELETE FROM consent_records WHERE tenant = ?1 AND contact_id = ?2",
        "DELETE FROM service_windows WHERE tenant = ?1 AND contact_id = ?2",
        "DELETE FROM inbound_media WHERE message_id IN
             (SELECT id FROM messages WHERE tenant = ?1 AND contact_id = ?2)",
        "DELETE FROM call_progress WHERE tenant = ?1 AND message_id IN
             (SELECT id FROM messages WHERE tenant = ?1 AND contact_id = ?2)",
    ]
    .into_iter()
    .enumerate()
    {
        let count = tx.execute(sql, params![tenant, id]).map_err(db)?;
        if let Some(slot) = removed.get_mut(n) {
            *slot = count as u64;
        }
    }
    for job in &plan.jobs {
        tx.prepare_cached("DELETE FROM dispatch_jobs WHERE message_id = ?1")
            .map_err(db)?
            .execute(params![job.to_string()])
            .map_err(db)?;
    }
    for m in &plan.canceled {
        tx.prepare_cached(
            "UPDATE messages SET status = ?3, history = ?4, update_time = ?5
             WHERE tenant = ?1 AND id = ?2",
        )
        .map_err(db)?
        .execute(params![
            tenant,
            m.id.to_string(),
            m.status.code(),
            json(&m.history),
            now
        ])
        .map_err(db)?;
    }
    for event in &plan.cancel_events {
        events::append(tx, tenant, event, plan.now)?;
    }
    let r = &plan.redaction;
    let redacted = tx
        .prepare_cached(
            "UPDATE messages SET content = ?3, overrides = ?4, metadata = ?5, correlation_ref = ?6,
                    route = ?7, attempts = ?8, update_time = ?9
             WHERE tenant = ?1 AND contact_id = ?2",
        )
        .map_err(db)?
        .execute(params![
            tenant,
            id,
            json(&r.content),
            json(&r.overrides),
            json(&r.metadata),
            r.correlation_ref,
            r.route.as_ref().map(json),
            json(&r.attempts),
            now
        ])
        .map_err(db)?;
    // The log keeps that these events happened (readers resume by position)
    // but no longer what they said about the contact.
    events::redact_contact(tx, tenant, plan.contact_id, &plan.event_payload)?;
    let summary = plan.summary(removed[0], removed[1], redacted as u64);
    tx.execute(
        "UPDATE contacts SET state = ?3, display_name = '', locale = '', time_zone = '',
                external_ref = NULL, labels = '[]', attributes = '{}', preferences = '{}',
                preferences_update_time = NULL, update_time = ?4, erase_time = ?4, erasure = ?5
         WHERE tenant = ?1 AND id = ?2",
        params![tenant, id, plan.state.code(), now, json(&summary)],
    )
    .map_err(db)?;
    events::append(tx, tenant, &plan.erased_event, plan.now)?;
    Ok(())
}
