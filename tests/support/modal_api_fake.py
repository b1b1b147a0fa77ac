"""A local stand-in for Modal's control-plane API: a real gRPC server (grpclib) speaking Modal's
own protocol (modal_proto), so the installed ``modal`` 1.6.4 client runs its real request
building, retries and result decoding against it. Only the RPCs palier's calls reach are
answered; every other one is UNIMPLEMENTED (modal's own test helper fills them in)."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

from grpclib import GRPCError, Status
from grpclib.server import Server
from modal._serialization import serialize
from modal._utils.grpc_testing import patch_mock_servicer
from modal_proto import api_grpc, api_pb2


@patch_mock_servicer
class FakeModalAPI(api_grpc.ModalClientBase):
    def __init__(self):
        self.calls: list[tuple[str, object]] = []
        self.answers: dict[str, list] = defaultdict(list)  # RPC name -> queued answers (message or GRPCError)
        self.defaults: dict[str, object] = {}

    def answer(self, rpc: str, *items) -> None:
        self.answers[rpc].extend(items)

    async def _reply(self, name, stream, default):
        request = await stream.recv_message()
        self.calls.append((name, request))
        queue = self.answers[name]
        item = queue.pop(0) if queue else self.defaults.get(name, default)
        if isinstance(item, GRPCError):
            raise item
        await stream.send_message(item)

    async def FunctionGetOutputs(self, stream):
        await self._reply("FunctionGetOutputs", stream, running())

    async def FunctionCallCancel(self, stream):
        from google.protobuf import empty_pb2

        await self._reply("FunctionCallCancel", stream, empty_pb2.Empty())

    async def VolumeGetOrCreate(self, stream):
        await self._reply("VolumeGetOrCreate", stream, api_pb2.VolumeGetOrCreateResponse(volume_id="vo-fake"))

    async def VolumeCommit(self, stream):
        await self._reply("VolumeCommit", stream, api_pb2.VolumeCommitResponse(skip_reload=False))

    async def VolumeReload(self, stream):
        from google.protobuf import empty_pb2

        await self._reply("VolumeReload", stream, empty_pb2.Empty())


def running() -> api_pb2.FunctionGetOutputsResponse:
    return api_pb2.FunctionGetOutputsResponse(outputs=[], num_unfinished_inputs=1)


def finished(status: int, exception: str = "", value=None) -> api_pb2.FunctionGetOutputsResponse:
    result = api_pb2.GenericResult(status=status, exception=exception)
    if value is not None:
        result.data = serialize(value)
    item = api_pb2.FunctionGetOutputsItem(result=result, data_format=api_pb2.DATA_FORMAT_PICKLE)
    return api_pb2.FunctionGetOutputsResponse(outputs=[item], num_unfinished_inputs=0)


def error(status: Status, message: str) -> GRPCError:
    return GRPCError(status, message)


class FakeModalServer:
    """Runs FakeModalAPI on 127.0.0.1 in a background thread."""

    def __init__(self):
        self.api = FakeModalAPI()
        self.loop = asyncio.new_event_loop()
        self.port: int | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-modal-api", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = Server([self.api])
        self.loop.run_until_complete(self.server.start("127.0.0.1", 0))
        self.port = self.server._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def __enter__(self) -> FakeModalServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
