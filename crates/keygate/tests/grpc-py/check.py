"""Envoy's ext_authz Check, sent as Envoy sends it, with the gRPC team's own client and stubs.

Usage: check.py HOST:PORT CALLS_JSON

CALLS_JSON is a list of calls, each an object with any of: "headers" (the original request's
headers, lower-case names), "path" (its :path, query included), "ext" (the route's
context_extensions), "source" (the client's address). One line of JSON is printed per call: the
CheckResponse as protobuf's JSON mapping, or {"rpcError": CODE, "details": TEXT} when the call
itself failed.
"""

import json
import sys

import grpc
from google.protobuf import json_format
from envoy.config.core.v3 import address_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc


def request(call):
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method="GET",
        path=call.get("path", "/"),
        host="api.example",
        scheme="http",
        protocol="HTTP/1.1",
        headers=call.get("headers", {}),
    )
    attributes = attribute_context_pb2.AttributeContext(
        request=attribute_context_pb2.AttributeContext.Request(http=http),
        context_extensions=call.get("ext", {}),
    )
    if "source" in call:
        attributes.source.address.CopyFrom(
            address_pb2.Address(
                socket_address=address_pb2.SocketAddress(address=call["source"], port_value=40000)
            )
        )
    return external_auth_pb2.CheckRequest(attributes=attributes)


def main():
    address, calls = sys.argv[1], json.loads(sys.argv[2])
    with grpc.insecure_channel(address) as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        for call in calls:
            try:
                response = stub.Check(request(call), timeout=30)
                print(json.dumps(json_format.MessageToDict(response, use_integers_for_enums=True)), flush=True)
            except grpc.RpcError as e:
                print(json.dumps({"rpcError": e.code().name, "details": e.details()}), flush=True)


if __name__ == "__main__":
    main()
