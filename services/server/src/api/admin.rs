//! AdminService: tenants and API keys over gRPC, for keys with the `admin`
//! scope (the authentication layer lets no other call in). The same work as
//! `omniroute tenants …` and `omniroute keys …`.

use std::time::SystemTime;

use omniroute_domain::{ApiKey, Tenant, valid_tenant_id};
use omniroute_proto::v1 as pb;
use pb::admin_service_server::AdminService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::ApiContext;
use super::convert;
use crate::app::{AppError, Violations};
use crate::auth::{IssueError, SCOPES};

/// The AdminService implementation.
#[derive(Debug, Clone)]
pub struct AdminApi {
    ctx: ApiContext,
}

impl AdminApi {
    /// The service over the context's store.
    pub fn new(ctx: ApiContext) -> AdminApi {
        AdminApi { ctx }
    }
}

fn tenant_to_pb(t: &Tenant) -> pb::Tenant {
    pb::Tenant {
        id: t.id.clone(),
        display_name: t.display_name.clone(),
        create_time: convert::timestamp(t.create_time),
    }
}

fn key_to_pb(k: &ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        name: format!("apiKeys/{}", k.id),
        tenant: k.tenant.clone(),
        display_name: k.name.clone(),
        scopes: k.scopes.clone(),
        create_time: convert::timestamp(k.create_time),
        expire_time: k.expire_time.and_then(convert::timestamp),
        revoke_time: k.revoke_time.and_then(convert::timestamp),
        prefix: k.prefix.clone(),
    }
}

fn key_id(name: &str) -> Result<Uuid, AppError> {
    name.strip_prefix("apiKeys/")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| {
            AppError::invalid(
                "name",
                "expected a key name like \"apiKeys/0190f5c2-8a4e-7cc1-9c1e-2f8f4d1a2b3c\"",
            )
        })
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let tenant = request.into_inner().tenant.unwrap_or_default();
        if !valid_tenant_id(&tenant.id) {
            return Err(AppError::invalid(
                "tenant.id",
                "1 to 63 of a-z, 0-9 and -, starting with a letter or digit",
            )
            .into());
        }
        let created = self
            .ctx
            .store
            .create_tenant(&tenant.id, &tenant.display_name)
            .await
            .map_err(AppError::from)?;
        tracing::info!(tenant = %created.id, "tenant created");
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(tenant_to_pb(&created)),
        }))
    }

    async fn list_tenants(
        &self,
        _: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let tenants = self
            .ctx
            .store
            .list_tenants()
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: tenants.iter().map(tenant_to_pb).collect(),
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let key = request.into_inner().api_key.unwrap_or_default();
        let mut v = Violations::default();
        if !valid_tenant_id(&key.tenant) {
            v.add("api_key.tenant", "the tenant's id is required");
        }
        if key.scopes.is_empty() {
            v.add("api_key.scopes", format!("at least one of {SCOPES:?}"));
        }
        for (i, _) in crate::auth::unknown_scopes(&key.scopes) {
            v.add(
                format!("api_key.scopes[{i}]"),
                format!("unknown scope; one of {SCOPES:?}"),
            );
        }
        let expire_time = key
            .expire_time
            .map(|t| SystemTime::try_from(t).map_err(|_| "not a valid timestamp"));
        let expire_time = match expire_time {
            Some(Ok(t)) if t <= SystemTime::now() => {
                v.add("api_key.expire_time", "lies in the past");
                None
            }
            Some(t) => v.check("api_key.expire_time", t),
            None => None,
        };
        v.finish()?;
        let issued = crate::auth::issue(
            self.ctx.store.as_ref(),
            &key.tenant,
            &key.display_name,
            &key.scopes,
            expire_time,
        )
        .await
        .map_err(|e| match e {
            IssueError::Store(e) => AppError::from(e),
            other => AppError::invalid("api_key", other.to_string()),
        })?;
        tracing::info!(key = %issued.record.id, tenant = %issued.record.tenant, "API key created");
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(key_to_pb(&issued.record)),
            key: issued.token,
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let tenant = request.into_inner().tenant;
        let keys = self
            .ctx
            .store
            .list_api_keys(Some(tenant.as_str()).filter(|t| !t.is_empty()))
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.iter().map(key_to_pb).collect(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let id = key_id(&request.get_ref().name)?;
        let key = self
            .ctx
            .store
            .revoke_api_key(None, id)
            .await
            .map_err(AppError::from)?;
        tracing::info!(key = %key.id, tenant = %key.tenant, "API key revoked");
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(key_to_pb(&key)),
        }))
    }
}
