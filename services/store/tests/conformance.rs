//! The store conformance suite: one set of checks that every [`Store`]
//! implementation must pass, run against both backends.
//!
//! Each check is a backend-neutral `async fn check(store: Arc<dyn Store>)`;
//! [`conformance!`] instantiates every check as a test in `sqlite::` (a fresh
//! SQLite file) and in `postgres::` (a fresh PostgreSQL database, see
//! `omniroute_store::testing`), so the two backends run the identical suite.
//! A few checks that concern one backend only (durability of the file,
//! migrations) are listed separately.

#[path = "conformance/auth.rs"]
mod auth;
#[path = "conformance/batches.rs"]
mod batches;
#[path = "conformance/callbacks.rs"]
mod callbacks;
#[path = "conformance/contacts.rs"]
mod contacts;
#[path = "conformance/deliveries.rs"]
mod deliveries;
#[path = "conformance/endpoints.rs"]
mod endpoints;
#[path = "conformance/events.rs"]
mod events;
#[path = "conformance/identities.rs"]
mod identities;
#[path = "conformance/inbound.rs"]
mod inbound;
#[path = "conformance/ledger.rs"]
mod ledger;
#[path = "conformance/lifecycle.rs"]
mod lifecycle;
#[path = "conformance/messaging.rs"]
mod messaging;
#[path = "conformance/routing.rs"]
mod routing;
#[path = "conformance/support.rs"]
mod support;
#[path = "conformance/versions.rs"]
mod versions;

use auth::*;
use batches::*;
use callbacks::*;
use contacts::*;
use deliveries::*;
use endpoints::*;
use events::*;
use identities::*;
use inbound::*;
use ledger::*;
use lifecycle::*;
use messaging::*;
use routing::*;
use versions::*;

/// Instantiates every check as a `#[tokio::test]` for both backends, plus the
/// backend-specific checks (which take no store: they build their own).
macro_rules! conformance {
    (
        checks: [$($check:ident),* $(,)?],
        sqlite_only: [$($sqlite_only:ident),* $(,)?],
        postgres_only: [$($postgres_only:ident),* $(,)?] $(,)?
    ) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let (store, _dir) = omniroute_store::testing::fresh_sqlite_store().await;
                    super::$check(std::sync::Arc::new(store)).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $sqlite_only() {
                    super::$sqlite_only().await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let store = omniroute_store::testing::fresh_pg_store().await;
                    super::$check(std::sync::Arc::new(store)).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $postgres_only() {
                    super::$postgres_only().await;
                }
            )*
        }
    };
}

