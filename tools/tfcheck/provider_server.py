"""A schema-only Terraform provider speaking plugin protocol 6 over gRPC.

Terraform core validates configuration against the provider schema itself (unknown
arguments, types, required arguments, block names and counts); this server serves the
schema and, in the Validate*Config calls, adds the one schema rule core leaves to
providers: computed-only attributes cannot be set (``config_checks``).

Started by the launcher that ``runner`` writes, it does the hashicorp/go-plugin
handshake: checks the magic cookie, listens on 127.0.0.1, prints
``1|6|tcp|127.0.0.1:PORT|grpc|<cert>`` (TLS with a fresh certificate when Terraform
asks for AutoMTLS via ``PLUGIN_CLIENT_CERT``, see ``plugin_tls``) and serves
``tfplugin6.Provider`` plus go-plugin's ``GRPCController``, ``GRPCStdio``,
``GRPCBroker`` and the gRPC health service.

Invariants:
- Listens on loopback only and never dials out.
- ``GetProviderSchema`` returns the cached serialized response bytes untouched.
- Exits when Terraform calls ``GRPCController.Shutdown``, on SIGTERM/SIGINT, or when its
  parent process goes away, so no provider process outlives a terraform run.
- Calls outside validation (plan/apply/read...) answer UNIMPLEMENTED: this provider can
  never touch real infrastructure.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from .config_checks import decode, read_only_violations
from .rpc import message

MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
PROTOCOL_VERSION = 6
APP_PROTOCOL_VERSION = 1  # go-plugin core protocol version

# RPC name -> (message prefix, GetProviderSchema.Response field holding its schemas);
# these answer with the read-only checks of ``config_checks``.
_CHECKED_RPCS = {
    "ValidateProviderConfig": ("tfplugin6.ValidateProviderConfig", ""),
    "ValidateResourceConfig": ("tfplugin6.ValidateResourceConfig", "resource_schemas"),
    "ValidateDataResourceConfig": ("tfplugin6.ValidateDataResourceConfig", "data_source_schemas"),
    "ValidateEphemeralResourceConfig": (
        "tfplugin6.ValidateEphemeralResourceConfig",
        "ephemeral_resource_schemas",
    ),
}
# RPC name -> response message with only (empty) diagnostics
_EMPTY_DIAG_RPCS = {
    "ValidateListResourceConfig": "tfplugin6.ValidateListResourceConfig",
    "ValidateActionConfig": "tfplugin6.ValidateActionConfig",
    "ConfigureProvider": "tfplugin6.ConfigureProvider",
    "GetFunctions": "tfplugin6.GetFunctions",
    "GetResourceIdentitySchemas": "tfplugin6.GetResourceIdentitySchemas",
}


def _unary(request_type: str, handler, raw_response: bool = False):  # type: ignore[no-untyped-def]
    req = message(request_type)
    return grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=req.FromString,
        response_serializer=(lambda b: b) if raw_response else (lambda m: m.SerializeToString()),
    )


class ProviderServer:
    def __init__(self, schema_pb: Path) -> None:
        self.schema_bytes = schema_pb.read_bytes()
        self.done = threading.Event()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[
                ("grpc.max_send_message_length", 256 << 20),
                ("grpc.max_receive_message_length", 256 << 20),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler("tfplugin6.Provider", self._provider()),
                grpc.method_handlers_generic_handler("plugin.GRPCController", self._controller()),
                grpc.method_handlers_generic_handler("plugin.GRPCStdio", self._stdio()),
                grpc.method_handlers_generic_handler("plugin.GRPCBroker", self._broker()),
                grpc.method_handlers_generic_handler("grpc.health.v1.Health", self._health()),
            ]
        )

    # -- tfplugin6.Provider ------------------------------------------------------
    def _provider(self) -> dict[str, Any]:
        handlers: dict[str, Any] = {
            "GetProviderSchema": _unary(
                "tfplugin6.GetProviderSchema.Request",
                lambda req, ctx: self.schema_bytes,
                raw_response=True,
            ),
            "GetMetadata": _unary("tfplugin6.GetMetadata.Request", self._metadata),
            "StopProvider": _unary(
                "tfplugin6.StopProvider.Request",
                lambda req, ctx: message("tfplugin6.StopProvider.Response")(),
            ),
        }
        for rpc_name, (prefix, field) in _CHECKED_RPCS.items():
            handlers[rpc_name] = _unary(
                f"{prefix}.Request", self._checker(f"{prefix}.Response", field)
            )
        for rpc_name, prefix in _EMPTY_DIAG_RPCS.items():
            response = message(f"{prefix}.Response")
            handlers[rpc_name] = _unary(
                f"{prefix}.Request", lambda req, ctx, response=response: response()
            )
        return handlers

    @functools.cached_property
    def schema(self) -> Any:
        return message("tfplugin6.GetProviderSchema.Response").FromString(self.schema_bytes)

    def _checker(self, response_type: str, field: str):  # type: ignore[no-untyped-def]
        response = message(response_type)

        def check(request: Any, context: Any) -> Any:
            resp = response()
            if field:
                schemas = getattr(self.schema, field)
                if request.type_name not in schemas:
                    return resp  # core reports unknown types itself
                block = schemas[request.type_name].block
            else:
                block = self.schema.provider.block
            if request.config.msgpack:
                value = decode(request.config.msgpack)
                resp.diagnostics.extend(read_only_violations(block, value))
            return resp

        return check

    def _metadata(self, request: Any, context: Any) -> Any:
        schema = self.schema
        resp = message("tfplugin6.GetMetadata.Response")()
        for name in sorted(schema.resource_schemas):
            resp.resources.add(type_name=name)
        for name in sorted(schema.data_source_schemas):
            resp.data_sources.add(type_name=name)
        for name in sorted(schema.ephemeral_resource_schemas):
            resp.ephemeral_resources.add(type_name=name)
        return resp

    # -- go-plugin services --------------------------------------------------------
    def _controller(self) -> dict[str, Any]:
        def shutdown(request: Any, context: Any) -> Any:
            self.done.set()
            return message("plugin.Empty")()

        return {"Shutdown": _unary("plugin.Empty", shutdown)}

    def _stdio(self) -> dict[str, Any]:
        def stream(request: Any, context: Any):  # type: ignore[no-untyped-def]
            return iter(())  # nothing is forwarded; Terraform logs our stderr itself

        return {
            "StreamStdio": grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=message("google.protobuf.Empty").FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
        }

    def _broker(self) -> dict[str, Any]:
        def start_stream(requests: Any, context: Any):  # type: ignore[no-untyped-def]
            for _ in requests:  # no sub-plugins are ever brokered
                pass
            return
            yield

        conn_info = message("plugin.ConnInfo")
        return {
            "StartStream": grpc.stream_stream_rpc_method_handler(
                start_stream,
                request_deserializer=conn_info.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
        }

    def _health(self) -> dict[str, Any]:
        resp_type = message("grpc.health.v1.HealthCheckResponse")

        def check(request: Any, context: Any) -> Any:
            return resp_type(status=resp_type.ServingStatus.Value("SERVING"))

        return {"Check": _unary("grpc.health.v1.HealthCheckRequest", check)}

    # -- lifecycle -----------------------------------------------------------------
    def serve(self, out=sys.stdout) -> int:  # type: ignore[no-untyped-def]
        client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
        cert_field = ""
        if client_cert:
            from .plugin_tls import server_credentials

            creds, cert_field = server_credentials(client_cert)
            port = self.server.add_secure_port("127.0.0.1:0", creds)
        else:
            port = self.server.add_insecure_port("127.0.0.1:0")
        if port == 0:
            raise RuntimeError("could not bind 127.0.0.1")
        self.server.start()
        parent = os.getppid()
        print(
            f"{APP_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|tcp|127.0.0.1:{port}|grpc|{cert_field}",
            file=out,
            flush=True,
        )
        while not self.done.wait(0.5):
            if os.getppid() != parent:  # terraform died without shutting us down
                break
        self.server.stop(grace=0.5).wait()
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", required=True, type=Path, help="cached schema .pb")
    args = parser.parse_args(argv)
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        print(
            "This binary is a plugin. These are not meant to be executed directly.\n"
            "Please execute the program that consumes these plugins, which will\n"
            "load any plugins automatically",
            file=sys.stderr,
        )
        return 1
    versions = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", str(PROTOCOL_VERSION)).split(",")
    if str(PROTOCOL_VERSION) not in versions:
        print(f"terraform offers protocol versions {versions}; need 6", file=sys.stderr)
        return 1
    server = ProviderServer(args.schema)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.done.set())
    return server.serve()


if __name__ == "__main__":
    raise SystemExit(main())
