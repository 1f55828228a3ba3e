#!/usr/bin/env python3
"""Receive omniroute's events as signed webhooks and verify them.

Starts an HTTP receiver on loopback, registers it as an endpoint for
contact-created events (EndpointService), creates a contact, and waits for
the delivery, which it verifies with the Standard Webhooks reference library
(`standardwebhooks` on PyPI) and the secret CreateEndpoint showed once.
Deletes the endpoint at the end. Exits 0 when a delivery verified, 1 on any
gRPC error, a bad signature or a timeout.

The server must allow http:// to loopback (endpoints.allow_http_loopback)
and have endpoints.secret_key set; the key needs the scopes endpoints.write
and contacts.write.
"""

import argparse
import http.server
import json
import os
import pathlib
import queue
import sys
import threading
import uuid

import grpc
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

sys.path.append(str(pathlib.Path(__file__).resolve().parent / "gen"))
try:
    from omniroute.v1 import (
        common_pb2,
        contact_pb2,
        contact_pb2_grpc,
        endpoint_pb2,
        endpoint_pb2_grpc,
        event_pb2,
    )
except ImportError as err:
    sys.exit(f"webhook_receiver: no generated stubs ({err}): run `python generate.py` first")


def fail(why: str) -> None:
    print(f"webhook_receiver: {why}", file=sys.stderr)
    sys.exit(1)


def receiver(deliveries: "queue.Queue[tuple[bytes, dict]]") -> http.server.HTTPServer:
    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            deliveries.put((body, dict(self.headers.items())))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051",
                        help="omniroute's gRPC address (default: %(default)s)")
    parser.add_argument("--key", default=os.environ.get("OMNIROUTE_API_KEY", ""),
                        help="API key omr_… (default: $OMNIROUTE_API_KEY)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the delivery (default: %(default)g)")
    args = parser.parse_args()
    metadata = [("authorization", f"Bearer {args.key}")] if args.key else []

    deliveries: "queue.Queue[tuple[bytes, dict]]" = queue.Queue()
    server = receiver(deliveries)
    url = f"http://127.0.0.1:{server.server_address[1]}/omniroute"
    run = uuid.uuid4().hex[:12]
    doing = f"connecting to {args.target}"
    with grpc.insecure_channel(args.target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=args.timeout)
            endpoints = endpoint_pb2_grpc.EndpointServiceStub(channel)
            contacts = contact_pb2_grpc.ContactServiceStub(channel)

            doing = "CreateEndpoint"
            created = endpoints.CreateEndpoint(
                endpoint_pb2.CreateEndpointRequest(endpoint=endpoint_pb2.Endpoint(
                    url=url,
                    description="python webhook receiver",
                    event_types=[event_pb2.EVENT_TYPE_CONTACT_CREATED],
                )),
                metadata=metadata, timeout=args.timeout,
            )
            print(f"registered {created.endpoint.name} -> {url}")

            doing = "CreateContact"
            contact = contacts.CreateContact(
                contact_pb2.CreateContactRequest(contact=contact_pb2.Contact(
                    display_name="Webhook Example",
                    identities=[contact_pb2.Identity(
                        channel=common_pb2.CHANNEL_EMAIL,
                        address=f"webhook-{run}@example.com")],
                )),
                metadata=metadata, timeout=args.timeout,
            ).contact

            doing = "waiting for the delivery"
            verifier = Webhook(created.secret)
            while True:
                try:
                    body, headers = deliveries.get(timeout=args.timeout)
                except queue.Empty:
                    fail(f"no delivery within {args.timeout:g} s")
                try:
                    event = verifier.verify(body, headers)
                except WebhookVerificationError as err:
                    fail(f"a delivery did not verify: {err}")
                if event.get("contact") == contact.name:
                    break
            if headers.get("webhook-id") != event["cursor"]:
                fail("webhook-id is not the event's cursor")
            print(f"verified: {event['type']} {event['contact']} "
                  f"(webhook-id {headers['webhook-id']})")
            print(json.dumps(event, indent=2))

            doing = "DeleteEndpoint"
            endpoints.DeleteEndpoint(
                endpoint_pb2.DeleteEndpointRequest(name=created.endpoint.name),
                metadata=metadata, timeout=args.timeout,
            )
        except grpc.RpcError as err:
            fail(f"{doing}: {err.code().name}: {err.details()}")
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
