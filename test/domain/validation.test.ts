import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/domain/errors.ts";
import { catalogName, freeText, idempotencyKey, searchPrefix, userId } from "../../src/domain/validation.ts";

describe("userId", () => {
  it("accepts any text of 1 to 128 characters", () => {
    expect(userId("a")).toBe("a");
    expect(userId("x".repeat(128))).toBe("x".repeat(128));
    expect(userId("user@example.com")).toBe("user@example.com");
    expect(userId("🙂".repeat(128))).toBe("🙂".repeat(128));
  });

  it("refuses empty, oversize and control characters", () => {
    expect(() => userId("")).toThrow(InvalidArgumentError);
    expect(() => userId("x".repeat(129))).toThrow(/at most 128/);
    expect(() => userId("a\u0000b")).toThrow(InvalidArgumentError);
    expect(() => userId("\ud800")).toThrow(InvalidArgumentError);
  });
});

describe("freeText", () => {
  it("accepts 1 to the maximum characters, line breaks and tabs included", () => {
    expect(freeText("chargeback\n\tsee ticket 42", "reason", 100)).toBe("chargeback\n\tsee ticket 42");
    expect(freeText("🙂".repeat(10), "reason", 10)).toBe("🙂".repeat(10));
  });

  it("refuses empty, oversize, NUL and ill-formed text, naming the field", () => {
    for (const bad of ["", "x".repeat(11), "a\u0000b", "\ud800"]) {
      expect(() => freeText(bad, "reason", 10)).toThrow(InvalidArgumentError);
    }
    expect(() => freeText("a\u0000b", "reason", 10)).toThrow(/reason: must be well-formed text without NUL/);
  });
});

describe("catalogName", () => {
  it("accepts snake_case names", () => {
    expect(catalogName("api_calls", "metric")).toBe("api_calls");
  });

  it("refuses anything else, naming the field", () => {
    for (const bad of ["", "Jobs", "1jobs", "jobs;drop", "a".repeat(65)]) {
      expect(() => catalogName(bad, "metric")).toThrow(/metric/);
    }
  });
});

describe("idempotencyKey", () => {
  it("treats empty as no key", () => {
    expect(idempotencyKey("")).toBeUndefined();
  });

  it("accepts up to 255 characters", () => {
    expect(idempotencyKey("k".repeat(255))).toBe("k".repeat(255));
    expect(() => idempotencyKey("k".repeat(256))).toThrow(InvalidArgumentError);
  });
});

describe("searchPrefix", () => {
  it("accepts empty and ordinary prefixes", () => {
    expect(searchPrefix("")).toBe("");
    expect(searchPrefix("grace@ex")).toBe("grace@ex");
  });

  it("refuses control characters, broken text and oversize prefixes", () => {
    for (const bad of ["a\u0000b", "\ud800", "q".repeat(321)]) {
      expect(() => searchPrefix(bad)).toThrow(InvalidArgumentError);
    }
  });
});
