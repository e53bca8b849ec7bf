import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * Bounds the calls served at once. Past the bound a call is refused at once with `unavailable`
 * (retry with backoff) instead of queueing for the database without end: under overload the
 * service keeps answering, and the pool's own wait stays short.
 */
export function loadSheddingInterceptor(maxInFlight: number): Interceptor {
  let inFlight = 0;
  // Made once: a call costs one `then`, where an async function would cost its frame too.
  const ended = <T>(response: T) => (inFlight--, response);
  const failed = (error: unknown): never => {
    inFlight--;
    throw error;
  };
  return (next) => (request) => {
    if (inFlight >= maxInFlight) {
      return Promise.reject(new ConnectError("the service is overloaded; retry with backoff", Code.Unavailable));
    }
    inFlight++;
    try {
      return next(request).then(ended, failed);
    } catch (error) {
      inFlight--;
      return Promise.reject(error);
    }
  };
}
