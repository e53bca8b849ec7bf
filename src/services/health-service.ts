import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  HealthCheckResponse_ServingStatus as ServingStatus,
  type Health,
  type HealthCheckRequest,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthMonitor, Serving } from "../app/health-monitor.ts";

const STATUS: Record<Serving, ServingStatus> = {
  serving: ServingStatus.SERVING,
  not_serving: ServingStatus.NOT_SERVING,
};

/** grpc.health.v1.Health, answered without credentials, for "" and each service. */
export class HealthServiceImpl implements ServiceImpl<typeof Health> {
  readonly #monitor: HealthMonitor;

  constructor(monitor: HealthMonitor) {
    this.#monitor = monitor;
  }

  check(request: HealthCheckRequest) {
    if (!this.#monitor.services.includes(request.service)) {
      throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
    }
    return { status: STATUS[this.#monitor.status] };
  }

  async *watch(request: HealthCheckRequest, context: HandlerContext) {
    if (!this.#monitor.services.includes(request.service)) {
      // The protocol answers an unknown service with SERVICE_UNKNOWN, and keeps watching.
      yield { status: ServingStatus.SERVICE_UNKNOWN };
      await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
      return;
    }
    for await (const status of this.#monitor.watch(context.signal)) {
      yield { status: STATUS[status] };
    }
  }

  list() {
    const status = STATUS[this.#monitor.status];
    return { statuses: Object.fromEntries(this.#monitor.services.map((service) => [service, { status }])) };
  }
}
