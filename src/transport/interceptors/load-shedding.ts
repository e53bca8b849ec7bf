import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * Bounds the calls served at once. Past the bound a call is refused at once with `unavailable`
 * (retry with backoff) instead of queueing for the database without end: under overload the
 * service keeps answering, and the pool's own wait stays short.
 */
export function loadSheddingInterceptor(maxInFlight: number): Interceptor {
  let inFlight = 0;
  return (next) => async (request) => {
    if (inFlight >= maxInFlight) {
      throw new ConnectError("the service is overloaded; retry with backoff", Code.Unavailable);
    }
    inFlight++;
    try {
      return await next(request);
    } finally {
      inFlight--;
    }
  };
}
