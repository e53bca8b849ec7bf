"""A Python client of EntitlementService, generated with buf.gen.python.yaml and run on Debian's
python3-grpcio and python3-protobuf (docs/api.md, "Clients in other languages"): a plan, an
increment, and a refusal whose google.rpc.Status details (grpc-status-details-bin) are decoded.
GRPC_TARGET (host:port) and TOKEN come from the environment."""

import os
import sys

import grpc
from entitlements.v1 import entitlement_service_pb2 as service
from entitlements.v1 import entitlement_service_pb2_grpc as service_grpc
from google.rpc import error_details_pb2, status_pb2

credentials = [("authorization", "Bearer " + os.environ["TOKEN"])]
with grpc.insecure_channel(os.environ["GRPC_TARGET"]) as channel:
    client = service_grpc.EntitlementServiceStub(channel)
    plan = client.GetPlan(service.GetPlanRequest(user_id="python-user"), metadata=credentials, timeout=10)
    assert plan.plan.code == "free", plan
    used = client.IncrementUsage(
        service.IncrementUsageRequest(user_id="python-user", metric="jobs", amount=1, idempotency_key="py-1"),
        metadata=credentials,
        timeout=10,
    )
    assert used.quota.used == 1, used
    try:
        client.IncrementUsage(service.IncrementUsageRequest(user_id="python-user", metric="jobs", amount=1000), metadata=credentials, timeout=10)
        sys.exit("expected RESOURCE_EXHAUSTED")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        trailers = dict(error.trailing_metadata())
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        failure = error_details_pb2.QuotaFailure()
        info = error_details_pb2.ErrorInfo()
        for detail in status.details:
            if detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
                detail.Unpack(failure)
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                detail.Unpack(info)
        assert failure.violations[0].quota_metric == "jobs", status
        assert info.reason == "QUOTA_EXCEEDED", status
print("ok: python")
