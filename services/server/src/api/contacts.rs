//! ContactService: unified contacts, identity linking, lookup, merge, erasure
//! and export.

use omniroute_channel::{Address, lookup_keys};
use omniroute_domain::{ContactQuery, NewContact};
use omniroute_proto::v1 as pb;
use pb::contact_service_server::ContactService;
use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert::{
    self, CONTACT_FIELDS, contact_id, contact_name, contact_to_pb, parse_contact_name,
};
use crate::app::{AppError, Violations};

/// The ContactService implementation.
#[derive(Debug, Clone)]
pub struct ContactApi {
    ctx: ApiContext,
}

impl ContactApi {
    /// The service over a context.
    pub fn new(ctx: ApiContext) -> ContactApi {
        ContactApi { ctx }
    }

    /// Validates the `contact` and `identity` fields of a link or unlink.
    fn contact_and_identity(
        &self,
        contact: &str,
        identity: Option<&pb::Identity>,
    ) -> Result<(uuid::Uuid, Address), AppError> {
        let mut v = Violations::default();
        let id = v.check("contact", parse_contact_name(contact));
        let address = convert::address(&mut v, "identity", identity, self.ctx.region);
        v.finish()?;
        id.zip(address)
            .ok_or_else(|| AppError::invalid("identity", "required"))
    }
}

