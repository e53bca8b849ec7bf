/**
 * Answers that are the same for many calls (a plan's answer to every user without a subscription,
 * the catalog) are built once by the services and shared: frozen, and marked here so that each
 * transport may encode each once (grpc/grpc-server.ts, http/response-writer.ts).
 */
const sharedAnswers = new WeakSet<object>();

/** Freezes `answer` and marks it shared. */
export function share<T extends object>(answer: T): T {
  sharedAnswers.add(Object.freeze(answer));
  return answer;
}

export function isSharedAnswer(message: object): boolean {
  return sharedAnswers.has(message);
}

/**
 * What `make` gives for `answer` as `encoding` (a method's bytes, a route's body): made once for a
 * shared answer, afresh for any other.
 */
export function encodedOnce<V>(memo: WeakMap<object, Map<unknown, V>>, answer: object, encoding: unknown, make: () => V): V {
  return isSharedAnswer(answer) ? memoized(memo, answer, encoding, make) : make();
}

/** What `make` gives for the pair (`first`, `second`), made once while `first` lives. */
export function memoized<V>(memo: WeakMap<object, Map<unknown, V>>, first: object, second: unknown, make: () => V): V {
  let made = memo.get(first);
  if (made === undefined) memo.set(first, (made = new Map()));
  let value = made.get(second);
  if (value === undefined) made.set(second, (value = make()));
  return value;
}
