//! PreferenceService: channel preferences and the consent ledger.

use omniroute_proto::v1 as pb;
use pb::preference_service_server::PreferenceService;
use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert::{self, PREFERENCE_FIELDS, contact_id, parse_contact_name};
use crate::app::{AppError, Violations};

/// The PreferenceService implementation.
#[derive(Debug, Clone)]
pub struct PreferenceApi {
    ctx: ApiContext,
}

impl PreferenceApi {
    /// The service over a context.
    pub fn new(ctx: ApiContext) -> PreferenceApi {
        PreferenceApi { ctx }
    }
}

#[tonic::async_trait]
impl PreferenceService for PreferenceApi {
    async fn get_preferences(
        &self,
        request: Request<pb::GetPreferencesRequest>,
    ) -> Result<Response<pb::GetPreferencesResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = convert::preferences_contact_id("name", &request.get_ref().name)?;
        let prefs = self
            .ctx
            .store
            .get_preferences(&tenant, id)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::GetPreferencesResponse {
            preferences: Some(convert::preferences_to_pb(&prefs)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_preferences(
        &self,
        request: Request<pb::UpdatePreferencesRequest>,
    ) -> Result<Response<pb::UpdatePreferencesResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let Some(prefs) = req.preferences else {
            return Err(AppError::invalid("preferences", "preferences are required").into());
        };
        let mut v = Violations::default();
        let id = v.check(
            "preferences.name",
            prefs
                .name
                .strip_suffix("/preferences")
                .ok_or("expected a name like \"contacts/{contact}/preferences\"")
                .and_then(parse_contact_name),
        );
        let fields = convert::update_mask(&mut v, req.update_mask.as_ref(), &PREFERENCE_FIELDS);
        let patch = convert::preferences_patch(&mut v, &prefs, &fields);
        v.finish()?;
        let id = id.ok_or_else(|| AppError::invalid("preferences.name", "required"))?;
        let updated = self
            .ctx
            .store
            .update_preferences(&tenant, id, patch)
            .await
            .map_err(AppError::from)?;
        tracing::info!(contact = %updated.contact_id, "preferences updated");
        Ok(Response::new(pb::UpdatePreferencesResponse {
            preferences: Some(convert::preferences_to_pb(&updated)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn create_consent_record(
        &self,
        request: Request<pb::CreateConsentRecordRequest>,
    ) -> Result<Response<pb::CreateConsentRecordResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::default();
        let id = v.check("parent", parse_contact_name(&req.parent));
        let consent = convert::new_consent(&mut v, req.consent_record.as_ref());
        v.finish()?;
        let (Some(id), Some(consent)) = (id, consent) else {
            return Err(AppError::invalid("consent_record", "required").into());
        };
        let record = self
            .ctx
            .store
            .record_consent(&tenant, id, consent)
            .await
            .map_err(AppError::from)?;
        tracing::info!(
            contact = %record.contact_id,
            channel = %record.channel,
            category = %record.category,
            action = ?record.action,
            "consent recorded"
        );
        Ok(Response::new(pb::CreateConsentRecordResponse {
            consent_record: Some(convert::consent_to_pb(&record)),
        }))
    }

    async fn list_consent_records(
        &self,
        request: Request<pb::ListConsentRecordsRequest>,
    ) -> Result<Response<pb::ListConsentRecordsResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let id = contact_id("parent", &req.parent)?;
        let limit = self.ctx.page_size(req.page_size)?;
        let query_key = [&*tenant, "ListConsentRecords", req.parent.as_str()];
        let after = self.ctx.tokens.check(&query_key, &req.page_token)?;
        let mut records = self
            .ctx
            .store
            .list_consents(&tenant, id, after, limit + 1)
            .await
            .map_err(AppError::from)?;
        let next_page_token = if records.len() > limit {
            records.truncate(limit);
            records
                .last()
                .map(|r| self.ctx.tokens.issue(&query_key, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListConsentRecordsResponse {
            consent_records: records.iter().map(convert::consent_to_pb).collect(),
            next_page_token,
        }))
    }
}