#[tonic::async_trait]
impl ContactService for ContactApi {
    #[tracing::instrument(skip_all)]
    async fn create_contact(
        &self,
        request: Request<pb::CreateContactRequest>,
    ) -> Result<Response<pb::CreateContactResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let Some(contact) = request.into_inner().contact else {
            return Err(AppError::invalid("contact", "a contact is required").into());
        };
        let mut v = Violations::default();
        let patch = convert::profile_patch(&mut v, "contact", &contact, &CONTACT_FIELDS);
        let identities: Vec<Address> = contact
            .identities
            .iter()
            .enumerate()
            .filter_map(|(i, identity)| {
                convert::address(
                    &mut v,
                    &format!("contact.identities[{i}]"),
                    Some(identity),
                    self.ctx.region,
                )
            })
            .collect();
        v.finish()?;
        let mut profile = omniroute_domain::Profile::default();
        patch.apply(&mut profile);
        let created = self
            .ctx
            .store
            .create_contact(
                &tenant,
                NewContact {
                    profile,
                    identities,
                },
            )
            .await
            .map_err(AppError::from)?;
        tracing::info!(contact = %created.id, "contact created");
        Ok(Response::new(pb::CreateContactResponse {
            contact: Some(contact_to_pb(&created)),
        }))
    }

    async fn get_contact(
        &self,
        request: Request<pb::GetContactRequest>,
    ) -> Result<Response<pb::GetContactResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = contact_id("name", &request.get_ref().name)?;
        let contact = self
            .ctx
            .store
            .get_contact(&tenant, id)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::GetContactResponse {
            contact: Some(contact_to_pb(&contact)),
        }))
    }

    async fn list_contacts(
        &self,
        request: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let limit = self.ctx.page_size(req.page_size)?;
        let label = req.label.trim().to_owned();
        let show_erased = if req.show_erased { "erased" } else { "" };
        let query_key = [&*tenant, "ListContacts", label.as_str(), show_erased];
        let after = self.ctx.tokens.check(&query_key, &req.page_token)?;
        let mut contacts = self
            .ctx
            .store
            .list_contacts(
                &tenant,
                ContactQuery {
                    after,
                    limit: limit + 1,
                    label: Some(label.clone()).filter(|l| !l.is_empty()),
                    show_erased: req.show_erased,
                },
            )
            .await
            .map_err(AppError::from)?;
        let next_page_token = if contacts.len() > limit {
            contacts.truncate(limit);
            contacts
                .last()
                .map(|c| self.ctx.tokens.issue(&query_key, c.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListContactsResponse {
            contacts: contacts.iter().map(contact_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_contact(
        &self,
        request: Request<pb::UpdateContactRequest>,
    ) -> Result<Response<pb::UpdateContactResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let Some(contact) = req.contact else {
            return Err(AppError::invalid("contact", "a contact is required").into());
        };
        let mut v = Violations::default();
        let id = v.check("contact.name", parse_contact_name(&contact.name));
        let fields = convert::update_mask(&mut v, req.update_mask.as_ref(), &CONTACT_FIELDS);
        let patch = convert::profile_patch(&mut v, "contact", &contact, &fields);
        v.finish()?;
        let id = id.ok_or_else(|| AppError::invalid("contact.name", "required"))?;
        let updated = self
            .ctx
            .store
            .update_contact(&tenant, id, patch)
            .await
            .map_err(AppError::from)?;
        tracing::info!(contact = %updated.id, "contact updated");
        Ok(Response::new(pb::UpdateContactResponse {
            contact: Some(contact_to_pb(&updated)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_contact(
        &self,
        request: Request<pb::DeleteContactRequest>,
    ) -> Result<Response<pb::DeleteContactResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = contact_id("name", &request.get_ref().name)?;
        let erased = self.ctx.app.erase_contact(&tenant, id).await?;
        Ok(Response::new(pb::DeleteContactResponse {
            contact: Some(contact_to_pb(&erased)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn link_identity(
        &self,
        request: Request<pb::LinkIdentityRequest>,
    ) -> Result<Response<pb::LinkIdentityResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let (id, address) = self.contact_and_identity(&req.contact, req.identity.as_ref())?;
        tracing::info!(contact = %id, identity = %address, "linking identity");
        let contact = self
            .ctx
            .store
            .link_identity(&tenant, id, address)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::LinkIdentityResponse {
            contact: Some(contact_to_pb(&contact)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn unlink_identity(
        &self,
        request: Request<pb::UnlinkIdentityRequest>,
    ) -> Result<Response<pb::UnlinkIdentityResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let (id, address) = self.contact_and_identity(&req.contact, req.identity.as_ref())?;
        tracing::info!(contact = %id, identity = %address, "unlinking identity");
        let contact = self
            .ctx
            .store
            .unlink_identity(&tenant, id, address)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::UnlinkIdentityResponse {
            contact: Some(contact_to_pb(&contact)),
        }))
    }

    async fn lookup_contact(
        &self,
        request: Request<pb::LookupContactRequest>,
    ) -> Result<Response<pb::LookupContactResponse>, Status> {
        use pb::lookup_contact_request::Key;
        let tenant = self.ctx.tenant(&request);
        let store = &self.ctx.store;
        let found = match request.into_inner().key {
            None => {
                return Err(AppError::invalid(
                    "key",
                    "one of identity, address or external_ref is required",
                )
                .into());
            }
            Some(Key::Identity(identity)) => {
                let mut v = Violations::default();
                let address =
                    convert::address(&mut v, "identity", Some(&identity), self.ctx.region);
                v.finish()?;
                let Some(address) = address else {
                    return Err(AppError::invalid("identity", "required").into());
                };
                store
                    .find_by_keys(&tenant, &[(address.channel(), address.key().to_owned())])
                    .await
            }
            Some(Key::Address(text)) => {
                let keys = lookup_keys(&text, self.ctx.region)
                    .map_err(|e| AppError::invalid("address", e.to_string()))?;
                store.find_by_keys(&tenant, &keys).await
            }
            Some(Key::ExternalRef(external_ref)) => {
                let external_ref = external_ref.trim();
                if external_ref.is_empty() {
                    return Err(AppError::invalid("external_ref", "must not be empty").into());
                }
                store.find_by_external_ref(&tenant, external_ref).await
            }
        }
        .map_err(AppError::from)?;
        let contact = found
            .ok_or_else(|| AppError::NotFound("no contact has this address or reference".into()))?;
        Ok(Response::new(pb::LookupContactResponse {
            contact: Some(contact_to_pb(&contact)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn merge_contacts(
        &self,
        request: Request<pb::MergeContactsRequest>,
    ) -> Result<Response<pb::MergeContactsResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::default();
        let survivor = v.check("contact", parse_contact_name(&req.contact));
        if req.source_contacts.is_empty() {
            v.add(
                "source_contacts",
                "at least one contact to merge is required",
            );
        }
        if req.source_contacts.len() > 100 {
            v.add("source_contacts", "at most 100 contacts per merge");
        }
        let sources: Vec<_> = req
            .source_contacts
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let field = format!("source_contacts[{i}]");
                v.check(&field, parse_contact_name(name))
            })
            .collect();
        v.finish()?;
        let Some(survivor) = survivor else {
            return Err(AppError::invalid("contact", "required").into());
        };
        let merged = self
            .ctx
            .app
            .merge_contacts(&tenant, survivor, &sources)
            .await?;
        Ok(Response::new(pb::MergeContactsResponse {
            contact: Some(contact_to_pb(&merged)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn export_contact(
        &self,
        request: Request<pb::ExportContactRequest>,
    ) -> Result<Response<pb::ExportContactResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = contact_id("name", &request.get_ref().name)?;
        let export = self
            .ctx
            .store
            .export_contact(&tenant, id)
            .await
            .map_err(AppError::from)?;
        tracing::info!(contact = %contact_name(export.contact.id), "contact exported");
        Ok(Response::new(pb::ExportContactResponse {
            export: Some(pb::ContactExport {
                contact: Some(contact_to_pb(&export.contact)),
                preferences: Some(convert::preferences_to_pb(&export.preferences)),
                consent_records: export
                    .consent_records
                    .iter()
                    .map(convert::consent_to_pb)
                    .collect(),
                export_time: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            }),
        }))
    }
}
