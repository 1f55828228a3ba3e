//! EventService: the durable event log as a server stream.
//!
//! A subscription starts after a cursor (resume), at the oldest retained
//! event, or at the newest one ("from now"), then follows the log: it reads a
//! page, sends it, and when it has caught up waits for the store's change
//! signal (in-process commits, PostgreSQL NOTIFY from other replicas) or the
//! poll interval, whichever comes first. Delivery is at-least-once: a client
//! that resumes from the last cursor it processed misses nothing.

use std::pin::Pin;
use std::time::Duration;

use omniroute_domain::{Cursor, EventFilter};
use omniroute_proto::v1 as pb;
use pb::event_service_server::EventService;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::parse_contact_name;
use super::{ApiContext, message_convert, message_validate};
use crate::app::{AppError, Violations};

/// Events read per query.
const PAGE: usize = 500;

/// The EventService implementation.
#[derive(Debug, Clone)]
pub struct EventApi {
    ctx: ApiContext,
    poll: Duration,
}

impl EventApi {
    /// The service over a context, looking for new events at least every `poll`.
    pub fn new(ctx: ApiContext, poll: Duration) -> EventApi {
        EventApi { ctx, poll }
    }
}

type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for EventApi {
    type SubscribeStream = EventStream;

    #[tracing::instrument(skip_all)]
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::default();
        let types = message_validate::event_types(&mut v, "types", &req.types);
        let contact_id = match req.contact.as_str() {
            "" => None,
            name => v.check("contact", parse_contact_name(name)),
        };
        let after = match req.after_cursor.as_str() {
            "" => None,
            text => v.check(
                "after_cursor",
                Cursor::decode(text).ok_or("not a cursor from an event of this service"),
            ),
        };
        v.finish()?;
        let store = std::sync::Arc::clone(&self.ctx.store);
        let mut cursor = match after {
            Some(cursor) => match store.check_cursor(&tenant, cursor).await {
                Ok(omniroute_domain::CursorCheck::Issued) => cursor,
                Ok(refused) => return Err(AppError::Cursor(refused).into()),
                Err(e) => return Err(AppError::from(e).into()),
            },
            None if req.from_beginning => store.event_origin(),
            None => store.event_head(&tenant).await.map_err(AppError::from)?,
        };
        let filter = EventFilter { types, contact_id };
        let poll = self.poll;
        let (tx, rx) = mpsc::channel(PAGE);
        tokio::spawn(async move {
            // Counted open while this task serves the stream.
            let _open = crate::metrics::Subscribed::open();
            let mut changes = store.changes();
            loop {
                changes.borrow_and_update();
                let events = match store.read_events(&tenant, cursor, &filter, PAGE).await {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::error!(error = %e, "reading events failed");
                        let _ = tx.send(Err(Status::from(AppError::StreamBroken))).await;
                        return;
                    }
                };
                let full = events.len() == PAGE;
                for event in events {
                    cursor = event.cursor;
                    crate::metrics::METRICS.event_delivered(
                        std::time::SystemTime::now()
                            .duration_since(event.time)
                            .unwrap_or_default(),
                    );
                    let response = pb::SubscribeResponse {
                        event: Some(message_convert::event_to_pb(&event)),
                    };
                    if tx.send(Ok(response)).await.is_err() {
                        return; // the client went away
                    }
                }
                if full {
                    continue;
                }
                tokio::select! {
                    _ = changes.changed() => {}
                    () = tokio::time::sleep(poll) => {}
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
