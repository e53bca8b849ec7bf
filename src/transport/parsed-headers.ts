/** Headers as its methods (the platform's types declare them as properties, which a subclass cannot override). */
interface HeadersMethods {
  append(name: string, value: string): void;
  delete(name: string): void;
  get(name: string): string | null;
  has(name: string): boolean;
  set(name: string, value: string): void;
  getSetCookie(): string[];
  forEach(callbackfn: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void;
  keys(): ReturnType<Headers["keys"]>;
  values(): ReturnType<Headers["values"]>;
  entries(): ReturnType<Headers["entries"]>;
  [Symbol.iterator](): ReturnType<Headers["entries"]>;
}

const HeadersBase = Headers as unknown as new () => HeadersMethods;

const HTTP_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

/** A value as Headers holds it: without leading or trailing HTTP whitespace (Fetch's "normalize"). */
function normalized(value: string): string {
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(value.length - 1);
  const padded = first === 0x20 || first === 0x09 || first === 0x0a || first === 0x0d || last === 0x20 || last === 0x09 || last === 0x0a || last === 0x0d;
  return padded ? value.replace(HTTP_WHITESPACE, "") : value;
}

/**
 * A call's request headers: a real Headers over the record the transport has already parsed and
 * checked (names in lower case). A Headers copy would validate every name and value again while a
 * call reads only a few of them (docs/performance.md): reads are answered from the record, and
 * the first change or iteration copies it in.
 */
export class ParsedHeaders extends HeadersBase implements Headers {
  #record: Readonly<Record<string, string>> | undefined;

  constructor(record: Readonly<Record<string, string>>) {
    super();
    this.#record = record;
  }

  /** Copies the record in (once): from then on this is a plain Headers. */
  #copied(): void {
    const record = this.#record;
    if (record === undefined) return;
    this.#record = undefined;
    for (const name of Object.keys(record)) super.append(name, record[name]!);
  }

  override get(name: string): string | null {
    const record = this.#record;
    if (record === undefined) return super.get(name);
    const key = name.toLowerCase();
    return Object.hasOwn(record, key) ? normalized(record[key]!) : null;
  }

  override has(name: string): boolean {
    const record = this.#record;
    return record === undefined ? super.has(name) : Object.hasOwn(record, name.toLowerCase());
  }

  override append(name: string, value: string): void {
    this.#copied();
    super.append(name, value);
  }

  override set(name: string, value: string): void {
    this.#copied();
    super.set(name, value);
  }

  override delete(name: string): void {
    this.#copied();
    super.delete(name);
  }

  override getSetCookie(): string[] {
    this.#copied();
    return super.getSetCookie();
  }

  override forEach(callbackfn: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.#copied();
    super.forEach(callbackfn, thisArg);
  }

  override keys(): ReturnType<Headers["keys"]> {
    this.#copied();
    return super.keys();
  }

  override values(): ReturnType<Headers["values"]> {
    this.#copied();
    return super.values();
  }

  override entries(): ReturnType<Headers["entries"]> {
    this.#copied();
    return super.entries();
  }

  // Its own iterator, not Headers.prototype.entries: `new Headers(this)` then iterates it, where
  // with the inherited one the platform would copy the (still empty) internal list directly.
  override [Symbol.iterator](): ReturnType<Headers["entries"]> {
    return this.entries();
  }
}
