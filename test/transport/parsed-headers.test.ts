import { describe, expect, it } from "vitest";
import { ParsedHeaders } from "../../src/transport/parsed-headers.ts";

// Values with HTTP whitespace around them, as HTTP/2 can deliver them: Headers holds them without it.
const record = { authorization: "Bearer abc  ", "user-agent": "\t test/1.0", accept: "*/*", "x-request-id": "r-1", cookie: "a=1", "x-inner": "a  b" };

/** The same record as a ParsedHeaders and as a platform Headers, for side-by-side checks. */
const both = () => ({ parsed: new ParsedHeaders({ ...record }), reference: new Headers(record) });

describe("ParsedHeaders", () => {
  it("is a Headers, and reads like one", () => {
    const { parsed, reference } = both();
    expect(parsed).toBeInstanceOf(Headers);
    for (const name of ["authorization", "Authorization", "USER-AGENT", "x-request-id", "x-inner", "missing", "constructor", "toString", "__proto__"]) {
      expect(parsed.get(name)).toBe(reference.get(name));
      expect(parsed.has(name)).toBe(reference.has(name));
    }
  });

  it("iterates and copies like a Headers: sorted names, every entry", () => {
    const { parsed, reference } = both();
    expect([...parsed]).toEqual([...reference]);
    expect([...both().parsed.entries()]).toEqual([...reference.entries()]);
    expect([...both().parsed.keys()]).toEqual([...reference.keys()]);
    expect([...both().parsed.values()]).toEqual([...reference.values()]);
    const seen: [string, string][] = [];
    both().parsed.forEach((value, name, parent) => {
      expect(parent).toBeInstanceOf(ParsedHeaders);
      seen.push([name, value]);
    });
    expect(seen).toEqual([...reference]);
    // Copies made before any other use: the platform must read them through the iterator.
    expect([...new Headers(both().parsed)]).toEqual([...reference]);
    expect(Object.fromEntries(both().parsed)).toEqual(Object.fromEntries(reference));
    expect([...new Response(null, { headers: both().parsed }).headers]).toEqual([...reference]);
  });

  it("changes like a Headers, keeping what it held", () => {
    const changes: ((headers: Headers) => void)[] = [
      (headers) => headers.set("Accept", "application/json"),
      (headers) => headers.append("cookie", "b=2"),
      (headers) => headers.delete("user-agent"),
      (headers) => headers.append("set-cookie", "c=3"),
    ];
    for (const change of changes) {
      const { parsed, reference } = both();
      change(parsed);
      change(reference);
      expect([...parsed]).toEqual([...reference]);
      expect(parsed.getSetCookie()).toEqual(reference.getSetCookie());
      for (const name of Object.keys(record)) expect(parsed.get(name)).toBe(reference.get(name));
    }
  });
});