conformance! {
    checks: [
        // contacts
        create_and_get_round_trip_every_field,
        empty_profile_round_trips,
        unknown_ids_are_not_found,
        tenants_are_isolated,
        list_in_creation_order_and_page_each_contact_once,
        list_filters_by_label,
        list_hides_erased_unless_asked_and_never_lists_merged,
        update_changes_only_the_given_fields,
        external_ref_is_unique_per_tenant,
        // identities
        link_is_idempotent_for_the_same_identity,
        linking_another_contacts_identity_changes_nothing,
        create_with_a_taken_identity_creates_nothing,
        concurrent_creates_with_one_identity_have_one_owner,
        concurrent_creates_with_one_external_ref_have_one_owner,
        whatsapp_relink_refreshes_the_wa_id,
        find_by_keys_matches_every_spelling,
        unlink_removes_only_linked_identities,
        // merge and erasure
        merge_moves_identities_consents_and_profile,
        merge_keeps_the_survivors_preferences,
        merge_chains_resolve_to_the_last_survivor,
        merge_refuses_itself_and_erased_contacts,
        merge_moves_the_external_ref_when_the_survivor_has_none,
        erase_removes_personal_data,
        erase_is_idempotent_and_freezes_the_contact,
        merged_id_of_an_erased_survivor_resolves_to_the_tombstone,
        // preferences and the consent ledger
        preferences_default_empty_and_patch,
        consent_latest_record_time_decides,
        list_consents_oldest_first_in_pages,
        export_holds_contact_preferences_and_ledger,
        // messages and dispatch
        accept_and_get_round_trip_every_field,
        scheduled_messages_wait_for_their_send_time,
        idempotent_replay_returns_the_stored_message,
        idempotency_key_reused_for_another_request_conflicts,
        messages_are_found_by_their_idempotency_keys,
        list_messages_newest_first_in_pages_and_by_merged_id,
        claims_follow_priority_then_due_time,
        an_expired_lease_is_claimed_again_with_a_new_token,
        a_stale_claim_token_changes_nothing,
        sent_deletes_the_job_and_keeps_the_attempt,
        retry_at_requeues_the_same_channel,
        next_channel_moves_along_the_plan,
        fail_deletes_the_job_and_logs_a_failure,
        cancel_only_pending_messages_nobody_is_sending,
        retry_requeues_only_failed_messages,
        provider_statuses_only_move_forward,
        a_failure_after_delivery_keeps_the_delivery,
        provider_statuses_for_unknown_messages_match_nothing,
        changes_are_signaled_after_writes,
        stale_sent_lists_messages_that_heard_nothing,
        stale_sent_pages_in_the_order_of_sending,
        // routing's durable state
        a_missed_deadline_hands_over_to_the_next_step,
        a_delivery_ends_the_watch,
        a_failure_report_of_a_watched_step_hands_over,
        a_customer_reply_cancels_the_fallback,
        an_automatic_reply_cancels_nothing,
        the_last_step_is_not_watched,
        quiet_hours_log_a_deferral,
        a_step_claimed_in_quiet_hours_is_held,
        closing_windows_are_announced_once,
        // inbound
        a_new_sender_becomes_a_contact_with_an_open_window,
        redelivered_messages_are_recorded_once,
        a_known_sender_keeps_their_contact_and_name,
        a_call_from_a_whatsapp_number_is_the_same_contact_and_opens_its_window,
        the_window_only_grows_and_replies_link_to_our_message,
        merge_keeps_the_latest_window_and_erase_clears_it,
        media_a_message_carried_is_kept_per_tenant_until_erasure,
        // callbacks
        callbacks_are_listed_by_due_time_then_id_in_pages,
        callbacks_filter_by_contact_and_status,
        get_callback_finds_only_the_tenants_callbacks,
        call_progress_follows_the_current_call,
        erasure_deletes_the_contacts_call_progress,
        a_callback_between_calls_is_scheduled_and_cancelable,
        every_callback_state_change_is_an_event,
        // tenants and API keys
        the_default_tenant_exists_after_migration,
        daily_quotas_are_granted_up_to_their_limit,
        tenants_are_created_once_and_listed_by_id,
        concurrent_creates_of_one_tenant_have_one_winner,
        a_key_for_an_unknown_tenant_is_not_found,
        a_key_is_found_by_its_prefix_as_created,
        keys_are_listed_by_creation_time_then_id,
        revoking_a_key_keeps_the_first_time,
        a_key_is_revoked_only_in_its_own_tenant,
        an_expired_key_is_not_usable,
        prefixes_are_unique_across_tenants,
        debug_of_a_key_hides_its_hash,
        // outbound webhook endpoints
        endpoints_round_trip_every_field,
        endpoints_list_in_pages_within_their_tenant,
        endpoints_are_found_only_in_their_tenant,
        endpoint_patches_change_only_their_fields,
        a_deleted_endpoint_is_gone,
        endpoint_rotation_keeps_the_previous_secret_until_its_expiry,
        // deliveries to endpoints
        an_endpoint_starts_at_the_head_and_is_held_by_one,
        only_the_lease_holder_moves_the_cursor,
        a_round_that_disables_the_endpoint_says_so_in_the_log,
        cursors_and_attempts_go_with_their_endpoint,
        a_time_finds_the_position_before_its_first_event,
        a_sink_resumes_where_it_stood_and_is_held_by_one,
        // the event log
        events_are_read_in_log_order_with_cursor_paging,
        events_filter_by_type_contact_and_tenant,
        event_head_reads_from_now,
        cursors_are_checked_against_the_tenants_log,
        prune_deletes_only_older_events,
        contacts_log_creation_merge_and_erasure,
        erase_redacts_messages_and_events,
        erase_redacts_events_written_before_a_merge,
        // contact versions
        every_change_to_a_contact_moves_its_version,
        a_send_routed_on_an_old_version_writes_nothing,
        sends_to_merged_or_erased_contacts_are_refused,
        routing_contacts_are_read_by_every_kind_of_lookup,
        // many at once
        accepting_many_answers_each_on_its_own,
        concurrent_sends_are_each_committed_and_answered,
        outcomes_are_recorded_together_and_stale_ones_skipped,
        status_reports_are_applied_together_in_turn,
        dispatchers_are_woken_by_new_jobs_only,
    ],
    sqlite_only: [
        store_file_survives_reopen,
        erasure_leaves_no_personal_bytes_in_the_store_files,
    ],
    postgres_only: [migrations_are_idempotent, erasure_deletes_call_progress_rows],
}
